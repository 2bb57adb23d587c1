//! The worker's remote scoring: a joined and counted job event waits for its churn
//! score from a remote scorer. Rows are gathered into batches (up to `batch` rows, or
//! whatever came within `linger`), each batch one call through the async operator's
//! stack (retries, timeout, requests in flight over the whole job). A batch's rows come
//! out together, in row order; in unordered mode a batch may overtake earlier ones
//! unless they hold one of its tenants, so a tenant's results keep their order.

use std::collections::{HashSet, VecDeque};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use tenantflow_core::CompanyProfile;
use tenantflow_core::batch::Position;
use tenantflow_remote::auth::AuthConfig;
use tenantflow_remote::call::{CallConfig, CallError, CallService, CallStats, stack};
use tenantflow_remote::contract::ScoreContract;
use tenantflow_remote::executor::{Completion, Executor};
use tenantflow_remote::keyed::Emission;
use tenantflow_remote::lookup::UrlError;
use tenantflow_remote::score::{
    HttpScorer, SageMakerScorer, ScoreBatch, ScoreRow, Scored, ScorerTarget,
};
use tenantflow_sinks::encoding::ProfileFragments;

use crate::in_flight::{At, InFlight, ScoringRow};
use crate::stage::AsyncStage;

/// How the job scores remotely.
#[derive(Debug, Clone)]
pub struct ScoringConfig {
    /// The scorer (not [`ScorerTarget::Embedded`]).
    pub target: ScorerTarget,
    /// For a SageMaker target: the service's URL instead of the chain's.
    pub endpoint_url: Option<String>,
    /// How rows go out and answers come back; `None`: the target's default.
    pub contract: Option<ScoreContract>,
    /// How HTTP requests are authenticated (a SageMaker target signs with the AWS
    /// chain's credentials whatever this says).
    pub auth: AuthConfig,
    /// Retries, timeout, requests in flight (over the whole job).
    pub call: CallConfig,
    /// Most rows per request (one for `/assessChurn`, whatever is asked).
    pub batch: NonZeroUsize,
    /// How long a batch that is not full waits for more rows.
    pub linger: Duration,
    /// The order results come out in.
    pub emission: Emission,
}

/// Most rows a worker keeps waiting for scores (at least a batch); past it, the worker
/// waits.
const MAX_QUEUED: usize = 100_000;

/// The job's scoring service, shared by the workers.
pub(crate) struct ScoringService {
    config: ScoringConfig,
    service: CallService<ScoreBatch, Scored>,
    pub(crate) stats: Arc<CallStats>,
}

