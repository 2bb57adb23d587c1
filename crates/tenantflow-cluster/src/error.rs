//! What can go wrong with leases.

/// A lease operation's failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseError {
    /// The lease changed since it was read: another worker took, renewed or released
    /// it. For its holder, the lease is lost.
    #[error(
        "lease {key}: {change} refused, the lease changed since it was read (another worker took it)"
    )]
    Conflict {
        /// The shard id.
        key: String,
        /// The change refused.
        change: &'static str,
    },
    /// The lease is not held by this worker (any more).
    #[error("lease {key} is not held by this worker")]
    NotHeld {
        /// The shard id.
        key: String,
    },
    /// The table could not be read or written.
    #[error("lease table {table}: {operation} failed: {message}")]
    Store {
        /// The table.
        table: String,
        /// The call that failed.
        operation: &'static str,
        /// Why.
        message: String,
    },
    /// An item of the table is not a lease tenantflow can read.
    #[error("lease table {table}: item {key:?} is not a lease: {reason}")]
    Malformed {
        /// The table.
        table: String,
        /// The item's key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}
