//! Where sources stop at a checkpoint's barrier.
//!
//! The coordinator requests checkpoint N. Each source thread, at its next record
//! boundary, sends its partial batches to the workers and arrives at the gate with
//! its position, then waits. Once every active source has arrived, the coordinator puts
//! the barrier on every worker's channel and releases the sources. A worker's channel
//! is first-in first-out, so a worker meets the barrier after exactly the records that
//! the sources routed before their positions: the barriers are aligned without any
//! buffering at the workers, and sources wait only while the barriers are enqueued.
//! A source that ends leaves the gate with its final position.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tenantflow_sinks::dead_letter::DeadLetterState;
use tenantflow_sinks::upload::PendingFile;

use super::manifest::{FilesPosition, StreamPosition};

/// A source's part of a checkpoint.
#[derive(Debug, Clone, Default)]
pub(crate) struct SourcePart {
    /// The source stage's name (`reader`, `stream-NAME`).
    pub(crate) stage: String,
    /// The file inputs' position (the reader).
    pub(crate) files: Option<FilesPosition>,
    /// A stream's position, with the stream's name.
    pub(crate) stream: Option<(String, StreamPosition)>,
    /// The stage's open dead-letter file.
    pub(crate) dead_letters: DeadLetterState,
    /// Its dead-letter files finished since the last checkpoint.
    pub(crate) pending: Vec<PendingFile>,
}

#[derive(Debug, Default)]
struct Inner {
    active: usize,
    arrived: usize,
    released: u64,
    aborted: bool,
    failed: bool,
    /// The latest part of each source, by source index.
    parts: BTreeMap<usize, SourcePart>,
}

/// What the coordinator found at the gate.
#[derive(Debug)]
pub(crate) enum Gathered {
    /// Every active source arrived (or left): their parts.
    Aligned(Vec<SourcePart>),
    /// A source failed; the job is failing.
    Failed,
}

/// The gate.
#[derive(Debug)]
pub(crate) struct Gate {
    requested: AtomicU64,
    inner: Mutex<Inner>,
    changed: Condvar,
    wake: tokio::sync::watch::Sender<u64>,
}

impl Gate {
    /// A gate for `sources` source threads.
    pub(crate) fn new(sources: usize) -> Self {
        let (wake, _) = tokio::sync::watch::channel(0);
        Self {
            requested: AtomicU64::new(0),
            inner: Mutex::new(Inner {
                active: sources,
                ..Inner::default()
            }),
            changed: Condvar::new(),
            wake,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The checkpoint sources should stop for, 0 before the first: a source that has
    /// not arrived for this number yet must.
    pub(crate) fn requested(&self) -> u64 {
        self.requested.load(Ordering::Acquire)
    }

    /// A receiver that changes when a checkpoint is requested (for sources that wait
    /// on something else, such as a stream's consumer).
    pub(crate) fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.wake.subscribe()
    }

    /// A source arrives for `checkpoint` with its part, and waits to be released.
    /// Returns false if the job is failing.
    pub(crate) fn arrive(&self, source: usize, checkpoint: u64, part: SourcePart) -> bool {
        let mut inner = self.lock();
        inner.parts.insert(source, part);
        inner.arrived += 1;
        self.changed.notify_all();
        while inner.released < checkpoint && !inner.aborted {
            inner = self.changed.wait(inner).unwrap_or_else(|p| p.into_inner());
        }
        !inner.aborted
    }

    /// A source ends: with its final part, or `None` if it failed.
    pub(crate) fn leave(&self, source: usize, part: Option<SourcePart>) {
        let mut inner = self.lock();
        match part {
            Some(part) => {
                inner.parts.insert(source, part);
            }
            None => inner.failed = true,
        }
        inner.active = inner.active.saturating_sub(1);
        self.changed.notify_all();
    }

    /// Waits up to `timeout` for every source to leave (or one to fail); true if they
    /// all left.
    pub(crate) fn wait_all_left(&self, timeout: Duration) -> Result<bool, ()> {
        let deadline = Instant::now().checked_add(timeout);
        let mut inner = self.lock();
        loop {
            if inner.failed {
                return Err(());
            }
            if inner.active == 0 {
                return Ok(true);
            }
            inner = match deadline {
                None => self.changed.wait(inner).unwrap_or_else(|p| p.into_inner()),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Ok(false);
                    }
                    self.changed
                        .wait_timeout(inner, deadline - now)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|p| p.into_inner().0)
                }
            };
        }
    }

    /// Requests checkpoint `n` and waits until every active source has arrived.
    pub(crate) fn gather(&self, n: u64) -> Gathered {
        let mut inner = self.lock();
        inner.arrived = 0;
        self.requested.store(n, Ordering::Release);
        self.wake.send_replace(n);
        loop {
            if inner.failed || inner.aborted {
                return Gathered::Failed;
            }
            if inner.arrived >= inner.active {
                return Gathered::Aligned(inner.parts.values().cloned().collect());
            }
            inner = self.changed.wait(inner).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Releases the sources waiting at checkpoint `n`.
    pub(crate) fn release(&self, n: u64) {
        let mut inner = self.lock();
        inner.released = n;
        // Pending files were handed over with the parts: do not hand them over twice.
        for part in inner.parts.values_mut() {
            part.pending.clear();
        }
        self.changed.notify_all();
    }

    /// Every source's latest part (for the final checkpoint, once all have left).
    pub(crate) fn parts(&self) -> Vec<SourcePart> {
        self.lock().parts.values().cloned().collect()
    }

    /// The job is failing: releases every source for good.
    pub(crate) fn abort(&self) {
        let mut inner = self.lock();
        inner.aborted = true;
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn sources_wait_until_released_and_leaving_counts_as_arriving() {
        let gate = Arc::new(Gate::new(2));
        let g = Arc::clone(&gate);
        let waiter = std::thread::spawn(move || {
            while g.requested() < 1 {
                std::thread::yield_now();
            }
            g.arrive(
                0,
                1,
                SourcePart {
                    stage: "a".into(),
                    ..SourcePart::default()
                },
            )
        });
        let g = Arc::clone(&gate);
        let leaver = std::thread::spawn(move || {
            g.leave(
                1,
                Some(SourcePart {
                    stage: "b".into(),
                    ..SourcePart::default()
                }),
            );
        });
        let Gathered::Aligned(parts) = gate.gather(1) else {
            panic!("aligned")
        };
        leaver.join().unwrap();
        let stages: Vec<_> = parts.iter().map(|p| p.stage.as_str()).collect();
        assert_eq!(stages, ["a", "b"]);
        gate.release(1);
        assert!(waiter.join().unwrap());
        assert_eq!(gate.wait_all_left(Duration::ZERO), Ok(false));
        gate.leave(0, Some(SourcePart::default()));
        assert_eq!(gate.wait_all_left(Duration::ZERO), Ok(true));
    }

    #[test]
    fn a_failed_source_fails_the_gather() {
        let gate = Gate::new(2);
        gate.leave(0, None);
        assert!(matches!(gate.gather(1), Gathered::Failed));
        assert_eq!(gate.wait_all_left(Duration::ZERO), Err(()));
    }
}
