//! The commit point of a job that holds a shard's lease. Without leases a checkpoint
//! commits when its manifest is written (put-if-absent). With them, a worker that lost
//! its lease (a paused "zombie" that wakes up) could still write a manifest; so the
//! commit point is one step later: the conditional update of the shard's lease row,
//! on the condition that the lease is still this worker's, naming the manifest. The
//! checkpoint's files are committed only after it. A refused update stops the job
//! before it commits anything.

use std::collections::BTreeMap;

use super::manifest::StreamPosition;

/// A checkpoint written and about to be committed.
#[derive(Debug, Clone, Copy)]
pub struct FencedCheckpoint<'a> {
    /// Its number.
    pub checkpoint: u64,
    /// The path of its manifest in the checkpoint store.
    pub manifest: &'a str,
    /// Where each stream's reading has got to.
    pub streams: &'a BTreeMap<String, StreamPosition>,
    /// The job's last checkpoint (its shard ended, or it stops).
    pub final_checkpoint: bool,
}

/// Makes a written checkpoint the committed one, or refuses.
pub trait CommitFence: Send + Sync + std::fmt::Debug {
    /// Commits `checkpoint` (the lease row's conditional update).
    ///
    /// # Errors
    /// Why it cannot be committed: the lease is no longer this worker's, or the table
    /// could not be written. Nothing of the checkpoint is committed then.
    fn commit(&self, checkpoint: &FencedCheckpoint<'_>) -> Result<(), String>;
}
