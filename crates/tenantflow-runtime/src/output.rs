//! The output folder: what an earlier run left there, and clearing it on request.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// Why the output folder cannot be used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OutputError {
    /// An earlier run's results are there.
    #[error(
        "output folder {dir} already holds results of an earlier run ({count} entries, e.g. {example}); \
         pass --overwrite to replace them, or choose another --output"
    )]
    NotEmpty {
        /// The folder.
        dir: PathBuf,
        /// How many of our entries are there.
        count: usize,
        /// One of them.
        example: String,
    },
    /// The folder cannot be listed, created or cleared.
    #[error("cannot prepare output folder {dir}")]
    Io {
        /// The folder.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Makes `dir` ready for a run: creates it, and finds what an earlier run wrote there
/// (partition folders, `_rejected/`). With `overwrite` those are removed; without, they
/// are an error. Nothing else in the folder is touched.
///
/// # Errors
/// Earlier results without `overwrite`, or a file system error.
pub fn prepare_output(dir: &Path, overwrite: bool) -> Result<(), OutputError> {
    let io = |source| OutputError::Io {
        dir: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut ours = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().map_err(io)?.is_dir() && is_ours(&name) {
            ours.push(entry.path());
        }
    }
    ours.sort();
    if ours.is_empty() {
        return Ok(());
    }
    if !overwrite {
        return Err(OutputError::NotEmpty {
            dir: dir.to_path_buf(),
            count: ours.len(),
            example: ours[0].display().to_string(),
        });
    }
    for path in ours {
        std::fs::remove_dir_all(&path).map_err(io)?;
    }
    Ok(())
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
    use super::*;

    #[test]
    fn earlier_results_need_overwrite_and_other_files_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        prepare_output(dir.path(), false).unwrap();
        std::fs::create_dir_all(dir.path().join("2026-01-01--00")).unwrap();
        std::fs::create_dir_all(dir.path().join("_rejected")).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        std::fs::create_dir_all(dir.path().join("keep")).unwrap();
        let err = prepare_output(dir.path(), false).unwrap_err();
        assert!(err.to_string().contains("--overwrite"), "{err}");
        prepare_output(dir.path(), true).unwrap();
        assert!(!dir.path().join("2026-01-01--00").exists());
        assert!(!dir.path().join("_rejected").exists());
        assert!(dir.path().join("notes.txt").exists() && dir.path().join("keep").exists());
    }

    #[test]
    fn recognises_partition_names() {
        assert!(is_ours("2026-01-01--13"));
        assert!(is_ours("dt=2026-01-01"));
        assert!(!is_ours("2026-01-01"));
        assert!(!is_ours("data"));
    }
}
