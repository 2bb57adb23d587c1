//! Scale-out: a worker process holds leases on shards of one stream (the Kinesis Client
//! Library's model, `tenantflow-cluster`) and runs one *shard job* per lease: the job
//! of `run`, scoped to the shard ([`ShardScope`]), with its own checkpoints
//! (`CHECKPOINTS/shards/SHARD/tN-WORKER/`, N the lease counter of its tenure), whose
//! commit point is the lease row ([`LeaseFence`]). A shard's state moves with its
//! lease: the next owner resumes from the manifest the row names; a child shard starts
//! from its parents' final state, restricted to its hash-key range.
//!
//! The loop, on a small Tokio runtime: every `lease_renew_interval` renew the held
//! leases (a lost one stops its job, which then cannot commit); every
//! `lease_take_interval` scan the table and take or steal what the balance allows
//! (each taken lease starts a job); every `shard_sync_interval` give every shard of
//! the stream a lease (children after a reshard). On Ctrl-C or SIGTERM every job takes
//! its final checkpoint (committed through its lease) and then the leases are
//! released, so other workers take them at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tenantflow_cluster::shard_sync::{ShardSpec, sync_leases};
use tenantflow_cluster::{Checkpoint, Lease, LeaseCoordinator, LeaseSettings, LeaseStore};
use tenantflow_kinesis::consumer::StartPosition;
use tenantflow_kinesis::hash_key::HashRange;

use crate::checkpoint::manifest::CheckpointStore;
use crate::checkpoint::tenures::{EarlierTenures, tenure_folder};
use crate::error::RunError;
use crate::job::{JobConfig, LeaseResume, ResumeFrom, RunSummary, ShardScope, run};
use crate::lease_fence::{LeaseFence, SharedLeases};
use crate::metrics::Metrics;
use crate::status::Phase;

/// How a worker process takes part.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// This worker's name in the lease table (`leaseOwner`): unique among the live
    /// ones.
    pub worker_id: String,
    /// How leases are held, taken and balanced.
    pub settings: LeaseSettings,
    /// How often the stream's shards are listed and given leases.
    pub shard_sync_interval: Duration,
}

/// What a worker process did.
#[derive(Debug, Clone)]
pub struct ClusterSummary<O = RunSummary> {
    /// Shard jobs run, with what each did (a job that lost its lease has none).
    pub jobs: Vec<(String, Option<O>)>,
    /// Leases taken over the run.
    pub taken: usize,
    /// Leases lost to other workers.
    pub lost: usize,
}

impl JobConfig {
    /// The job of one shard, from this template (the job as configured): only that
    /// shard of the leased stream, its own checkpoint folder (`CHECKPOINTS/shards/SHARD/
    /// tN-WORKER/`, N the lease counter of its tenure), its commit point in the lease
    /// row, and file names tagged with the shard.
    fn for_shard(
        &self,
        scope: ShardScope,
        checkpoints: CheckpointStore,
        resume: LeaseResume,
        start: StartPosition,
        fence: Arc<LeaseFence>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> JobConfig {
        let mut output = self.output.clone();
        output.staging = tenantflow_sinks::upload::Staging {
            location: checkpoints.location.clone(),
        };
        output.name_tag = Some(format!("{}-{}", scope.shard_id, scope.tenure));
        output.finish_at_checkpoint = true;
        let streams = self
            .streams
            .iter()
            .map(|input| {
                let mut input = input.clone();
                if input.stream == scope.stream {
                    input.start = start.clone();
                }
                input
            })
            .collect();
        JobConfig {
            inputs: Vec::new(),
            streams,
            exit_when_idle: None,
            output_stream: self.output_stream.clone(),
            default_kind: self.default_kind,
            output,
            checkpoints,
            checkpoint_interval: self.checkpoint_interval,
            aggregates_interval: self.aggregates_interval,
            model: self.model.clone(),
            workers: self.workers,
            retention: self.retention,
            max_record_bytes: self.max_record_bytes,
            event_time: self.event_time,
            file_missing_event_time: self.file_missing_event_time,
            lookup: self.lookup.clone(),
            scoring: self.scoring.clone(),
            locks: Vec::new(),
            shard: Some(scope),
            fence: Some(fence),
            resume_from: ResumeFrom::Lease(resume),
            stop: Some(stop),
        }
    }
}

impl<O> Default for ClusterSummary<O> {
    fn default() -> Self {
        Self {
            jobs: Vec::new(),
            taken: 0,
            lost: 0,
        }
    }
}

/// What a worker runs for each shard it holds: the job of `run`, or `repartition`'s
/// re-publishing.
pub trait ShardWork: Sync {
    /// What one shard's work did.
    type Outcome: Send + 'static;

