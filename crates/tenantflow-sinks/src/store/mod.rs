//! The storage that results, dead letters and checkpoints go to: a local folder, S3, or
//! memory, behind the few operations tenantflow needs of a store.
//!
//! Every file is written as a *multipart upload* that can outlive the process: its id
//! and the ids of its parts are plain strings that a checkpoint manifest records, so a
//! restarted job can add parts to it and complete it. On S3 this is S3's own multipart
//! upload; on a local folder it is a hidden in-progress file written at the parts'
//! offsets and renamed on completion; in memory it is a map with S3's rules.
//!
//! Paths are relative to the store's root (`s3://bucket/prefix` → `prefix/`), with `/`
//! as separator.

mod local;
mod memory;
mod s3;

use std::sync::Arc;

use bytes::Bytes;
use thiserror::Error;

pub use local::LocalStore;
pub use memory::MemoryStore;
pub use s3::S3Store;

/// Why a store operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A local file operation failed.
    #[error("{op} {location}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        location: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An object store call failed.
    #[error("{op} {location}")]
    Object {
        /// What was being done.
        op: &'static str,
        /// On which object.
        location: String,
        /// Why.
        #[source]
        source: object_store::Error,
    },
    /// The store is in a state the operation cannot work with.
    #[error("{op} {location}: {message}")]
    State {
        /// What was being done.
        op: &'static str,
        /// On which object.
        location: String,
        /// What is wrong.
        message: String,
    },
    /// The URL names no store tenantflow can write to.
    #[error("unsupported storage URL `{url}`: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// What was expected.
        reason: String,
    },
    /// The runtime for object store calls cannot start.
    #[error("starting the runtime for object store calls")]
    Runtime(#[source] std::io::Error),
}

/// An object under a prefix, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its path, relative to the store's root.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
}

