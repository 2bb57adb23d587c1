//! A shard's checkpoints are kept per *tenure* of its lease: under
//! `CHECKPOINTS/shards/SHARD/tN-WORKER/`, N the lease counter when the owner took the
//! lease. Counters only grow, so an earlier tenure's folder has a smaller N.
//!
//! An owner that took the lease over restores from the manifest the lease row names,
//! in an earlier tenure's folder; once its own first checkpoint has committed (the row
//! names its manifest), no row will ever name an earlier tenure's manifest again, and
//! only that tenure's owner (a paused "zombie", if alive at all) could still write
//! there, which nothing commits. So the earlier folders go then. A zombie that writes
//! after that leaves a folder which the shard's next hand-over removes.

use tenantflow_sinks::StoreError;
use tenantflow_sinks::upload::Location;

/// The folder of a tenure under its shard's folder: `tN-WORKER`.
pub(crate) fn tenure_folder(counter: u64, worker: &str) -> String {
    format!("t{counter}-{worker}")
}

/// The lease counter of a tenure's folder name; `None` for a name of another form.
fn counter_of(folder: &str) -> Option<u64> {
    let (counter, _worker) = folder.strip_prefix('t')?.split_once('-')?;
    counter.parse().ok()
}

/// The tenures of a shard before the current one.
#[derive(Debug, Clone)]
pub(crate) struct EarlierTenures {
    /// The shard's folder (`CHECKPOINTS/shards/SHARD`).
    pub(crate) shard_root: Location,
    /// The current tenure's lease counter.
    pub(crate) counter: u64,
}

impl EarlierTenures {
    /// Deletes every object of the folders of tenures before the current one (folders
    /// of another form stay); returns how many went.
    ///
    /// # Errors
    /// When the store fails.
    pub(crate) fn delete(&self) -> Result<usize, StoreError> {
        let store = self.shard_root.store.as_ref();
        let root = format!("{}/", self.shard_root.prefix.trim_end_matches('/'));
        let mut deleted = 0;
        for object in store.list(&self.shard_root.prefix)? {
            let Some(relative) = object.path.strip_prefix(&root) else {
                continue;
            };
            let Some((folder, _)) = relative.split_once('/') else {
                continue;
            };
            if counter_of(folder).is_some_and(|n| n < self.counter) {
                store.delete(&object.path)?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use bytes::Bytes;
    use tenantflow_sinks::store::{MemoryStore, Store};

    use super::*;

    #[test]
    fn folder_names_carry_the_lease_counter() {
        assert_eq!(tenure_folder(17, "host-1-a2"), "t17-host-1-a2");
        assert_eq!(counter_of("t17-host-1-a2"), Some(17));
        assert_eq!(counter_of("worker-a"), None);
        assert_eq!(counter_of("t-a"), None);
        assert_eq!(counter_of("t17"), None);
    }

    #[test]
    fn only_earlier_tenures_go() {
        let store = Arc::new(MemoryStore::new());
        let paths = [
            "cp/shards/s0/t3-a/manifest-000000000004.json",
            "cp/shards/s0/t3-a/chk-000000000004/state-w00.bin",
            "cp/shards/s0/t5-b/manifest-000000000009.json",
            "cp/shards/s0/t7-a/manifest-000000000010.json",
            "cp/shards/s0/t7-a/chk-000000000010/state-w00.bin",
            "cp/shards/s0/t12-c/manifest-000000000011.json",
            "cp/shards/s0/legacy/manifest-000000000001.json",
            "cp/shards/s01/t1-a/manifest-000000000001.json",
        ];
        for path in paths {
            store.put(path, Bytes::from_static(b"{}")).unwrap();
        }
        let shard_root = Location {
            store: store.clone(),
            prefix: "cp/shards/s0".into(),
        };
        let earlier = EarlierTenures {
            shard_root,
            counter: 7,
        };
        assert_eq!(earlier.delete().unwrap(), 3);
        let mut left: Vec<String> = store
            .list("cp/")
            .unwrap()
            .into_iter()
            .map(|o| o.path)
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "cp/shards/s0/legacy/manifest-000000000001.json",
                "cp/shards/s0/t12-c/manifest-000000000011.json",
                "cp/shards/s0/t7-a/chk-000000000010/state-w00.bin",
                "cp/shards/s0/t7-a/manifest-000000000010.json",
                "cp/shards/s01/t1-a/manifest-000000000001.json",
            ]
        );
        // Again: nothing more.
        assert_eq!(earlier.delete().unwrap(), 0);
    }
}