    /// The stream whose shards are leased.
    fn stream(&self) -> &str;

    /// Where a shard never read starts (`TRIM_HORIZON` or `LATEST`).
    fn initial(&self) -> Checkpoint;

    /// Starts the work of a shard just taken, on a thread of its own.
    ///
    /// # Errors
    /// The work cannot be started (the worker then stops).
    fn start(
        &self,
        shard: StartShard<'_>,
    ) -> Result<JoinHandle<Result<Self::Outcome, RunError>>, RunError>;
}

/// A shard just taken, and what its work needs.
pub struct StartShard<'a> {
    /// Its lease, as taken.
    pub lease: &'a Lease,
    /// The whole table, as scanned after the take (a child's parents).
    pub table: &'a [Lease],
    /// The worker's leases (the work's commit point).
    pub leases: &'a Arc<SharedLeases>,
    /// The lease runtime.
    pub runtime: &'a tokio::runtime::Handle,
    /// This worker's name.
    pub worker_id: &'a str,
    /// Turns true when the work must stop (lease lost, worker stopping).
    pub stop: tokio::sync::watch::Receiver<bool>,
}

impl StartShard<'_> {
    /// Where the shard's reading starts, as its lease says.
    pub fn start_position(&self) -> StartPosition {
        match &self.lease.checkpoint {
            Checkpoint::Latest => StartPosition::Latest,
            Checkpoint::Sequence { sequence, .. } => {
                StartPosition::After(HashMap::from([(self.lease.key.clone(), sequence.clone())]))
            }
            Checkpoint::TrimHorizon | Checkpoint::ShardEnd => StartPosition::TrimHorizon,
        }
    }
}

/// The job of `run`, per shard.
struct JobWork<'a> {
    template: &'a JobConfig,
    stream: String,
    initial: Checkpoint,
    metrics: &'a Arc<Metrics>,
}

impl ShardWork for JobWork<'_> {
    type Outcome = RunSummary;

    fn stream(&self) -> &str {
        &self.stream
    }

    fn initial(&self) -> Checkpoint {
        self.initial.clone()
    }

    fn start(
        &self,
        shard: StartShard<'_>,
    ) -> Result<JoinHandle<Result<RunSummary, RunError>>, RunError> {
        let lease = shard.lease;
        let range = match &lease.hash_range {
            Some((start, end)) => HashRange::parse(start, end).map_err(RunError::Cluster)?,
            None => HashRange::ALL,
        };
        let scope = ShardScope {
            stream: self.stream.clone(),
            shard_id: lease.key.clone(),
            hash_range: range,
            tenure: format!("t{}", lease.counter),
        };
        let shard_root = self
            .template
            .checkpoints
            .location
            .child("shards")
            .child(&lease.key);
        let checkpoints = CheckpointStore {
            location: shard_root.child(&tenure_folder(lease.counter, shard.worker_id)),
        };
        let parents = if lease.state.is_none() {
            lease
                .parents
                .iter()
                .filter_map(|p| shard.table.iter().find(|l| &l.key == p))
                .filter_map(|p| p.state.clone())
                .collect()
        } else {
            Vec::new()
        };
        let fence = Arc::new(LeaseFence {
            leases: Arc::clone(shard.leases),
            stream: self.stream.clone(),
            shard_id: lease.key.clone(),
            runtime: shard.runtime.clone(),
            earlier: std::sync::Mutex::new(Some(EarlierTenures {
                shard_root: shard_root.clone(),
                counter: lease.counter,
            })),
        });
        let start = shard.start_position();
        let config = self.template.for_shard(
            scope,
            checkpoints,
            LeaseResume {
                shard_root,
                manifest: lease.state.clone(),
                parents,
            },
            start,
            fence,
            shard.stop,
        );
        let metrics = Arc::clone(self.metrics);
        tracing::info!(shard = %lease.key, manifest = lease.state.as_deref().unwrap_or("none"), "Starting the shard's job.");
        std::thread::Builder::new()
            .name(format!("tenantflow-{}", lease.key))
            .spawn(move || {
                let cleanup = Tenure::of(&config);
                let result = run(config, &metrics);
                if let (Err(RunError::LeaseLost(_)), Some(tenure)) = (&result, cleanup) {
                    tenure.abort_uploads();
                }
                result
            })
            .map_err(|e| RunError::Cluster(format!("starting a shard job: {e}")))
    }
}

