//! Wiring: builds the stages of a run, starts them, joins them.

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use tenantflow_core::RecordKind;
use tenantflow_core::decode::{Decoder, DefaultKind};
use tenantflow_core::time::EventTimeBounds;
use tenantflow_kinesis::hash_key::HashRange;
use tenantflow_kinesis::url::KinesisInput;
use tenantflow_kinesis::writer::WriterStats;
use tenantflow_operators::score::Model;
use tenantflow_operators::window::Retention;
use tenantflow_sinks::file::{FileSinkConfig, FileStats};
use tenantflow_sinks::upload::Location;
use tenantflow_sources::Input;

use crate::checkpoint::aggregates::Aggregates;
use crate::checkpoint::coordinator::{CheckpointStats, Coordinator};
use crate::checkpoint::fence::CommitFence;
use crate::checkpoint::gate::Gate;
use crate::checkpoint::manifest::read_manifest;
use crate::checkpoint::manifest::{CheckpointStore, JobIdentity};
use crate::checkpoint::recovery::{ShardRecovery, recover, recover_shard};
pub use crate::error::RunError;
use crate::error::{StageEnds, outcome};
use crate::file_reader::read_inputs;
use crate::lookup::{LookupConfig, LookupService};
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::output_lock::OutputLock;
use crate::output_port::FileOutput;
use crate::resume::Resume;
use crate::router::{KeyRule, MissingEventTime, Router, SourceContext};
use crate::scoring::{ScoringConfig, ScoringService};
use crate::sources::Sources;
use crate::status::Phase;
use crate::stream_reader::StreamRoute;
use crate::stream_sink::StreamSink;
use crate::stream_stage::StreamStage;
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
    /// Where checkpoints go.
    pub checkpoints: CheckpointStore,
    /// How often a checkpoint is taken; `None`: only at the end.
    pub checkpoint_interval: Option<Duration>,
    /// How often the BI aggregates are rewritten (at the first checkpoint after each
    /// interval, and at the final one); `None`: never.
    pub aggregates_interval: Option<Duration>,
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
    /// The shard whose lease this job holds; `None`: a job without leases, reading
    /// every shard of its streams.
    pub shard: Option<ShardScope>,
    /// With a shard's lease: the commit point of each checkpoint, after its manifest
    /// and before its files (see [`crate::checkpoint::fence`]).
    pub fence: Option<Arc<dyn CommitFence>>,
    /// Where the job resumes from.
    pub resume_from: ResumeFrom,
    /// Stops the job as Ctrl-C would, when it turns true (a shard job, told by its
    /// worker).
    pub stop: Option<tokio::sync::watch::Receiver<bool>>,
}

/// Where a job resumes from.
#[derive(Debug, Clone, Default)]
pub enum ResumeFrom {
    /// The latest checkpoint in [`JobConfig::checkpoints`] (a job without leases).
    #[default]
    Latest,
    /// What a shard's lease row names.
    Lease(LeaseResume),
}

/// Where a shard job resumes from, as its lease row says.
#[derive(Debug, Clone)]
pub struct LeaseResume {
    /// Every owner's checkpoint folder of the shard (`…/shards/SHARD/`); this owner's
    /// is [`JobConfig::checkpoints`], under it.
    pub shard_root: Location,
    /// The manifest of the shard's last committed checkpoint (`tenantflowState`).
    pub manifest: Option<String>,
    /// A child shard's first start (no manifest of its own): its parents' final
    /// manifests, whose tenants in its hash-key range it takes over.
    pub parents: Vec<String>,
}

/// The shard a job holds the lease of: of the leased stream it reads only that shard,
/// whose records must be keyed by tenant; of the other streams (read in full, such as
/// `companies`) only the tenants whose hash key the shard's range holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardScope {
    /// The leased stream.
    pub stream: String,
    /// The shard.
    pub shard_id: String,
    /// Its hash-key range.
    pub hash_range: HashRange,
    /// This owner's tenure of the lease (`t` and the lease counter when it was taken):
    /// in the names of the files it writes, so that no two owners ever write one file.
    pub tenure: String,
}

impl ShardScope {
    /// The rule for the records of `stream`.
    pub(crate) fn key_rule(scope: Option<&ShardScope>, stream: &str) -> KeyRule {
        match scope {
            None => KeyRule::All,
            Some(scope) if scope.stream == stream => KeyRule::KeyedByTenant,
            Some(scope) => KeyRule::InRange(scope.hash_range),
        }
    }

    /// The shards the consumer of `stream` reads: the leased one alone, or every one.
    pub(crate) fn only(scope: Option<&ShardScope>, stream: &str) -> Option<HashSet<String>> {
        scope
            .filter(|scope| scope.stream == stream)
            .map(|scope| HashSet::from([scope.shard_id.clone()]))
    }
}

