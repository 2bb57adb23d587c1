//! Where results and dead letters go.
//!
//! - [`encoding`]: a result row as NDJSON, as the original headerless CSV, or as a row
//!   of a Parquet file. Row formats encode a tenant's unchanging profile fields once per
//!   profile update ([`encoding::ProfileFragments`]), not once per event.
//! - [`file`]: each worker's results as files under the output folder, partitioned by
//!   event hour, written under a hidden in-progress name and renamed when complete.
//! - [`dead_letter`]: each stage's dead letters under `_rejected/`.

pub mod dead_letter;
pub mod encoding;
pub mod file;

use std::path::PathBuf;

use thiserror::Error;

/// Why a sink failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SinkError {
    /// A file operation failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The Parquet writer failed.
    #[error("writing Parquet file {path}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: parquet::errors::ParquetError,
    },
}

pub(crate) fn io_error(
    op: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> SinkError {
    let path = path.to_path_buf();
    move |source| SinkError::Io { op, path, source }
}
