//! One file being written to a store as an upload that survives checkpoints.
//!
//! Bytes gather in a buffer; every full part goes to the store at once. At a
//! checkpoint the file does not close: [`FileUpload::persist`] records the uploaded
//! parts and stages the buffered tail (less than a part) as an object of its own, the
//! way Flink's S3 writer keeps the bytes under S3's 5 MiB part minimum. A restarted job
//! [`FileUpload::restore`]s that state and goes on writing the same file; its size does
//! not depend on how often checkpoints are taken. [`FileUpload::finish`] uploads the
//! last part and returns a [`PendingFile`], which [`commit`] completes once the
//! checkpoint that recorded it is durable.
//!
//! On a store that cannot list its uploads in progress (S3), an upload begins only when
//! a file's first full part is ready. A file that finishes smaller than a part (most
//! files of hour partitions replayed from history) is staged whole as one object in the
//! checkpoint store, and its commit copies it into place: one request to stage and a
//! copy to commit, instead of starting, uploading to, completing, and tracking a
//! multipart upload.

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError, join};

/// A store and a folder in it.
#[derive(Debug, Clone)]
pub struct Location {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The folder, relative to the store's root; empty for the root.
    pub prefix: String,
}

impl Location {
    /// The root of `store`.
    pub fn root(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            prefix: String::new(),
        }
    }

    /// The folder `sub` under this one.
    pub fn child(&self, sub: &str) -> Self {
        Self {
            store: Arc::clone(&self.store),
            prefix: join(&self.prefix, sub),
        }
    }

    /// The path of `name` under this folder, relative to the store's root.
    pub fn path(&self, name: &str) -> String {
        join(&self.prefix, name)
    }

    /// The folder's URL, for messages.
    pub fn url(&self) -> String {
        join(&self.store.url(), &self.prefix)
    }

    /// The folder on the local file system, for a local store.
    pub fn local_path(&self) -> Option<std::path::PathBuf> {
        self.store.local_root().map(|root| root.join(&self.prefix))
    }
}

/// An open upload as a checkpoint records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadState {
    /// The file's final path in the output store.
    pub path: String,
    /// The upload's id; none before the first full part, on stores that begin uploads
    /// lazily.
    pub upload: Option<String>,
    /// Ids of the uploaded parts, in order.
    pub parts: Vec<String>,
    /// Bytes in the file so far: the parts and the tail.
    pub len: u64,
    /// Rows in the file so far.
    pub rows: u64,
    /// The staged object (in the checkpoint store) holding the bytes after the parts.
    pub tail: Option<String>,
    /// When the file was opened, epoch milliseconds (for rolling by age).
    pub opened_ms: i64,
}

/// A file whose bytes are all uploaded, waiting for its checkpoint to commit it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingFile {
    /// The file's final path in the output store.
    pub path: String,
    /// How its bytes wait for the commit.
    pub body: PendingBody,
    /// The file's size.
    pub len: u64,
    /// Its rows.
    pub rows: u64,
}

/// How a pending file's bytes wait for its commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PendingBody {
    /// In an upload: its id and its parts' ids, in order.
    Upload {
        /// The upload's id.
        upload: String,
        /// Ids of the parts.
        parts: Vec<String>,
    },
    /// Whole, in an object of the checkpoint store.
    Staged(String),
}

/// Where an upload's bookkeeping goes: the marker naming its id (so a recovery can
/// abort uploads that no checkpoint recorded), and staged tails.
#[derive(Debug, Clone)]
pub struct Staging {
    /// The checkpoint store's folder.
    pub location: Location,
}

impl Staging {
    /// The marker object of the upload of `path`.
    pub fn marker(&self, path: &str) -> String {
        self.location.path(&join("uploads", path))
    }

    /// The object a small file `path` is staged in until its commit.
    pub fn staged(&self, path: &str) -> String {
        self.location.path(&join("staged", path))
    }
}

/// A file being written.
pub struct FileUpload {
    output: Arc<dyn Store>,
    staging: Staging,
    path: String,
    upload: Option<String>,
    parts: Vec<String>,
    uploaded: u64,
    buf: Vec<u8>,
    rows: u64,
    opened_ms: i64,
}

impl std::fmt::Debug for FileUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileUpload")
            .field("path", &self.path)
            .field("parts", &self.parts.len())
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}

impl FileUpload {
    /// Starts the file `path` (relative to the output store's root).
    ///
    /// # Errors
    /// When the store fails.
    pub fn begin(
        output: &Arc<dyn Store>,
        staging: &Staging,
        path: String,
        now_ms: i64,
    ) -> Result<Self, StoreError> {
        // A store that lists its uploads begins at once (a local file is written in
        // place); the others when the first part is ready.
        let upload = if output.tracks_uploads() {
            Some(output.begin_upload(&path)?)
        } else {
            None
        };
        Ok(Self {
            output: Arc::clone(output),
            staging: staging.clone(),
            path,
            upload,
            parts: Vec::new(),
            uploaded: 0,
            // Grows with the file: many open files are small.
            buf: Vec::with_capacity(16 << 10),
            rows: 0,
            opened_ms: now_ms,
        })
    }