/// The operations tenantflow needs of a store. Calls block; each is atomic as S3's are.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// The store's URL, for messages.
    fn url(&self) -> String;

    /// Part size for uploads: every part but the last has exactly this many bytes.
    fn part_size(&self) -> usize;

    /// The folder of a store on the local file system; `None` for any other store.
    fn local_root(&self) -> Option<&std::path::Path> {
        None
    }

    /// Writes an object whole, replacing any.
    ///
    /// # Errors
    /// When the store fails.
    fn put(&self, path: &str, data: Bytes) -> Result<(), StoreError>;

    /// Writes an object whole unless one exists; `false` if one did.
    ///
    /// # Errors
    /// When the store fails.
    fn put_if_absent(&self, path: &str, data: Bytes) -> Result<bool, StoreError>;

    /// Writes an object on a condition, for locks: `expected` `None` means no object may
    /// exist; `Some(tag)` means the object's version tag (S3's ETag) must still be `tag`.
    /// Returns the new object's tag, or `None` when the condition did not hold.
    ///
    /// # Errors
    /// When the store fails, or cannot write on a condition (a local folder, whose
    /// locks are the file system's).
    fn put_tagged(
        &self,
        path: &str,
        _data: Bytes,
        _expected: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        Err(StoreError::State {
            op: "writing on a condition",
            location: path.to_owned(),
            message: "this store has no conditional replace".into(),
        })
    }

    /// Reads an object with its version tag; `None` if there is none.
    ///
    /// # Errors
    /// When the store fails, or has no version tags.
    fn get_tagged(&self, path: &str) -> Result<Option<(Bytes, String)>, StoreError> {
        Err(StoreError::State {
            op: "reading with its version",
            location: path.to_owned(),
            message: "this store has no version tags".into(),
        })
    }

    /// Reads an object; `None` if there is none.
    ///
    /// # Errors
    /// When the store fails.
    fn get(&self, path: &str) -> Result<Option<Bytes>, StoreError>;

    /// The size of an object; `None` if there is none.
    ///
    /// # Errors
    /// When the store fails.
    fn size(&self, path: &str) -> Result<Option<u64>, StoreError>;

    /// Copies the object `from` to `to`, replacing any; `false` if `from` is missing.
    ///
    /// # Errors
    /// When the store fails.
    fn copy(&self, from: &str, to: &str) -> Result<bool, StoreError>;

    /// Deletes an object; no error if there is none.
    ///
    /// # Errors
    /// When the store fails.
    fn delete(&self, path: &str) -> Result<(), StoreError>;

    /// Every object under `prefix` (a folder path, empty for all), hidden in-progress
    /// files of uploads included, sorted by path.
    ///
    /// # Errors
    /// When the store fails.
    fn list(&self, prefix: &str) -> Result<Vec<Listed>, StoreError>;

    /// The objects directly in the folder `prefix` (not in its subfolders), sorted.
    ///
    /// # Errors
    /// When the store fails.
    fn list_folder(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        let depth = if prefix.is_empty() {
            0
        } else {
            prefix.trim_end_matches('/').matches('/').count() + 1
        };
        Ok(self
            .list(prefix)?
            .into_iter()
            .filter(|o| o.path.matches('/').count() == depth)
            .collect())
    }

    /// Starts an upload of the object `path`; returns its id.
    ///
    /// # Errors
    /// When the store fails.
    fn begin_upload(&self, path: &str) -> Result<String, StoreError>;

    /// Uploads part `index` (0-based), which starts at byte `offset` of the object;
    /// returns the part's id. A part may be uploaded again: the last upload counts.
    ///
    /// # Errors
    /// When the store fails.
    fn put_part(
        &self,
        path: &str,
        upload: &str,
        index: usize,
        offset: u64,
        data: Bytes,
    ) -> Result<String, StoreError>;

    /// Nothing more is written to the upload (a local file's descriptor is closed). Its
    /// parts become durable at the next [`Store::sync_written`], which a checkpoint
    /// calls before it records the upload as complete.
    ///
    /// # Errors
    /// When the store fails.
    fn seal_upload(&self, _path: &str, _upload: &str) -> Result<(), StoreError> {
        Ok(())
    }

    /// Makes every part this store has acknowledged durable: one `syncfs` for a local
    /// folder, however many files were written since the last call, instead of one
    /// `fdatasync` per file. A no-op where an acknowledged write is durable (S3,
    /// memory). A checkpoint calls it before its manifest is written.
    ///
    /// # Errors
    /// When the store fails.
    fn sync_written(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// True if [`Store::list_uploads`] lists uploads in progress; if not (S3 through
    /// `object_store`), each upload gets a marker object in the checkpoint store.
    fn tracks_uploads(&self) -> bool {
        false
    }

    /// The uploads in progress under `prefix`, as `(path, upload id)`, or `None` if the
    /// store cannot list them.
    ///
    /// # Errors
    /// When the store fails.
    fn list_uploads(&self, _prefix: &str) -> Result<Option<Vec<(String, String)>>, StoreError> {
        Ok(None)
    }

    /// Completes an upload from the listed parts, `len` bytes in all. Idempotent: an
    /// upload already completed into an object of `len` bytes is a success.
    ///
    /// # Errors
    /// When the store fails, or the upload is gone and the object is not there.
    fn complete_upload(
        &self,
        path: &str,
        upload: &str,
        parts: &[String],
        len: u64,
    ) -> Result<(), StoreError>;

    /// Abandons an upload; no error if it is gone.
    ///
    /// # Errors
    /// When the store fails.
    fn abort_upload(&self, path: &str, upload: &str) -> Result<(), StoreError>;
}

/// Opens the store a URL names: `s3://bucket[/prefix]`, `file:///path`, `memory://`, or
/// a plain path. S3 settings come from the `AWS_*` environment (`AWS_ENDPOINT_URL_S3`
/// or `AWS_ENDPOINT_URL`, region, credentials).
///
/// # Errors
/// An unsupported scheme, or an S3 configuration the client rejects.
pub fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if let Some(rest) = url.strip_prefix("s3://") {
        return Ok(Arc::new(S3Store::from_env(rest)?));
    }
    if let Some(rest) = url.strip_prefix("file://") {
        if !rest.starts_with('/') {
            return Err(StoreError::Url {
                url: url.to_owned(),
                reason: "a file URL needs an absolute path, as file:///data/out".into(),
            });
        }
        return Ok(Arc::new(LocalStore::new(rest.into())));
    }
    if url == "memory://" || url.starts_with("memory://") {
        return Ok(Arc::new(MemoryStore::new()));
    }
    if let Some((scheme, _)) = url.split_once("://") {
        return Err(StoreError::Url {
            url: url.to_owned(),
            reason: format!(
                "scheme `{scheme}` is not supported; use s3://, file://, memory:// or a path"
            ),
        });
    }
    Ok(Arc::new(LocalStore::new(url.into())))
}

