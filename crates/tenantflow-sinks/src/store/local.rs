//! A local folder as a store. An upload is a hidden in-progress file beside its final
//! name (`dir/.name.inprogress`), written at each part's offset, truncated to its length
//! and renamed on completion: a crash leaves only hidden files, which a reader skips.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use super::{Listed, Store, StoreError};

/// Part size of local uploads: small, since a local write has no minimum.
const LOCAL_PART: usize = 1 << 20;

/// A folder.
#[derive(Debug)]
pub struct LocalStore {
    root: PathBuf,
    temp: AtomicU64,
    /// Open in-progress files, by upload id: no open and close per part.
    handles: Mutex<HashMap<String, Arc<File>>>,
    /// Folders known to exist: no `mkdir` per file.
    folders: Mutex<HashSet<PathBuf>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let location = path.display().to_string();
    move |source| StoreError::Io {
        op,
        location,
        source,
    }
}

impl LocalStore {
    /// The folder `root` (created when first written to).
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
            temp: AtomicU64::new(0),
            handles: Mutex::new(HashMap::new()),
            folders: Mutex::new(HashSet::new()),
        }
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, path: &str) -> PathBuf {
        self.root.join(path)
    }

    /// The in-progress file of an upload to `path`, relative to the root.
    fn in_progress(path: &str) -> String {
        match path.rsplit_once('/') {
            Some((dir, name)) => format!("{dir}/.{name}.inprogress"),
            None => format!(".{path}.inprogress"),
        }
    }

    fn create_parent(&self, full: &Path) -> Result<(), StoreError> {
        if let Some(dir) = full.parent()
            && !lock(&self.folders).contains(dir)
        {
            std::fs::create_dir_all(dir).map_err(io("creating folder", dir))?;
            lock(&self.folders).insert(dir.to_path_buf());
        }
        Ok(())
    }

    /// Adds the files of `dir` to `out`, and its subfolders to `folders` if given. A
    /// missing folder holds nothing.
    fn read_folder(
        &self,
        dir: &Path,
        out: &mut Vec<Listed>,
        mut folders: Option<&mut Vec<PathBuf>>,
    ) -> Result<(), StoreError> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io("listing", dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io("listing", dir))?;
            // A file renamed or removed since the folder was read (a commit by another
            // job writing the same output) is not listed.
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io("reading metadata of", dir)(e)),
            };
            if meta.is_dir() {
                if let Some(folders) = folders.as_deref_mut() {
                    folders.push(entry.path());
                }
            } else if let Ok(relative) = entry.path().strip_prefix(&self.root) {
                out.push(Listed {
                    path: relative.to_string_lossy().into_owned(),
                    size: meta.len(),
                });
            }
        }
        Ok(())
    }

    /// The in-progress file of `upload`, open for writing.
    fn handle(&self, upload: &str) -> Result<Option<Arc<File>>, StoreError> {
        if let Some(file) = lock(&self.handles).get(upload) {
            return Ok(Some(Arc::clone(file)));
        }
        let full = self.path(upload);
        match OpenOptions::new().write(true).open(&full) {
            Ok(file) => {
                let file = Arc::new(file);
                lock(&self.handles).insert(upload.to_owned(), Arc::clone(&file));
                Ok(Some(file))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("opening", &full)(e)),
        }
    }

    /// Writes `data` to a temporary file beside `full`, synced.
    fn write_temp(&self, full: &Path, data: &[u8]) -> Result<PathBuf, StoreError> {
        self.create_parent(full)?;
        let n = self.temp.fetch_add(1, Ordering::Relaxed);
        let name = full
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = full.with_file_name(format!(".{name}.{}-{n}.tmp", std::process::id()));
        let mut file = File::create(&temp).map_err(io("creating", &temp))?;
        std::io::Write::write_all(&mut file, data).map_err(io("writing", &temp))?;
        file.sync_all().map_err(io("syncing", &temp))?;
        Ok(temp)
    }
}

impl Store for LocalStore {
    fn url(&self) -> String {
        self.root.display().to_string()
    }

    fn local_root(&self) -> Option<&Path> {
        Some(&self.root)
    }

    fn part_size(&self) -> usize {
        LOCAL_PART
    }