/// A shard's work under way.
struct Running<O> {
    stop: tokio::sync::watch::Sender<bool>,
    thread: JoinHandle<Result<O, RunError>>,
}

/// Runs this worker's part of the job described by `template` (its first Kinesis
/// input is the leased stream) until Ctrl-C or SIGTERM.
///
/// # Errors
/// The lease table cannot be prepared, or a shard job failed (the other jobs are then
/// stopped with their final checkpoints, and the leases released).
pub fn run_cluster(
    template: JobConfig,
    cluster: ClusterConfig,
    store: Arc<dyn LeaseStore>,
    metrics: &Arc<Metrics>,
) -> Result<ClusterSummary, RunError> {
    let Some(leased) = template.streams.first().cloned() else {
        return Err(RunError::Cluster(
            "leases need a kinesis:// input (its shards are what workers share)".into(),
        ));
    };
    let work = JobWork {
        template: &template,
        stream: leased.stream.clone(),
        initial: match &leased.start {
            StartPosition::Latest => Checkpoint::Latest,
            _ => Checkpoint::TrimHorizon,
        },
        metrics,
    };
    run_workers(&work, &cluster, store, metrics)
}

/// Runs `work` on every shard this worker holds a lease on, until Ctrl-C or SIGTERM.
///
/// # Errors
/// The lease table cannot be prepared, or a shard's work failed (the others are then
/// stopped, and the leases released).
pub fn run_workers<W: ShardWork>(
    work: &W,
    cluster: &ClusterConfig,
    store: Arc<dyn LeaseStore>,
    metrics: &Arc<Metrics>,
) -> Result<ClusterSummary<W::Outcome>, RunError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("tenantflow-leases")
        .enable_all()
        .build()
        .map_err(|e| RunError::Cluster(format!("starting the lease runtime: {e}")))?;
    let seed = cluster
        .worker_id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    let leases = Arc::new(SharedLeases::new(LeaseCoordinator::new(
        cluster.worker_id.clone(),
        Arc::clone(&store),
        cluster.settings.clone(),
        seed,
    )));
    let handle = runtime.handle().clone();
    metrics.status.set_phase(Phase::Recovering);
    let result = runtime.block_on(async {
        let kinesis = tenantflow_kinesis::client::connect().await;
        store
            .prepare()
            .await
            .map_err(|e| RunError::Cluster(e.to_string()))?;
        let initial = work.initial();
        let mut supervisor = Supervisor {
            work,
            metrics,
            cluster,
            leases: &leases,
            store: store.as_ref(),
            runtime: &handle,
            running: HashMap::new(),
            summary: ClusterSummary::default(),
            failed: None,
        };
        let mut stop = std::pin::pin!(crate::shutdown::wait_for_signal());
        let mut renew = tokio::time::interval(cluster.settings.renew_interval);
        let mut take = tokio::time::interval(cluster.settings.take_interval);
        let mut sync = tokio::time::interval(cluster.shard_sync_interval);
        let mut reap = tokio::time::interval(Duration::from_millis(200));
        for timer in [&mut renew, &mut take, &mut sync, &mut reap] {
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        // The shards first, so that the first scan finds their leases.
        supervisor.sync_shards(&kinesis, &initial).await?;
        metrics.status.set_phase(Phase::Running);
        loop {
            tokio::select! {
                () = &mut stop => {
                    tracing::warn!("Stopping: every shard's work takes its final checkpoint, then the leases are released.");
                    break;
                }
                _ = sync.tick() => {
                    if let Err(error) = supervisor.sync_shards(&kinesis, &initial).await {
                        tracing::warn!(%error, "Failed to give the stream's shards leases; retrying.");
                    }
                }
                _ = renew.tick() => {
                    supervisor.renew().await;
                    supervisor.publish().await;
                }
                _ = take.tick() => {
                    supervisor.take().await;
                    supervisor.publish().await;
                }
                _ = reap.tick() => {
                    supervisor.reap().await;
                    if supervisor.failed.is_some() {
                        break;
                    }
                }
            }
        }
        supervisor.stop_all().await;
        match supervisor.failed.take() {
            Some(error) => Err(error),
            None => Ok(supervisor.summary),
        }
    });
    match &result {
        Ok(_) => metrics.status.set_phase(Phase::Finished),
        Err(e) => metrics.status.fail(e.to_string()),
    }
    result
}

