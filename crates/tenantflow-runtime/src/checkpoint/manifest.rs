//! What a checkpoint records, and where in the checkpoint store.
//!
//! Layout of the checkpoint store (default `_checkpoints/` under the output):
//! - `manifest-000000000042.json`: checkpoint 42's manifest, written once, atomically
//!   (a conditional put where the store has one); the latest one is the job's state;
//! - `chk-000000000042/state-w00.bin`: worker 0's tenant state at checkpoint 42;
//! - `chk-000000000042/tails/…`: the staged tails of files open across checkpoint 42;
//! - `uploads/…`: one marker per upload in progress, naming its id, so that a recovery
//!   can abort uploads that no checkpoint recorded.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tenantflow_sinks::StoreError;
use tenantflow_sinks::dead_letter::DeadLetterState;
use tenantflow_sinks::file::{Partitioning, ResultEncoding, SinkState};
use tenantflow_sinks::upload::{Location, PendingFile};

/// The manifest format this release writes and reads.
pub const MANIFEST_VERSION: u32 = 1;

/// Where the file inputs resume: the next line to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesPosition {
    /// Index of the input in the job's list.
    pub input: usize,
    /// Byte offset of the line in that input (decompressed, for gzip).
    pub offset: u64,
    /// Its line number.
    pub line: u64,
    /// What the input was at that offset, to refuse a different input at resume
    /// (absent in manifests of earlier releases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<tenantflow_sources::InputFingerprint>,
}

/// Where a Kinesis stream resumes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamPosition {
    /// Shard → sequence number of the last record processed.
    pub positions: BTreeMap<String, String>,
    /// Shards read to their end.
    pub finished: BTreeSet<String>,
}

/// What a job is, to refuse resuming a checkpoint of another job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobIdentity {
    /// Names of the file inputs, in order.
    pub inputs: Vec<String>,
    /// Names of the streams read.
    pub streams: Vec<String>,
    /// Keyed workers (tenant state and files are per worker).
    pub workers: usize,
    /// Output format and compression, written as the file extension.
    pub format: ResultEncoding,
    /// Folder layout.
    pub partitioning: Partitioning,
}

/// One worker's part of a checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerPart {
    /// The tenant state object, relative to the checkpoint store.
    pub state: Option<String>,
    /// Tenants in it.
    pub tenants: u64,
    /// Its open result files.
    pub files: SinkState,
    /// Its open dead-letter file.
    pub dead_letters: DeadLetterState,
    /// What waited for a remote answer (lookups, scores) at the barrier, relative to
    /// the checkpoint store: issued again on resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<String>,
}

/// Checkpoint N.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version.
    pub version: u32,
    /// The checkpoint's number, increasing.
    pub checkpoint: u64,
    /// When it was taken, epoch milliseconds.
    pub created_ms: i64,
    /// The job.
    pub job: JobIdentity,
    /// True for the checkpoint taken as a run ended (inputs done or stopped).
    pub final_checkpoint: bool,
    /// Where the file inputs resume.
    pub files: FilesPosition,
    /// Where each stream resumes, by stream name.
    pub streams: BTreeMap<String, StreamPosition>,
    /// Each source stage's open dead-letter file, by stage name.
    pub sources: BTreeMap<String, DeadLetterState>,
    /// Each worker's part.
    pub workers: Vec<WorkerPart>,
    /// Files complete and waiting for this checkpoint: committed once it is durable.
    pub pending: Vec<PendingFile>,
    /// Results written up to this checkpoint, over all runs.
    pub results: u64,
}

/// The checkpoint store.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    /// Its folder.
    pub location: Location,
}

fn manifest_name(checkpoint: u64) -> String {
    format!("manifest-{checkpoint:012}.json")
}

/// True for a path (relative to the checkpoint store's folder) that a run writes there:
/// a manifest, a checkpoint's folder, upload markers, staged files, the output lock.
/// Anything else in the folder belongs to someone else and is never deleted.
pub fn is_checkpoint_object(relative: &str) -> bool {
    let first = relative.split('/').next().unwrap_or("");
    let twelve_digits = |s: &str| s.len() == 12 && s.bytes().all(|c| c.is_ascii_digit());
    first
        .strip_prefix("manifest-")
        .and_then(|rest| rest.strip_suffix(".json"))
        .is_some_and(twelve_digits)
        || first.strip_prefix("chk-").is_some_and(twelve_digits)
        || (matches!(first, "uploads" | "staged") && relative.contains('/'))
}

