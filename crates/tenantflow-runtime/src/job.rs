//! Wiring: builds the stages of a run, starts them, joins them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use tenantflow_core::RecordKind;
use tenantflow_core::decode::{Decoder, DefaultKind};
use tenantflow_core::time::EventTimeBounds;
use tenantflow_kinesis::KinesisError;
use tenantflow_kinesis::consumer::{ConsumerConfig, ConsumerStats, RecordBatch, StartPosition};
use tenantflow_kinesis::url::KinesisInput;
use tenantflow_kinesis::writer::{RecordWriter, WriterStats};
use tenantflow_operators::score::Model;
use tenantflow_operators::window::Retention;
use tenantflow_sinks::dead_letter::DeadLetterSink;
use tenantflow_sinks::file::{FileSinkConfig, FileStats, PartitionedFileSink};
use tenantflow_sinks::upload::Location;
use tenantflow_sources::Input;

use crate::checkpoint::coordinator::{CheckpointStats, Coordinator};
use crate::checkpoint::gate::Gate;
use crate::checkpoint::manifest::{
    CheckpointStore, FilesPosition, JobIdentity, Manifest, StreamPosition,
};
use crate::checkpoint::recovery::{RecoveryError, recover};
pub use crate::error::RunError;
use crate::error::{StageEnds, outcome};
use crate::file_reader::read_inputs;
use crate::in_flight::InFlight;
use crate::lookup::{LookupConfig, LookupService};
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::output_lock::OutputLock;
use crate::output_port::FileOutput;
use crate::router::{MissingEventTime, Router, SourceContext};
use crate::scoring::{ScoringConfig, ScoringService};
use crate::sources::Sources;
use crate::stream_reader::StreamRoute;
use crate::stream_sink::{Chunk, SINK_QUEUE_PER_WORKER, StreamSink};
use crate::worker::{Worker, new_table};

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
    /// Where checkpoints go.
    pub checkpoints: CheckpointStore,
    /// How often a checkpoint is taken; `None`: only at the end.
    pub checkpoint_interval: Option<Duration>,
    /// The churn model.
    pub model: Model,
    /// Keyed workers.
    pub workers: NonZeroUsize,
    /// How late an event may be.
    pub retention: Retention,
    /// Longest accepted record in bytes.
    pub max_record_bytes: usize,
    /// The event times accepted; job events outside are dead letters
    /// `event_time_out_of_range`.
    pub event_time: EventTimeBounds,
    /// What a job event without `creationDate` read from a file becomes (stream records
    /// always take their arrival time).
    pub file_missing_event_time: MissingEventTime,
    /// Where tenants without a profile are looked up; `None`: their events are dead
    /// letters `unknown_company` at once.
    pub lookup: Option<LookupConfig>,
    /// The remote scorer; `None`: the embedded [`JobConfig::model`] scores.
    pub scoring: Option<ScoringConfig>,
    /// The locks held on the output and the checkpoints, for the whole run.
    pub locks: Vec<OutputLock>,
}

impl JobConfig {
    /// The folder dead letters go to.
    pub fn rejected(&self) -> Location {
        self.output.output.child("_rejected")
    }

    /// What the job is, as its checkpoints record it.
    pub fn identity(&self) -> JobIdentity {
        JobIdentity {
            inputs: self.inputs.iter().map(Input::identity).collect(),
            streams: self.streams.iter().map(|s| s.stream.clone()).collect(),
            workers: self.workers.get(),
            format: self.output.encoding(),
            partitioning: self.output.partitioning,
        }
    }
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
    /// The checkpoints taken.
    pub checkpoints: CheckpointStats,
    /// The checkpoint this run resumed from, if any.
    pub resumed_from: Option<u64>,
    /// Calls to the TenantManager, if the job has one: attempts, retries, and calls
    /// that failed for good.
    pub lookup_calls: Option<(u64, u64, u64)>,
    /// Calls to the remote scorer, if the job has one: attempts, retries, and calls
    /// that failed for good.
    pub score_calls: Option<(u64, u64, u64)>,
}