struct Supervisor<'a, W: ShardWork> {
    work: &'a W,
    metrics: &'a Arc<Metrics>,
    cluster: &'a ClusterConfig,
    leases: &'a Arc<SharedLeases>,
    store: &'a dyn LeaseStore,
    runtime: &'a tokio::runtime::Handle,
    running: HashMap<String, Running<W::Outcome>>,
    summary: ClusterSummary<W::Outcome>,
    failed: Option<RunError>,
}

impl<W: ShardWork> Supervisor<'_, W> {
    async fn sync_shards(
        &self,
        kinesis: &tenantflow_kinesis::client::Client,
        initial: &Checkpoint,
    ) -> Result<(), RunError> {
        let shards = tenantflow_kinesis::shards::list_shards(kinesis, self.work.stream())
            .await
            .map_err(|e| RunError::Cluster(e.to_string()))?;
        let specs: Vec<ShardSpec> = shards
            .iter()
            .map(|s| ShardSpec {
                id: s.id.clone(),
                parents: s.parent.iter().chain(&s.adjacent_parent).cloned().collect(),
                hash_range: (s.hash_start.clone(), s.hash_end.clone()),
            })
            .collect();
        sync_leases(self.store, &specs, initial)
            .await
            .map_err(|e| RunError::Cluster(e.to_string()))?;
        Ok(())
    }

    /// Shows the leases held on the admin server.
    async fn publish(&self) {
        let coordinator = self.leases.coordinator.lock().await;
        let held = coordinator
            .held(self.leases.now_ms())
            .map(|l| l.key.clone())
            .collect();
        self.metrics
            .status
            .set_leases(&self.cluster.worker_id, held);
    }

    async fn renew(&mut self) {
        let now = self.leases.now_ms();
        let lost = self.leases.coordinator.lock().await.renew(now).await;
        for key in lost {
            self.summary.lost += 1;
            if let Some(job) = self.running.get(&key) {
                tracing::warn!(shard = %key, "Lost the lease: stopping the shard's job; it commits nothing more.");
                let _ = job.stop.send(true);
            }
        }
    }

    async fn take(&mut self) {
        if self.failed.is_some() {
            return;
        }
        let now = self.leases.now_ms();
        let taken = {
            let mut coordinator = self.leases.coordinator.lock().await;
            match coordinator.take(now).await {
                Ok(taken) => taken,
                Err(error) => {
                    tracing::warn!(%error, "Failed to scan the lease table; retrying.");
                    return;
                }
            }
        };
        if taken.is_empty() {
            return;
        }
        // The parents' final manifests, for a child's first start.
        let table = match self.store.list().await {
            Ok(table) => table,
            Err(error) => {
                tracing::warn!(%error, "Failed to read the lease table.");
                Vec::new()
            }
        };
        for lease in taken {
            self.summary.taken += 1;
            if let Err(error) = self.start(&lease, &table) {
                tracing::error!(%error, shard = %lease.key, "Failed to start the shard's job.");
                self.failed.get_or_insert(error);
            }
        }
    }

    fn start(&mut self, lease: &Lease, table: &[Lease]) -> Result<(), RunError> {
        if let Some(old) = self.running.remove(&lease.key) {
            // Work of an earlier tenure of this worker that has not wound down yet.
            let _ = old.stop.send(true);
            let _ = old.thread.join();
        }
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let thread = self.work.start(StartShard {
            lease,
            table,
            leases: self.leases,
            runtime: self.runtime,
            worker_id: &self.cluster.worker_id,
            stop: stop_rx,
        })?;
        self.running
            .insert(lease.key.clone(), Running { stop, thread });
        Ok(())
    }

    /// Collects the jobs that ended.
    async fn reap(&mut self) {
        let ended: Vec<String> = self
            .running
            .iter()
            .filter(|(_, job)| job.thread.is_finished())
            .map(|(key, _)| key.clone())
            .collect();
        for key in ended {
            let Some(job) = self.running.remove(&key) else {
                continue;
            };
            self.ended(key, job.thread.join()).await;
        }
    }

    /// Whether the lease of `key` is still this worker's, after a renewal: a job that
    /// failed because another worker took its shard over (and aborted the uploads the
    /// job was writing) lost its lease; it did not fail.
    async fn still_holds(&mut self, key: &str) -> bool {
        self.renew().await;
        let now = self.leases.now_ms();
        self.leases.coordinator.lock().await.holds(key, now)
    }

    async fn ended(
        &mut self,
        key: String,
        joined: std::thread::Result<Result<W::Outcome, RunError>>,
    ) {
        let joined = match joined {
            Ok(Err(error))
                if !matches!(error, RunError::LeaseLost(_)) && !self.still_holds(&key).await =>
            {
                Ok(Err(RunError::LeaseLost(format!(
                    "it failed after its lease was taken: {error}"
                ))))
            }
            joined => joined,
        };
        match joined {
            Ok(Ok(outcome)) => {
                tracing::info!(shard = %key, "Shard's work ended.");
                self.summary.jobs.push((key, Some(outcome)));
            }
            Ok(Err(RunError::LeaseLost(reason))) => {
                tracing::info!(shard = %key, %reason, "Shard job stopped: its lease went to another worker.");
                self.summary.jobs.push((key, None));
            }
            Ok(Err(error)) => {
                tracing::error!(%error, shard = %key, "Shard job failed.");
                self.failed.get_or_insert(error);
            }
            Err(_) => {
                self.failed
                    .get_or_insert(RunError::Panicked(format!("the job of shard {key}")));
            }
        }
    }

    /// Stops every job (each takes its final checkpoint through its lease, renewed
    /// meanwhile), then releases the leases.
    async fn stop_all(&mut self) {
        for job in self.running.values() {
            let _ = job.stop.send(true);
        }
        let mut renew = tokio::time::interval(self.cluster.settings.renew_interval);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut joins = tokio::task::JoinSet::new();
        for (key, job) in self.running.drain() {
            // Joined off the runtime: the job's final checkpoint calls into it.
            joins.spawn_blocking(move || (key, job.thread.join()));
        }
        loop {
            tokio::select! {
                joined = joins.join_next() => match joined {
                    Some(Ok((key, joined))) => self.ended(key, joined).await,
                    Some(Err(_)) => {
                        self.failed
                            .get_or_insert(RunError::Panicked("a shard job".into()));
                    }
                    None => break,
                },
                _ = renew.tick() => self.renew().await,
            }
        }
        let errors = self.leases.coordinator.lock().await.release_all().await;
        if errors.is_empty() {
            tracing::info!("Released every lease.");
        }
    }
}

