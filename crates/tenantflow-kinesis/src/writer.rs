//! PutRecords in batches, in order per partition key.
//!
//! Kinesis processes a PutRecords request record by record, and a record can fail
//! (throttled shard) while a later one of the same key succeeds. Retrying only the
//! failed record would then put it after its successor. So a request carries at most
//! one record per partition key: a key's next record waits for the request before it
//! to be acknowledged, and a failed record is retried before anything after it of the
//! same key is sent. Records of other keys fill the request meanwhile.
//!
//! With aggregation (the KPL format), a key's pending records travel as one aggregated
//! Kinesis record, which succeeds or fails whole: many records per key per request, and
//! still in order.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;

use crate::backoff::Backoff;
use crate::error::{KinesisError, Retry};
use crate::kpl::Aggregator;

/// Most records in one PutRecords request.
pub const MAX_REQUEST_RECORDS: usize = 500;
/// Most bytes (data and partition keys) in one PutRecords request.
pub const MAX_REQUEST_BYTES: usize = 5 << 20;
/// Most bytes of one record (data and partition key).
pub const MAX_RECORD_BYTES: usize = 1 << 20;
/// Records queued before `send` flushes.
const HIGH_WATER: usize = 4 * MAX_REQUEST_RECORDS;
/// Attempts in a row that make no progress before the writer gives up.
const MAX_FUTILE_ATTEMPTS: u32 = 30;
/// Longest time without an acknowledged record before the writer gives up, by default.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(30);

/// What the writer did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// User records acknowledged.
    pub records: u64,
    /// Bytes of user data acknowledged.
    pub bytes: u64,
    /// PutRecords requests sent.
    pub requests: u64,
    /// Kinesis records re-sent after a failure.
    pub retries: u64,
    /// Records or requests refused for throughput limits.
    pub throttles: u64,
}

struct Pending {
    key: String,
    data: Vec<u8>,
}

/// Writes records to one stream.
pub struct RecordWriter {
    client: Client,
    stream: String,
    aggregate: bool,
    pending: VecDeque<Pending>,
    backoff: Backoff,
    futile: u32,
    /// When the current run of futile attempts began.
    futile_since: Option<std::time::Instant>,
    give_up_after: Duration,
    /// Retries are warned of at most once per 5 s, by the time since `created`.
    warnings: tenantflow_core::warn_limit::WarnLimiter,
    created: std::time::Instant,
    stats: WriterStats,
}

impl RecordWriter {
    /// A writer to `stream`; with `aggregate`, records go in KPL aggregated records.
    pub fn new(client: Client, stream: &str, aggregate: bool) -> Self {
        Self {
            client,
            stream: stream.to_owned(),
            aggregate,
            pending: VecDeque::new(),
            backoff: Backoff::new(Duration::from_millis(50), Duration::from_secs(5), 0x5eed),
            futile: 0,
            futile_since: None,
            give_up_after: GIVE_UP_AFTER,
            warnings: tenantflow_core::warn_limit::WarnLimiter::new(5_000),
            created: std::time::Instant::now(),
            stats: WriterStats::default(),
        }
    }

    /// Gives up after `d` without an acknowledged record (default [`GIVE_UP_AFTER`]).
    pub fn give_up_after(mut self, d: Duration) -> Self {
        self.give_up_after = d;
        self
    }

    /// What the writer did so far.
    pub fn stats(&self) -> WriterStats {
        self.stats
    }

    /// Queues a record; sends requests while too many are queued.
    ///
    /// # Errors
    /// A record over Kinesis's 1 MiB limit, a call that cannot succeed, or throttling
    /// that does not let up.
    pub async fn send(&mut self, key: &str, data: Vec<u8>) -> Result<(), KinesisError> {
        if key.is_empty() || key.len() > 256 {
            return Err(KinesisError::InvalidRecord(format!(
                "partition key must be 1 to 256 characters, got {}",
                key.len()
            )));
        }
        if key.len() + data.len() > MAX_RECORD_BYTES {
            return Err(KinesisError::InvalidRecord(format!(
                "record of {} bytes is over Kinesis's 1 MiB limit",
                key.len() + data.len()
            )));
        }
        self.pending.push_back(Pending {
            key: key.to_owned(),
            data,
        });
        while self.pending.len() >= HIGH_WATER {
            self.put_once().await?;
        }
        Ok(())
    }

    /// Sends everything queued.
    ///
    /// # Errors
    /// As [`RecordWriter::send`].
    pub async fn flush(&mut self) -> Result<(), KinesisError> {
        while !self.pending.is_empty() {
            self.put_once().await?;
        }
        Ok(())
    }

