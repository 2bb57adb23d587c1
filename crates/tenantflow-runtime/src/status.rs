//! What a run shows its operators besides the counters of [`crate::Metrics`]: its
//! phase (for health checks), records read per source, the lag of every shard, the
//! last checkpoint, per-worker gauges, the remote services' calls, and a door to the
//! workers' tenant state.
//!
//! Everything here is written off the hot path (once per batch, per GetRecords call,
//! per checkpoint, per remote call) and read by the admin server when it is asked.
//! Questions about tenants go to the worker that owns the tenant and are answered
//! between two of its batches, from its live state: consistent per tenant, and no lock
//! on the path of records.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tenantflow_core::CompanyProfile;
use tenantflow_kinesis::hash_key::HashRange;
use tenantflow_kinesis::lag::{ShardLag, ShardLags};
use tenantflow_operators::tenant::{Tenant, TenantTable};
use tenantflow_remote::call::CallStats;
use tokio::sync::oneshot;

use crate::job::ShardScope;

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Not started yet.
    Starting = 0,
    /// Restoring the last checkpoint.
    Recovering = 1,
    /// Reading and processing.
    Running = 2,
    /// Every source ended and the last checkpoint is written.
    Finished = 3,
    /// A stage failed; the run is stopping.
    Failed = 4,
}

impl Phase {
    /// The phase's name, as `/readyz` reports it.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Recovering => "recovering",
            Phase::Running => "running",
            Phase::Finished => "finished",
            Phase::Failed => "failed",
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => Phase::Recovering,
            2 => Phase::Running,
            3 => Phase::Finished,
            4 => Phase::Failed,
            _ => Phase::Starting,
        }
    }
}

/// The last checkpoint, as the coordinator completed it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CheckpointReport {
    /// Its number.
    pub number: u64,
    /// From the request to the commit of its files.
    pub duration: Duration,
    /// Bytes written for it: state snapshots and waiting work.
    pub bytes: u64,
    /// When it completed (epoch milliseconds).
    pub completed_ms: i64,
    /// Checkpoints completed by this process.
    pub count: u64,
}

/// A worker's gauges, set once per batch.
#[derive(Debug, Default)]
pub struct WorkerGauges {
    /// Tenants with a profile.
    pub tenants: AtomicU64,
    /// Result files open.
    pub open_files: AtomicU64,
    /// Bytes of the worker's state snapshot at the last checkpoint.
    pub state_bytes: AtomicU64,
}

/// Which tenants `GET /tenants` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RiskFilter {
    /// Every tenant with a result.
    Any,
    /// Tenants whose last result has `riskOfChurn` true.
    High,
    /// Tenants whose last result has `riskOfChurn` false.
    Low,
}

/// What the job knows of one tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantView {
    /// Its `companyID`.
    pub company_id: String,
    /// Its latest profile.
    pub profile: CompanyProfile,
    /// `job30` as of its newest day (the profile's baseline plus the window).
    pub job30: i64,
    /// `job90` as of its newest day.
    pub job90: i64,
    /// Its last result's `churnScore`, if it had one.
    pub churn_score: Option<f64>,
    /// Its last result's `riskOfChurn`, if it had a result.
    pub risk_of_churn: Option<bool>,
    /// Its newest event time (epoch milliseconds), if it had an event.
    pub last_event_ms: Option<i64>,
    /// Job events it has had (results).
    pub events: u64,
}

impl TenantView {
    /// The view of `tenant`.
    pub fn of<X>(company_id: &str, tenant: &Tenant<X>) -> Self {
        let (job30, job90) = tenant.counts_at_newest_day();
        Self {
            company_id: company_id.to_owned(),
            profile: tenant.profile.clone(),
            job30,
            job90,
            churn_score: tenant.activity.churn_score(),
            risk_of_churn: tenant.activity.risk_of_churn(),
            last_event_ms: tenant.activity.last_event(),
            events: tenant.activity.events,
        }
    }

