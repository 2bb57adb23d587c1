//! The checkpoint coordinator: every interval, gathers the sources at the gate, puts
//! the barrier on every worker's channel, collects the workers' parts, writes the
//! manifest, and commits the files it lists as pending. When every source has ended
//! it takes the final checkpoint, after the workers have finished their files.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tenantflow_core::clock::now_ms;
use tenantflow_sinks::dead_letter::DeadLetterState;
use tenantflow_sinks::file::SinkState;
use tenantflow_sinks::upload::{PendingFile, Staging, commit};

use super::gate::{Gate, Gathered, SourcePart};
use super::manifest::{
    CheckpointStore, FilesPosition, JobIdentity, MANIFEST_VERSION, Manifest, ManifestError,
    WorkerPart,
};
use crate::error::RunError;
use crate::in_flight::InFlight;
use crate::worker::WorkerMessage;

/// A worker's part of a checkpoint, as it hands it over.
#[derive(Debug, Default)]
pub(crate) struct WorkerCheckpoint {
    pub(crate) state: Vec<u8>,
    pub(crate) tenants: u64,
    pub(crate) files: SinkState,
    pub(crate) dead_letters: DeadLetterState,
    pub(crate) pending: Vec<PendingFile>,
    pub(crate) results: u64,
    /// What waited for a remote answer at the barrier.
    pub(crate) in_flight: InFlight,
}

/// A worker's answer to a barrier (or to the end of its input): its part, or the
/// news that it failed (its own error says why).
pub(crate) struct WorkerAck {
    pub(crate) worker: usize,
    pub(crate) part: Option<WorkerCheckpoint>,
}

/// What the coordinator did.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckpointStats {
    /// Checkpoints written, the final one included.
    pub checkpoints: u64,
    /// The last checkpoint's number.
    pub last: u64,
    /// Files committed.
    pub committed: u64,
    /// Longest time from request to commit.
    pub longest: Duration,
}

pub(crate) struct Coordinator<'a> {
    pub(crate) store: CheckpointStore,
    pub(crate) staging: Staging,
    pub(crate) output: std::sync::Arc<dyn tenantflow_sinks::store::Store>,
    pub(crate) gate: &'a Gate,
    pub(crate) workers: Vec<crossbeam_channel::Sender<WorkerMessage>>,
    pub(crate) acks: Receiver<WorkerAck>,
    /// `None`: only the final checkpoint.
    pub(crate) interval: Option<Duration>,
    pub(crate) next: u64,
    pub(crate) identity: JobIdentity,
    /// Results written by earlier runs, from the restored manifest.
    pub(crate) base_results: u64,
    /// Where the file inputs started (kept if there are none to report).
    pub(crate) files_start: FilesPosition,
    pub(crate) streams_start: BTreeMap<String, super::manifest::StreamPosition>,
    /// The locks of the output and the checkpoints: no checkpoint once one is lost.
    pub(crate) locks: &'a [crate::output_lock::OutputLock],
    /// Each worker's records waiting for remote answers, as it last published them.
    pub(crate) waiting: &'a [AtomicUsize],
    /// Where the last checkpoint is reported.
    pub(crate) status: &'a crate::status::JobStatus,
    /// The BI aggregates, rewritten at checkpoints; `None`: never.
    pub(crate) aggregates: Option<super::aggregates::Aggregates>,
    /// With a shard's lease: the commit point after the manifest is written.
    pub(crate) fence: Option<&'a dyn super::fence::CommitFence>,
}

/// How often the coordinator looks whether the workers are done, once the sources are.
const IDLE_POLL: Duration = Duration::from_millis(10);

