//! The worker's tenant lookups: a job event whose tenant has no profile (or a fetched
//! profile past its TTL) waits for one request per tenant to the TenantManager, and the
//! tenant's later records wait behind it, in order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Receiver;
use tenantflow_core::Record;
use tenantflow_core::batch::Position;
use tenantflow_remote::auth::AuthConfig;
use tenantflow_remote::call::{CallConfig, CallService, CallStats, stack};
use tenantflow_remote::executor::{Completion, Executor};
use tenantflow_remote::keyed::{Emission, KeyedQueue};
use tenantflow_remote::lookup::{LookupAnswer, TenantManagerClient, UrlError};

use crate::in_flight::{InFlight, WaitingRecord};
use crate::stage::AsyncStage;

/// How the job looks up tenants.
#[derive(Debug, Clone)]
pub struct LookupConfig {
    /// The TenantManager's base URL.
    pub url: String,
    /// How requests are authenticated.
    pub auth: AuthConfig,
    /// Retries, timeout, requests in flight (over the whole job).
    pub call: CallConfig,
    /// How long a fetched profile is used before it is fetched again.
    pub ttl: Duration,
    /// The order records come out in.
    pub emission: Emission,
    /// How long a tenant the TenantManager does not know is taken as unknown without
    /// asking again (zero: every event asks).
    pub unknown_ttl: Duration,
}

/// Most records a worker keeps waiting for lookups; past it, the worker waits. Waiting
/// records come out late, after records read later: the bound is also on how far out
/// of event-time order results go (a batch's worth), which keeps result files whole.
const MAX_QUEUED: usize = 4_096;

/// The job's lookup service, shared by the workers: one bound on requests in flight.
pub(crate) struct LookupService {
    pub(crate) config: LookupConfig,
    pub(crate) service: CallService<Box<str>, LookupAnswer>,
    pub(crate) stats: Arc<CallStats>,
}

impl LookupService {
    /// The client of `config.url`; SigV4 reads the AWS chain on `runtime`.
    pub(crate) fn new(
        config: &LookupConfig,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Self, UrlError> {
        let client = TenantManagerClient::new(&config.url)?;
        let auth = runtime
            .block_on(config.auth.resolve(&config.url))
            .map_err(|message| UrlError::new("TenantManager", client.shown(), &message))?;
        let client = client.with_auth(auth);
        let stats = Arc::new(CallStats::default());
        Ok(Self {
            service: stack(client, &config.call, Arc::clone(&stats)),
            config: config.clone(),
            stats,
        })
    }

    pub(crate) fn for_worker(&self, runtime: tokio::runtime::Handle) -> Lookups {
        // A worker may have all of the job's requests in flight.
        Lookups {
            executor: Executor::new(self.service.clone(), runtime),
            queue: KeyedQueue::new(self.config.emission),
            ttl_ms: i64::try_from(self.config.ttl.as_millis()).unwrap_or(i64::MAX),
            unknown: HashMap::default(),
            unknown_ttl_ms: i64::try_from(self.config.unknown_ttl.as_millis()).unwrap_or(i64::MAX),
            max_in_flight: self.config.call.max_in_flight.get(),
            max_queued: MAX_QUEUED,
            next_seq: 0,
            sent: 0,
            deferred: std::collections::VecDeque::new(),
        }
    }
}

/// A record waiting for its tenant's answer.
pub(crate) struct Waiting {
    pub(crate) record: Record<'static>,
    pub(crate) position: Position,
    /// Its place in the worker's arrival order.
    pub(crate) seq: u64,
}

/// What a lookup came to, as the waiting records of its tenant see it.
#[derive(Debug, Clone)]
pub(crate) enum Resolution {
    /// A profile (now in state), or a failed refresh of one still in state.
    Profile,
    /// The TenantManager does not know the tenant.
    Unknown,
    /// The lookup failed for good.
    Failed(Arc<str>),
}

/// One worker's lookups.
pub(crate) struct Lookups {
    executor: Executor<Box<str>, LookupAnswer>,
    pub(crate) queue: KeyedQueue<Waiting, Resolution>,
    pub(crate) ttl_ms: i64,
    /// Tenants the TenantManager said it does not know, until when to believe it.
    unknown: HashMap<Box<str>, i64, foldhash::fast::RandomState>,
    unknown_ttl_ms: i64,
    max_in_flight: usize,
    max_queued: usize,
    /// The arrival number of the next record queued.
    next_seq: u64,
    /// Requests sent whose answers have not come.
    sent: usize,
    /// Lookups started past the in-flight bound, sent as answers come.
    deferred: std::collections::VecDeque<Box<str>>,
}

/// Most tenants remembered as unknown per worker (ids of garbage input can be many).
const MAX_UNKNOWN: usize = 100_000;

impl Lookups {
    /// True when the worker must take answers before it takes another record.
    /// Lookups past the in-flight bound wait in the queue, not the worker: a worker
    /// blocked here could not meet a checkpoint's barrier.
    pub(crate) fn is_full(&self) -> bool {
        self.queue.queued() >= self.max_queued
    }

