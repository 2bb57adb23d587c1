//! The output: what an earlier run left there, resuming it, or clearing it on request.

use tenantflow_sinks::StoreError;
use tenantflow_sinks::upload::Location;
use thiserror::Error;

use crate::checkpoint::manifest::{CheckpointStore, is_checkpoint_object};

/// Why the output cannot be used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OutputError {
    /// An earlier run's results are there, and the run would not resume them.
    #[error(
        "output {url} already holds results of an earlier run ({count} objects, e.g. {example}){}; \
         pass --overwrite to replace them, or choose another --output",
        if *checkpoint { " and starting over would mix new results with them" } else { " and no checkpoint" }
    )]
    NotEmpty {
        /// The output.
        url: String,
        /// How many of our objects are there.
        count: usize,
        /// One of them.
        example: String,
        /// A checkpoint is there too (the run was asked to start over).
        checkpoint: bool,
    },
    /// The store failed.
    #[error("cannot prepare the output")]
    Store(#[source] StoreError),
}

/// What [`prepare_output`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStart {
    /// Nothing to resume: the run starts from the beginning.
    Fresh,
    /// A checkpoint is there: the run resumes from it.
    Resume,
}

/// Makes the output ready for a run. With a checkpoint in `checkpoints`, the run
/// resumes (unless `from_scratch` or `overwrite`, which delete the checkpoints after
/// saying so). Otherwise results of an earlier run (result files in partition folders,
/// dead letters in `_rejected/`) are an error, or removed with `overwrite`. Only
/// objects of tenantflow's own names are deleted, and only once every check passed.
///
/// # Errors
/// Earlier results without a checkpoint or `overwrite`, or a store failure.
pub fn prepare_output(
    output: &Location,
    checkpoints: &CheckpointStore,
    overwrite: bool,
    from_scratch: bool,
) -> Result<OutputStart, OutputError> {
    // Everything is checked before anything is changed: a refusal leaves the output,
    // and its checkpoints, as they were.
    let manifests = checkpoints.manifests().map_err(OutputError::Store)?;
    if !manifests.is_empty() && !from_scratch && !overwrite {
        return Ok(OutputStart::Resume);
    }
    let results: Vec<String> = output
        .store
        .list(&output.prefix)
        .map_err(OutputError::Store)?
        .into_iter()
        .map(|o| o.path)
        .filter(|path| is_result_object(relative_to(path, &output.prefix)))
        .collect();
    if !results.is_empty() && !overwrite {
        return Err(OutputError::NotEmpty {
            url: output.url(),
            count: results.len(),
            example: results[0].clone(),
            checkpoint: !manifests.is_empty(),
        });
    }
    if !manifests.is_empty() {
        tracing::warn!(
            checkpoints = manifests.len(),
            store = %checkpoints.location.url(),
            "Starting over (--from-scratch or --overwrite): deleting the existing checkpoints; every input is read from its start."
        );
        delete_checkpoints(output, checkpoints)?;
    }
    for path in &results {
        output.store.delete(path).map_err(OutputError::Store)?;
    }
    Ok(OutputStart::Fresh)
}

/// Deletes what runs wrote in the checkpoint store (aborting the uploads its markers
/// name), and nothing else.
fn delete_checkpoints(output: &Location, checkpoints: &CheckpointStore) -> Result<(), OutputError> {
    let store = checkpoints.location.store.as_ref();
    let markers = checkpoints.location.path("uploads");
    for object in store
        .list(&checkpoints.location.prefix)
        .map_err(OutputError::Store)?
    {
        if !is_checkpoint_object(relative_to(&object.path, &checkpoints.location.prefix)) {
            continue;
        }
        if let Some(path) = object.path.strip_prefix(&markers)
            && let Some(id) = store.get(&object.path).map_err(OutputError::Store)?
        {
            let path = path.trim_start_matches('/');
            let _ = output
                .store
                .abort_upload(path, &String::from_utf8_lossy(&id));
        }
        store.delete(&object.path).map_err(OutputError::Store)?;
    }
    Ok(())
}