impl ScoringService {
    /// The client of `config.target`; a SageMaker client reads the AWS chain on
    /// `runtime`.
    pub(crate) fn new(
        config: &ScoringConfig,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Self, UrlError> {
        let stats = Arc::new(CallStats::default());
        let contract = config
            .contract
            .clone()
            .unwrap_or_else(|| config.target.default_contract());
        let most = contract.max_batch();
        let service = match &config.target {
            ScorerTarget::SageMaker(name) => {
                let client = runtime.block_on(SageMakerScorer::connect(
                    name,
                    config.endpoint_url.as_deref(),
                    contract,
                ))?;
                stack(client, &config.call, Arc::clone(&stats))
            }
            target @ (ScorerTarget::Invocations(url) | ScorerTarget::AssessChurn(url)) => {
                let auth = runtime
                    .block_on(config.auth.resolve(url))
                    .map_err(|message| UrlError::new("scorer", &target.shown(), &message))?;
                stack(
                    HttpScorer::new(target, contract, auth)?,
                    &config.call,
                    Arc::clone(&stats),
                )
            }
            ScorerTarget::Embedded => {
                return Err(UrlError::new(
                    "scorer",
                    "embedded",
                    "the embedded model is not a remote scorer",
                ));
            }
        };
        let mut config = config.clone();
        if let Some(most) = most {
            config.batch = config.batch.min(most);
        }
        Ok(Self {
            config,
            service,
            stats,
        })
    }

    /// The service of `config` with `service` in place of the scorer's client (tests).
    #[cfg(test)]
    pub(crate) fn with_service(
        config: ScoringConfig,
        service: CallService<ScoreBatch, Scored>,
    ) -> Self {
        Self {
            config,
            service,
            stats: Arc::default(),
        }
    }

    pub(crate) fn for_worker(&self, runtime: tokio::runtime::Handle) -> Scorings {
        Scorings {
            target_name: self.config.target.shown().into(),
            executor: Executor::new(self.service.clone(), runtime),
            open: Vec::new(),
            open_rows: Vec::new(),
            open_since: None,
            pending: VecDeque::new(),
            next_seq: 0,
            in_flight: 0,
            queued: 0,
            batch: self.config.batch.get(),
            linger: self.config.linger,
            emission: self.config.emission,
            max_in_flight: self.config.call.max_in_flight.get(),
            max_queued: MAX_QUEUED.max(self.config.batch.get()),
        }
    }
}

/// A result waiting for its score: what it needs to be written, or to become a dead
/// letter.
pub(crate) struct Unscored {
    pub(crate) company_id: Box<str>,
    /// The profile as it stood when the event was processed.
    pub(crate) profile: CompanyProfile,
    /// The profile pre-encoded for the output format.
    pub(crate) fragments: ProfileFragments,
    pub(crate) job30: i64,
    pub(crate) job90: i64,
    pub(crate) user_id: Box<str>,
    pub(crate) nb_jobs: u64,
    pub(crate) creation_date: i64,
    pub(crate) position: Position,
    /// The event as it was read, for its dead letter if scoring fails.
    pub(crate) raw: Option<Box<str>>,
}

/// A batch closed, sent (or waiting for a free request slot), and its answer once it
/// came.
struct Pending {
    seq: u64,
    rows: Vec<Unscored>,
    /// The request, until it is sent.
    unsent: Option<ScoreBatch>,
    answer: Option<Result<Scored, CallError>>,
}

/// One worker's scoring.
pub(crate) struct Scorings {
    /// The scorer as it may be shown: the model version of results whose scorer does
    /// not name its model.
    pub(crate) target_name: Arc<str>,
    executor: Executor<ScoreBatch, Scored, u64>,
    /// The batch being filled.
    open: Vec<Unscored>,
    open_rows: Vec<ScoreRow>,
    open_since: Option<Instant>,
    /// Batches closed and not yet let out, in the order closed; the oldest unsent ones
    /// go as requests finish.
    pending: VecDeque<Pending>,
    next_seq: u64,
    in_flight: usize,
    /// Rows open or pending.
    queued: usize,
    batch: usize,
    linger: Duration,
    emission: Emission,
    max_in_flight: usize,
    max_queued: usize,
}

impl Scorings {
    /// True when the worker must take answers before it adds a row. Requests past
    /// the in-flight bound wait in the queue, not the worker: a worker blocked here
    /// cannot meet a checkpoint's barrier.
    pub(crate) fn is_full(&self) -> bool {
        self.queued >= self.max_queued
    }

    /// True if no row waits (open or sent).
    pub(crate) fn is_idle(&self) -> bool {
        self.queued == 0
    }

    /// Batches sent whose answers have not come.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Adds a row to the open batch, and sends the batch when it is full.
    pub(crate) fn push(&mut self, unscored: Unscored, row: ScoreRow) {
        if self.open.is_empty() {
            self.open_since = Some(Instant::now());
        }
        self.open.push(unscored);
        self.open_rows.push(row);
        self.queued += 1;
        if self.open.len() >= self.batch {
            self.flush();
        }
    }

    /// When the open batch must be sent, if there is one.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.open_since.map(|since| since + self.linger)
    }

    /// Sends the open batch, if it has rows.
    pub(crate) fn flush(&mut self) {
        self.open_since = None;
        if self.open.is_empty() {
            return;
        }
        let rows = std::mem::take(&mut self.open);
        let request: ScoreBatch = std::mem::take(&mut self.open_rows).into();
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending.push_back(Pending {
            seq,
            rows,
            unsent: Some(request),
            answer: None,
        });
        self.send_unsent();
    }

