//! A lease table in memory, with the same conditional semantics as DynamoDB: for unit
//! tests of the protocol, and for tests that stop a worker's store (a "zombie").

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures_util::future::{BoxFuture, FutureExt};

use crate::error::LeaseError;
use crate::lease::Lease;
use crate::store::{Change, LeaseStore};

/// Leases in a map; clones share it.
#[derive(Debug, Clone, Default)]
pub struct MemoryLeaseStore {
    leases: Arc<Mutex<BTreeMap<String, Lease>>>,
    unreachable: Arc<AtomicBool>,
}

impl MemoryLeaseStore {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// A lease as stored now.
    pub fn get(&self, key: &str) -> Option<Lease> {
        self.lock().get(key).cloned()
    }

    /// While `true`, every call fails as a network partition would.
    pub fn set_unreachable(&self, unreachable: bool) {
        self.unreachable.store(unreachable, Ordering::SeqCst);
    }

    /// A view of this table that can be cut off on its own (one worker's connection).
    pub fn connection(&self) -> Self {
        Self {
            leases: Arc::clone(&self.leases),
            unreachable: Arc::new(AtomicBool::new(false)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Lease>> {
        self.leases.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn reachable(&self, operation: &'static str) -> Result<(), LeaseError> {
        if self.unreachable.load(Ordering::SeqCst) {
            return Err(LeaseError::Store {
                table: "memory".into(),
                operation,
                message: "unreachable".into(),
            });
        }
        Ok(())
    }
}

impl LeaseStore for MemoryLeaseStore {
    fn prepare(&self) -> BoxFuture<'_, Result<(), LeaseError>> {
        async { self.reachable("CreateTable") }.boxed()
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<Lease>, LeaseError>> {
        async {
            self.reachable("Scan")?;
            Ok(self.lock().values().cloned().collect())
        }
        .boxed()
    }

    fn create_if_absent<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, Result<bool, LeaseError>> {
        async move {
            self.reachable("PutItem")?;
            let mut leases = self.lock();
            if leases.contains_key(&lease.key) {
                return Ok(false);
            }
            leases.insert(lease.key.clone(), lease.clone());
            Ok(true)
        }
        .boxed()
    }

    fn update<'a>(
        &'a self,
        read: &'a Lease,
        change: &'a Change,
    ) -> BoxFuture<'a, Result<Lease, LeaseError>> {
        async move {
            self.reachable("UpdateItem")?;
            let mut leases = self.lock();
            let conflict = || LeaseError::Conflict {
                key: read.key.clone(),
                change: change.name(),
            };
            let stored = leases.get_mut(&read.key).ok_or_else(conflict)?;
            if stored.counter != read.counter || stored.owner != read.owner {
                return Err(conflict());
            }
            // Only the attributes a change writes are taken from the reader's copy.
            let next = change.apply(stored);
            *stored = next.clone();
            Ok(next)
        }
        .boxed()
    }
}