    /// Starts the lookup of `company_id`: now, or once a request slot is free. The
    /// tenant's records wait for it either way, and so do its later ones (they use its
    /// answer, which comes after they arrived).
    pub(crate) fn start(&mut self, company_id: &str) {
        self.queue.start(company_id);
        if self.sent < self.max_in_flight {
            self.sent += 1;
            self.executor.submit(company_id.into(), company_id.into());
        } else {
            self.deferred.push_back(company_id.into());
        }
    }

    /// At most `n` requests in flight (tests).
    #[cfg(test)]
    pub(crate) fn set_max_in_flight_for_test(&mut self, n: usize) {
        self.max_in_flight = n;
    }

    /// An answer came: its request slot goes to the oldest lookup waiting for one.
    pub(crate) fn answered(&mut self) {
        self.sent = self.sent.saturating_sub(1);
        while self.sent < self.max_in_flight
            && let Some(key) = self.deferred.pop_front()
        {
            self.sent += 1;
            self.executor.submit(key.clone(), key);
        }
    }

    /// True if `company_id` was answered unknown less than the unknown TTL ago.
    pub(crate) fn known_unknown(&self, company_id: &str, now_ms: i64) -> bool {
        self.unknown
            .get(company_id)
            .is_some_and(|&until| until > now_ms)
    }

    /// Remembers that the TenantManager does not know `company_id`.
    pub(crate) fn remember_unknown(&mut self, company_id: &str, now_ms: i64) {
        if self.unknown_ttl_ms == 0 {
            return;
        }
        if self.unknown.len() >= MAX_UNKNOWN {
            self.unknown.retain(|_, until| *until > now_ms);
            if self.unknown.len() >= MAX_UNKNOWN {
                self.unknown.clear();
            }
        }
        self.unknown.insert(
            company_id.into(),
            now_ms.saturating_add(self.unknown_ttl_ms),
        );
    }

    /// Forgets that `company_id` was unknown (a profile came for it).
    pub(crate) fn forget_unknown(&mut self, company_id: &str) {
        if !self.unknown.is_empty() {
            self.unknown.remove(company_id);
        }
    }

    /// An answer already arrived, if any, while requests are out (without waiting).
    pub(crate) fn try_answer(&self) -> Option<Completion<LookupAnswer>> {
        if self.queue.in_flight() == 0 {
            return None;
        }
        self.executor.completions().try_recv().ok()
    }

    /// Where answers arrive.
    pub(crate) fn completions(&self) -> Receiver<Completion<LookupAnswer>> {
        self.executor.completions().clone()
    }

    /// Queues `record` behind its tenant's (or, ordered, every) waiting record.
    pub(crate) fn push(&mut self, record: &Record<'_>, position: Position) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.push(
            record.company_id(),
            Waiting {
                record: record.to_owned_record(),
                position,
                seq,
            },
        );
    }
}

impl AsyncStage for Lookups {
    type Answer = Completion<LookupAnswer>;

    fn answers(&self) -> Receiver<Completion<LookupAnswer>> {
        self.completions()
    }

    fn expects_answers(&self) -> bool {
        !self.queue.is_empty()
    }

    fn is_full(&self) -> bool {
        Lookups::is_full(self)
    }

    fn waiting(&self) -> usize {
        self.queue.queued()
    }

    /// The records waiting (not yet applied to state), in arrival order.
    fn snapshot(&self, into: &mut InFlight) {
        let mut waiting: Vec<&Waiting> = self.queue.items().collect();
        waiting.sort_unstable_by_key(|w| w.seq);
        into.lookups = waiting
            .into_iter()
            .map(|w| WaitingRecord::new(&w.record, w.position))
            .collect();
    }
}