    /// Sends the oldest closed batches not sent yet, while request slots are free.
    fn send_unsent(&mut self) {
        for pending in &mut self.pending {
            if self.in_flight >= self.max_in_flight {
                return;
            }
            if let Some(request) = pending.unsent.take() {
                self.executor.submit(pending.seq, request);
                self.in_flight += 1;
            }
        }
    }

    /// Where answers arrive.
    pub(crate) fn completions(&self) -> Receiver<Completion<Scored, u64>> {
        self.executor.completions().clone()
    }

    /// Keeps an answer until its batch may be let out.
    pub(crate) fn complete(&mut self, completion: Completion<Scored, u64>) {
        if let Some(pending) = self.pending.iter_mut().find(|p| p.seq == completion.key) {
            pending.answer = Some(completion.result);
            self.in_flight -= 1;
        }
        self.send_unsent();
    }

    /// Every row waiting for its score (sent or open, answered or not), in the order
    /// the rows were added, as a checkpoint keeps them.
    fn waiting_rows(&self) -> Vec<ScoringRow> {
        self.pending
            .iter()
            .flat_map(|p| p.rows.iter())
            .chain(self.open.iter())
            .map(|row| ScoringRow {
                company_id: row.company_id.clone(),
                profile: row.profile.clone(),
                job30: row.job30,
                job90: row.job90,
                user_id: row.user_id.clone(),
                nb_jobs: row.nb_jobs,
                creation_date: row.creation_date,
                at: At::from(row.position),
                raw: row.raw.clone(),
            })
            .collect()
    }

    /// A batch that may be let out, with its answer: in ordered mode the oldest once
    /// answered; in unordered mode any answered one that shares no tenant with an
    /// older batch still waiting.
    pub(crate) fn pop_ready(&mut self) -> Option<(Vec<Unscored>, Result<Scored, CallError>)> {
        let front_answered = self.pending.front()?.answer.is_some();
        let at = match self.emission {
            _ if front_answered => 0,
            Emission::Ordered => return None,
            Emission::Unordered => {
                let mut older: HashSet<&str, foldhash::fast::RandomState> = HashSet::default();
                let mut found = None;
                for (i, pending) in self.pending.iter().enumerate() {
                    if pending.answer.is_some()
                        && pending.rows.iter().all(|r| !older.contains(&*r.company_id))
                    {
                        found = Some(i);
                        break;
                    }
                    older.extend(pending.rows.iter().map(|r| &*r.company_id));
                }
                found?
            }
        };
        let pending = self.pending.remove(at)?;
        self.queued -= pending.rows.len();
        let answer = pending.answer?;
        Some((pending.rows, answer))
    }
}

impl AsyncStage for Scorings {
    type Answer = Completion<Scored, u64>;

    fn answers(&self) -> Receiver<Completion<Scored, u64>> {
        self.completions()
    }

    fn expects_answers(&self) -> bool {
        self.in_flight > 0
    }

    fn is_full(&self) -> bool {
        Scorings::is_full(self)
    }

    fn waiting(&self) -> usize {
        self.queued
    }

    fn deadline(&self) -> Option<Instant> {
        Scorings::deadline(self)
    }

    /// The open batch has lingered long enough: it goes.
    fn at_deadline(&mut self) {
        self.flush();
    }