    /// Orders the most at risk first: by score, highest first (no score last), then
    /// by id.
    fn riskier(a: &Self, b: &Self) -> std::cmp::Ordering {
        let score = |v: &Self| v.churn_score.unwrap_or(f64::NEG_INFINITY);
        score(b)
            .total_cmp(&score(a))
            .then_with(|| a.company_id.cmp(&b.company_id))
    }
}

/// Tenants and those at risk, in one industry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndustryCount {
    /// Tenants with a result.
    pub tenants: u64,
    /// Of those, the ones whose last result has `riskOfChurn` true.
    pub at_risk: u64,
}

/// A question to a worker about its tenants.
#[derive(Debug)]
pub enum TenantQuery {
    /// One tenant.
    One {
        /// Its `companyID`.
        company_id: String,
        /// Where the answer goes.
        reply: oneshot::Sender<Option<TenantView>>,
    },
    /// The worker's tenants most at risk.
    Top {
        /// Which tenants.
        risk: RiskFilter,
        /// At most this many.
        limit: usize,
        /// Where the answer goes.
        reply: oneshot::Sender<Vec<TenantView>>,
    },
    /// Tenants and those at risk per industry.
    Industries {
        /// Where the answer goes.
        reply: oneshot::Sender<Vec<(String, IndustryCount)>>,
    },
}

impl TenantQuery {
    /// Answers from `table` (a worker calls this between batches). A caller that has
    /// stopped waiting is no error.
    pub(crate) fn answer<X>(self, table: &TenantTable<X>) {
        match self {
            TenantQuery::One { company_id, reply } => {
                let view = table
                    .get(&company_id)
                    .map(|t| TenantView::of(&company_id, t));
                let _ = reply.send(view);
            }
            TenantQuery::Top { risk, limit, reply } => {
                let _ = reply.send(top(table, risk, limit));
            }
            TenantQuery::Industries { reply } => {
                let mut counts: std::collections::BTreeMap<&str, IndustryCount> =
                    std::collections::BTreeMap::new();
                for (_, t) in table.iter() {
                    let Some(risk) = t.activity.risk_of_churn() else {
                        continue;
                    };
                    let c = counts.entry(&t.profile.industry).or_default();
                    c.tenants += 1;
                    c.at_risk += u64::from(risk);
                }
                let _ = reply.send(
                    counts
                        .into_iter()
                        .map(|(industry, c)| (industry.to_owned(), c))
                        .collect(),
                );
            }
        }
    }
}

/// The `limit` tenants of `table` most at risk among those `risk` selects: a bounded
/// heap over the scan, so a query costs one pass and `limit` views.
fn top<X>(table: &TenantTable<X>, risk: RiskFilter, limit: usize) -> Vec<TenantView> {
    use std::cmp::Ordering as O;
    use std::collections::BinaryHeap;

    /// Heap entry: the least at risk on top, to be evicted first.
    struct Entry<'t>(f64, &'t str);
    impl PartialEq for Entry<'_> {
        fn eq(&self, other: &Self) -> bool {
            self.cmp(other) == O::Equal
        }
    }
    impl Eq for Entry<'_> {}
    impl PartialOrd for Entry<'_> {
        fn partial_cmp(&self, other: &Self) -> Option<O> {
            Some(self.cmp(other))
        }
    }
    impl Ord for Entry<'_> {
        fn cmp(&self, other: &Self) -> O {
            // Higher score, or same score and smaller id, is "less" (riskier).
            other.0.total_cmp(&self.0).then_with(|| self.1.cmp(other.1))
        }
    }

    if limit == 0 {
        return Vec::new();
    }
    let mut heap = BinaryHeap::with_capacity(limit + 1);
    for (id, t) in table.iter() {
        let Some(at_risk) = t.activity.risk_of_churn() else {
            continue;
        };
        let wanted = match risk {
            RiskFilter::Any => true,
            RiskFilter::High => at_risk,
            RiskFilter::Low => !at_risk,
        };
        if !wanted {
            continue;
        }
        heap.push(Entry(
            t.activity.churn_score().unwrap_or(f64::NEG_INFINITY),
            id,
        ));
        if heap.len() > limit {
            heap.pop();
        }
    }
    let mut views: Vec<TenantView> = heap
        .into_iter()
        .filter_map(|Entry(_, id)| table.get(id).map(|t| TenantView::of(id, t)))
        .collect();
    views.sort_by(TenantView::riskier);
    views
}