/// What a shard job's tenure wrote, to clean up when it lost its lease: files that will
/// never be committed (its names carry its tenure, so no other owner's are touched).
struct Tenure {
    output: Arc<dyn tenantflow_sinks::store::Store>,
    markers: tenantflow_sinks::upload::Location,
    names: String,
    rejected: String,
}

impl Tenure {
    fn of(config: &JobConfig) -> Option<Self> {
        let shard = config.shard.as_ref()?;
        Some(Self {
            output: Arc::clone(&config.output.output.store),
            markers: config.checkpoints.location.child("uploads"),
            names: format!("part-{}-{}-", shard.shard_id, shard.tenure),
            rejected: config.rejected().prefix,
        })
    }

    /// Aborts this tenure's uploads; a failure leaves them to the next owner's
    /// recovery, which aborts every upload of the shard its manifest does not record.
    fn abort_uploads(&self) {
        let mine = |path: &str| {
            path.rsplit('/')
                .next()
                .is_some_and(|name| name.starts_with(&self.names))
                || path.starts_with(&format!("{}/", self.rejected))
        };
        let mut aborted = 0;
        let result = (|| -> Result<(), tenantflow_sinks::StoreError> {
            if let Some(uploads) = self.output.list_uploads("")? {
                for (path, upload) in uploads.into_iter().filter(|(p, _)| mine(p)) {
                    self.output.abort_upload(&path, &upload)?;
                    aborted += 1;
                }
            }
            let store = &self.markers.store;
            for object in store.list(&self.markers.prefix)? {
                let path = object
                    .path
                    .trim_start_matches(&self.markers.prefix)
                    .trim_start_matches('/');
                if let Some(id) = store.get(&object.path)? {
                    self.output
                        .abort_upload(path, &String::from_utf8_lossy(&id))?;
                    aborted += 1;
                }
                store.delete(&object.path)?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => tracing::info!(aborted, "Aborted the uploads of a lost lease's job."),
            Err(error) => {
                tracing::warn!(%error, "Failed to abort the uploads of a lost lease's job; the shard's next recovery will.")
            }
        }
    }
}