    fn put(&self, path: &str, data: Bytes) -> Result<(), StoreError> {
        let full = self.path(path);
        let temp = self.write_temp(&full, &data)?;
        std::fs::rename(&temp, &full).map_err(io("renaming", &temp))
    }

    fn put_if_absent(&self, path: &str, data: Bytes) -> Result<bool, StoreError> {
        let full = self.path(path);
        let temp = self.write_temp(&full, &data)?;
        // A hard link fails if the name exists: an atomic create.
        let linked = std::fs::hard_link(&temp, &full);
        std::fs::remove_file(&temp).map_err(io("removing", &temp))?;
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io("creating", &full)(e)),
        }
    }

    fn get(&self, path: &str) -> Result<Option<Bytes>, StoreError> {
        let full = self.path(path);
        match std::fs::read(&full) {
            Ok(data) => Ok(Some(Bytes::from(data))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("reading", &full)(e)),
        }
    }

    fn size(&self, path: &str) -> Result<Option<u64>, StoreError> {
        let full = self.path(path);
        match std::fs::metadata(&full) {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("reading metadata of", &full)(e)),
        }
    }

    fn copy(&self, from: &str, to: &str) -> Result<bool, StoreError> {
        match self.get(from)? {
            Some(data) => self.put(to, data).map(|()| true),
            None => Ok(false),
        }
    }

    fn delete(&self, path: &str) -> Result<(), StoreError> {
        let full = self.path(path);
        match std::fs::remove_file(&full) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("removing", &full)(e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        let mut out = Vec::new();
        let mut folders = vec![self.path(prefix)];
        while let Some(dir) = folders.pop() {
            self.read_folder(&dir, &mut out, Some(&mut folders))?;
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    fn list_folder(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        let mut out = Vec::new();
        self.read_folder(&self.path(prefix), &mut out, None)?;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    fn begin_upload(&self, path: &str) -> Result<String, StoreError> {
        let id = Self::in_progress(path);
        let full = self.path(&id);
        self.create_parent(&full)?;
        let file = File::create(&full).map_err(io("creating", &full))?;
        lock(&self.handles).insert(id.clone(), Arc::new(file));
        Ok(id)
    }

    fn put_part(
        &self,
        _path: &str,
        upload: &str,
        _index: usize,
        offset: u64,
        data: Bytes,
    ) -> Result<String, StoreError> {
        let full = self.path(upload);
        let file = self.handle(upload)?.ok_or_else(|| StoreError::State {
            op: "writing",
            location: full.display().to_string(),
            message: "the upload's in-progress file is gone".into(),
        })?;
        file.write_all_at(&data, offset)
            .map_err(io("writing", &full))?;
        Ok(format!("{offset}+{}", data.len()))
    }

    fn seal_upload(&self, _path: &str, upload: &str) -> Result<(), StoreError> {
        // Nothing more is written to a sealed upload: its descriptor is closed, so that
        // files waiting for their commit hold none. Its data is synced with every other
        // file's by the checkpoint's `sync_written`.
        if let Some(file) = lock(&self.handles).remove(upload) {
            // Start writing it back now, without waiting: the checkpoint's sync then
            // finds little left to write. Advice only; a refusal changes nothing.
            let _ = rustix::fs::fadvise(&*file, 0, None, rustix::fs::Advice::DontNeed);
            return Ok(());
        }
        let full = self.path(upload);
        match std::fs::metadata(&full) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::State {
                op: "sealing",
                location: full.display().to_string(),
                message: "the upload's in-progress file is gone".into(),
            }),
            Err(e) => Err(io("reading metadata of", &full)(e)),
        }
    }

    fn sync_written(&self) -> Result<(), StoreError> {
        // One call for the whole file system the folder is on: the kernel writes every
        // dirty page and commits the journal once.
        let root = match File::open(&self.root) {
            Ok(root) => root,
            // Nothing was ever written here.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io("opening", &self.root)(e)),
        };
        rustix::fs::syncfs(&root).map_err(|e| io("syncing", &self.root)(e.into()))
    }

    fn tracks_uploads(&self) -> bool {
        true
    }

    fn list_uploads(&self, prefix: &str) -> Result<Option<Vec<(String, String)>>, StoreError> {
        let mut uploads = Vec::new();
        for object in self.list(prefix)? {
            let (dir, name) = object.path.rsplit_once('/').unwrap_or(("", &object.path));
            if let Some(file) = name
                .strip_prefix('.')
                .and_then(|n| n.strip_suffix(".inprogress"))
            {
                let path = super::join(dir, file);
                uploads.push((path, object.path.clone()));
            }
        }
        Ok(Some(uploads))
    }

    fn complete_upload(
        &self,
        path: &str,
        upload: &str,
        _parts: &[String],
        len: u64,
    ) -> Result<(), StoreError> {
        let from = self.path(upload);
        let to = self.path(path);
        lock(&self.handles).remove(upload);
        let current = match std::fs::metadata(&from) {
            Ok(meta) => Some(meta.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io("reading metadata of", &from)(e)),
        };
        match current {
            Some(current) => {
                // Bytes past `len` are parts of a run that crashed after this upload's
                // checkpoint: not part of the file. The data was synced before the
                // checkpoint's manifest (`sync_written`); a rename lost in a power cut
                // is done again by the recovery's commit.
                if current != len {
                    let file = OpenOptions::new()
                        .write(true)
                        .open(&from)
                        .map_err(io("opening", &from))?;
                    file.set_len(len).map_err(io("truncating", &from))?;
                    file.sync_data().map_err(io("syncing", &from))?;
                }
                std::fs::rename(&from, &to).map_err(io("renaming", &from))
            }
            None => match std::fs::metadata(&to) {
                Ok(meta) if meta.len() == len => Ok(()),
                Ok(meta) => Err(StoreError::State {
                    op: "completing",
                    location: to.display().to_string(),
                    message: format!(
                        "the upload is gone and the file has {} bytes, not {len}",
                        meta.len()
                    ),
                }),
                Err(_) => Err(StoreError::State {
                    op: "completing",
                    location: to.display().to_string(),
                    message: "neither the in-progress file nor the file exists".into(),
                }),
            },
        }
    }

    fn abort_upload(&self, _path: &str, upload: &str) -> Result<(), StoreError> {
        lock(&self.handles).remove(upload);
        self.delete(upload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract() {
        let dir = tempfile::tempdir().unwrap();
        super::super::contract::check(&LocalStore::new(dir.path().into()));
    }

    #[test]
    fn sealed_uploads_hold_no_file_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().into());
        for i in 0..3000 {
            let path = format!("f/{i}.ndjson");
            let id = store.begin_upload(&path).unwrap();
            store
                .put_part(&path, &id, 0, 0, Bytes::from_static(b"x\n"))
                .unwrap();
            store.seal_upload(&path, &id).unwrap();
        }
        assert!(lock(&store.handles).is_empty());
    }

    #[test]
    fn sealed_uploads_are_synced_with_the_store_and_complete_without_reopening() {
        let dir = tempfile::tempdir().unwrap();
        // Nothing written yet: nothing to sync.
        LocalStore::new(dir.path().join("later"))
            .sync_written()
            .unwrap();
        let store = LocalStore::new(dir.path().into());
        let id = store.begin_upload("d/a.ndjson").unwrap();
        store
            .put_part("d/a.ndjson", &id, 0, 0, Bytes::from_static(b"a\nb\n"))
            .unwrap();
        store.seal_upload("d/a.ndjson", &id).unwrap();
        store.sync_written().unwrap();
        store.complete_upload("d/a.ndjson", &id, &[], 2).unwrap();
        // Cut to the length the checkpoint recorded.
        assert_eq!(&store.get("d/a.ndjson").unwrap().unwrap()[..], b"a\n");
        // An upload whose file is gone cannot be sealed.
        let gone = store.begin_upload("d/b.ndjson").unwrap();
        lock(&store.handles).clear();
        std::fs::remove_file(dir.path().join(&gone)).unwrap();
        let error = store.seal_upload("d/b.ndjson", &gone).unwrap_err();
        assert!(error.to_string().contains("gone"), "{error}");
    }

    #[test]
    fn uploads_are_hidden_until_complete() {
        assert_eq!(
            LocalStore::in_progress("a/b/c.csv"),
            "a/b/.c.csv.inprogress"
        );
        assert_eq!(LocalStore::in_progress("c.csv"), ".c.csv.inprogress");
    }
}