    /// Goes on with a file a checkpoint recorded.
    ///
    /// # Errors
    /// When the staged tail cannot be read.
    pub fn restore(
        output: &Arc<dyn Store>,
        staging: &Staging,
        state: &UploadState,
    ) -> Result<Self, StoreError> {
        let part = output.part_size() as u64;
        let uploaded = state.parts.len() as u64 * part;
        let buf = match &state.tail {
            Some(tail) => staging
                .location
                .store
                .get(tail)?
                .ok_or_else(|| StoreError::State {
                    op: "restoring",
                    location: tail.clone(),
                    message: "the staged tail of an open file is missing".into(),
                })?
                .to_vec(),
            None => Vec::new(),
        };
        if uploaded + buf.len() as u64 != state.len {
            return Err(StoreError::State {
                op: "restoring",
                location: state.path.clone(),
                message: format!(
                    "the checkpoint says {} bytes, the parts and tail hold {}",
                    state.len,
                    uploaded + buf.len() as u64
                ),
            });
        }
        Ok(Self {
            output: Arc::clone(output),
            staging: staging.clone(),
            path: state.path.clone(),
            upload: state.upload.clone(),
            parts: state.parts.clone(),
            uploaded,
            buf,
            rows: state.rows,
            opened_ms: state.opened_ms,
        })
    }

    /// The file's final path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// When the file was opened, epoch milliseconds.
    pub fn opened_ms(&self) -> i64 {
        self.opened_ms
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.uploaded + self.buf.len() as u64
    }

    /// True if nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Appends bytes holding `rows` rows; uploads every full part.
    ///
    /// # Errors
    /// When a part cannot be uploaded.
    pub fn write(&mut self, bytes: &[u8], rows: u64) -> Result<(), StoreError> {
        self.buf.extend_from_slice(bytes);
        self.rows += rows;
        self.upload_full_parts()
    }

    /// The buffer, to encode into directly; call [`FileUpload::wrote`] after.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Counts rows encoded into [`FileUpload::buffer`]; uploads every full part.
    ///
    /// # Errors
    /// When a part cannot be uploaded.
    pub fn wrote(&mut self, rows: u64) -> Result<(), StoreError> {
        self.rows += rows;
        if self.buf.len() >= self.output.part_size() {
            self.upload_full_parts()?;
        }
        Ok(())
    }

    fn upload_full_parts(&mut self) -> Result<(), StoreError> {
        let size = self.output.part_size();
        while self.buf.len() >= size {
            let rest = self.buf.split_off(size);
            let part = std::mem::replace(&mut self.buf, rest);
            self.put_part(Bytes::from(part))?;
        }
        Ok(())
    }

    /// The upload's id, beginning it (and recording its marker) if need be.
    fn upload_id(&mut self) -> Result<String, StoreError> {
        if let Some(id) = &self.upload {
            return Ok(id.clone());
        }
        let id = self.output.begin_upload(&self.path)?;
        if !self.output.tracks_uploads() {
            let marked = self
                .staging
                .location
                .store
                .put(&self.staging.marker(&self.path), Bytes::from(id.clone()));
            if let Err(e) = marked {
                // Unmarked, no recovery could find it: abort it now. (A crash between
                // the two calls leaves an invisible upload, which an S3 lifecycle rule
                // for incomplete multipart uploads removes; see the README.)
                if let Err(abort) = self.output.abort_upload(&self.path, &id) {
                    tracing::warn!(path = %self.path, error = %abort, "Could not abort an unmarked upload.");
                }
                return Err(e);
            }
        }
        self.upload = Some(id.clone());
        Ok(id)
    }

    fn put_part(&mut self, data: Bytes) -> Result<(), StoreError> {
        let len = data.len() as u64;
        let upload = self.upload_id()?;
        let id =
            self.output
                .put_part(&self.path, &upload, self.parts.len(), self.uploaded, data)?;
        self.parts.push(id);
        self.uploaded += len;
        Ok(())
    }

    /// Makes everything written so far durable without closing the file: the tail is
    /// staged as the object `tail` (a path in the checkpoint store).
    ///
    /// # Errors
    /// When the tail cannot be staged.
    pub fn persist(&mut self, tail: &str) -> Result<UploadState, StoreError> {
        let tail = if self.buf.is_empty() {
            None
        } else {
            self.staging
                .location
                .store
                .put(tail, Bytes::copy_from_slice(&self.buf))?;
            Some(tail.to_owned())
        };
        Ok(UploadState {
            path: self.path.clone(),
            upload: self.upload.clone(),
            parts: self.parts.clone(),
            len: self.len(),
            rows: self.rows,
            tail,
            opened_ms: self.opened_ms,
        })
    }