/// `a` and `b` joined with `/`, either may be empty.
pub fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{}/{}", a.trim_end_matches('/'), b.trim_start_matches('/')),
    }
}

/// Deletes every object under `prefix`.
///
/// # Errors
/// When the store fails.
pub fn delete_all(store: &dyn Store, prefix: &str) -> Result<usize, StoreError> {
    let objects = store.list(prefix)?;
    for object in &objects {
        store.delete(&object.path)?;
    }
    Ok(objects.len())
}

#[cfg(test)]
pub(crate) mod contract {
    //! The behaviour every store must have, run against each.

    use super::*;

    pub(crate) fn check(store: &dyn Store) {
        assert_eq!(store.get("a/b.txt").unwrap(), None);
        store.put("a/b.txt", Bytes::from_static(b"one")).unwrap();
        assert_eq!(store.get("a/b.txt").unwrap().as_deref(), Some(&b"one"[..]));
        assert!(
            !store
                .put_if_absent("a/b.txt", Bytes::from_static(b"two"))
                .unwrap()
        );
        assert!(
            store
                .put_if_absent("a/c.txt", Bytes::from_static(b"two"))
                .unwrap()
        );
        assert_eq!(
            store.list("a").unwrap(),
            vec![
                Listed {
                    path: "a/b.txt".into(),
                    size: 3
                },
                Listed {
                    path: "a/c.txt".into(),
                    size: 3
                },
            ]
        );

        // An upload whose second part is uploaded twice: the last one counts.
        let size = store.part_size();
        let id = store.begin_upload("x/file.ndjson").unwrap();
        let p0 = store
            .put_part("x/file.ndjson", &id, 0, 0, Bytes::from(vec![b'a'; size]))
            .unwrap();
        let _ = store
            .put_part(
                "x/file.ndjson",
                &id,
                1,
                size as u64,
                Bytes::from_static(b"stale tail"),
            )
            .unwrap();
        let p1 = store
            .put_part(
                "x/file.ndjson",
                &id,
                1,
                size as u64,
                Bytes::from_static(b"tail"),
            )
            .unwrap();
        assert_eq!(
            store.get("x/file.ndjson").unwrap(),
            None,
            "not visible before completion"
        );
        let parts = vec![p0, p1];
        let len = size as u64 + 4;
        store
            .complete_upload("x/file.ndjson", &id, &parts, len)
            .unwrap();
        // Completing again (a recovery re-committing) succeeds and changes nothing.
        store
            .complete_upload("x/file.ndjson", &id, &parts, len)
            .unwrap();
        let data = store.get("x/file.ndjson").unwrap().unwrap();
        assert_eq!(data.len() as u64, len);
        assert_eq!(&data[size..], b"tail");
        assert!(
            store
                .list("x")
                .unwrap()
                .iter()
                .any(|o| o.path == "x/file.ndjson")
        );

        // An aborted upload leaves nothing.
        let id = store.begin_upload("y/gone.ndjson").unwrap();
        store
            .put_part("y/gone.ndjson", &id, 0, 0, Bytes::from_static(b"zzz"))
            .unwrap();
        store.abort_upload("y/gone.ndjson", &id).unwrap();
        store.abort_upload("y/gone.ndjson", &id).unwrap();
        assert_eq!(store.list("y").unwrap(), vec![]);
        assert!(
            store
                .complete_upload("y/gone.ndjson", &id, &["p".into()], 3)
                .is_err()
        );

        store
            .put("a/deeper/x.txt", Bytes::from_static(b"x"))
            .unwrap();
        let folder: Vec<String> = store
            .list_folder("a")
            .unwrap()
            .into_iter()
            .map(|o| o.path)
            .collect();
        assert_eq!(folder, ["a/b.txt", "a/c.txt"]);
        store.delete("a/deeper/x.txt").unwrap();
        assert_eq!(store.size("a/b.txt").unwrap(), Some(3));
        assert_eq!(store.size("a/none.txt").unwrap(), None);
        assert!(store.copy("a/b.txt", "c/d.txt").unwrap());
        assert_eq!(store.get("c/d.txt").unwrap().as_deref(), Some(&b"one"[..]));
        assert!(!store.copy("a/none.txt", "c/e.txt").unwrap());
        store.delete("c/d.txt").unwrap();

        assert_eq!(delete_all(store, "a").unwrap(), 2);
        store.delete("a/b.txt").unwrap();
        assert_eq!(store.list("a").unwrap(), vec![]);
    }
}