fn relative_to<'p>(path: &'p str, prefix: &str) -> &'p str {
    path.strip_prefix(prefix)
        .unwrap_or(path)
        .trim_start_matches('/')
}

/// True for a path (relative to the output) that a run writes: a result file
/// `part-…` in a partition folder, or a dead-letter file `….ndjson` in `_rejected/`.
/// Hidden names are uploads a crashed run left in progress (a folder's
/// `.part-….inprogress`): not results; recovery removes them. Anything else is the
/// user's and is never deleted.
fn is_result_object(relative: &str) -> bool {
    let Some((folder, name)) = relative.rsplit_once('/') else {
        return false;
    };
    if name.starts_with('.') {
        return false;
    }
    if folder == "_rejected" {
        return name.ends_with(".ndjson") || name.ends_with(".ndjson.gz");
    }
    let mut parts = folder.split('/');
    let partition = match (parts.next(), parts.next(), parts.next()) {
        (Some(hourly), None, _) => is_ours(hourly),
        (Some(day), Some(hour), None) => {
            is_ours(day)
                && hour
                    .strip_prefix("hour=")
                    .is_some_and(|h| h.len() == 2 && h.bytes().all(|c| c.is_ascii_digit()))
        }
        _ => false,
    };
    partition && name.starts_with("part-")
}

