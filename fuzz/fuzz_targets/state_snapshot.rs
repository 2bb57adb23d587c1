//! The tenant-state snapshot reader (every format version it reads), tenant by tenant
//! and by position.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenantflow_operators::snapshot::{SnapshotReader, read_snapshot};

fuzz_target!(|data: &[u8]| {
    let _ = read_snapshot(data, |_| Ok(()));
    if let Ok(reader) = SnapshotReader::new(data) {
        for tenant in reader.take(1_000) {
            if tenant.is_err() {
                break;
            }
        }
    }
});