impl Coordinator<'_> {
    pub(crate) fn run(mut self) -> Result<CheckpointStats, RunError> {
        let mut stats = CheckpointStats::default();
        let interval = self.interval.unwrap_or(Duration::MAX);
        loop {
            match self.gate.wait_all_left(interval) {
                Err(()) => return Err(self.abort()),
                Ok(true) => break,
                Ok(false) => {}
            }
            self.take(&mut stats)?;
        }
        // Every source has ended, but workers may still wait for remote answers:
        // checkpoints go on at the interval while they do, so that a slow service
        // holds no checkpoint up.
        if let Some(interval) = self.interval {
            let mut due = Instant::now() + interval;
            while !self.workers_idle() {
                let now = Instant::now();
                if now >= due {
                    self.take(&mut stats)?;
                    due = Instant::now() + interval;
                } else {
                    std::thread::sleep((due - now).min(IDLE_POLL));
                }
            }
        }
        // The workers finish their files when their channels close, and answer with
        // their final parts.
        let started = Instant::now();
        self.workers.clear();
        let acks = self.collect()?;
        let parts = self.gate.parts();
        let bytes = self.complete(self.next, parts, acks, true, &mut stats)?;
        self.report(self.next, started, bytes, &mut stats);
        Ok(stats)
    }

    /// Takes checkpoint `self.next`: the sources stop at the gate (those that have
    /// ended give their final parts), the barrier goes to every worker, the parts are
    /// written and the files committed.
    fn take(&mut self, stats: &mut CheckpointStats) -> Result<(), RunError> {
        let started = Instant::now();
        let n = self.next;
        let parts = match self.gate.gather(n) {
            Gathered::Aligned(parts) => parts,
            Gathered::Failed => return Err(self.abort()),
        };
        for (w, tx) in self.workers.iter().enumerate() {
            if tx.send(WorkerMessage::Barrier(n)).is_err() {
                self.gate.abort();
                return Err(RunError::WorkerStopped(w));
            }
        }
        self.gate.release(n);
        let acks = self.collect()?;
        let bytes = self.complete(n, parts, acks, false, stats)?;
        self.report(n, started, bytes, stats);
        self.next += 1;
        Ok(())
    }

    /// Checkpoint `n`, requested at `started`, is complete with `bytes` written.
    fn report(&self, n: u64, started: Instant, bytes: u64, stats: &mut CheckpointStats) {
        let duration = started.elapsed();
        stats.longest = stats.longest.max(duration);
        self.status
            .checkpoint_done(crate::status::CheckpointReport {
                number: n,
                duration,
                bytes,
                completed_ms: now_ms(),
                count: stats.checkpoints,
            });
    }

    /// True when no worker has records queued or waiting for a remote answer.
    fn workers_idle(&self) -> bool {
        self.workers.iter().all(crossbeam_channel::Sender::is_empty)
            && self.waiting.iter().all(|w| w.load(Ordering::Acquire) == 0)
    }

    /// Makes what the output and the checkpoint store acknowledged durable (once if
    /// they are one store).
    fn sync_written(&self) -> Result<(), tenantflow_sinks::StoreError> {
        self.output.sync_written()?;
        let checkpoints = &self.store.location.store;
        if !std::sync::Arc::ptr_eq(checkpoints, &self.output) {
            checkpoints.sync_written()?;
        }
        Ok(())
    }

    fn abort(&self) -> RunError {
        self.gate.abort();
        RunError::Aborted
    }

    fn collect(&self) -> Result<Vec<WorkerCheckpoint>, RunError> {
        let n = self.identity.workers;
        let mut parts: Vec<Option<WorkerCheckpoint>> = (0..n).map(|_| None).collect();
        for _ in 0..n {
            let Ok(ack) = self.acks.recv() else {
                return Err(self.abort());
            };
            match ack.part {
                Some(part) => parts[ack.worker] = Some(part),
                None => {
                    self.gate.abort();
                    return Err(RunError::WorkerStopped(ack.worker));
                }
            }
        }
        Ok(parts.into_iter().map(Option::unwrap_or_default).collect())
    }

    fn complete(
        &mut self,
        n: u64,
        sources: Vec<SourcePart>,
        workers: Vec<WorkerCheckpoint>,
        final_checkpoint: bool,
        stats: &mut CheckpointStats,
    ) -> Result<u64, RunError> {
        let folder = self.store.checkpoint_folder(n);
        let mut bytes_written = 0;
        let mut pending = Vec::new();
        let mut manifest = Manifest {
            version: MANIFEST_VERSION,
            checkpoint: n,
            created_ms: now_ms(),
            job: self.identity.clone(),
            final_checkpoint,
            files: self.files_start,
            streams: self.streams_start.clone(),
            sources: BTreeMap::new(),
            workers: Vec::with_capacity(workers.len()),
            pending: Vec::new(),
            results: self.base_results,
        };
        for source in sources {
            if let Some(files) = source.files {
                manifest.files = files;
            }
            if let Some((name, position)) = source.stream {
                manifest.streams.insert(name, position);
            }
            manifest.sources.insert(source.stage, source.dead_letters);
            pending.extend(source.pending);
        }
        let aggregates = match &mut self.aggregates {
            Some(a) if a.due(final_checkpoint) => {
                let states: Vec<&[u8]> = workers
                    .iter()
                    .filter(|w| w.tenants > 0)
                    .map(|w| w.state.as_slice())
                    .collect();
                a.stage(n, &states, &self.staging)?
            }
            _ => Vec::new(),
        };
        for (w, worker) in workers.into_iter().enumerate() {
            let state = if worker.tenants > 0 {
                let path = folder.path(&format!("state-w{w:02}.bin"));
                bytes_written += worker.state.len() as u64;
                self.store
                    .location
                    .store
                    .put(&path, Bytes::from(worker.state))
                    .map_err(|e| RunError::Checkpoint(e.into()))?;
                Some(path)
            } else {
                None
            };
            let in_flight = if worker.in_flight.is_empty() {
                None
            } else {
                let path = folder.path(&format!("in-flight-w{w:02}.json"));
                let bytes = worker.in_flight.encode().map_err(|source| {
                    RunError::Checkpoint(ManifestError::Parse {
                        path: path.clone(),
                        source,
                    })
                })?;
                bytes_written += bytes.len() as u64;
                self.store
                    .location
                    .store
                    .put(&path, Bytes::from(bytes))
                    .map_err(|e| RunError::Checkpoint(e.into()))?;
                Some(path)
            };
            self.base_results += worker.results;
            manifest.workers.push(WorkerPart {
                state,
                tenants: worker.tenants,
                files: worker.files,
                dead_letters: worker.dead_letters,
                in_flight,
            });
            pending.extend(worker.pending);
        }
        pending.extend(aggregates);
        manifest.pending = pending;
        manifest.results = self.base_results;
        if self.locks.iter().any(crate::output_lock::OutputLock::lost) {
            return Err(RunError::LockLost);
        }
        // Every file the manifest names is durable before it is: one sync per store.
        self.sync_written()
            .map_err(|e| RunError::Checkpoint(e.into()))?;
        self.store.write(&manifest).map_err(RunError::Checkpoint)?;
        fault_point("after-manifest", n);
        if let Some(fence) = self.fence {
            let path = self.store.manifest_path(n);
            fence
                .commit(&super::fence::FencedCheckpoint {
                    checkpoint: n,
                    manifest: &path,
                    streams: &manifest.streams,
                    final_checkpoint,
                })
                .map_err(RunError::LeaseLost)?;
        }
        commit_all(&self.output, &self.staging, &manifest.pending)
            .map_err(|e| RunError::Checkpoint(e.into()))?;
        self.store
            .delete_before(n)
            .map_err(|e| RunError::Checkpoint(e.into()))?;
        stats.checkpoints += 1;
        stats.last = n;
        stats.committed += manifest.pending.len() as u64;
        tracing::info!(
            checkpoint = n,
            committed = manifest.pending.len(),
            results = manifest.results,
            final_checkpoint,
            "Checkpoint complete."
        );
        Ok(bytes_written)
    }
}