    /// One PutRecords request; acknowledged records leave the queue.
    async fn put_once(&mut self) -> Result<(), KinesisError> {
        let plan = self.plan();
        let entries = plan
            .iter()
            .map(|request| {
                PutRecordsRequestEntry::builder()
                    .partition_key(&request.key)
                    .data(Blob::new(request.data.clone()))
                    .build()
                    .map_err(|e| KinesisError::InvalidRecord(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.stats.requests += 1;
        let response = loop {
            match self
                .client
                .put_records()
                .stream_name(&self.stream)
                .set_records(Some(entries.clone()))
                .send()
                .await
            {
                Ok(out) => break out,
                Err(e) => {
                    let e = KinesisError::from_sdk("PutRecords", &self.stream, e);
                    match e.retry() {
                        Retry::Throttled | Retry::Transient => {
                            if e.retry() == Retry::Throttled {
                                self.stats.throttles += 1;
                            }
                            self.futile_check(&e.to_string())?;
                            self.stats.retries += entries.len() as u64;
                            tokio::time::sleep(self.backoff.next_delay()).await;
                        }
                        _ => return Err(e),
                    }
                }
            }
        };
        let mut acknowledged: Vec<usize> = Vec::new();
        let mut failed = 0usize;
        let mut last_code = String::new();
        for (request, result) in plan.iter().zip(response.records()) {
            match result.error_code() {
                None => acknowledged.extend_from_slice(&request.members),
                Some(code) => {
                    failed += 1;
                    code.clone_into(&mut last_code);
                    if crate::error::classify(code) == Retry::Throttled {
                        self.stats.throttles += 1;
                    }
                }
            }
        }
        acknowledged.sort_unstable();
        for &i in acknowledged.iter().rev() {
            if let Some(p) = self.pending.remove(i) {
                self.stats.records += 1;
                self.stats.bytes += p.data.len() as u64;
            }
        }
        if acknowledged.is_empty() {
            self.futile_check(&format!("every record failed, e.g. {last_code}"))?;
        } else {
            self.futile = 0;
            self.futile_since = None;
        }
        if failed > 0 {
            self.stats.retries += failed as u64;
            tokio::time::sleep(self.backoff.next_delay()).await;
        } else {
            self.backoff.reset();
        }
        Ok(())
    }

    /// Counts an attempt that acknowledged nothing: warns (at most every 5 s), and gives
    /// up after [`MAX_FUTILE_ATTEMPTS`] of them or after its give-up time.
    fn futile_check(&mut self, error: &str) -> Result<(), KinesisError> {
        self.futile += 1;
        let since = *self
            .futile_since
            .get_or_insert_with(std::time::Instant::now);
        let elapsed = since.elapsed();
        if self.futile >= MAX_FUTILE_ATTEMPTS || elapsed >= self.give_up_after {
            return Err(KinesisError::GaveUp {
                stream: self.stream.clone(),
                attempts: self.futile,
                seconds: elapsed.as_secs(),
                last: error.to_owned(),
            });
        }
        let now_ms = i64::try_from(self.created.elapsed().as_millis()).unwrap_or(i64::MAX);
        if let Some(held_back) = self.warnings.allow(now_ms) {
            tracing::warn!(
                stream = %self.stream,
                attempts = self.futile,
                more_since_last = held_back,
                %error,
                "Writing to the stream failed; retrying (gives up after {} s without progress).",
                self.give_up_after.as_secs()
            );
        }
        Ok(())
    }

    /// The Kinesis records of the next request: at most one per partition key, each
    /// with the queue positions of the user records it carries.
    fn plan(&self) -> Vec<Planned> {
        let mut keys: HashSet<&str> = HashSet::new();
        let mut plan: Vec<Planned> = Vec::new();
        let mut bytes = 0usize;
        if self.aggregate {
            // One aggregated record per key, gathering the key's queued records in order
            // while they fit; a key that stops fitting is closed for this request, so
            // its later records wait behind the one that did not fit.
            let mut slots: HashMap<&str, usize> = HashMap::new();
            let mut aggregators: Vec<Aggregator> = Vec::new();
            for (i, p) in self.pending.iter().enumerate() {
                if keys.contains(p.key.as_str()) {
                    continue;
                }
                let size = p.key.len() + p.data.len() + 16;
                let slot = match slots.get(p.key.as_str()) {
                    Some(&slot) => slot,
                    None if plan.len() == MAX_REQUEST_RECORDS => {
                        keys.insert(&p.key);
                        continue;
                    }
                    None => {
                        slots.insert(&p.key, plan.len());
                        plan.push(Planned {
                            key: p.key.clone(),
                            data: Vec::new(),
                            members: Vec::new(),
                        });
                        aggregators.push(Aggregator::default());
                        plan.len() - 1
                    }
                };
                if aggregators[slot].size() + size > MAX_RECORD_BYTES
                    || bytes + size > MAX_REQUEST_BYTES
                {
                    keys.insert(&p.key);
                    continue;
                }
                aggregators[slot].push(&p.key, &p.data);
                bytes += size;
                plan[slot].members.push(i);
            }
            for (planned, agg) in plan.iter_mut().zip(aggregators.iter_mut()) {
                planned.data = agg.finish();
            }
            plan.retain(|p| !p.members.is_empty());
            return plan;
        }
        for (i, p) in self.pending.iter().enumerate() {
            if !keys.insert(&p.key) {
                continue;
            }
            let size = p.key.len() + p.data.len();
            if plan.len() == MAX_REQUEST_RECORDS || bytes + size > MAX_REQUEST_BYTES {
                break;
            }
            bytes += size;
            plan.push(Planned {
                key: p.key.clone(),
                data: p.data.clone(),
                members: vec![i],
            });
        }
        plan
    }
}

/// One Kinesis record of a request and the queue positions it acknowledges.
struct Planned {
    key: String,
    data: Vec<u8>,
    members: Vec<usize>,
}
