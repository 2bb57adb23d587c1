//! The output lock: one job at a time writes an output and its checkpoints.
//!
//! Two jobs on one output interleave their files and checkpoints and leave an output that
//! neither can resume. So a job takes the output's lock before it touches anything, and a
//! second job refuses at start.
//!
//! - A local folder: an exclusive lock (`flock`) on `_tenantflow.lock` in the folder,
//!   which names its owner. The kernel releases it when the owner dies, however it dies,
//!   so a job started after a crash takes it at once.
//! - An object store (S3): the object `_tenantflow.lock`, created by a conditional put
//!   (`If-None-Match: *`) and renewed every [`LockConfig::heartbeat`] by a put
//!   conditional on its ETag (`If-Match`). A lock whose heartbeat is older than
//!   [`LockConfig::stale_after`] belongs to a job that died: it is taken over by a put
//!   conditional on the ETag read, so of two jobs taking it over one wins. So is, at
//!   once, a lock whose owner ran on this host and whose process is gone. A job that
//!   finds its lock replaced has lost it and stops before its next checkpoint. The age
//!   of a heartbeat is read against this machine's clock; `stale_after` (30 s) is far
//!   beyond the skew of clocks kept by NTP.
//! - `memory://`: a store of one process, nothing to lock.

use std::io::{Read, Seek, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use tenantflow_core::clock::now_ms;
use tenantflow_sinks::StoreError;
use tenantflow_sinks::store::Store;
use tenantflow_sinks::upload::Location;

/// The lock's name in the folder it locks.
pub const LOCK_NAME: &str = "_tenantflow.lock";

/// Timing of an object store's lock.
#[derive(Debug, Clone, Copy)]
pub struct LockConfig {
    /// How often the owner renews the lock.
    pub heartbeat: Duration,
    /// A lock not renewed for this long is taken over.
    pub stale_after: Duration,
}

impl Default for LockConfig {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(5),
            stale_after: Duration::from_secs(30),
        }
    }
}

/// Why the lock cannot be taken.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another job holds it.
    #[error(
        "{url} is in use by another tenantflow job ({owner}{}); stop that job or choose another place{}",
        match heartbeat_age_ms { Some(ms) => format!(", last heartbeat {:.1} s ago", *ms as f64 / 1000.0), None => String::new() },
        match stale_after { Some(d) => format!(" (a lock not renewed for {} s is taken over)", d.as_secs()), None => String::new() }
    )]
    Held {
        /// The locked place.
        url: String,
        /// Who holds it, as its lock says.
        owner: String,
        /// How old its last heartbeat is (object stores).
        heartbeat_age_ms: Option<i64>,
        /// When such a lock counts as abandoned (object stores).
        stale_after: Option<Duration>,
    },
    /// The lock file cannot be used.
    #[error("locking {path}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The thread that renews the lock cannot start.
    #[error("starting the thread that renews the lock")]
    Thread(#[source] std::io::Error),
    /// The store failed.
    #[error("locking {url}")]
    Store {
        /// The locked place.
        url: String,
        /// Why.
        #[source]
        source: Box<StoreError>,
    },
}

/// What a lock says of its owner.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Owner {
    /// `pid N on HOST`, for people.
    owner: String,
    /// The owner's host name.
    #[serde(default)]
    host: String,
    /// The owner's process id.
    #[serde(default)]
    pid: u32,
    /// Unique per acquisition.
    token: String,
    /// When the lock was last renewed, epoch milliseconds.
    #[serde(rename = "heartbeatMs")]
    heartbeat_ms: i64,
}

