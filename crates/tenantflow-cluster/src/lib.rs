//! Scale-out the way AWS's own Kinesis consumers do it: the Kinesis Client Library's
//! leases, one row per shard in a DynamoDB table.
//!
//! - [`lease::Lease`]: a row, with the KCL's attributes (so KCL tooling can read the
//!   table) and tenantflow's reference to the shard's state.
//! - [`store::LeaseStore`]: conditional writes on the lease counter;
//!   [`dynamo::DynamoLeaseStore`] and [`memory::MemoryLeaseStore`] (tests).
//! - [`coordinator::LeaseCoordinator`]: renew, take, balance, steal, checkpoint,
//!   release, on a clock the caller passes in.
//! - [`shard_sync`]: a lease for every shard, children after their parents.

pub mod coordinator;
pub mod dynamo;
pub mod error;
pub mod lease;
pub mod memory;
pub mod shard_sync;
pub mod store;

pub use coordinator::{LeaseCoordinator, LeaseSettings, Plan};
pub use error::LeaseError;
pub use lease::{Checkpoint, Lease};
pub use store::{Change, LeaseStore};
