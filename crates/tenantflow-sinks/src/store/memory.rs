//! An in-process store with S3's rules (an upload completes from the parts listed, a
//! part uploaded again replaces the earlier one), for tests and `memory://`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use bytes::{Bytes, BytesMut};

use super::{Listed, Store, StoreError};

/// Part size of memory uploads (S3's minimum is 5 MiB; memory has none).
const MEMORY_PART: usize = 64 * 1024;

/// An upload's path, and its parts: index → (part id, data).
type Upload = (String, BTreeMap<usize, (String, Bytes)>);

#[derive(Debug, Default)]
struct State {
    objects: BTreeMap<String, Bytes>,
    /// Upload id → upload.
    uploads: HashMap<String, Upload>,
    next_id: u64,
}

/// Objects in memory.
#[derive(Debug)]
pub struct MemoryStore {
    state: Mutex<State>,
    part_size: usize,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_part_size(MEMORY_PART)
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store whose uploads have parts of `part_size` bytes (tests use small
    /// parts to have many).
    pub fn with_part_size(part_size: usize) -> Self {
        Self {
            state: Mutex::default(),
            part_size: part_size.max(1),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated: every
        // change is one insert or remove.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A version tag of an object's content (S3's ETag is a hash of it too).
fn tag_of(data: &Bytes) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut hasher);
    format!("{:016x}-{}", hasher.finish(), data.len())
}

fn state_error(op: &'static str, location: &str, message: impl Into<String>) -> StoreError {
    StoreError::State {
        op,
        location: location.to_owned(),
        message: message.into(),
    }
}

impl Store for MemoryStore {
    fn url(&self) -> String {
        "memory://".into()
    }

    fn part_size(&self) -> usize {
        self.part_size
    }

    fn put_tagged(
        &self,
        path: &str,
        data: Bytes,
        expected: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        let mut state = self.state();
        let current = state.objects.get(path).map(tag_of);
        if current.as_deref() != expected {
            return Ok(None);
        }
        let tag = tag_of(&data);
        state.objects.insert(path.to_owned(), data);
        Ok(Some(tag))
    }

    fn get_tagged(&self, path: &str) -> Result<Option<(Bytes, String)>, StoreError> {
        Ok(self
            .state()
            .objects
            .get(path)
            .map(|data| (data.clone(), tag_of(data))))
    }

    fn put(&self, path: &str, data: Bytes) -> Result<(), StoreError> {
        self.state().objects.insert(path.to_owned(), data);
        Ok(())
    }

    fn put_if_absent(&self, path: &str, data: Bytes) -> Result<bool, StoreError> {
        let mut state = self.state();
        if state.objects.contains_key(path) {
            return Ok(false);
        }
        state.objects.insert(path.to_owned(), data);
        Ok(true)
    }

    fn get(&self, path: &str) -> Result<Option<Bytes>, StoreError> {
        Ok(self.state().objects.get(path).cloned())
    }

    fn size(&self, path: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.state().objects.get(path).map(|d| d.len() as u64))
    }

    fn copy(&self, from: &str, to: &str) -> Result<bool, StoreError> {
        let mut state = self.state();
        match state.objects.get(from).cloned() {
            Some(data) => {
                state.objects.insert(to.to_owned(), data);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn delete(&self, path: &str) -> Result<(), StoreError> {
        self.state().objects.remove(path);
        Ok(())
    }

    fn list(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        let folder = if prefix.is_empty() || prefix.ends_with('/') {
            prefix.to_owned()
        } else {
            format!("{prefix}/")
        };
        Ok(self
            .state()
            .objects
            .range(folder.clone()..)
            .take_while(|(path, _)| path.starts_with(&folder))
            .map(|(path, data)| Listed {
                path: path.clone(),
                size: data.len() as u64,
            })
            .collect())
    }

    fn begin_upload(&self, path: &str) -> Result<String, StoreError> {
        let mut state = self.state();
        state.next_id += 1;
        let id = format!("upload-{}", state.next_id);
        state
            .uploads
            .insert(id.clone(), (path.to_owned(), BTreeMap::new()));
        Ok(id)
    }

    fn put_part(
        &self,
        path: &str,
        upload: &str,
        index: usize,
        _offset: u64,
        data: Bytes,
    ) -> Result<String, StoreError> {
        let mut state = self.state();
        state.next_id += 1;
        let part_id = format!("part-{}", state.next_id);
        let (_, parts) = state
            .uploads
            .get_mut(upload)
            .ok_or_else(|| state_error("uploading a part of", path, "no such upload"))?;
        parts.insert(index, (part_id.clone(), data));
        Ok(part_id)
    }

    fn tracks_uploads(&self) -> bool {
        true
    }

    fn list_uploads(&self, prefix: &str) -> Result<Option<Vec<(String, String)>>, StoreError> {
        Ok(Some(
            self.state()
                .uploads
                .iter()
                .filter(|(_, (path, _))| path.starts_with(prefix))
                .map(|(id, (path, _))| (path.clone(), id.clone()))
                .collect(),
        ))
    }

    fn complete_upload(
        &self,
        path: &str,
        upload: &str,
        parts: &[String],
        len: u64,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        let Some((_, uploaded)) = state.uploads.get(upload) else {
            return match state.objects.get(path) {
                Some(data) if data.len() as u64 == len => Ok(()),
                _ => Err(state_error("completing", path, "no such upload")),
            };
        };
        let mut data = BytesMut::new();
        for (index, id) in parts.iter().enumerate() {
            match uploaded.get(&index) {
                Some((stored, bytes)) if stored == id => data.extend_from_slice(bytes),
                _ => {
                    return Err(state_error(
                        "completing",
                        path,
                        format!("part {index} is not the one listed"),
                    ));
                }
            }
        }
        if data.len() as u64 != len {
            return Err(state_error(
                "completing",
                path,
                format!("the parts hold {} bytes, not {len}", data.len()),
            ));
        }
        state.uploads.remove(upload);
        state.objects.insert(path.to_owned(), data.freeze());
        Ok(())
    }

    fn abort_upload(&self, _path: &str, upload: &str) -> Result<(), StoreError> {
        self.state().uploads.remove(upload);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract() {
        super::super::contract::check(&MemoryStore::new());
    }
}