impl Owner {
    fn new() -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "an unknown host".into());
        let pid = std::process::id();
        let now = now_ms();
        Self {
            owner: format!("pid {pid} on {host}"),
            token: format!("{host}-{pid}-{now}-{:016x}", fastrand::u64(..)),
            heartbeat_ms: now,
            host,
            pid,
        }
    }

    /// True when the owner ran on this host and its process is gone (a job killed and
    /// started again on the same machine need not wait for the lock to go stale). A
    /// reused pid only makes the lock look alive: then it is taken once stale.
    fn died_here(&self, here: &Owner) -> bool {
        self.host == here.host
            && self.pid != 0
            && std::path::Path::new("/proc/self").exists()
            && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }

    fn to_bytes(&self) -> Bytes {
        // A struct of strings and integers always serializes.
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    fn parse(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

/// A held lock, released when dropped.
#[derive(Debug)]
pub struct OutputLock {
    held: Held,
}

#[derive(Debug)]
enum Held {
    File(std::fs::File),
    Object(ObjectLock),
    Nothing,
}

impl OutputLock {
    /// Takes the lock of `location`, or says who holds it.
    ///
    /// # Errors
    /// [`LockError::Held`] when another live job holds it; a failure of the file system
    /// or the store.
    pub fn acquire(location: &Location, config: LockConfig) -> Result<Self, LockError> {
        let held = if let Some(folder) = location.local_path() {
            Held::File(lock_file(&folder, &location.url())?)
        } else if location.store.url().starts_with("memory://") {
            Held::Nothing
        } else {
            Held::Object(ObjectLock::acquire(location, config)?)
        };
        Ok(Self { held })
    }

    /// True once another job took the lock over (this job's heartbeats stopped for
    /// longer than the lock's staleness): the job must not write another checkpoint.
    pub fn lost(&self) -> bool {
        match &self.held {
            Held::Object(lock) => lock.lost.load(Ordering::Relaxed),
            Held::File(_) | Held::Nothing => false,
        }
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        // Closing the file releases its lock too; unlocking first says so.
        if let Held::File(file) = &self.held {
            let _ = file.unlock();
        }
    }
}

fn lock_file(folder: &std::path::Path, url: &str) -> Result<std::fs::File, LockError> {
    let path = folder.join(LOCK_NAME);
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(folder).map_err(io)?;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut said = String::new();
            let _ = file.read_to_string(&mut said);
            let owner = Owner::parse(said.as_bytes())
                .map_or_else(|| "owner unknown".to_owned(), |o| o.owner);
            return Err(LockError::Held {
                url: url.to_owned(),
                owner,
                heartbeat_age_ms: None,
                stale_after: None,
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    file.write_all(&Owner::new().to_bytes()).map_err(io)?;
    file.flush().map_err(io)?;
    Ok(file)
}

/// The lock object of an object store, renewed by a thread of its own.
#[derive(Debug)]
struct ObjectLock {
    store: Arc<dyn Store>,
    path: String,
    lost: Arc<AtomicBool>,
    stop: Option<mpsc::Sender<()>>,
    heartbeat: Option<std::thread::JoinHandle<Option<String>>>,
}

impl ObjectLock {
    fn acquire(location: &Location, config: LockConfig) -> Result<Self, LockError> {
        let url = location.url();
        let store_error = |source| LockError::Store {
            url: url.clone(),
            source: Box::new(source),
        };
        let path = location.path(LOCK_NAME);
        let store = Arc::clone(&location.store);
        let mut owner = Owner::new();
        let stale_ms = i64::try_from(config.stale_after.as_millis()).unwrap_or(i64::MAX);
        // Created, or taken over from a dead owner; a few rounds when others race.
        let mut tag = None;
        for _ in 0..3 {
            owner.heartbeat_ms = now_ms();
            if let Some(t) = store
                .put_tagged(&path, owner.to_bytes(), None)
                .map_err(store_error)?
            {
                tag = Some(t);
                break;
            }
            let Some((bytes, current)) = store.get_tagged(&path).map_err(store_error)? else {
                continue;
            };
            let holder = Owner::parse(&bytes);
            let age = holder
                .as_ref()
                .map_or(i64::MAX, |h| now_ms().saturating_sub(h.heartbeat_ms));
            let dead = holder.as_ref().is_some_and(|h| h.died_here(&owner));
            if age <= stale_ms && !dead {
                return Err(LockError::Held {
                    url,
                    owner: holder.map_or_else(|| "owner unknown".into(), |h| h.owner),
                    heartbeat_age_ms: Some(age),
                    stale_after: Some(config.stale_after),
                });
            }
            owner.heartbeat_ms = now_ms();
            if let Some(t) = store
                .put_tagged(&path, owner.to_bytes(), Some(&current))
                .map_err(store_error)?
            {
                tracing::warn!(
                    lock = %path,
                    previous_owner = holder.map_or_else(|| "unknown".into(), |h| h.owner),
                    heartbeat_age_ms = age,
                    "Took over the output lock of a job that stopped renewing it."
                );
                tag = Some(t);
                break;
            }
        }
        let Some(tag) = tag else {
            return Err(LockError::Held {
                url,
                owner: "other jobs taking it at the same time".into(),
                heartbeat_age_ms: None,
                stale_after: Some(config.stale_after),
            });
        };
        let lost = Arc::new(AtomicBool::new(false));
        let (stop, stopped) = mpsc::channel();
        let heartbeat = {
            let store = Arc::clone(&store);
            let path = path.clone();
            let lost = Arc::clone(&lost);
            std::thread::Builder::new()
                .name("tenantflow-lock".into())
                .spawn(move || renew(store.as_ref(), &path, owner, tag, config, &stopped, &lost))
                .map_err(LockError::Thread)?
        };
        Ok(Self {
            store,
            path,
            lost,
            stop: Some(stop),
            heartbeat: Some(heartbeat),
        })
    }
}

/// Renews the lock until told to stop or until it is lost; returns its last tag while
/// still held.
fn renew(
    store: &dyn Store,
    path: &str,
    mut owner: Owner,
    mut tag: String,
    config: LockConfig,
    stop: &mpsc::Receiver<()>,
    lost: &AtomicBool,
) -> Option<String> {
    let stale_ms = i64::try_from(config.stale_after.as_millis()).unwrap_or(i64::MAX);
    let mut renewed_ms = now_ms();
    let mut failures = 0u32;
    loop {
        match stop.recv_timeout(config.heartbeat) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => return Some(tag),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        match renew_once(store, path, &mut owner, &mut tag) {
            Ok(true) => {
                renewed_ms = owner.heartbeat_ms;
                failures = 0;
            }
            Ok(false) => {
                tracing::error!(lock = %path, "The output lock was taken over by another job: this job writes no more checkpoints.");
                lost.store(true, Ordering::Relaxed);
                return None;
            }
            Err(e) => {
                failures += 1;
                if failures == 1 || failures.is_power_of_two() {
                    tracing::warn!(lock = %path, failures, error = %e, "Renewing the output lock failed; retrying.");
                }
                if now_ms().saturating_sub(renewed_ms) > stale_ms {
                    tracing::error!(lock = %path, "The output lock was not renewed in time: this job writes no more checkpoints.");
                    lost.store(true, Ordering::Relaxed);
                    return None;
                }
            }
        }
    }
}

/// One heartbeat: `false` when the lock is no longer ours.
fn renew_once(
    store: &dyn Store,
    path: &str,
    owner: &mut Owner,
    tag: &mut String,
) -> Result<bool, StoreError> {
    owner.heartbeat_ms = now_ms();
    match store.put_tagged(path, owner.to_bytes(), Some(tag))? {
        Some(next) => {
            *tag = next;
            Ok(true)
        }
        None => Ok(false),
    }
}

impl Drop for ObjectLock {
    fn drop(&mut self) {
        drop(self.stop.take());
        let tag = self.heartbeat.take().and_then(|h| h.join().ok().flatten());
        // Released only while still ours: a lock another job took over stays.
        if let Some(tag) = tag
            && let Ok(Some((_, current))) = self.store.get_tagged(&self.path)
            && current == tag
            && let Err(e) = self.store.delete(&self.path)
        {
            tracing::warn!(lock = %self.path, error = %e, "Releasing the output lock failed; the next job takes it over once it is stale.");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tenantflow_sinks::store::{LocalStore, MemoryStore};

    /// Heartbeats that never come during a test: each test renews by hand.
    fn quick() -> LockConfig {
        LockConfig {
            heartbeat: Duration::from_secs(3600),
            stale_after: Duration::from_secs(60),
        }
    }

    #[test]
    fn a_folder_is_locked_once_and_free_after_release() {
        let dir = tempfile::tempdir().unwrap();
        let location = Location::root(Arc::new(LocalStore::new(dir.path().join("out"))));
        let first = OutputLock::acquire(&location, quick()).unwrap();
        let err = OutputLock::acquire(&location, quick()).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("in use by another tenantflow job"),
            "{message}"
        );
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
        drop(first);
        OutputLock::acquire(&location, quick()).unwrap();
    }

    /// The object lock, on the memory store's conditional writes (S3's rules).
    fn object_lock(store: &Arc<MemoryStore>, config: LockConfig) -> Result<ObjectLock, LockError> {
        let location = Location::root(Arc::clone(store) as Arc<dyn Store>).child("out");
        ObjectLock::acquire(&location, config)
    }

    #[test]
    fn an_object_lock_refuses_a_second_job_and_is_released() {
        let store = Arc::new(MemoryStore::new());
        let first = object_lock(&store, quick()).unwrap();
        let err = object_lock(&store, quick()).unwrap_err();
        assert!(matches!(err, LockError::Held { .. }), "{err}");
        assert!(err.to_string().contains("last heartbeat"), "{err}");
        drop(first);
        assert!(store.get("out/_tenantflow.lock").unwrap().is_none());
        drop(object_lock(&store, quick()).unwrap());
    }

    #[test]
    fn a_fresh_lock_of_a_dead_process_on_this_host_is_taken_over_at_once() {
        let store = Arc::new(MemoryStore::new());
        let here = Owner::new();
        let mut gone = Owner {
            pid: u32::MAX - 1,
            token: "gone".into(),
            ..here.clone()
        };
        store.put("out/_tenantflow.lock", gone.to_bytes()).unwrap();
        drop(object_lock(&store, quick()).unwrap());
        // A live process of this host (this one) keeps its fresh lock.
        gone.pid = std::process::id();
        store.put("out/_tenantflow.lock", gone.to_bytes()).unwrap();
        assert!(object_lock(&store, quick()).is_err());
    }

    #[test]
    fn a_stale_object_lock_is_taken_over_and_a_replaced_lock_is_not_renewed() {
        let store = Arc::new(MemoryStore::new());
        // A dead job's lock: a heartbeat a minute old.
        let dead = Owner {
            owner: "pid 1 on gone".into(),
            token: "t".into(),
            heartbeat_ms: now_ms() - 61_000,
            host: "gone".into(),
            pid: 1,
        };
        store.put("out/_tenantflow.lock", dead.to_bytes()).unwrap();
        let taker = object_lock(&store, quick()).unwrap();
        let (bytes, _) = store.get_tagged("out/_tenantflow.lock").unwrap().unwrap();
        assert_ne!(Owner::parse(&bytes).unwrap().token, "t");

        // Another job takes over while this one still runs: its next heartbeat finds
        // the lock replaced.
        let (_, mut tag) = store.get_tagged("out/_tenantflow.lock").unwrap().unwrap();
        let mut owner = Owner::new();
        assert!(renew_once(store.as_ref(), "out/_tenantflow.lock", &mut owner, &mut tag).unwrap());
        let stale_tag = tag.clone();
        assert!(
            store
                .put_tagged("out/_tenantflow.lock", dead.to_bytes(), Some(&tag))
                .unwrap()
                .is_some()
        );
        let mut tag = stale_tag;
        assert!(!renew_once(store.as_ref(), "out/_tenantflow.lock", &mut owner, &mut tag).unwrap());
        drop(taker);
        // The lock the other job wrote stays.
        let (bytes, _) = store.get_tagged("out/_tenantflow.lock").unwrap().unwrap();
        assert_eq!(Owner::parse(&bytes).unwrap().token, "t");
    }
}