    /// The rows waiting (already counted in state), in the order they were added.
    fn snapshot(&self, into: &mut InFlight) {
        into.scoring = self.waiting_rows();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tenantflow_operators::score::Features;
    use tenantflow_remote::score::Prediction;

    fn scorings(emission: Emission, batch: usize) -> Scorings {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let config = ScoringConfig {
            target: ScorerTarget::parse("http://127.0.0.1:9/invocations").unwrap(),
            endpoint_url: None,
            contract: None,
            auth: Default::default(),
            call: CallConfig {
                max_in_flight: NonZeroUsize::new(2).unwrap(),
                timeout: Duration::from_secs(5),
                max_attempts: std::num::NonZeroU32::new(5).unwrap(),
                backoff_base: tenantflow_remote::call::BACKOFF_BASE,
                backoff_max: tenantflow_remote::call::BACKOFF_MAX,
            },
            batch: NonZeroUsize::new(batch).unwrap(),
            linger: Duration::from_millis(10),
            emission,
        };
        let service = ScoringService::new(&config, runtime.handle()).unwrap();
        // Nothing is awaited: the calls are never polled, the tests complete them.
        let scorings = service.for_worker(runtime.handle().clone());
        std::mem::forget(runtime);
        scorings
    }

    fn push(s: &mut Scorings, tenant: &str) {
        let profile = CompanyProfile {
            industry: "retail".into(),
            revenu: 1,
            employees: 1,
            job30: 0,
            job90: 0,
            monthly_fee: 1.0,
            total_fee: 1.0,
        };
        s.push(
            Unscored {
                company_id: tenant.into(),
                profile,
                fragments: ProfileFragments::default(),
                job30: 1,
                job90: 1,
                user_id: "u".into(),
                nb_jobs: 1,
                creation_date: 0,
                position: Position { source: 0, line: 1 },
                raw: None,
            },
            ScoreRow {
                industry: "retail".into(),
                features: Features {
                    revenu: 1.0,
                    employees: 1.0,
                    job30: 1.0,
                    job90: 1.0,
                    monthly_fee: 1.0,
                    total_fee: 1.0,
                },
            },
        );
    }

    fn answer(s: &mut Scorings, seq: u64, rows: usize) {
        s.complete(Completion {
            key: seq,
            result: Ok(Scored {
                predictions: vec![
                    Prediction {
                        score: Some(0.5),
                        risk: true
                    };
                    rows
                ],
                model_version: None,
            }),
        });
    }

    fn tenants(ready: Option<(Vec<Unscored>, Result<Scored, CallError>)>) -> Vec<String> {
        ready
            .unwrap()
            .0
            .iter()
            .map(|u| u.company_id.to_string())
            .collect()
    }

    #[test]
    fn full_batches_go_at_once_and_the_rest_at_the_deadline() {
        let mut s = scorings(Emission::Ordered, 2);
        push(&mut s, "a");
        assert!(s.deadline().is_some());
        push(&mut s, "b");
        assert_eq!((s.in_flight(), s.deadline()), (1, None));
        push(&mut s, "c");
        s.flush();
        assert_eq!(s.in_flight(), 2);
        push(&mut s, "d");
        s.flush();
        assert_eq!(s.in_flight(), 2, "two batches in flight, the most allowed");
        assert!(
            !s.is_full(),
            "a batch past the bound waits for a request slot; the worker does not"
        );
        answer(&mut s, 1, 1);
        assert_eq!(s.in_flight(), 2, "the freed slot went to the waiting batch");
        assert!(s.pop_ready().is_none(), "ordered: the older batch first");
        answer(&mut s, 0, 2);
        assert_eq!(tenants(s.pop_ready()), ["a", "b"]);
        assert_eq!(tenants(s.pop_ready()), ["c"]);
        answer(&mut s, 2, 1);
        assert_eq!(tenants(s.pop_ready()), ["d"]);
        assert!(s.is_idle());
    }

    #[test]
    fn unordered_batches_overtake_only_other_tenants() {
        let mut s = scorings(Emission::Unordered, 1);
        for tenant in ["a", "b", "a"] {
            push(&mut s, tenant);
        }
        answer(&mut s, 2, 1);
        assert!(
            s.pop_ready().is_none(),
            "a's second result waits for its first"
        );
        answer(&mut s, 1, 1);
        assert_eq!(tenants(s.pop_ready()), ["b"]);
        answer(&mut s, 0, 1);
        assert_eq!(tenants(s.pop_ready()), ["a"]);
        assert_eq!(tenants(s.pop_ready()), ["a"]);
        assert!(s.pop_ready().is_none() && s.is_idle());
    }
}