/// Runs the job to the end of its inputs (streams: until idle for
/// [`JobConfig::exit_when_idle`], or until Ctrl-C / SIGTERM), counting into `metrics`.
///
/// # Errors
/// The first error of any stage; files completed before it stay, in-progress files
/// stay hidden.
pub fn run(config: JobConfig, metrics: &Metrics) -> Result<RunSummary, RunError> {
    let started = Instant::now();
    let workers = config.workers.get();
    let identity = config.identity();
    let staging = config.output.staging.clone();
    let restored = recover(
        &config.checkpoints,
        &config.output.output.store,
        &staging,
        &identity,
    )?;
    let resume = Resume::of(restored.as_ref());
    let rejected = config.rejected();
    let source_ids = Sources::of(&config);
    let (recycle_tx, recycle_rx) = mpsc::sync_channel(workers * (QUEUE_BATCHES + 2));
    let mut senders = Vec::with_capacity(workers);
    let mut receivers = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE_BATCHES);
        senders.push(tx);
        receivers.push(rx);
    }
    let (ack_tx, ack_rx) = mpsc::channel();
    let stop_flag = Arc::new(AtomicBool::new(false));
    let mut streams = StreamStage::start(&config, &resume, Arc::clone(&stop_flag))?;
    let lookup = config.lookup.as_ref().map(LookupService::new).transpose()?;
    let scoring = config
        .scoring
        .as_ref()
        .map(|c| ScoringService::new(c, &streams.handle()))
        .transpose()?;
    let interval = if config.inputs.iter().any(Input::is_stdin) {
        if config.checkpoint_interval.is_some() {
            tracing::warn!(
                "stdin cannot be read again after a crash: checkpoints only at the end of the run."
            );
        }
        None
    } else {
        config.checkpoint_interval
    };
    let gate = Gate::new(source_ids.threads());
    let context = SourceContext {
        metrics,
        stop: &stop_flag,
        gate: &gate,
        checkpoints: &config.checkpoints,
        event_time: config.event_time,
    };
    let mut worker_parts = Vec::with_capacity(workers);
    for w in 0..workers {
        worker_parts.push(resume.worker(&config, w, &rejected)?);
    }
    if let Some(m) = &restored {
        tracing::info!(
            checkpoint = m.checkpoint,
            final_checkpoint = m.final_checkpoint,
            results = m.results,
            tenants = m.workers.iter().map(|w| w.tenants).sum::<u64>(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Resuming from checkpoint: state and files restored."
        );
    }
    let model = &config.model;
    let sources = source_ids.names();
    let waiting: Vec<std::sync::atomic::AtomicUsize> =
        (0..workers).map(|_| Default::default()).collect();
    let waiting = &waiting;
    let stop: &AtomicBool = &stop_flag;
    std::thread::scope(|scope| {
        let handles: Vec<_> = receivers
            .into_iter()
            .zip(worker_parts)
            .enumerate()
            .map(|(index, (rx, parts))| {
                let worker = Worker {
                    index,
                    model,
                    sources,
                    table: parts.table,
                    output: FileOutput {
                        sink: parts.sink,
                        dead_letters: parts.dead_letters,
                        stream: streams.sink_sender().map(StreamSink::new),
                    },
                    metrics,
                    checkpoints: &config.checkpoints,
                    acks: ack_tx.clone(),
                    results: 0,
                    lookups: lookup.as_ref().map(|l| l.for_worker(streams.handle())),
                    scoring: scoring.as_ref().map(|s| s.for_worker(streams.handle())),
                    refresh_warnings: tenantflow_core::warn_limit::WarnLimiter::new(10_000),
                    resumed_in_flight: parts.in_flight,
                    waiting: &waiting[index],
                };
                let recycle = recycle_tx.clone();
                std::thread::Builder::new()
                    .name(format!("tenantflow-worker-{index}"))
                    .spawn_scoped(scope, move || worker.run(rx, recycle))
                    .expect("spawning a worker thread")
            })
            .collect();
        drop(recycle_tx);
        drop(ack_tx);
        let coordinator = Coordinator {
            store: config.checkpoints.clone(),
            staging: staging.clone(),
            output: Arc::clone(&config.output.output.store),
            gate: &gate,
            workers: senders.clone(),
            acks: ack_rx,
            interval,
            next: resume.next_checkpoint,
            identity: identity.clone(),
            base_results: resume.results,
            files_start: resume.files,
            streams_start: resume.streams.clone(),
            locks: &config.locks,
            waiting,
        };
        let coordinator = std::thread::Builder::new()
            .name("tenantflow-checkpoints".into())
            .spawn_scoped(scope, move || coordinator.run())
            .expect("spawning the checkpoint thread");
        let runtime = streams.handle();
        let stream_handles: Vec<_> = std::mem::take(&mut streams.receivers)
            .into_iter()
            .enumerate()
            .map(|(i, rx)| {
                let input = &config.streams[i];
                let source = source_ids.stream_input(i);
                let name = &sources[source as usize];
                let decoder = Decoder::new(match input.kind {
                    Some(RecordKind::Job) => DefaultKind::Job,
                    Some(RecordKind::Company) => DefaultKind::Company,
                    None => DefaultKind::Infer,
                });
                let stage = format!("stream-{}", input.stream);
                let router = Router::new(
                    senders.clone(),
                    None,
                    resume.dead_letters(&rejected, &staging, &stage)?,
                    context,
                    source_ids.stream_slot(i),
                    &stage,
                    MissingEventTime::ArrivalTime,
                );
                let route = StreamRoute {
                    batches: rx,
                    source,
                    name,
                    stream: input.stream.clone(),
                    decoder,
                    max_record_bytes: config.max_record_bytes,
                    position: resume
                        .streams
                        .get(&input.stream)
                        .cloned()
                        .unwrap_or_default(),
                    checkpoints: gate.subscribe(),
                    runtime: runtime.clone(),
                };
                Ok(std::thread::Builder::new()
                    .name(format!("tenantflow-stream-{i}"))
                    .spawn_scoped(scope, move || route.run(router))
                    .expect("spawning a stream thread"))
            })
            .collect::<Result<_, RunError>>()?;
        let mut first_error = match resume.dead_letters(&rejected, &staging, "reader") {
            Ok(dead_letters) => {
                let router = Router::new(
                    senders,
                    Some(recycle_rx),
                    dead_letters,
                    context,
                    Sources::READER,
                    "reader",
                    config.file_missing_event_time,
                );
                read_inputs(
                    &config.inputs,
                    resume.files,
                    config.default_kind,
                    config.max_record_bytes,
                    router,
                )
                .err()
            }
            Err(e) => {
                gate.leave(Sources::READER, None);
                drop(senders);
                Some(e)
            }
        };
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
        let checkpoints = match coordinator.join() {
            Ok(Ok(stats)) => Some(stats),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
                None
            }
            Err(_) => {
                first_error.get_or_insert(RunError::Panicked("checkpoint".into()));
                None
            }
        };
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
        let (output_stream, sink_error) = match streams.finish_sink() {
            Ok(stats) => (stats, None),
            Err(e) => (None, Some(e)),
        };
        match outcome(StageEnds {
            first: first_error,
            worker: worker_error,
            output_stream: sink_error,
            checkpoints,
        }) {
            Err(e) => Err(e),
            Ok(checkpoints) => Ok(RunSummary {
                metrics: metrics.snapshot(),
                files,
                tenants,
                elapsed: started.elapsed(),
                workers,
                stopped_by_signal: stop.load(Ordering::Relaxed),
                output_stream,
                checkpoints,
                resumed_from: restored.as_ref().map(|m| m.checkpoint),
                lookup_calls: lookup.as_ref().map(|l| l.stats.read()),
                score_calls: scoring.as_ref().map(|s| s.stats.read()),
            }),
        }
    })
}

