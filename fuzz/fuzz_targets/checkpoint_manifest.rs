//! The checkpoint manifest reader, on whatever a store holds at a manifest's path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenantflow_runtime::checkpoint::manifest::read_manifest;
use tenantflow_sinks::store::{MemoryStore, Store};

fuzz_target!(|data: &[u8]| {
    let store = MemoryStore::new();
    let path = "_checkpoints/manifest-000000000001.json";
    if store.put(path, data.to_vec().into()).is_ok() {
        let _ = read_manifest(&store, path);
    }
});
