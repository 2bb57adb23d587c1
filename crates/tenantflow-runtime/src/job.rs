//! Wiring: builds the stages of a run, starts them, joins them.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use thiserror::Error;

use tenantflow_core::RecordKind;
use tenantflow_core::decode::{Decoder, DefaultKind};
use tenantflow_kinesis::KinesisError;
use tenantflow_kinesis::consumer::{ConsumerConfig, ConsumerStats, RecordBatch};
use tenantflow_kinesis::url::KinesisInput;
use tenantflow_kinesis::writer::{RecordWriter, WriterStats};
use tenantflow_operators::score::Model;
use tenantflow_operators::window::Retention;
use tenantflow_sinks::SinkError;
use tenantflow_sinks::dead_letter::DeadLetterSink;
use tenantflow_sinks::file::{FileSinkConfig, FileStats, PartitionedFileSink};
use tenantflow_sources::{Input, SourceError};

use crate::file_reader::read_inputs;
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::router::Router;
use crate::stream_reader::route_stream;
use crate::stream_sink::{Chunk, SINK_QUEUE_PER_WORKER, StreamSink};
use crate::worker::Worker;

/// Batches queued per worker: enough to keep a worker busy while the reader refills,
/// few enough to bound memory (4 × 4096 records).
const QUEUE_BATCHES: usize = 4;

