//! Starting from the latest checkpoint: complete its pending files (idempotent, so a
//! crash during recovery is harmless), abort the uploads no checkpoint recorded, delete
//! the objects of checkpoints that were never completed, and hand over the manifest for
//! state and sources to resume from.

use std::collections::HashSet;
use std::sync::Arc;

use tenantflow_sinks::StoreError;
use tenantflow_sinks::store::Store;
use tenantflow_sinks::upload::{Staging, commit};

use super::coordinator::{commit_all, fault_point};
use super::manifest::{CheckpointStore, JobIdentity, Manifest, ManifestError};

/// Why a job cannot resume from its checkpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecoveryError {
    /// The manifest cannot be read.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The checkpoint belongs to a job with other inputs or settings.
    #[error(
        "the checkpoint in {store} was taken by a different job ({what}: checkpoint has {found}, this run has {expected}); \
         run with the same settings, or start over with --from-scratch"
    )]
    Mismatch {
        /// The checkpoint store.
        store: String,
        /// What differs.
        what: &'static str,
        /// The checkpoint's value.
        found: String,
        /// This run's value.
        expected: String,
    },
    /// A worker's tenant state cannot be loaded.
    #[error("loading tenant state {path}")]
    State {
        /// The state object.
        path: String,
        /// Why.
        #[source]
        source: tenantflow_operators::snapshot::SnapshotError,
    },
    /// A worker's tenant state object is missing.
    #[error("tenant state {0} named by the checkpoint is missing")]
    MissingState(String),
    /// An open file cannot be restored.
    #[error("restoring the open files of a checkpoint")]
    Sink(#[source] tenantflow_sinks::SinkError),
    /// An input cannot be resumed.
    #[error(transparent)]
    Source(#[from] tenantflow_sources::SourceError),
}

fn check(
    store: &CheckpointStore,
    found: &JobIdentity,
    expected: &JobIdentity,
) -> Result<(), RecoveryError> {
    let settings = [
        (
            "workers",
            found.workers.to_string(),
            expected.workers.to_string(),
        ),
        ("inputs", found.inputs.join(","), expected.inputs.join(",")),
        (
            "streams",
            found.streams.join(","),
            expected.streams.join(","),
        ),
        ("format", found.format.clone(), expected.format.clone()),
        (
            "partitioning",
            found.partitioning.clone(),
            expected.partitioning.clone(),
        ),
    ];
    match settings
        .into_iter()
        .find(|(_, found, expected)| found != expected)
    {
        Some((what, found, expected)) => Err(RecoveryError::Mismatch {
            store: store.location.url(),
            what,
            found,
            expected,
        }),
        None => Ok(()),
    }
}

/// Brings the output to the latest checkpoint and returns it (`None`: no checkpoint,
/// start from the beginning, after cleaning what a run that crashed before its first
/// checkpoint left).
///
/// # Errors
/// A store failure, an unreadable manifest, or a checkpoint of another job.
pub fn recover(
    store: &CheckpointStore,
    output: &Arc<dyn Store>,
    staging: &Staging,
    identity: &JobIdentity,
) -> Result<Option<Manifest>, RecoveryError> {
    let started = std::time::Instant::now();
    let manifest = store.latest()?;
    let mut open: HashSet<&str> = HashSet::new();
    if let Some(m) = &manifest {
        check(store, &m.job, identity)?;
        if let Some((first, rest)) = m.pending.split_first() {
            commit(output, staging, first)?;
            fault_point("recovery", m.checkpoint);
            commit_all(output, staging, rest)?;
        }
        for worker in &m.workers {
            open.extend(worker.files.open.iter().map(|(_, u)| u.path.as_str()));
            open.extend(worker.dead_letters.open.iter().map(|u| u.path.as_str()));
        }
        for source in m.sources.values() {
            open.extend(source.open.iter().map(|u| u.path.as_str()));
        }
    }
    let latest = manifest.as_ref().map_or(0, |m| m.checkpoint);
    let markers = staging.location.path("uploads");
    let mut aborted = 0;
    let mut dropped = 0;
    if let Some(uploads) = output.list_uploads("")? {
        for (path, upload) in uploads {
            if !open.contains(path.as_str()) {
                output.abort_upload(&path, &upload)?;
                aborted += 1;
            }
        }
    }
    for object in store.location.store.list(&store.location.prefix)? {
        if let Some(path) = object.path.strip_prefix(&markers) {
            let path = path.trim_start_matches('/');
            if open.contains(path) {
                continue;
            }
            if let Some(id) = store.location.store.get(&object.path)? {
                output.abort_upload(path, &String::from_utf8_lossy(&id))?;
            }
            store.location.store.delete(&object.path)?;
            aborted += 1;
            continue;
        }
        if object.path.starts_with(&staging.staged("")) {
            // Small files staged by a run after its last checkpoint (the manifest's own
            // were committed above, which deletes them).
            store.location.store.delete(&object.path)?;
            dropped += 1;
            continue;
        }
        let relative = object
            .path
            .strip_prefix(&store.location.prefix)
            .unwrap_or(&object.path)
            .trim_start_matches('/');
        let newer = relative
            .strip_prefix("chk-")
            .and_then(|rest| rest.split('/').next())
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n > latest);
        if newer {
            store.location.store.delete(&object.path)?;
            dropped += 1;
        }
    }
    match &manifest {
        Some(m) => tracing::info!(
            checkpoint = m.checkpoint,
            committed = m.pending.len(),
            aborted_uploads = aborted,
            dropped_objects = dropped,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Brought the output to the latest checkpoint."
        ),
        None if aborted + dropped > 0 => tracing::info!(
            aborted_uploads = aborted,
            dropped_objects = dropped,
            "No checkpoint: removed what an earlier run left."
        ),
        None => {}
    }
    Ok(manifest)
}
