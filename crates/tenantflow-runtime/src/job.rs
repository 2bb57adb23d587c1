//! Wiring: builds the stages of a run, starts them, joins them.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use thiserror::Error;

use tenantflow_core::decode::DefaultKind;
use tenantflow_operators::score::Model;
use tenantflow_operators::window::Retention;
use tenantflow_sinks::SinkError;
use tenantflow_sinks::dead_letter::DeadLetterSink;
use tenantflow_sinks::file::{FileSinkConfig, FileStats, PartitionedFileSink};
use tenantflow_sources::{Input, SourceError};

use crate::metrics::{Metrics, MetricsSnapshot};
use crate::reader::Reader;
use crate::worker::Worker;

/// Batches queued per worker: enough to keep a worker busy while the reader refills,
/// few enough to bound memory (4 × 4096 records).
const QUEUE_BATCHES: usize = 4;

/// Everything a run needs, validated.
#[derive(Debug)]
pub struct JobConfig {
    /// The inputs, in reading order.
    pub inputs: Vec<Input>,
    /// The kind of untagged records.
    pub default_kind: DefaultKind,
    /// Where and how results are written.
    pub output: FileSinkConfig,
    /// The churn model.
    pub model: Model,
    /// Keyed workers (at least 1).
    pub workers: usize,
    /// How late an event may be.
    pub retention: Retention,
    /// Longest accepted record in bytes.
    pub max_record_bytes: usize,
}

impl JobConfig {
    /// The folder dead letters go to.
    pub fn rejected_dir(&self) -> PathBuf {
        self.output.dir.join("_rejected")
    }
}

/// Why a run failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RunError {
    /// An input cannot be opened.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// An input failed while being read.
    #[error("reading input {input}")]
    Read {
        /// The input.
        input: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A sink failed.
    #[error("writing output")]
    Sink(#[source] SinkError),
    /// A worker stopped before the reader was done (its own error says why).
    #[error("worker {0} stopped early")]
    WorkerStopped(usize),
    /// A stage panicked: a bug.
    #[error("the {0} thread panicked")]
    Panicked(String),
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Final counters.
    pub metrics: MetricsSnapshot,
    /// Result files written, over all workers.
    pub files: FileStats,
    /// Tenants with a profile at the end.
    pub tenants: usize,
    /// Wall time from start to the last file completed.
    pub elapsed: Duration,
    /// Workers used.
    pub workers: usize,
}

/// Runs the job to the end of its inputs, counting into `metrics` as it goes.
///
/// # Errors
/// The first error of any stage; files completed before it stay, in-progress files
/// stay hidden.
pub fn run(config: JobConfig, metrics: &Metrics) -> Result<RunSummary, RunError> {
    let started = Instant::now();
    let workers = config.workers.max(1);
    let rejected = config.rejected_dir();
    let (recycle_tx, recycle_rx) = mpsc::sync_channel(workers * (QUEUE_BATCHES + 2));
    let mut senders = Vec::with_capacity(workers);
    let mut receivers = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (tx, rx) = mpsc::sync_channel(QUEUE_BATCHES);
        senders.push(tx);
        receivers.push(rx);
    }
    let model = &config.model;
    let inputs = &config.inputs;
    std::thread::scope(|scope| {
        let handles: Vec<_> = receivers
            .into_iter()
            .enumerate()
            .map(|(index, rx)| {
                let worker = Worker {
                    index,
                    model,
                    inputs,
                    table: Worker::new_table(config.retention),
                    sink: PartitionedFileSink::new(config.output.clone(), index),
                    dead_letters: DeadLetterSink::new(
                        rejected.clone(),
                        &format!("worker-{index:02}"),
                    ),
                    metrics,
                };
                let recycle = recycle_tx.clone();
                std::thread::Builder::new()
                    .name(format!("tenantflow-worker-{index}"))
                    .spawn_scoped(scope, move || worker.run(rx, recycle))
                    .expect("spawning a worker thread")
            })
            .collect();
        drop(recycle_tx);
        let reader = Reader {
            inputs,
            default_kind: config.default_kind,
            max_record_bytes: config.max_record_bytes,
            workers: senders,
            recycled: recycle_rx,
            dead_letters: DeadLetterSink::new(rejected.clone(), "reader"),
            metrics,
        };
        let read_result = reader.run();
        let mut files = FileStats::default();
        let mut tenants = 0;
        let mut worker_error = None;
        for (i, handle) in handles.into_iter().enumerate() {
            match handle.join() {
                Ok(Ok(report)) => {
                    files.files += report.files.files;
                    files.rows += report.files.rows;
                    files.bytes += report.files.bytes;
                    tenants += report.tenants;
                }
                Ok(Err(e)) => {
                    worker_error.get_or_insert(e);
                }
                Err(_) => {
                    worker_error.get_or_insert(RunError::Panicked(format!("worker {i}")));
                }
            }
        }
        // A worker's own error explains a reader's "worker stopped" better.
        match (read_result, worker_error) {
            (Err(RunError::WorkerStopped(_)), Some(e)) | (Ok(_), Some(e)) => Err(e),
            (Err(e), _) => Err(e),
            (Ok(_), None) => Ok(RunSummary {
                metrics: metrics.snapshot(),
                files,
                tenants,
                elapsed: started.elapsed(),
                workers,
            }),
        }
    })
}