impl JobConfig {
    /// The folder dead letters go to.
    pub fn rejected(&self) -> Location {
        let rejected = self.output.output.child("_rejected");
        match &self.shard {
            Some(shard) => rejected.child(&shard.shard_id).child(&shard.tenure),
            None => rejected,
        }
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
pub fn run(config: JobConfig, metrics: &Arc<Metrics>) -> Result<RunSummary, RunError> {
    // A shard job shares its worker's status, which the worker's loop keeps; it
    // closes only its own doors.
    let shard = config.shard.clone();
    let result = run_stages(config, metrics);
    if shard.is_some() {
        metrics.status.close_queries(shard.as_ref());
        return result;
    }
    let status = &metrics.status;
    match &result {
        Ok(_) => status.set_phase(Phase::Finished),
        Err(e) => status.fail(e.to_string()),
    }
    status.close_queries(None);
    result
}

fn run_stages(config: JobConfig, metrics: &Arc<Metrics>) -> Result<RunSummary, RunError> {
    let started = Instant::now();
    let shard_job = config.shard.is_some();
    if !shard_job {
        metrics.status.set_phase(Phase::Recovering);
    }
    let workers = config.workers.get();
    let identity = config.identity();
    let staging = config.output.staging.clone();
    let (restored, parents) = match (&config.resume_from, &config.shard) {
        (ResumeFrom::Lease(lease), Some(shard)) => {
            let restored = recover_shard(
                ShardRecovery {
                    store: &config.checkpoints,
                    shard_root: &lease.shard_root,
                    manifest: lease.manifest.as_deref(),
                    tag: &shard.shard_id,
                },
                &config.output.output.store,
                &staging,
                &identity,
            )?;
            let parents = if restored.is_none() {
                lease
                    .parents
                    .iter()
                    .map(|path| read_manifest(config.checkpoints.location.store.as_ref(), path))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| RunError::Recovery(e.into()))?
            } else {
                Vec::new()
            };
            (restored, parents)
        }
        _ => (
            recover(
                &config.checkpoints,
                &config.output.output.store,
                &staging,
                &identity,
            )?,
            Vec::new(),
        ),
    };
    let resume = match (&restored, &config.shard) {
        (None, Some(shard)) if !parents.is_empty() => {
            Resume::from_parents(&parents, shard.hash_range, &shard.stream)
        }
        _ => Resume::of(restored.as_ref()),
    };
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
    let mut streams = StreamStage::start(&config, &resume, Arc::clone(&stop_flag), metrics)?;
    let lookup = config
        .lookup
        .as_ref()
        .map(|c| LookupService::new(c, &streams.handle()))
        .transpose()?;
    let scoring = config
        .scoring
        .as_ref()
        .map(|c| ScoringService::new(c, &streams.handle()))
        .transpose()?;
    if let Some(lookup) = &lookup {
        metrics
            .status
            .remote_service("lookup", Arc::clone(&lookup.stats));
    }
    if let Some(scoring) = &scoring {
        metrics
            .status
            .remote_service("scoring", Arc::clone(&scoring.stats));
    }
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
    let gauges = metrics.status.worker_gauges(workers);
    let (doors, queries): (Vec<_>, Vec<_>) =
        (0..workers).map(|_| crossbeam_channel::unbounded()).unzip();
    let metrics: &Metrics = metrics;
    let waiting: Vec<std::sync::atomic::AtomicUsize> =
        (0..workers).map(|_| Default::default()).collect();
    let waiting = &waiting;
    let stop: &AtomicBool = &stop_flag;
    std::thread::scope(|scope| {
        let handles: Vec<_> = receivers
            .into_iter()
            .zip(worker_parts)
            .zip(queries)
            .enumerate()
            .map(|(index, ((rx, parts), queries))| {
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
                    gauges: Arc::clone(&gauges[index]),
                    queries,
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
            status: &metrics.status,
            aggregates: config.aggregates_interval.map(|interval| {
                let aggregates = Aggregates::new(
                    interval,
                    config.output.format == tenantflow_sinks::encoding::Format::Parquet,
                );
                match &config.shard {
                    Some(shard) => aggregates.of_shard(&shard.shard_id),
                    None => aggregates,
                }
            }),
            fence: config.fence.as_deref(),
        };
        let stopper = streams.stopper();
        let gate = &gate;
        let coordinator = std::thread::Builder::new()
            .name("tenantflow-checkpoints".into())
            .spawn_scoped(scope, move || {
                let result = coordinator.run();
                if let Err(e) = &result {
                    // No checkpoint can commit any more: the job stops now rather than
                    // read on and commit nothing.
                    tracing::warn!(error = %e, "Checkpoints stopped: stopping the job.");
                    gate.abort();
                    let _ = stopper.send(true);
                }
                result
            })
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
                    resume.dead_letters(&config, &rejected, &staging, &stage)?,
                    context,
                    source_ids.stream_slot(i),
                    &stage,
                    MissingEventTime::ArrivalTime,
                )
                .with_key_rule(ShardScope::key_rule(config.shard.as_ref(), &input.stream));
                let route = StreamRoute {
                    batches: rx,
                    source,
                    name,
                    stream: input.stream.clone(),
                    decoder,
                    format: input.format,
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
        // Recovered, every stage started: questions about tenants reach the workers,
        // and the job is ready.
        metrics.status.open_queries(config.shard.as_ref(), doors);
        if !shard_job && metrics.status.phase() == Phase::Recovering {
            metrics.status.set_phase(Phase::Running);
        }
        let mut first_error = match resume.dead_letters(&config, &rejected, &staging, "reader") {
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
                // The sources stopped because the checkpoints did: their `Aborted`
                // says less than the checkpoints' error.
                first_error = match first_error {
                    None | Some(RunError::Aborted) => Some(e),
                    first => first,
                };
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
