//! Starting from the latest checkpoint: complete its pending files (idempotent, so a
//! crash during recovery is harmless), abort the uploads no checkpoint recorded, delete
//! the objects of checkpoints that were never completed, and hand over the manifest for
//! state and sources to resume from.

use std::collections::HashMap;
use std::sync::Arc;

use tenantflow_sinks::StoreError;
use tenantflow_sinks::file::Partitioning;
use tenantflow_sinks::store::Store;
use tenantflow_sinks::upload::{Location, Staging, UploadState, commit};

use super::coordinator::{commit_all, fault_point, pause_point};
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
    /// A worker's waiting work (lookups, scores) cannot be read.
    #[error("loading the waiting work {path} of a checkpoint")]
    InFlight {
        /// The object.
        path: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
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
        (
            "format",
            found.format.to_string(),
            expected.format.to_string(),
        ),
        (
            "partitioning",
            word(found.partitioning),
            word(expected.partitioning),
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

/// A layout as the configuration writes it.
fn word(partitioning: Partitioning) -> String {
    match partitioning {
        Partitioning::Hourly => "hourly".into(),
        Partitioning::Hive => "hive".into(),
    }
}

/// An open file's path and upload id.
fn recorded(file: &UploadState) -> (&str, Option<&str>) {
    (file.path.as_str(), file.upload.as_deref())
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
    pause_point("recovery");
    let started = std::time::Instant::now();
    let manifest = store.latest()?;
    // The files the manifest left open, with their uploads: a path can also have an
    // upload begun by a run that crashed later (a file recorded before its first part),
    // and that one must go.
    let mut open: HashMap<&str, Option<&str>> = HashMap::new();
    if let Some(m) = &manifest {
        check(store, &m.job, identity)?;
        if let Some((first, rest)) = m.pending.split_first() {
            commit(output, staging, first)?;
            fault_point("recovery", m.checkpoint);
            commit_all(output, staging, rest)?;
        }
        for worker in &m.workers {
            open.extend(worker.files.open.iter().map(|(_, u)| recorded(u)));
            open.extend(worker.dead_letters.open.iter().map(recorded));
        }
        for source in m.sources.values() {
            open.extend(source.open.iter().map(recorded));
        }
    }
    let latest = manifest.as_ref().map_or(0, |m| m.checkpoint);
    let markers = staging.location.path("uploads");
    let mut aborted = 0;
    let mut dropped = 0;
    if let Some(uploads) = output.list_uploads("")? {
        for (path, upload) in uploads {
            if open.get(path.as_str()) != Some(&Some(upload.as_str())) {
                output.abort_upload(&path, &upload)?;
                aborted += 1;
            }
        }
    }
    for object in store.location.store.list(&store.location.prefix)? {
        if let Some(path) = object.path.strip_prefix(&markers) {
            let path = path.trim_start_matches('/');
            if let Some(id) = store.location.store.get(&object.path)? {
                let id = String::from_utf8_lossy(&id);
                if open.get(path) == Some(&Some(id.as_ref())) {
                    continue;
                }
                output.abort_upload(path, &id)?;
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

/// Where a shard job resumes: the manifest its lease row names (written by this
/// shard's previous owner, in that owner's folder), if any.
#[derive(Debug, Clone, Copy)]
pub struct ShardRecovery<'a> {
    /// The new owner's checkpoint folder (`…/shards/SHARD/WORKER/`).
    pub store: &'a CheckpointStore,
    /// Every owner's folder of the shard (`…/shards/SHARD/`): where earlier owners'
    /// upload markers are.
    pub shard_root: &'a Location,
    /// The manifest the lease row names.
    pub manifest: Option<&'a str>,
    /// The shard's tag in its files' names (`part-TAG-…`, `_rejected/TAG/`): other
    /// shards' uploads are never touched.
    pub tag: &'a str,
}

/// Whether `path` is one of the files of the shard tagged `tag`.
pub(crate) fn shard_owns(path: &str, tag: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let result = name
        .strip_prefix("part-")
        .and_then(|rest| rest.strip_prefix(tag))
        .is_some_and(|rest| rest.starts_with('-'));
    let mut folders = path.split('/');
    result || folders.any(|f| f == "_rejected") && folders.next() == Some(tag)
}

/// Brings a shard's output to the checkpoint its lease row names: that checkpoint's
/// pending files are committed (from its owner's folder), this shard's uploads it does
/// not record as open are aborted (a previous owner's, or a zombie's begun after it),
/// the markers of those it records are moved into the new owner's folder, and the
/// manifest is returned for state and sources to resume from.
///
/// # Errors
/// A store failure, an unreadable manifest, or a checkpoint of another job.
pub fn recover_shard(
    at: ShardRecovery<'_>,
    output: &Arc<dyn Store>,
    staging: &Staging,
    identity: &JobIdentity,
) -> Result<Option<Manifest>, RecoveryError> {
    let started = std::time::Instant::now();
    let manifest = match at.manifest {
        Some(path) => Some(super::manifest::read_manifest(
            at.store.location.store.as_ref(),
            path,
        )?),
        None => None,
    };
    let mut open: HashMap<&str, Option<&str>> = HashMap::new();
    if let (Some(m), Some(path)) = (&manifest, at.manifest) {
        check(at.store, &m.job, identity)?;
        // The checkpoint's own folder: where its staged files and markers are.
        let folder = path.rsplit_once('/').map_or("", |(folder, _)| folder);
        let written_by = Staging {
            location: Location {
                store: Arc::clone(&at.store.location.store),
                prefix: folder.to_owned(),
            },
        };
        commit_all(output, &written_by, &m.pending)?;
        for worker in &m.workers {
            open.extend(worker.files.open.iter().map(|(_, u)| recorded(u)));
            open.extend(worker.dead_letters.open.iter().map(recorded));
        }
        for source in m.sources.values() {
            open.extend(source.open.iter().map(recorded));
        }
    }
    let mut aborted = 0;
    if let Some(uploads) = output.list_uploads("")? {
        for (path, upload) in uploads {
            if shard_owns(&path, at.tag) && open.get(path.as_str()) != Some(&Some(upload.as_str()))
            {
                output.abort_upload(&path, &upload)?;
                aborted += 1;
            }
        }
    }
    let checkpoints = &at.shard_root.store;
    for object in checkpoints.list(&at.shard_root.prefix)? {
        let Some((_, path)) = object.path.split_once("/uploads/") else {
            continue;
        };
        let Some(id) = checkpoints.get(&object.path)? else {
            continue;
        };
        let id = String::from_utf8_lossy(&id).into_owned();
        if open.get(path) == Some(&Some(id.as_str())) {
            // Still open: its marker moves to the new owner's folder.
            let marker = staging.marker(path);
            if marker != object.path {
                checkpoints.put(&marker, bytes::Bytes::from(id.clone().into_bytes()))?;
                checkpoints.delete(&object.path)?;
            }
            continue;
        }
        output.abort_upload(path, &id)?;
        checkpoints.delete(&object.path)?;
        aborted += 1;
    }
    tracing::info!(
        checkpoint = manifest.as_ref().map(|m| m.checkpoint),
        committed = manifest.as_ref().map_or(0, |m| m.pending.len()),
        aborted_uploads = aborted,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "Brought the shard's output to the checkpoint its lease names."
    );
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use bytes::Bytes;
    use tenantflow_sinks::store::MemoryStore;
    use tenantflow_sinks::upload::Location;

    use super::super::manifest::{FilesPosition, WorkerPart};
    use super::*;

    fn open_file(path: &str, upload: Option<&str>) -> (i64, UploadState) {
        let state = UploadState {
            path: path.into(),
            upload: upload.map(str::to_owned),
            parts: Vec::new(),
            len: 0,
            rows: 0,
            tail: None,
            opened_ms: 0,
        };
        (0, state)
    }

    #[test]
    fn a_shard_owns_its_tagged_files_only() {
        let tag = "shardId-000000000001";
        assert!(shard_owns(
            "out/2026-01-01--05/part-shardId-000000000001-w00-000003.ndjson",
            tag
        ));
        assert!(shard_owns(
            "out/_rejected/shardId-000000000001/worker-00-000001.ndjson",
            tag
        ));
        assert!(!shard_owns(
            "out/2026-01-01--05/part-shardId-000000000011-w00-000003.ndjson",
            tag
        ));
        assert!(!shard_owns(
            "out/2026-01-01--05/part-w00-000003.ndjson",
            tag
        ));
        assert!(!shard_owns(
            "out/_rejected/shardId-000000000002/worker-00-000001.ndjson",
            tag
        ));
    }

    /// A file recorded before its first part can have an upload begun for it by a run
    /// that crashed later: that upload is aborted, the recorded one kept.
    #[test]
    fn keeps_recorded_uploads_and_aborts_later_ones_for_the_same_file() {
        let memory = Arc::new(MemoryStore::new());
        let output: Arc<dyn Store> = memory.clone();
        let store = CheckpointStore {
            location: Location::root(Arc::clone(&output)).child("_checkpoints"),
        };
        let staging = Staging {
            location: store.location.clone(),
        };
        let identity = JobIdentity {
            inputs: vec!["in.ndjson".into()],
            streams: Vec::new(),
            workers: 1,
            format: "ndjson".parse().unwrap(),
            partitioning: Partitioning::Hourly,
        };
        let kept = output.begin_upload("a/kept.ndjson").unwrap();
        let later = output.begin_upload("a/late.ndjson").unwrap();
        for (path, id) in [("a/kept.ndjson", &kept), ("a/late.ndjson", &later)] {
            output
                .put(&staging.marker(path), Bytes::from(id.clone()))
                .unwrap();
        }
        let mut worker = WorkerPart::default();
        worker.files.open = vec![
            open_file("a/kept.ndjson", Some(&kept)),
            open_file("a/late.ndjson", None),
        ];
        store
            .write(&Manifest {
                version: 1,
                checkpoint: 1,
                created_ms: 0,
                job: identity.clone(),
                final_checkpoint: false,
                files: FilesPosition::default(),
                streams: Default::default(),
                sources: Default::default(),
                workers: vec![worker],
                pending: Vec::new(),
                results: 0,
            })
            .unwrap();

        recover(&store, &output, &staging, &identity).unwrap();

        let uploads = memory.list_uploads("").unwrap().unwrap();
        assert_eq!(uploads, vec![("a/kept.ndjson".to_owned(), kept)]);
        let markers: Vec<String> = memory
            .list(&staging.location.path("uploads"))
            .unwrap()
            .into_iter()
            .map(|o| o.path)
            .collect();
        assert_eq!(markers, vec![staging.marker("a/kept.ndjson")]);
    }
}