    /// Uploads the last part; the file waits for its checkpoint to be committed.
    ///
    /// # Errors
    /// When the last part cannot be uploaded.
    pub fn finish(mut self) -> Result<PendingFile, StoreError> {
        if self.upload.is_none() {
            // Smaller than a part: staged whole, copied into place at the commit.
            let staged = self.staging.staged(&self.path);
            let len = self.buf.len() as u64;
            self.staging
                .location
                .store
                .put(&staged, Bytes::from(std::mem::take(&mut self.buf)))?;
            return Ok(PendingFile {
                path: self.path,
                body: PendingBody::Staged(staged),
                len,
                rows: self.rows,
            });
        }
        if !self.buf.is_empty() || self.parts.is_empty() {
            let last = std::mem::take(&mut self.buf);
            self.put_part(Bytes::from(last))?;
        }
        let upload = self.upload_id()?;
        self.output.seal_upload(&self.path, &upload)?;
        Ok(PendingFile {
            path: self.path,
            body: PendingBody::Upload {
                upload,
                parts: self.parts,
            },
            len: self.uploaded,
            rows: self.rows,
        })
    }
}

/// An object of the checkpoint store written part by part, for files built whole at a
/// checkpoint and staged until its commit (the BI aggregates): memory holds a part,
/// not the file. Smaller than a part, it is one PUT. Complete once
/// [`StagedWriter::finish`] returned (durable at the next [`Store::sync_written`]);
/// dropped before that, its upload is aborted. An upload left by a crash is removed
/// with the rest of the staged objects by the next run's recovery (a local store), or
/// by the bucket's lifecycle rule for incomplete multipart uploads (S3).
pub struct StagedWriter {
    store: Arc<dyn Store>,
    path: String,
    upload: Option<String>,
    parts: Vec<String>,
    uploaded: u64,
    buf: Vec<u8>,
}

impl std::fmt::Debug for StagedWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagedWriter")
            .field("path", &self.path)
            .field("parts", &self.parts.len())
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}

impl StagedWriter {
    /// Starts the object `path` of `store`.
    pub fn new(store: &Arc<dyn Store>, path: String) -> Self {
        Self {
            store: Arc::clone(store),
            path,
            upload: None,
            parts: Vec::new(),
            uploaded: 0,
            buf: Vec::with_capacity(64 << 10),
        }
    }

    /// The buffer, to encode into directly; call [`StagedWriter::wrote`] after.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Uploads the buffer's full parts.
    ///
    /// # Errors
    /// When a part cannot be uploaded.
    pub fn wrote(&mut self) -> Result<(), StoreError> {
        let size = self.store.part_size();
        while self.buf.len() >= size {
            let rest = self.buf.split_off(size);
            let part = std::mem::replace(&mut self.buf, rest);
            self.put_part(Bytes::from(part))?;
        }
        Ok(())
    }

    fn put_part(&mut self, data: Bytes) -> Result<(), StoreError> {
        let upload = match &self.upload {
            Some(id) => id.clone(),
            None => {
                let id = self.store.begin_upload(&self.path)?;
                self.upload = Some(id.clone());
                id
            }
        };
        let len = data.len() as u64;
        let id = self
            .store
            .put_part(&self.path, &upload, self.parts.len(), self.uploaded, data)?;
        self.parts.push(id);
        self.uploaded += len;
        Ok(())
    }

    /// Writes the rest and completes the object; returns its size.
    ///
    /// # Errors
    /// When the store fails.
    pub fn finish(mut self) -> Result<u64, StoreError> {
        let last = Bytes::from(std::mem::take(&mut self.buf));
        if self.upload.is_none() {
            let len = last.len() as u64;
            self.store.put(&self.path, last)?;
            return Ok(len);
        }
        if !last.is_empty() {
            self.put_part(last)?;
        }
        let Some(upload) = self.upload.take() else {
            return Ok(self.uploaded);
        };
        let completed = self.store.seal_upload(&self.path, &upload).and_then(|()| {
            self.store
                .complete_upload(&self.path, &upload, &self.parts, self.uploaded)
        });
        if completed.is_err() {
            self.upload = Some(upload);
        }
        completed.map(|()| self.uploaded)
    }
}

impl std::io::Write for StagedWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        self.wrote().map_err(std::io::Error::other)?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for StagedWriter {
    fn drop(&mut self) {
        if let Some(upload) = self.upload.take()
            && let Err(e) = self.store.abort_upload(&self.path, &upload)
        {
            tracing::warn!(path = %self.path, error = %e, "Could not abort an unfinished staged upload.");
        }
    }
}