/// Where a run starts: from a checkpoint's manifest, or from the beginning.
struct Resume<'m> {
    manifest: Option<&'m Manifest>,
    next_checkpoint: u64,
    results: u64,
    files: FilesPosition,
    streams: BTreeMap<String, StreamPosition>,
}

/// What a worker resumes with.
struct WorkerParts {
    table: tenantflow_operators::tenant::TenantTable<tenantflow_sinks::encoding::ProfileFragments>,
    sink: PartitionedFileSink,
    dead_letters: DeadLetterSink,
    in_flight: Option<InFlight>,
}

impl<'m> Resume<'m> {
    fn of(manifest: Option<&'m Manifest>) -> Self {
        match manifest {
            Some(m) => Self {
                manifest,
                next_checkpoint: m.checkpoint + 1,
                results: m.results,
                files: m.files,
                streams: m.streams.clone(),
            },
            None => Self {
                manifest: None,
                next_checkpoint: 1,
                results: 0,
                files: FilesPosition {
                    input: 0,
                    offset: 0,
                    line: 1,
                    fingerprint: None,
                },
                streams: BTreeMap::new(),
            },
        }
    }

    /// Worker `w`'s state, files and dead letters.
    fn worker(
        &self,
        config: &JobConfig,
        w: usize,
        rejected: &Location,
    ) -> Result<WorkerParts, RunError> {
        let mut table = new_table(config.retention);
        let part = self.manifest.and_then(|m| m.workers.get(w));
        let name = format!("worker-{w:02}");
        let Some(part) = part else {
            return Ok(WorkerParts {
                table,
                sink: PartitionedFileSink::new(config.output.clone(), w),
                dead_letters: DeadLetterSink::new(
                    rejected.clone(),
                    config.output.staging.clone(),
                    &name,
                ),
                in_flight: None,
            });
        };
        let read = |path: &String| {
            config
                .checkpoints
                .location
                .store
                .get(path)
                .map_err(|e| RunError::Recovery(e.into()))?
                .ok_or_else(|| RunError::Recovery(RecoveryError::MissingState(path.clone())))
        };
        if let Some(path) = &part.state {
            let bytes = read(path)?;
            let format = config.output.format;
            table
                .restore(&bytes, &config.model, |id, profile| {
                    format.profile_fragments(id, profile)
                })
                .map_err(|source| {
                    RunError::Recovery(RecoveryError::State {
                        path: path.clone(),
                        source,
                    })
                })?;
        }
        let sink = PartitionedFileSink::restore(config.output.clone(), w, &part.files)
            .map_err(|e| RunError::Recovery(RecoveryError::Sink(e)))?;
        let dead_letters = DeadLetterSink::restore(
            rejected.clone(),
            config.output.staging.clone(),
            &name,
            &part.dead_letters,
        )
        .map_err(|e| RunError::Recovery(RecoveryError::Sink(e)))?;
        let in_flight = match &part.in_flight {
            Some(path) => Some(InFlight::decode(&read(path)?).map_err(|source| {
                RunError::Recovery(RecoveryError::InFlight {
                    path: path.clone(),
                    source,
                })
            })?),
            None => None,
        };
        Ok(WorkerParts {
            table,
            sink,
            dead_letters,
            in_flight,
        })
    }

