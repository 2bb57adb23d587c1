//! A lease for every shard: what `ListShards` shows is written into the table, a new
//! shard's lease created unowned (the KCL's shard sync).

use std::collections::HashSet;

use crate::error::LeaseError;
use crate::lease::{Checkpoint, Lease};
use crate::store::LeaseStore;

/// A shard as the lease table needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSpec {
    /// The shard id.
    pub id: String,
    /// Its parents (one after a split, two after a merge).
    pub parents: Vec<String>,
    /// Its hash-key range, first and last key as decimal strings.
    pub hash_range: (String, String),
}

/// Creates the leases of the shards that have none. A shard whose parent has a lease
/// (or is listed) starts at its oldest record, after its parents; one without starts
/// at `initial` (where the job was told to begin). Returns how many were created.
///
/// # Errors
/// The table failed.
pub async fn sync_leases(
    store: &dyn LeaseStore,
    shards: &[ShardSpec],
    initial: &Checkpoint,
) -> Result<usize, LeaseError> {
    let existing = store.list().await?;
    let mut known: HashSet<&str> = existing.iter().map(|l| l.key.as_str()).collect();
    known.extend(shards.iter().map(|s| s.id.as_str()));
    let leased: HashSet<&str> = existing.iter().map(|l| l.key.as_str()).collect();
    let mut created = 0;
    for shard in shards.iter().filter(|s| !leased.contains(s.id.as_str())) {
        let has_parent = shard.parents.iter().any(|p| known.contains(p.as_str()));
        let checkpoint = if has_parent {
            Checkpoint::TrimHorizon
        } else {
            initial.clone()
        };
        let mut lease = Lease::new(shard.id.clone(), checkpoint);
        lease.parents.clone_from(&shard.parents);
        lease.hash_range = Some(shard.hash_range.clone());
        if store.create_if_absent(&lease).await? {
            tracing::info!(lease = %shard.id, "Created a lease.");
            created += 1;
        }
    }
    Ok(created)
}
