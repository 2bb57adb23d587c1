//! A shard job's commit point in its lease row: [`LeaseFence`] turns a written
//! checkpoint into the lease's conditional update (the shard's position, and the
//! manifest as `tenantflowState`); a shard read to its end is recorded as `SHARD_END`,
//! which lets its children be leased.

use std::sync::Arc;
use std::time::Instant;

use tenantflow_cluster::{Checkpoint, LeaseCoordinator};

use crate::checkpoint::fence::{CommitFence, FencedCheckpoint};
use crate::checkpoint::tenures::EarlierTenures;

/// One worker's leases, shared by its lease loop and its shard jobs' fences, with the
/// clock they all read.
#[derive(Debug)]
pub struct SharedLeases {
    /// The protocol.
    pub coordinator: tokio::sync::Mutex<LeaseCoordinator>,
    started: Instant,
}

impl SharedLeases {
    /// Shares `coordinator`; its clock starts now.
    pub fn new(coordinator: LeaseCoordinator) -> Self {
        Self {
            coordinator: tokio::sync::Mutex::new(coordinator),
            started: Instant::now(),
        }
    }

    /// Milliseconds since [`SharedLeases::new`]: the lease protocol's clock.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// The commit point of the job that holds the lease of `shard_id` of `stream`.
#[derive(Debug)]
pub struct LeaseFence {
    /// The worker's leases.
    pub leases: Arc<SharedLeases>,
    /// The leased stream.
    pub stream: String,
    /// The shard.
    pub shard_id: String,
    /// Where the lease calls run (the fence is called from the checkpoint thread).
    pub runtime: tokio::runtime::Handle,
    /// The shard's earlier tenures, deleted after this tenure's first commit.
    pub(crate) earlier: std::sync::Mutex<Option<EarlierTenures>>,
}

impl CommitFence for LeaseFence {
    fn commit(&self, c: &FencedCheckpoint<'_>) -> Result<(), String> {
        let position = c.streams.get(&self.stream);
        let ended = position.is_some_and(|p| p.finished.contains(&self.shard_id));
        let read_to = position.and_then(|p| p.positions.get(&self.shard_id));
        commit_position(
            &self.leases,
            &self.runtime,
            &self.shard_id,
            read_to.map(String::as_str),
            ended,
            Some(c.manifest.to_owned()),
        )?;
        // The row names this tenure's manifest now: the earlier tenures' folders are
        // no longer needed (checkpoint::tenures says why). Housekeeping: a failure
        // is reported, and the folders wait for the next hand-over.
        let earlier = self
            .earlier
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(earlier) = earlier {
            match earlier.delete() {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(
                    shard = %self.shard_id,
                    deleted,
                    "Deleted the checkpoints of the shard's earlier owners."
                ),
                Err(e) => tracing::warn!(
                    shard = %self.shard_id,
                    error = %e,
                    "Could not delete the checkpoints of the shard's earlier owners; the next owner will."
                ),
            }
        }
        Ok(())
    }
}

/// Records in the lease row of `shard_id` how far it was read (`read_to`, the last
/// sequence number processed; `ended`: to its end) and `state`, on the condition that
/// the lease is still this worker's. Called from a thread outside `runtime`.
///
/// # Errors
/// The lease is no longer this worker's, or the table could not be written.
pub fn commit_position(
    leases: &SharedLeases,
    runtime: &tokio::runtime::Handle,
    shard_id: &str,
    read_to: Option<&str>,
    ended: bool,
    state: Option<String>,
) -> Result<(), String> {
    runtime.block_on(async {
        let mut coordinator = leases.coordinator.lock().await;
        let now = leases.now_ms();
        let result = if ended {
            coordinator.finish(shard_id, state, now).await
        } else {
            let checkpoint = match read_to {
                Some(sequence) => Checkpoint::Sequence {
                    sequence: sequence.to_owned(),
                    sub_sequence: 0,
                },
                // Nothing read yet: where the lease says.
                None => coordinator
                    .lease(shard_id)
                    .map_or(Checkpoint::TrimHorizon, |l| l.checkpoint.clone()),
            };
            coordinator
                .checkpoint(shard_id, checkpoint, state, now)
                .await
        };
        result.map(drop).map_err(|e| e.to_string())
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;

    use tenantflow_cluster::memory::MemoryLeaseStore;
    use tenantflow_cluster::shard_sync::{ShardSpec, sync_leases};
    use tenantflow_cluster::{LeaseSettings, LeaseStore};

    use bytes::Bytes;
    use tenantflow_sinks::store::{MemoryStore, Store};
    use tenantflow_sinks::upload::Location;

    use super::*;
    use crate::checkpoint::manifest::StreamPosition;

    const SHARD: &str = "shardId-000000000000";

    #[test]
    fn a_checkpoint_moves_the_lease_and_a_zombie_commits_nothing() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let store = MemoryLeaseStore::new();
        let spec = ShardSpec {
            id: SHARD.into(),
            parents: Vec::new(),
            hash_range: ("0".into(), u128::MAX.to_string()),
        };
        runtime
            .block_on(sync_leases(&store, &[spec], &Checkpoint::TrimHorizon))
            .unwrap();
        let worker = |name: &str| {
            Arc::new(SharedLeases::new(LeaseCoordinator::new(
                name,
                Arc::new(store.clone()),
                LeaseSettings::default(),
                1,
            )))
        };
        let zombie = worker("zombie");
        runtime.block_on(async {
            let mut leases = zombie.coordinator.lock().await;
            leases.take(0).await.unwrap();
        });
        // An earlier owner's checkpoint, and another shard's.
        let checkpoints = Arc::new(MemoryStore::new());
        for path in [
            "shards/s0/t0-old/manifest-1.json",
            "shards/s1/t0-old/manifest-1.json",
        ] {
            checkpoints.put(path, Bytes::from_static(b"{}")).unwrap();
        }
        let fence = LeaseFence {
            leases: Arc::clone(&zombie),
            stream: "bigdatajobs".into(),
            shard_id: SHARD.into(),
            runtime: runtime.handle().clone(),
            earlier: std::sync::Mutex::new(Some(EarlierTenures {
                shard_root: Location {
                    store: checkpoints.clone(),
                    prefix: "shards/s0".into(),
                },
                counter: 1,
            })),
        };
        let left = || -> Vec<String> {
            let listed = checkpoints.list("shards/").unwrap();
            listed.into_iter().map(|o| o.path).collect()
        };
        let mut streams = BTreeMap::new();
        let mut position = StreamPosition::default();
        position.positions.insert(SHARD.into(), "4960".into());
        streams.insert("bigdatajobs".to_owned(), position.clone());
        fence
            .commit(&FencedCheckpoint {
                checkpoint: 1,
                manifest: "shards/s0/zombie/manifest-1.json",
                streams: &streams,
                final_checkpoint: false,
            })
            .unwrap();
        let lease = store.get(SHARD).unwrap();
        assert_eq!(lease.checkpoint.as_attribute(), "4960");
        assert_eq!(
            lease.state.as_deref(),
            Some("shards/s0/zombie/manifest-1.json")
        );
        // Committed: the earlier owner's checkpoint of this shard is gone.
        assert_eq!(left(), ["shards/s1/t0-old/manifest-1.json"]);

        // Another worker takes the lease over (as after the zombie's pause).
        let read = runtime.block_on(store.list()).unwrap().remove(0);
        runtime
            .block_on(store.update(
                &read,
                &tenantflow_cluster::Change::Take {
                    owner: "heir".into(),
                },
            ))
            .unwrap();
        position.positions.insert(SHARD.into(), "5000".into());
        position.finished.insert(SHARD.into());
        streams.insert("bigdatajobs".to_owned(), position);
        // A refused commit deletes nothing.
        *fence.earlier.lock().unwrap() = Some(EarlierTenures {
            shard_root: Location {
                store: checkpoints.clone(),
                prefix: "shards/s1".into(),
            },
            counter: 1,
        });
        let refused = fence.commit(&FencedCheckpoint {
            checkpoint: 2,
            manifest: "shards/s0/zombie/manifest-2.json",
            streams: &streams,
            final_checkpoint: true,
        });
        assert!(refused.unwrap_err().contains("another worker"));
        let lease = store.get(SHARD).unwrap();
        assert_eq!(lease.owner.as_deref(), Some("heir"));
        assert_eq!(lease.checkpoint.as_attribute(), "4960");
        assert_eq!(left(), ["shards/s1/t0-old/manifest-1.json"]);
    }
}
