//! Where results and dead letters go.
//!
//! - [`encoding`]: a result row as NDJSON, as the original headerless CSV, or as a row
//!   of a Parquet file. Row formats encode a tenant's unchanging profile fields once per
//!   profile update ([`encoding::ProfileFragments`]), not once per event.
//! - [`store`]: where files go (a folder, S3, memory), as resumable uploads.
//! - [`upload`]: one file being written, durable at checkpoints without closing.
//! - [`file`]: each worker's results as files, partitioned by event hour, visible only
//!   once the checkpoint that recorded them is committed.
//! - [`dead_letter`]: each stage's dead letters under `_rejected/`.
//! - [`aggregates`]: the BI aggregates (`customers`, `jobs`) as CSV and Parquet.

pub mod aggregates;
pub mod dead_letter;
pub mod encoding;
pub mod file;
mod finisher;
pub mod store;
pub mod upload;

use thiserror::Error;

pub use store::StoreError;

/// Why a sink failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The Parquet writer failed.
    #[error("writing Parquet file {path}")]
    Parquet {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// gzip failed.
    #[error("compressing {path}")]
    Compress {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}