    /// A source stage's dead letters.
    fn dead_letters(
        &self,
        rejected: &Location,
        staging: &tenantflow_sinks::upload::Staging,
        stage: &str,
    ) -> Result<DeadLetterSink, RunError> {
        let state = self
            .manifest
            .and_then(|m| m.sources.get(stage))
            .cloned()
            .unwrap_or_default();
        DeadLetterSink::restore(rejected.clone(), staging.clone(), stage, &state)
            .map_err(|e| RunError::Recovery(RecoveryError::Sink(e)))
    }

    /// Where a stream starts: after its recorded positions, or (never read in a
    /// checkpointed run) where its URL says.
    fn stream_start(&self, input: &KinesisInput) -> (StartPosition, HashSet<String>) {
        match self.streams.get(&input.stream) {
            // Nothing read yet: start as the URL says (`latest` stays latest).
            Some(position) if !position.positions.is_empty() || !position.finished.is_empty() => (
                StartPosition::After(
                    position
                        .positions
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect::<HashMap<_, _>>(),
                ),
                position.finished.iter().cloned().collect(),
            ),
            _ => (input.start.clone(), HashSet::new()),
        }
    }
}

/// The Kinesis consumers, on a small Tokio runtime of their own, and the signal watch.
struct StreamStage {
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    receivers: Vec<tokio::sync::mpsc::Receiver<RecordBatch>>,
    consumers: Vec<tokio::task::JoinHandle<Result<ConsumerStats, KinesisError>>>,
    sink: Option<tokio::sync::mpsc::Sender<Chunk>>,
    sink_task: Option<tokio::task::JoinHandle<Result<WriterStats, KinesisError>>>,
}

/// Batches queued per stream between its consumer and its routing thread.
const STREAM_QUEUE: usize = 16;

impl StreamStage {
    fn start(
        config: &JobConfig,
        resume: &Resume<'_>,
        stop: Arc<AtomicBool>,
    ) -> Result<Self, RunError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("tenantflow-kinesis")
            .enable_all()
            .build()
            .map_err(RunError::Runtime)?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let client = if config.streams.is_empty() && config.output_stream.is_none() {
            None
        } else {
            Some(runtime.block_on(tenantflow_kinesis::client::connect()))
        };
        let mut receivers = Vec::new();
        let mut consumers = Vec::new();
        for (input, client) in config.streams.iter().zip(client.iter().cycle()) {
            let (tx, rx) = tokio::sync::mpsc::channel(STREAM_QUEUE);
            let mut consumer = ConsumerConfig::new(&input.stream);
            (consumer.start, consumer.finished) = resume.stream_start(input);
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
        let (sink, sink_task) = match (&config.output_stream, &client) {
            (Some(stream), Some(client)) => {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<Chunk>(
                    config.workers.get() * SINK_QUEUE_PER_WORKER,
                );
                let mut writer = RecordWriter::new(client.clone(), stream, false);
                let task = runtime.spawn(async move {
                    while let Some(chunk) = rx.recv().await {
                        match chunk {
                            Chunk::Results(results) => {
                                for (key, json) in results {
                                    writer.send(&key, json).await?;
                                }
                            }
                            Chunk::Sync(done) => {
                                writer.flush().await?;
                                let _ = done.send(());
                            }
                        }
                    }
                    writer.flush().await?;
                    Ok(writer.stats())
                });
                (Some(tx), Some(task))
            }
            _ => (None, None),
        };
        Ok(Self {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            receivers,
            consumers,
            sink,
            sink_task,
        })
    }

    /// A handle on the runtime, for threads that wait on its channels.
    fn handle(&self) -> tokio::runtime::Handle {
        self.handle.clone()
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
                Ok(Err(e)) => Err(RunError::OutputStream(e)),
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
