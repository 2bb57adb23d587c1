//! Where leases live: a table whose every write is conditional on what the writer last
//! read, so that of two workers racing for one lease, exactly one wins.

use futures_util::future::BoxFuture;

use crate::error::LeaseError;
use crate::lease::{Checkpoint, Lease};

/// One conditional write to a lease. Every change increments the counter, and is
/// applied only while the lease's counter and owner are those the writer read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The owner says it is alive.
    Renew,
    /// `owner` takes the lease: an unowned or expired one, or one stolen from a worker
    /// holding more than its share.
    Take {
        /// The new owner.
        owner: String,
    },
    /// The owner records where its shard's reading has got to and the manifest holding
    /// the shard's state: the commit point of the shard's checkpoint.
    Checkpoint {
        /// The new checkpoint.
        checkpoint: Checkpoint,
        /// The manifest holding the shard's state and files.
        state: Option<String>,
    },
    /// The owner lets the lease go (a graceful stop): another worker may take it at once.
    Release,
}

impl Change {
    /// The lease as it is after this change, from the lease as it was read.
    pub fn apply(&self, read: &Lease) -> Lease {
        let mut next = read.clone();
        next.counter = read.counter + 1;
        match self {
            Change::Renew => {}
            Change::Take { owner } => {
                // As the KCL counts: a switch from another owner, not from nobody.
                if read.owner.as_ref().is_some_and(|was| was != owner) {
                    next.owner_switches = read.owner_switches + 1;
                }
                next.owner = Some(owner.clone());
            }
            Change::Checkpoint { checkpoint, state } => {
                next.checkpoint = checkpoint.clone();
                next.state.clone_from(state);
                next.owner_switches = 0;
            }
            Change::Release => next.owner = None,
        }
        next
    }

    /// What the change is called in messages.
    pub fn name(&self) -> &'static str {
        match self {
            Change::Renew => "renew",
            Change::Take { .. } => "take",
            Change::Checkpoint { .. } => "checkpoint",
            Change::Release => "release",
        }
    }
}

/// A lease table. Used as `dyn` (a DynamoDB table, or memory in tests), so its methods
/// return boxed futures.
pub trait LeaseStore: Send + Sync {
    /// Creates the table if it does not exist and waits until it can be used.
    fn prepare(&self) -> BoxFuture<'_, Result<(), LeaseError>>;

    /// Every lease, as of now (a strongly consistent read).
    fn list(&self) -> BoxFuture<'_, Result<Vec<Lease>, LeaseError>>;

    /// Creates `lease` unless its key has one; whether it did.
    fn create_if_absent<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, Result<bool, LeaseError>>;

    /// Applies `change` to the lease `read`, if its counter and owner are still those
    /// of `read`; the lease after the change, or [`LeaseError::Conflict`].
    fn update<'a>(
        &'a self,
        read: &'a Lease,
        change: &'a Change,
    ) -> BoxFuture<'a, Result<Lease, LeaseError>>;
}