/// Threads committing files at once: a commit is a request or two to the store, and
/// waits on the network, not the CPU.
const COMMIT_THREADS: usize = 8;

/// Commits `files`, several at a time.
pub(crate) fn commit_all(
    output: &std::sync::Arc<dyn tenantflow_sinks::store::Store>,
    staging: &Staging,
    files: &[PendingFile],
) -> Result<(), tenantflow_sinks::StoreError> {
    if files.len() < 2 {
        return files.iter().try_for_each(|f| commit(output, staging, f));
    }
    let chunk = files.len().div_ceil(COMMIT_THREADS);
    std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|files| {
                scope.spawn(move || files.iter().try_for_each(|f| commit(output, staging, f)))
            })
            .collect();
        let mut result = Ok(());
        for handle in handles {
            let outcome = handle.join().unwrap_or_else(|_| {
                Err(tenantflow_sinks::StoreError::State {
                    op: "committing",
                    location: staging.location.url(),
                    message: "a commit thread panicked".into(),
                })
            });
            if result.is_ok() {
                result = outcome;
            }
        }
        result
    })
}

/// A pause on purpose, for tests of what the job shows while it recovers:
/// `TENANTFLOW_PAUSE=recovery:MILLIS` holds the recovery that long before it starts.
pub(crate) fn pause_point(point: &str) {
    let Ok(spec) = std::env::var("TENANTFLOW_PAUSE") else {
        return;
    };
    let Some(ms) = spec
        .strip_prefix(point)
        .and_then(|rest| rest.strip_prefix(':'))
        .and_then(|ms| ms.parse::<u64>().ok())
    else {
        return;
    };
    tracing::warn!(point, ms, "Pausing on purpose (TENANTFLOW_PAUSE).");
    std::thread::sleep(Duration::from_millis(ms));
}

