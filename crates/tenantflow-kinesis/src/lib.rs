//! Kinesis Data Streams through the official AWS SDK.
//!
//! - [`client::connect`]: a client from the standard AWS chain (`AWS_ENDPOINT_URL` for a
//!   local server).
//! - [`admin`]: create, describe and delete streams.
//! - [`kpl`]: the KPL's aggregated record format, both ways.
//! - [`writer::RecordWriter`]: PutRecords in batches, retrying only failed records,
//!   never reordering the records of a partition key.
//! - [`consumer`]: reads every shard of a stream in lineage order (a child after its
//!   parents), with typed positions, reporting each shard's lag in [`lag::ShardLags`].
//!
//! Why a crate of its own: the source, the sink and the `produce`/`streams` commands all
//! speak Kinesis; the SDK (the heaviest dependency) is compiled once, here.

pub mod admin;
pub mod backoff;
pub mod client;
pub mod consumer;
pub mod error;
pub mod fan_out;
pub mod hash_key;
pub mod kpl;
pub mod lag;
pub mod lineage;
pub mod shards;
pub mod url;
pub mod writer;

pub use error::{KinesisError, Retry};