/// Why a question about tenants found no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// No worker is running (the run is starting, recovering, or over).
    #[error("the job's workers are not running")]
    NotRunning,
    /// A worker did not answer in time (it is busy or stopping).
    #[error("a worker did not answer within {0:?}")]
    Timeout(Duration),
    /// With leases: the tenant's shard is held by another worker (or by none).
    #[error(
        "this worker does not hold the shard of this tenant: ask the worker that holds it \
         (tenantflow streams describe --lease-table TABLE)"
    )]
    NotHeld,
}

/// The doors to one job's keyed workers, and the tenants behind them.
#[derive(Debug)]
struct Doors {
    /// A shard job's shard and tenure; `None` for a run without leases.
    job: Option<(String, String)>,
    /// The hash-key range of the tenants its workers own (all, without leases).
    range: HashRange,
    /// One per keyed worker, in worker order.
    senders: Vec<crossbeam_channel::Sender<TenantQuery>>,
}

impl Doors {
    fn job(shard: &ShardScope) -> (String, String) {
        (shard.shard_id.clone(), shard.tenure.clone())
    }
}

/// The live state of a run, shared with whoever reports it.
#[derive(Debug, Default)]
pub struct JobStatus {
    phase: AtomicU8,
    /// When the run started (epoch milliseconds).
    started_ms: std::sync::atomic::AtomicI64,
    /// Why the run failed, once it has.
    failure: Mutex<Option<String>>,
    /// Records read per source stage (`reader`, `stream-NAME`).
    stages: Mutex<Vec<(String, Arc<AtomicU64>)>>,
    /// Shard lags per stream.
    streams: Mutex<Vec<(String, ShardLags)>>,
    checkpoint: Mutex<Option<CheckpointReport>>,
    workers: Mutex<Vec<Arc<WorkerGauges>>>,
    /// Remote services by name (`lookup`, `scoring`).
    remote: Mutex<Vec<(&'static str, Arc<CallStats>)>>,
    /// The doors of each running job (one without leases, one per shard job with
    /// them); empty while none runs.
    queries: Mutex<Vec<Doors>>,
    /// With leases: this worker's name and the shards it holds.
    leases: Mutex<Option<(String, Vec<String>)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Records read by one source stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageRecords {
    /// The stage: `reader` (files, stdin, the generator) or `stream-NAME`.
    pub stage: String,
    /// Records read (lines or stream records).
    pub records: u64,
}

/// One shard's lag, by stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamShardLag {
    /// The stream.
    pub stream: String,
    /// The shard.
    pub shard: String,
    /// Its lag.
    pub lag: ShardLag,
}

impl JobStatus {
    /// Where the run is.
    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    pub(crate) fn set_phase(&self, phase: Phase) {
        if phase == Phase::Recovering {
            self.started_ms
                .store(tenantflow_core::clock::now_ms(), Ordering::Relaxed);
        }
        self.phase.store(phase as u8, Ordering::Release);
    }

    /// When the run started (epoch milliseconds; 0 before).
    pub fn started_ms(&self) -> i64 {
        self.started_ms.load(Ordering::Relaxed)
    }

    /// Marks the run failed, with why (the first failure is kept).
    pub fn fail(&self, why: String) {
        lock(&self.failure).get_or_insert(why);
        self.set_phase(Phase::Failed);
    }

    /// Why the run failed, if it has.
    pub fn failure(&self) -> Option<String> {
        lock(&self.failure).clone()
    }