/// A crash on purpose, for tests of recovery: `TENANTFLOW_FAULT=POINT:N` aborts the
/// process at `POINT` of checkpoint `N` (`after-manifest`: the manifest is written, its
/// files not yet committed; `recovery`: in the middle of committing a restored
/// checkpoint's files).
pub(crate) fn fault_point(point: &str, n: u64) {
    if let Ok(spec) = std::env::var("TENANTFLOW_FAULT")
        && spec == format!("{point}:{n}")
    {
        tracing::error!(
            point,
            checkpoint = n,
            "Crashing on purpose (TENANTFLOW_FAULT)."
        );
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    //! The coordinator's collecting of worker parts and its writing of a checkpoint,
    //! against a memory store.
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use tenantflow_sinks::store::{MemoryStore, Store};
    use tenantflow_sinks::upload::Location;

    use super::*;
    use crate::in_flight::{At, InFlight, WaitingRecord};

    fn coordinator<'a>(
        gate: &'a Gate,
        workers: usize,
        acks: Receiver<WorkerAck>,
    ) -> (Coordinator<'a>, Arc<MemoryStore>) {
        let memory = Arc::new(MemoryStore::new());
        let root = Location::root(memory.clone() as Arc<dyn Store>);
        let store = CheckpointStore {
            location: root.child("_checkpoints"),
        };
        let coordinator = Coordinator {
            staging: Staging {
                location: store.location.clone(),
            },
            store,
            output: memory.clone(),
            gate,
            workers: Vec::new(),
            acks,
            interval: None,
            next: 1,
            identity: JobIdentity {
                inputs: vec!["in.ndjson".into()],
                streams: Vec::new(),
                workers,
                format: "ndjson".parse().unwrap(),
                partitioning: tenantflow_sinks::file::Partitioning::Hourly,
            },
            base_results: 100,
            files_start: FilesPosition {
                input: 0,
                offset: 0,
                line: 1,
                fingerprint: None,
            },
            streams_start: BTreeMap::new(),
            locks: &[],
            waiting: &[],
            status: Box::leak(Box::default()),
            aggregates: None,
            fence: None,
        };
        (coordinator, memory)
    }

    fn part(tenants: u64, results: u64) -> WorkerCheckpoint {
        WorkerCheckpoint {
            state: vec![7; 4],
            tenants,
            files: SinkState::default(),
            dead_letters: DeadLetterState::default(),
            pending: Vec::new(),
            results,
            in_flight: InFlight::default(),
        }
    }

    #[test]
    fn collect_puts_parts_in_worker_order_and_a_failed_worker_stops_the_checkpoint() {
        let gate = Gate::new(1);
        let (tx, rx) = std::sync::mpsc::channel();
        let (coordinator, _) = coordinator(&gate, 2, rx);
        tx.send(WorkerAck {
            worker: 1,
            part: Some(part(0, 5)),
        })
        .unwrap();
        tx.send(WorkerAck {
            worker: 0,
            part: Some(part(3, 7)),
        })
        .unwrap();
        let parts = coordinator.collect().unwrap();
        assert_eq!(parts.iter().map(|p| p.results).collect::<Vec<_>>(), [7, 5]);
        tx.send(WorkerAck {
            worker: 0,
            part: Some(part(1, 1)),
        })
        .unwrap();
        tx.send(WorkerAck {
            worker: 1,
            part: None,
        })
        .unwrap();
        assert!(matches!(
            coordinator.collect(),
            Err(RunError::WorkerStopped(1))
        ));
        // The sources waiting at the gate are released for good.
        assert!(!gate.arrive(0, 1, SourcePart::default()));
        drop(tx);
        assert!(matches!(coordinator.collect(), Err(RunError::Aborted)));
    }

    #[test]
    fn complete_writes_what_each_part_holds() {
        let gate = Gate::new(1);
        let (_tx, rx) = std::sync::mpsc::channel();
        let (mut coordinator, memory) = coordinator(&gate, 2, rx);
        let source = SourcePart {
            stage: "reader".into(),
            files: Some(FilesPosition {
                input: 0,
                offset: 420,
                line: 11,
                fingerprint: None,
            }),
            ..SourcePart::default()
        };
        let mut waiting = part(2, 4);
        waiting.in_flight.lookups.push(WaitingRecord::Job {
            company_id: "c1".into(),
            user_id: "u1".into(),
            nb_jobs: 1,
            creation_date: None,
            at: At {
                source: 0,
                line: 10,
            },
            raw: None,
        });
        let want = waiting.in_flight.clone();
        let mut stats = CheckpointStats::default();
        coordinator
            .complete(
                3,
                vec![source],
                vec![part(0, 6), waiting],
                false,
                &mut stats,
            )
            .unwrap();
        assert_eq!((stats.checkpoints, stats.last), (1, 3));
        let manifest = coordinator.store.latest().unwrap().unwrap();
        assert_eq!(manifest.checkpoint, 3);
        assert!(!manifest.final_checkpoint);
        assert_eq!(
            manifest.results,
            100 + 6 + 4,
            "earlier runs' results included"
        );
        assert_eq!((manifest.files.offset, manifest.files.line), (420, 11));
        assert!(manifest.sources.contains_key("reader"));
        // No tenants, no state object; waiting work only where a worker has some.
        assert_eq!(manifest.workers[0].state, None);
        assert_eq!(manifest.workers[0].in_flight, None);
        let state = manifest.workers[1].state.clone().unwrap();
        assert!(state.ends_with("state-w01.bin"), "{state}");
        let store = Arc::clone(&coordinator.store.location.store);
        assert_eq!(store.get(&state).unwrap().unwrap().as_ref(), [7; 4]);
        let in_flight = manifest.workers[1].in_flight.clone().unwrap();
        let back = InFlight::decode(&store.get(&in_flight).unwrap().unwrap()).unwrap();
        assert_eq!(back, want);
        // The next checkpoint replaces it, and the older one is deleted.
        coordinator
            .complete(
                4,
                Vec::new(),
                vec![part(0, 0), part(0, 0)],
                true,
                &mut stats,
            )
            .unwrap();
        assert_eq!(coordinator.store.manifests().unwrap(), [4]);
        assert!(store.get(&in_flight).unwrap().is_none());
        drop(memory);
    }

    /// A lease that says yes or no, and what it was asked.
    #[derive(Debug, Default)]
    struct Lease {
        lost: std::sync::atomic::AtomicBool,
        asked: std::sync::Mutex<Vec<(u64, String, bool)>>,
    }

    impl super::super::fence::CommitFence for Lease {
        fn commit(&self, c: &super::super::fence::FencedCheckpoint<'_>) -> Result<(), String> {
            self.asked.lock().unwrap().push((
                c.checkpoint,
                c.manifest.to_owned(),
                c.final_checkpoint,
            ));
            if self.lost.load(std::sync::atomic::Ordering::SeqCst) {
                Err("lease shardId-000000000000 was taken by worker-b".into())
            } else {
                Ok(())
            }
        }
    }

    #[test]
    fn with_a_lease_files_are_committed_only_after_the_lease_row_took_the_checkpoint() {
        let gate = Gate::new(1);
        let (_tx, rx) = std::sync::mpsc::channel();
        let (mut coordinator, memory) = coordinator(&gate, 1, rx);
        let lease = Lease::default();
        coordinator.fence = Some(&lease);
        let staging = coordinator.staging.clone();
        let with_file = |n: u64| {
            let staged = staging.staged(&format!("f{n}.ndjson"));
            memory.put(&staged, Bytes::from_static(b"{}\n")).unwrap();
            let mut part = part(1, 1);
            part.pending.push(tenantflow_sinks::upload::PendingFile {
                path: format!("out/f{n}.ndjson"),
                body: tenantflow_sinks::upload::PendingBody::Staged(staged),
                len: 3,
                rows: 1,
            });
            part
        };
        let mut stats = CheckpointStats::default();
        let first = with_file(1);
        coordinator
            .complete(1, Vec::new(), vec![first], false, &mut stats)
            .unwrap();
        assert!(memory.get("out/f1.ndjson").unwrap().is_some());
        // The lease is lost: the manifest is written, but nothing is committed.
        lease.lost.store(true, std::sync::atomic::Ordering::SeqCst);
        let second = with_file(2);
        let refused = coordinator.complete(2, Vec::new(), vec![second], false, &mut stats);
        assert!(
            matches!(refused, Err(RunError::LeaseLost(_))),
            "{refused:?}"
        );
        assert!(memory.get("out/f2.ndjson").unwrap().is_none());
        assert_eq!(stats.checkpoints, 1);
        let asked = lease.asked.lock().unwrap();
        assert_eq!(asked.len(), 2);
        assert_eq!(asked[0].1, coordinator.store.manifest_path(1));
        assert_eq!((asked[1].0, asked[1].2), (2, false));
    }
}