/// Completes a pending file, and drops its marker or staged object. Idempotent.
///
/// # Errors
/// When the store fails.
pub fn commit(
    output: &Arc<dyn Store>,
    staging: &Staging,
    file: &PendingFile,
) -> Result<(), StoreError> {
    match &file.body {
        PendingBody::Upload { upload, parts } => {
            output.complete_upload(&file.path, upload, parts, file.len)?;
            if !output.tracks_uploads() {
                staging.location.store.delete(&staging.marker(&file.path))?;
            }
        }
        PendingBody::Staged(staged) => {
            let checkpoints = &staging.location.store;
            let copied = if Arc::ptr_eq(output, checkpoints) {
                output.copy(staged, &file.path)?
            } else {
                match checkpoints.get(staged)? {
                    Some(data) => {
                        output.put(&file.path, data)?;
                        true
                    }
                    None => false,
                }
            };
            // Not copied: committed before, by a run that crashed after the copy.
            if !copied && output.size(&file.path)? != Some(file.len) {
                return Err(StoreError::State {
                    op: "committing",
                    location: file.path.clone(),
                    message: format!(
                        "the staged object {staged} is gone and the file is not in place"
                    ),
                });
            }
            checkpoints.delete(staged)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn stores() -> (Arc<dyn Store>, Staging) {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let staging = Staging {
            location: Location::root(Arc::clone(&store)).child("_checkpoints"),
        };
        (store, staging)
    }

    #[test]
    fn a_staged_object_is_written_part_by_part_and_aborted_if_unfinished() {
        use std::io::Write as _;
        let store: Arc<dyn Store> = Arc::new(MemoryStore::with_part_size(7));
        let mut whole = StagedWriter::new(&store, "s/big".into());
        let mut expected = Vec::new();
        for i in 0..10_u8 {
            let chunk = vec![b'a' + i; usize::from(i) + 1];
            whole.write_all(&chunk).unwrap();
            expected.extend_from_slice(&chunk);
            whole.buffer().push(b'\n');
            whole.wrote().unwrap();
            expected.push(b'\n');
        }
        assert!(whole.parts.len() > 5, "{whole:?}");
        assert_eq!(whole.finish().unwrap(), expected.len() as u64);
        assert_eq!(store.get("s/big").unwrap().unwrap(), expected);
        assert_eq!(store.list_uploads("").unwrap(), Some(Vec::new()));

        let mut small = StagedWriter::new(&store, "s/small".into());
        small.write_all(b"abc").unwrap();
        assert_eq!(small.finish().unwrap(), 3);
        assert_eq!(store.get("s/small").unwrap().unwrap().as_ref(), b"abc");

        let mut dropped = StagedWriter::new(&store, "s/dropped".into());
        dropped.write_all(&[b'x'; 20]).unwrap();
        assert_eq!(store.list_uploads("").unwrap().unwrap().len(), 1);
        drop(dropped);
        assert_eq!(store.list_uploads("").unwrap(), Some(Vec::new()));
        assert_eq!(store.get("s/dropped").unwrap(), None);
    }

    #[test]
    fn a_file_outlives_a_crash_after_its_checkpoint() {
        let (store, staging) = stores();
        let part = store.part_size();
        let mut file = FileUpload::begin(&store, &staging, "h/f.ndjson".into(), 0).unwrap();
        let first = vec![b'a'; part + 10];
        file.write(&first, 1).unwrap();
        let state = file.persist("_checkpoints/chk-1/tail").unwrap();
        assert_eq!((state.parts.len(), state.len), (1, part as u64 + 10));
        // Written after the checkpoint, then lost in a crash.
        file.write(&vec![b'x'; part], 1).unwrap();
        drop(file);

        let mut file = FileUpload::restore(&store, &staging, &state).unwrap();
        file.write(b"bc", 1).unwrap();
        let pending = file.finish().unwrap();
        assert_eq!(store.get("h/f.ndjson").unwrap(), None);
        assert_eq!(store.list_uploads("h").unwrap().unwrap().len(), 1);
        commit(&store, &staging, &pending).unwrap();
        commit(&store, &staging, &pending).unwrap();
        let mut expected = first;
        expected.extend_from_slice(b"bc");
        assert_eq!(store.get("h/f.ndjson").unwrap().unwrap(), expected);
        assert_eq!(pending.rows, 2);
        assert_eq!(store.list_uploads("h").unwrap().unwrap().len(), 0);
    }

    #[test]
    fn an_empty_file_completes() {
        let (store, staging) = stores();
        let file = FileUpload::begin(&store, &staging, "e".into(), 0).unwrap();
        let pending = file.finish().unwrap();
        commit(&store, &staging, &pending).unwrap();
        assert_eq!(store.get("e").unwrap().unwrap().len(), 0);
    }
}