/// `_rejected`, `yyyy-MM-dd--HH` or `dt=yyyy-MM-dd`.
fn is_ours(name: &str) -> bool {
    let date = |s: &str| {
        let b = s.as_bytes();
        b.len() == 10
            && b.iter().enumerate().all(|(i, c)| match i {
                4 | 7 => *c == b'-',
                _ => c.is_ascii_digit(),
            })
    };
    name == "_rejected"
        || name.strip_prefix("dt=").is_some_and(date)
        || (name.len() == 14
            && date(&name[..10])
            && name[10..12] == *"--"
            && name[12..].bytes().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use tenantflow_sinks::store::{LocalStore, Store};

    #[test]
    fn earlier_results_need_overwrite_and_other_files_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(LocalStore::new(dir.path().into()));
        let output = Location::root(store);
        let checkpoints = CheckpointStore {
            location: output.child("_checkpoints"),
        };
        assert_eq!(
            prepare_output(&output, &checkpoints, false, false).unwrap(),
            OutputStart::Fresh
        );
        // What a run killed before its first checkpoint leaves: uploads in progress,
        // no result. The same command starts again.
        std::fs::create_dir_all(dir.path().join("2026-01-01--00")).unwrap();
        std::fs::write(
            dir.path()
                .join("2026-01-01--00/.part-w00-000001.ndjson.inprogress"),
            "x",
        )
        .unwrap();
        assert_eq!(
            prepare_output(&output, &checkpoints, false, false).unwrap(),
            OutputStart::Fresh
        );
        std::fs::write(
            dir.path().join("2026-01-01--00/part-w00-000001.ndjson"),
            "x",
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("_rejected")).unwrap();
        std::fs::write(dir.path().join("_rejected/reader-000001.ndjson"), "x").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        let err = prepare_output(&output, &checkpoints, false, false).unwrap_err();
        assert!(err.to_string().contains("--overwrite"), "{err}");
        prepare_output(&output, &checkpoints, true, false).unwrap();
        assert!(
            !dir.path()
                .join("2026-01-01--00/part-w00-000001.ndjson")
                .exists()
        );
        assert!(!dir.path().join("_rejected/reader-000001.ndjson").exists());
        assert!(dir.path().join("notes.txt").exists());

        // A checkpoint means resume; --from-scratch deletes it.
        std::fs::create_dir_all(dir.path().join("_checkpoints")).unwrap();
        std::fs::write(
            dir.path().join("_checkpoints/manifest-000000000003.json"),
            "{}",
        )
        .unwrap();
        assert_eq!(
            prepare_output(&output, &checkpoints, false, false).unwrap(),
            OutputStart::Resume
        );
        assert_eq!(
            prepare_output(&output, &checkpoints, false, true).unwrap(),
            OutputStart::Fresh
        );
        assert!(checkpoints.manifests().unwrap().is_empty());
    }

    #[test]
    fn starting_over_deletes_only_what_runs_write() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(LocalStore::new(dir.path().into()));
        let output = Location::root(Arc::clone(&store));
        // The checkpoints share the output's folder, which also holds the user's files.
        let checkpoints = CheckpointStore {
            location: output.clone(),
        };
        let write = |path: &str| {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x").unwrap();
        };
        for path in [
            "manifest-000000000003.json",
            "chk-000000000003/state-w00.bin",
            "uploads/2026-01-01--00/part-w00-000001.ndjson",
            "staged/x",
            "2026-01-01--00/part-w00-000001.ndjson",
            "notes.txt",
            "sub/d.csv",
            "manifest-3.json",
            "chk-old/keep",
            "2026-01-01--00/mine.csv",
            "_rejected/notes.txt",
        ] {
            write(path);
        }
        assert_eq!(
            prepare_output(&output, &checkpoints, false, true)
                .unwrap_err()
                .to_string(),
            OutputError::NotEmpty {
                url: output.url(),
                count: 1,
                example: "2026-01-01--00/part-w00-000001.ndjson".into(),
                checkpoint: true,
            }
            .to_string()
        );
        prepare_output(&output, &checkpoints, true, true).unwrap();
        let mut left: Vec<String> = store
            .list("")
            .unwrap()
            .into_iter()
            .map(|o| o.path)
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "2026-01-01--00/mine.csv",
                "_rejected/notes.txt",
                "chk-old/keep",
                "manifest-3.json",
                "notes.txt",
                "sub/d.csv",
            ]
        );
    }

    #[test]
    fn a_refused_start_over_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(LocalStore::new(dir.path().into()));
        let output = Location::root(Arc::clone(&store));
        let checkpoints = CheckpointStore {
            location: output.child("_checkpoints"),
        };
        let before = [
            "_checkpoints/manifest-000000000003.json",
            "_checkpoints/chk-000000000003/state-w00.bin",
            "2026-01-01--00/part-w00-000001.ndjson",
        ];
        for path in before {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x").unwrap();
        }
        let err = prepare_output(&output, &checkpoints, false, true).unwrap_err();
        assert!(err.to_string().contains("--overwrite"), "{err}");
        let left: Vec<String> = store
            .list("")
            .unwrap()
            .into_iter()
            .map(|o| o.path)
            .collect();
        assert_eq!(left.len(), before.len(), "{left:?}");
        // And the plain command still resumes.
        assert_eq!(
            prepare_output(&output, &checkpoints, false, false).unwrap(),
            OutputStart::Resume
        );
    }

    #[test]
    fn recognises_result_paths() {
        assert!(is_result_object("2026-01-01--13/part-w00-000001.ndjson"));
        assert!(is_result_object(
            "dt=2026-01-01/hour=13/part-w00-000001.parquet"
        ));
        assert!(is_result_object("_rejected/reader-000001.ndjson"));
        assert!(!is_result_object(
            "2026-01-01--13/.part-w00-000001.ndjson.inprogress"
        ));
        assert!(!is_result_object("2026-01-01--13/notes.txt"));
        assert!(!is_result_object(
            "dt=2026-01-01/hour=1/part-w00-000001.ndjson"
        ));
        assert!(!is_result_object("part-w00-000001.ndjson"));
        assert!(!is_result_object(
            "data/2026-01-01--13/part-w00-000001.ndjson"
        ));
    }

    #[test]
    fn recognises_partition_names() {
        assert!(is_ours("2026-01-01--13"));
        assert!(is_ours("dt=2026-01-01"));
        assert!(!is_ours("2026-01-01"));
        assert!(!is_ours("data"));
    }
}