    /// Ready: recovered and reading, with no failed stage.
    pub fn ready(&self) -> bool {
        self.phase() == Phase::Running
    }

    /// The counter of records read by `stage`, registered at its first call.
    pub(crate) fn stage_counter(&self, stage: &str) -> Arc<AtomicU64> {
        let mut stages = lock(&self.stages);
        if let Some((_, c)) = stages.iter().find(|(s, _)| s == stage) {
            return Arc::clone(c);
        }
        let counter = Arc::new(AtomicU64::new(0));
        stages.push((stage.to_owned(), Arc::clone(&counter)));
        counter
    }

    /// Records read per source stage.
    pub fn stage_records(&self) -> Vec<StageRecords> {
        lock(&self.stages)
            .iter()
            .map(|(stage, c)| StageRecords {
                stage: stage.clone(),
                records: c.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Where `stream`'s consumer reports its shards' lag.
    pub(crate) fn shard_lags(&self, stream: &str) -> ShardLags {
        let lags = ShardLags::default();
        lock(&self.streams).push((stream.to_owned(), lags.clone()));
        lags
    }

    /// With leases: this worker is `worker` and holds the leases of `shards`.
    pub(crate) fn set_leases(&self, worker: &str, shards: Vec<String>) {
        *lock(&self.leases) = Some((worker.to_owned(), shards));
    }

    /// With leases: this worker's name and the shards it holds; `None` without leases.
    pub fn leases(&self) -> Option<(String, Vec<String>)> {
        lock(&self.leases).clone()
    }

    /// A consumer that stopped (a shard job that ended or lost its lease): its shards'
    /// lags are no longer reported.
    pub(crate) fn forget_lags(&self, gone: &ShardLags) {
        lock(&self.streams).retain(|(_, lags)| !lags.same(gone));
    }

    /// The lag of every shard read, by stream and shard. A shard read by several
    /// consumers (with leases, every shard job reads a `companies` stream in full)
    /// reports its slowest reader.
    pub fn lags(&self) -> Vec<StreamShardLag> {
        let mut by_shard: std::collections::BTreeMap<(String, String), ShardLag> =
            std::collections::BTreeMap::new();
        for (stream, lags) in lock(&self.streams).iter() {
            for (shard, lag) in lags.read() {
                by_shard
                    .entry((stream.clone(), shard))
                    .and_modify(|seen| {
                        seen.millis_behind = seen.millis_behind.max(lag.millis_behind);
                        seen.ended &= lag.ended;
                    })
                    .or_insert(lag);
            }
        }
        by_shard
            .into_iter()
            .map(|((stream, shard), lag)| StreamShardLag { stream, shard, lag })
            .collect()
    }

    pub(crate) fn checkpoint_done(&self, report: CheckpointReport) {
        *lock(&self.checkpoint) = Some(report);
    }

    /// The last checkpoint this process completed.
    pub fn last_checkpoint(&self) -> Option<CheckpointReport> {
        *lock(&self.checkpoint)
    }

    pub(crate) fn worker_gauges(&self, workers: usize) -> Vec<Arc<WorkerGauges>> {
        let gauges: Vec<_> = (0..workers).map(|_| Arc::default()).collect();
        *lock(&self.workers) = gauges.clone();
        gauges
    }

    /// Per-worker gauges, in worker order.
    pub fn workers(&self) -> Vec<Arc<WorkerGauges>> {
        lock(&self.workers).clone()
    }

    pub(crate) fn remote_service(&self, name: &'static str, stats: Arc<CallStats>) {
        lock(&self.remote).push((name, stats));
    }

    /// The remote services' call counters, by service.
    pub fn remote(&self) -> Vec<(&'static str, Arc<CallStats>)> {
        lock(&self.remote).clone()
    }

    /// Questions about the tenants of a job go to `senders`, one per keyed worker: those
    /// of a shard job's hash-key range, every tenant for a run without leases (`None`).
    pub(crate) fn open_queries(
        &self,
        shard: Option<&ShardScope>,
        senders: Vec<crossbeam_channel::Sender<TenantQuery>>,
    ) {
        let doors = Doors {
            job: shard.map(Doors::job),
            range: shard.map_or(HashRange::ALL, |s| s.hash_range),
            senders,
        };
        let mut queries = lock(&self.queries);
        queries.retain(|d| d.job != doors.job);
        queries.push(doors);
    }

    /// The job (a shard job, or `None`: the run without leases) takes no more
    /// questions.
    pub(crate) fn close_queries(&self, shard: Option<&ShardScope>) {
        let job = shard.map(Doors::job);
        lock(&self.queries).retain(|d| d.job != job);
    }

    /// Whether this is a worker of leases.
    fn holds_leases(&self) -> bool {
        lock(&self.leases).is_some()
    }

    /// What the worker owning `company_id` knows of it.
    ///
    /// # Errors
    /// No worker runs, or it did not answer within `wait`.
    pub async fn tenant(
        &self,
        company_id: &str,
        wait: Duration,
    ) -> Result<Option<TenantView>, QueryError> {
        let leases = self.holds_leases();
        let (tx, rx) = oneshot::channel();
        {
            let queries = lock(&self.queries);
            if queries.is_empty() && !leases {
                return Err(QueryError::NotRunning);
            }
            let Some(doors) = queries.iter().find(|d| d.range.holds(company_id)) else {
                return Err(QueryError::NotHeld);
            };
            let senders = &doors.senders;
            let door = &senders[tenantflow_core::partition::worker_for(company_id, senders.len())];
            let query = TenantQuery::One {
                company_id: company_id.to_owned(),
                reply: tx,
            };
            door.send(query).map_err(|_| QueryError::NotRunning)?;
        }
        answer(rx, wait).await
    }

    /// The `limit` tenants most at risk among those `risk` selects, over every
    /// worker, highest score first.
    ///
    /// # Errors
    /// No worker runs, or one did not answer within `wait`.
    pub async fn top(
        &self,
        risk: RiskFilter,
        limit: usize,
        wait: Duration,
    ) -> Result<Vec<TenantView>, QueryError> {
        let answers = self.ask_all(|reply| TenantQuery::Top { risk, limit, reply })?;
        let mut all = Vec::new();
        for rx in answers {
            all.extend(answer(rx, wait).await?);
        }
        all.sort_by(TenantView::riskier);
        all.truncate(limit);
        Ok(all)
    }

    /// Tenants and those at risk per industry, over every worker, by industry.
    ///
    /// # Errors
    /// No worker runs, or one did not answer within `wait`.
    pub async fn industries(
        &self,
        wait: Duration,
    ) -> Result<Vec<(String, IndustryCount)>, QueryError> {
        let answers = self.ask_all(|reply| TenantQuery::Industries { reply })?;
        let mut all: std::collections::BTreeMap<String, IndustryCount> = Default::default();
        for rx in answers {
            for (industry, c) in answer(rx, wait).await? {
                let total = all.entry(industry).or_default();
                total.tenants += c.tenants;
                total.at_risk += c.at_risk;
            }
        }
        Ok(all.into_iter().collect())
    }

    fn ask_all<T>(
        &self,
        query: impl Fn(oneshot::Sender<T>) -> TenantQuery,
    ) -> Result<Vec<oneshot::Receiver<T>>, QueryError> {
        let leases = self.holds_leases();
        let queries = lock(&self.queries);
        // A worker of leases holding no shard owns no tenant.
        if queries.is_empty() && !leases {
            return Err(QueryError::NotRunning);
        }
        queries
            .iter()
            .flat_map(|d| &d.senders)
            .map(|door| {
                let (tx, rx) = oneshot::channel();
                door.send(query(tx)).map_err(|_| QueryError::NotRunning)?;
                Ok(rx)
            })
            .collect()
    }
}

async fn answer<T>(rx: oneshot::Receiver<T>, wait: Duration) -> Result<T, QueryError> {
    match tokio::time::timeout(wait, rx).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(_)) => Err(QueryError::NotRunning),
        Err(_) => Err(QueryError::Timeout(wait)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::borrow::Cow;

    use tenantflow_core::record::{Company, ProfileFields};
    use tenantflow_operators::score::Model;
    use tenantflow_operators::tenant::JobOutcome;
    use tenantflow_operators::window::Retention;

    use super::*;

    const DAY: i64 = 86_400_000;

    fn table() -> TenantTable<()> {
        let model = Model::builtin();
        let mut table = TenantTable::new(Retention::default());
        for (i, industry) in ["retail", "IT", "retail", "gov"].iter().enumerate() {
            let id = format!("c{i}");
            table.upsert(
                &Company {
                    company_id: Cow::Owned(id.clone()),
                    profile: ProfileFields {
                        industry: Cow::Borrowed(industry),
                        revenu: 1000,
                        employees: 10,
                        job30: 2,
                        job90: 7,
                        monthly_fee: 10.0,
                        total_fee: 20.0,
                    },
                },
                &model,
                |_| (),
            );
        }
        // c0: two events 40 days apart; c1 and c2 one each; c3 none.
        for (id, day, score) in [
            ("c0", 0, 0.2),
            ("c0", 40, 0.9),
            ("c1", 5, 0.6),
            ("c2", 5, 0.4),
        ] {
            let JobOutcome::Joined(j) = table.process_job(id, 3, day * DAY, &model) else {
                panic!("joined");
            };
            j.tenant.activity.record_score(Some(score), score >= 0.5);
        }
        table
    }

    #[test]
    fn one_tenant_as_of_its_newest_day() {
        let table = table();
        let (tx, mut rx) = oneshot::channel();
        TenantQuery::One {
            company_id: "c0".into(),
            reply: tx,
        }
        .answer(&table);
        let view = rx.try_recv().unwrap().unwrap();
        // Day 40: the day-0 jobs are out of the 30-day window, in the 90-day one.
        assert_eq!((view.job30, view.job90), (2 + 3, 7 + 6));
        assert_eq!(view.events, 2);
        assert_eq!(view.last_event_ms, Some(40 * DAY));
        assert_eq!(
            (view.churn_score, view.risk_of_churn),
            (Some(0.9), Some(true))
        );
        let (tx, mut rx) = oneshot::channel();
        TenantQuery::One {
            company_id: "nobody".into(),
            reply: tx,
        }
        .answer(&table);
        assert_eq!(rx.try_recv().unwrap(), None);
    }

    #[test]
    fn top_lists_the_riskiest_first_and_filters_by_risk() {
        let table = table();
        let ids = |risk, limit| {
            top(&table, risk, limit)
                .into_iter()
                .map(|v| v.company_id)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(RiskFilter::Any, 10), ["c0", "c1", "c2"]);
        assert_eq!(ids(RiskFilter::Any, 2), ["c0", "c1"]);
        assert_eq!(ids(RiskFilter::High, 10), ["c0", "c1"]);
        assert_eq!(ids(RiskFilter::Low, 10), ["c2"]);
        assert!(ids(RiskFilter::Any, 0).is_empty());
    }

    #[test]
    fn industries_count_tenants_with_results() {
        let (tx, mut rx) = oneshot::channel();
        TenantQuery::Industries { reply: tx }.answer(&table());
        let counts = rx.try_recv().unwrap();
        assert_eq!(
            counts,
            [
                (
                    "IT".to_owned(),
                    IndustryCount {
                        tenants: 1,
                        at_risk: 1
                    }
                ),
                (
                    "retail".to_owned(),
                    IndustryCount {
                        tenants: 2,
                        at_risk: 1
                    }
                ),
            ]
        );
    }

    /// A shard job of `range` whose one worker answers from `table()` restricted to
    /// the range, until its doors close.
    fn shard_job(
        status: &JobStatus,
        id: &str,
        range: HashRange,
    ) -> (ShardScope, std::thread::JoinHandle<()>) {
        let scope = ShardScope {
            stream: "jobs".into(),
            shard_id: id.into(),
            hash_range: range,
            tenure: "t1".into(),
        };
        let (tx, rx) = crossbeam_channel::unbounded();
        status.open_queries(Some(&scope), vec![tx]);
        let mut table = table();
        for other in ["c0", "c1", "c2", "c3"]
            .into_iter()
            .filter(|c| !range.holds(c))
        {
            table.remove(other);
        }
        let worker = std::thread::spawn(move || {
            for query in rx.iter() {
                query.answer(&table);
            }
        });
        (scope, worker)
    }

    #[tokio::test]
    async fn with_leases_each_shard_job_answers_for_its_range() {
        let status = JobStatus::default();
        let wait = Duration::from_secs(5);
        status.set_leases("w1", Vec::new());
        // Holding no shard: no tenant here, and an empty list.
        assert_eq!(status.tenant("c0", wait).await, Err(QueryError::NotHeld));
        assert_eq!(status.top(RiskFilter::Any, 5, wait).await, Ok(Vec::new()));

        // Split at the middle one of the three scored tenants' hash keys.
        let mut keys: Vec<u128> = ["c0", "c1", "c2"]
            .into_iter()
            .map(tenantflow_kinesis::hash_key::hash_key)
            .collect();
        keys.sort_unstable();
        let low = HashRange::parse("0", &(keys[1] - 1).to_string()).unwrap();
        let high = HashRange::parse(&keys[1].to_string(), &u128::MAX.to_string()).unwrap();
        let (low_job, low_worker) = shard_job(&status, "shard-0", low);
        let (high_job, high_worker) = shard_job(&status, "shard-1", high);
        // Each tenant is answered by the job of its range (the other job's table
        // lacks it); a list merges both jobs' tenants.
        for id in ["c0", "c1", "c2"] {
            let view = status.tenant(id, wait).await.unwrap();
            assert_eq!(view.map(|v| v.company_id), Some(id.to_owned()), "{id}");
        }
        let top = status.top(RiskFilter::Any, 10, wait).await.unwrap();
        let ids: Vec<_> = top.iter().map(|v| v.company_id.as_str()).collect();
        assert_eq!(ids, ["c0", "c1", "c2"]);

        // A job that ends closes its own doors only: its tenants are no longer here.
        status.close_queries(Some(&high_job));
        high_worker.join().unwrap();
        for id in ["c0", "c1", "c2", "c3"] {
            let got = status.tenant(id, wait).await;
            if low.holds(id) {
                assert!(matches!(got, Ok(Some(_))), "{id}: {got:?}");
            } else {
                assert_eq!(got, Err(QueryError::NotHeld), "{id}");
            }
        }
        status.close_queries(Some(&low_job));
        low_worker.join().unwrap();
    }

    #[tokio::test]
    async fn questions_without_workers_say_so() {
        let status = JobStatus::default();
        let wait = Duration::from_millis(10);
        assert_eq!(status.tenant("c0", wait).await, Err(QueryError::NotRunning));
        let (tx, rx) = crossbeam_channel::unbounded();
        status.open_queries(None, vec![tx]);
        // A worker that does not answer in time.
        assert_eq!(
            status.top(RiskFilter::Any, 5, wait).await,
            Err(QueryError::Timeout(wait))
        );
        let table = table();
        let worker = std::thread::spawn(move || {
            for query in rx.iter() {
                query.answer(&table);
            }
        });
        let top = status
            .top(RiskFilter::High, 5, Duration::from_secs(5))
            .await;
        assert_eq!(top.unwrap().len(), 2);
        status.close_queries(None);
        worker.join().unwrap();
    }
}
