//! The output: what an earlier run left there, resuming it, or clearing it on request.

use tenantflow_sinks::StoreError;
use tenantflow_sinks::upload::Location;
use thiserror::Error;

use crate::checkpoint::manifest::CheckpointStore;

/// Why the output cannot be used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OutputError {
    /// An earlier run's results are there, without a checkpoint to resume.
    #[error(
        "output {url} already holds results of an earlier run ({count} objects, e.g. {example}) and no checkpoint; \
         pass --overwrite to replace them, or choose another --output"
    )]
    NotEmpty {
        /// The output.
        url: String,
        /// How many of our objects are there.
        count: usize,
        /// One of them.
        example: String,
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
/// saying so).
/// Without one, results of an earlier run (partition folders, `_rejected/`) are an
/// error, or removed with `overwrite`. Nothing else is touched.
///
/// # Errors
/// Earlier results without a checkpoint or `overwrite`, or a store failure.
pub fn prepare_output(
    output: &Location,
    checkpoints: &CheckpointStore,
    overwrite: bool,
    from_scratch: bool,
) -> Result<OutputStart, OutputError> {
    let manifests = checkpoints.manifests().map_err(OutputError::Store)?;
    if !manifests.is_empty() {
        if !from_scratch && !overwrite {
            return Ok(OutputStart::Resume);
        }
        tracing::warn!(
            checkpoints = manifests.len(),
            store = %checkpoints.location.url(),
            "Starting over (--from-scratch or --overwrite): deleting the existing checkpoints; every input is read from its start."
        );
        let store = checkpoints.location.store.as_ref();
        let markers = checkpoints.location.path("uploads");
        for object in store
            .list(&checkpoints.location.prefix)
            .map_err(OutputError::Store)?
        {
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
    }
    let ours: Vec<String> = output
        .store
        .list(&output.prefix)
        .map_err(OutputError::Store)?
        .into_iter()
        .map(|o| o.path)
        .filter(|path| {
            let relative = path
                .strip_prefix(&output.prefix)
                .unwrap_or(path)
                .trim_start_matches('/');
            // Hidden names are uploads a crashed run left in progress (a folder's
            // `.part-….inprogress`): not results; recovery removes them.
            let hidden = relative
                .rsplit('/')
                .next()
                .is_some_and(|name| name.starts_with('.'));
            !hidden && relative.split('/').next().is_some_and(is_ours)
        })
        .collect();
    if ours.is_empty() {
        return Ok(OutputStart::Fresh);
    }
    if !overwrite {
        return Err(OutputError::NotEmpty {
            url: output.url(),
            count: ours.len(),
            example: ours[0].clone(),
        });
    }
    for path in &ours {
        output.store.delete(path).map_err(OutputError::Store)?;
    }
    Ok(OutputStart::Fresh)
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
    fn recognises_partition_names() {
        assert!(is_ours("2026-01-01--13"));
        assert!(is_ours("dt=2026-01-01"));
        assert!(!is_ours("2026-01-01"));
        assert!(!is_ours("data"));
    }
}