/// Everything a run needs, validated.
#[derive(Debug)]
pub struct JobConfig {
    /// The inputs with lines, in reading order.
    pub inputs: Vec<Input>,
    /// Kinesis streams, read concurrently with the inputs.
    pub streams: Vec<KinesisInput>,
    /// Stop reading streams once they have been idle this long.
    pub exit_when_idle: Option<Duration>,
    /// A Kinesis stream that also gets every result, as JSON.
    pub output_stream: Option<String>,
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
    /// A stream cannot be read.
    #[error("reading a Kinesis stream")]
    Kinesis(#[source] KinesisError),
    /// The async runtime for streams cannot start.
    #[error("starting the runtime for streams")]
    Runtime(#[source] std::io::Error),
    /// The writer to the output stream stopped (its own error says why).
    #[error("the output stream writer stopped")]
    OutputStreamStopped,
    /// The job was asked to stop; not an error of the run.
    #[error("stopped")]
    Stopped,
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
    /// The run ended on Ctrl-C or SIGTERM (after processing what it had read).
    pub stopped_by_signal: bool,
    /// What went to the output stream, if there is one.
    pub output_stream: Option<WriterStats>,
}

/// Runs the job to the end of its inputs (streams: until idle for
/// [`JobConfig::exit_when_idle`], or until Ctrl-C / SIGTERM), counting into `metrics`.
///
/// # Errors
/// The first error of any stage; files completed before it stay, in-progress files
/// stay hidden.
pub fn run(config: JobConfig, metrics: &Metrics) -> Result<RunSummary, RunError> {
    let started = Instant::now();
    let workers = config.workers.max(1);
    let rejected = config.rejected_dir();
    let sources: Vec<String> = config
        .inputs
        .iter()
        .map(|i| i.name().to_owned())
        .chain(
            config
                .streams
                .iter()
                .map(|s| format!("kinesis://{}", s.stream)),
        )
        .collect();
    let (recycle_tx, recycle_rx) = mpsc::sync_channel(workers * (QUEUE_BATCHES + 2));
    let mut senders = Vec::with_capacity(workers);
    let mut receivers = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (tx, rx) = mpsc::sync_channel(QUEUE_BATCHES);
        senders.push(tx);
        receivers.push(rx);
    }
    let stop_flag = Arc::new(AtomicBool::new(false));
    let mut streams = StreamStage::start(&config, Arc::clone(&stop_flag))?;
    let model = &config.model;
    let sources = &sources;
    let stop: &AtomicBool = &stop_flag;
    std::thread::scope(|scope| {
        let handles: Vec<_> = receivers
            .into_iter()
            .enumerate()
            .map(|(index, rx)| {
                let worker = Worker {
                    index,
                    model,
                    sources,
                    table: Worker::new_table(config.retention),
                    sink: PartitionedFileSink::new(config.output.clone(), index),
                    dead_letters: DeadLetterSink::new(
                        rejected.clone(),
                        &format!("worker-{index:02}"),
                    ),
                    stream_sink: streams.sink_sender().map(StreamSink::new),
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
        let stream_handles: Vec<_> = std::mem::take(&mut streams.receivers)
            .into_iter()
            .enumerate()
            .map(|(i, rx)| {
                let input = &config.streams[i];
                let source = u32::try_from(config.inputs.len() + i).unwrap_or(u32::MAX);
                let name = &sources[source as usize];
                let decoder = Decoder::new(match input.kind {
                    Some(RecordKind::Job) => DefaultKind::Job,
                    Some(RecordKind::Company) => DefaultKind::Company,
                    None => DefaultKind::Infer,
                });
                let router = Router::new(
                    senders.clone(),
                    None,
                    DeadLetterSink::new(rejected.clone(), &format!("stream-{}", input.stream)),
                    metrics,
                    stop,
                );
                let max = config.max_record_bytes;
                std::thread::Builder::new()
                    .name(format!("tenantflow-stream-{i}"))
                    .spawn_scoped(scope, move || {
                        route_stream(rx, source, name, decoder, max, router)
                    })
                    .expect("spawning a stream thread")
            })
            .collect();
        let router = Router::new(
            senders,
            Some(recycle_rx),
            DeadLetterSink::new(rejected.clone(), "reader"),
            metrics,
            stop,
        );
        let mut first_error = read_inputs(
            &config.inputs,
            config.default_kind,
            config.max_record_bytes,
            router,
        )
        .err();
        for handle in stream_handles {
            let result = handle
                .join()
                .unwrap_or_else(|_| Err(RunError::Panicked("stream".into())));
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        if let Err(e) = streams.finish_consumers() {
            first_error.get_or_insert(e);
        }
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
        let output_stream = match streams.finish_sink() {
            Ok(stats) => stats,
            Err(e) => {
                // The writer's own error explains a worker's "writer stopped" better.
                if matches!(worker_error, None | Some(RunError::OutputStreamStopped)) {
                    worker_error = Some(e);
                }
                None
            }
        };
        // A worker's own error explains a reader's "worker stopped" better.
        match (first_error, worker_error) {
            (Some(RunError::WorkerStopped(_)) | None, Some(e)) => Err(e),
            (Some(e), _) => Err(e),
            (None, None) => Ok(RunSummary {
                metrics: metrics.snapshot(),
                files,
                tenants,
                elapsed: started.elapsed(),
                workers,
                stopped_by_signal: stop.load(Ordering::Relaxed),
                output_stream,
            }),
        }
    })
}

/// The Kinesis consumers, on a small Tokio runtime of their own, and the signal watch.
struct StreamStage {
    runtime: Option<tokio::runtime::Runtime>,
    receivers: Vec<tokio::sync::mpsc::Receiver<RecordBatch>>,
    consumers: Vec<tokio::task::JoinHandle<Result<ConsumerStats, KinesisError>>>,
    sink: Option<tokio::sync::mpsc::Sender<Chunk>>,
    sink_task: Option<tokio::task::JoinHandle<Result<WriterStats, KinesisError>>>,
}

/// Batches queued per stream between its consumer and its routing thread.
const STREAM_QUEUE: usize = 16;

impl StreamStage {
    fn start(config: &JobConfig, stop: Arc<AtomicBool>) -> Result<Self, RunError> {
        if config.streams.is_empty() && config.output_stream.is_none() {
            return Ok(Self {
                runtime: None,
                receivers: Vec::new(),
                consumers: Vec::new(),
                sink: None,
                sink_task: None,
            });
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("tenantflow-kinesis")
            .enable_all()
            .build()
            .map_err(RunError::Runtime)?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let client = runtime.block_on(tenantflow_kinesis::client::connect());
        let mut receivers = Vec::new();
        let mut consumers = Vec::new();
        for input in &config.streams {
            let (tx, rx) = tokio::sync::mpsc::channel(STREAM_QUEUE);
            let mut consumer = ConsumerConfig::new(&input.stream);
            consumer.start = input.start.clone();
            consumer.exit_when_idle = config.exit_when_idle;
            consumer.fan_out = input.consumer.clone();
            consumers.push(runtime.spawn(tenantflow_kinesis::consumer::consume(
                client.clone(),
                consumer,
                tx,
                stop_rx.clone(),
            )));
            receivers.push(rx);
        }
        // Ctrl-C or SIGTERM: consumers stop polling, everything read so far is
        // processed and flushed, and the run ends normally.
        runtime.spawn(async move {
            wait_for_signal().await;
            tracing::warn!("Stopping: finishing the records in flight.");
            stop.store(true, Ordering::Relaxed);
            let _ = stop_tx.send(true);
        });
        let (sink, sink_task) = match &config.output_stream {
            Some(stream) => {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<Chunk>(
                    config.workers.max(1) * SINK_QUEUE_PER_WORKER,
                );
                let mut writer = RecordWriter::new(client.clone(), stream, false);
                let task = runtime.spawn(async move {
                    while let Some(chunk) = rx.recv().await {
                        for (key, json) in chunk {
                            writer.send(&key, json).await?;
                        }
                    }
                    writer.flush().await?;
                    Ok(writer.stats())
                });
                (Some(tx), Some(task))
            }
            None => (None, None),
        };
        Ok(Self {
            runtime: Some(runtime),
            receivers,
            consumers,
            sink,
            sink_task,
        })
    }

    /// A sender to the output stream's writer, for a worker.
    fn sink_sender(&self) -> Option<tokio::sync::mpsc::Sender<Chunk>> {
        self.sink.clone()
    }

    /// Waits for the stream consumers to end.
    fn finish_consumers(&mut self) -> Result<(), RunError> {
        let Some(runtime) = &self.runtime else {
            return Ok(());
        };
        for consumer in std::mem::take(&mut self.consumers) {
            match runtime.block_on(consumer) {
                Ok(Ok(stats)) => tracing::info!(?stats, "Stream consumer done."),
                Ok(Err(e)) => return Err(RunError::Kinesis(e)),
                Err(_) => return Err(RunError::Panicked("kinesis consumer".into())),
            }
        }
        Ok(())
    }

    /// After the workers are done: waits for the output stream's writer to flush.
    fn finish_sink(mut self) -> Result<Option<WriterStats>, RunError> {
        self.sink = None;
        let Some(runtime) = self.runtime.take() else {
            return Ok(None);
        };
        let result = match self.sink_task.take() {
            Some(task) => match runtime.block_on(task) {
                Ok(Ok(stats)) => Ok(Some(stats)),
                Ok(Err(e)) => Err(RunError::Kinesis(e)),
                Err(_) => Err(RunError::Panicked("output stream writer".into())),
            },
            None => Ok(None),
        };
        runtime.shutdown_timeout(Duration::from_secs(1));
        result
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