impl CheckpointStore {
    /// The folder of checkpoint `n`'s objects.
    pub fn checkpoint_folder(&self, n: u64) -> Location {
        self.location.child(&format!("chk-{n:012}"))
    }

    /// Numbers of the manifests present, ascending.
    ///
    /// # Errors
    /// When the store cannot be listed.
    pub fn manifests(&self) -> Result<Vec<u64>, StoreError> {
        let prefix = self.location.path("");
        let mut found: Vec<u64> = self
            .location
            .store
            .list_folder(&self.location.prefix)?
            .into_iter()
            .filter_map(|o| {
                let name = o.path.strip_prefix(&prefix).unwrap_or(&o.path);
                let name = name.trim_start_matches('/');
                name.strip_prefix("manifest-")?
                    .strip_suffix(".json")?
                    .parse()
                    .ok()
            })
            .collect();
        found.sort_unstable();
        Ok(found)
    }

    /// The latest manifest, if any.
    ///
    /// # Errors
    /// When the store fails, or the manifest cannot be read.
    pub fn latest(&self) -> Result<Option<Manifest>, ManifestError> {
        let Some(&n) = self.manifests()?.last() else {
            return Ok(None);
        };
        let path = self.location.path(&manifest_name(n));
        read_manifest(self.location.store.as_ref(), &path).map(Some)
    }

    /// The path of checkpoint `n`'s manifest.
    pub fn manifest_path(&self, n: u64) -> String {
        self.location.path(&manifest_name(n))
    }

    /// Writes a manifest, once: a second writer of the same number loses.
    ///
    /// # Errors
    /// When the store fails, or the manifest exists already.
    pub fn write(&self, manifest: &Manifest) -> Result<(), ManifestError> {
        let path = self.manifest_path(manifest.checkpoint);
        let bytes = serde_json::to_vec_pretty(manifest).map_err(|source| ManifestError::Parse {
            path: path.clone(),
            source,
        })?;
        if self
            .location
            .store
            .put_if_absent(&path, Bytes::from(bytes))?
        {
            Ok(())
        } else {
            Err(ManifestError::Exists(path))
        }
    }

    /// Deletes the manifests and checkpoint folders before checkpoint `keep`.
    ///
    /// # Errors
    /// When the store fails.
    pub fn delete_before(&self, keep: u64) -> Result<(), StoreError> {
        for n in self.manifests()? {
            if n < keep {
                tenantflow_sinks::store::delete_all(
                    self.location.store.as_ref(),
                    &self.checkpoint_folder(n).prefix,
                )?;
                self.location
                    .store
                    .delete(&self.location.path(&manifest_name(n)))?;
            }
        }
        Ok(())
    }
}

/// Why a manifest cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Listed but gone.
    #[error("checkpoint manifest {0} disappeared while being read")]
    Missing(String),
    /// Not a manifest.
    #[error("checkpoint manifest {path} is not valid")]
    Parse {
        /// The manifest.
        path: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// Written by another release.
    #[error(
        "checkpoint manifest {path} has format version {version}; this release reads version {MANIFEST_VERSION}"
    )]
    Version {
        /// The manifest.
        path: String,
        /// Its version.
        version: u32,
    },
    /// Another process wrote this checkpoint: two jobs share the checkpoint store.
    #[error("checkpoint manifest {0} exists already: is another job using this checkpoint store?")]
    Exists(String),
    /// The BI aggregates could not be built.
    #[error("building the BI aggregates: {0}")]
    Aggregates(String),
}

/// Reads the manifest at `path` (a path in `store`, as a lease row names it).
///
/// # Errors
/// Missing, unreadable, or of another format version.
pub fn read_manifest(
    store: &dyn tenantflow_sinks::store::Store,
    path: &str,
) -> Result<Manifest, ManifestError> {
    let bytes = store
        .get(path)?
        .ok_or_else(|| ManifestError::Missing(path.to_owned()))?;
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|source| ManifestError::Parse {
            path: path.to_owned(),
            source,
        })?;
    if manifest.version != MANIFEST_VERSION {
        return Err(ManifestError::Version {
            path: path.to_owned(),
            version: manifest.version,
        });
    }
    Ok(manifest)
}
