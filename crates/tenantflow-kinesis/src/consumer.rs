//! Reading a whole stream: every shard, in lineage order, by GetRecords polling.
//!
//! A coordinator discovers shards (ListShards, at start, every
//! [`ConsumerConfig::discovery_interval`] and whenever a shard ends) and starts a reader
//! task per shard once all of that shard's parents have been read to their end. A
//! parent's last batch is in the channel before its child's first, so a tenant's
//! records keep their order across splits and merges.
//!
//! A shard reader polls GetRecords at most five times a second (the per-shard limit),
//! backs off when the shard is idle, backs off exponentially with jitter when
//! throttled, and on an expired iterator gets a new one after the last sequence number
//! it read. A shard ends when GetRecords returns no next iterator, or (for servers that
//! never end a closed shard, as moto) when the shard has an ending sequence number and
//! the reader has caught up.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::ShardIteratorType;
use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::backoff::Backoff;
use crate::error::{KinesisError, Retry};
use crate::kpl;
use crate::lineage::{ShardLineage, StartAt};
use crate::shards::{ShardInfo, list_shards};

/// Where reading starts in shards that exist when the consumer starts. Shards created
/// later (children of a split or merge) are always read from their start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartPosition {
    /// The oldest record kept.
    TrimHorizon,
    /// Only records written after the start.
    Latest,
    /// Records written at or after this time (epoch milliseconds).
    AtTimestamp(i64),
    /// After recorded positions (a checkpoint): shard id → last sequence number read.
    /// Shards not listed start at their oldest record.
    After(HashMap<String, String>),
}

/// The position of a record: shard, sequence number, and for a record inside a KPL
/// aggregate, its index there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPosition {
    /// The shard.
    pub shard_id: Arc<str>,
    /// The Kinesis record's sequence number.
    pub sequence: Arc<str>,
    /// Index in the KPL aggregate, if the record was aggregated.
    pub sub_sequence: Option<u32>,
}

/// One user record read from the stream.
#[derive(Debug, Clone)]
pub struct ConsumedRecord {
    /// The payload.
    pub data: Bytes,
    /// ApproximateArrivalTimestamp, epoch milliseconds.
    pub arrival_ms: i64,
    /// The partition key it was put with (a KPL sub-record's own).
    pub partition_key: Arc<str>,
    /// Where it was read.
    pub position: ShardPosition,
}

/// Records of one GetRecords call, in order.
#[derive(Debug, Clone)]
pub struct RecordBatch {
    /// The shard.
    pub shard_id: Arc<str>,
    /// The records.
    pub records: Vec<ConsumedRecord>,
    /// The shard has been read to its end: this batch (with no records) is its last.
    pub end_of_shard: bool,
}

/// How to read a stream.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// The stream.
    pub stream: String,
    /// Where to start.
    pub start: StartPosition,
    /// Stop once no shard has had anything to read for this long.
    pub exit_when_idle: Option<Duration>,
    /// How often shards are re-discovered.
    pub discovery_interval: Duration,
    /// Records per GetRecords call (at most 10,000).
    pub limit: i32,
    /// Read with enhanced fan-out as this registered consumer (registered if needed)
    /// instead of polling.
    pub fan_out: Option<String>,
    /// Shards already read to their end (from a checkpoint): not read again, and their
    /// children are not held back.
    pub finished: HashSet<String>,
    /// Where each shard's `MillisBehindLatest` is reported.
    pub lags: crate::lag::ShardLags,
    /// Only these shards (a worker's leases), not their children; the consumer ends
    /// once each was read to its end. `None`: every shard, in lineage order.
    pub only: Option<HashSet<String>>,
}

impl ConsumerConfig {
    /// Defaults for `stream`: from the oldest record, no idle exit, discovery every 10 s.
    pub fn new(stream: &str) -> Self {
        Self {
            stream: stream.to_owned(),
            start: StartPosition::TrimHorizon,
            exit_when_idle: None,
            discovery_interval: Duration::from_secs(10),
            limit: 10_000,
            fan_out: None,
            finished: HashSet::new(),
            lags: crate::lag::ShardLags::default(),
            only: None,
        }
    }
}

/// What the consumer did.
#[derive(Debug, Clone, Default)]
pub struct ConsumerStats {
    /// User records delivered.
    pub records: u64,
    /// Shards read to their end.
    pub shards_finished: u64,
    /// GetRecords calls made.
    pub calls: u64,
    /// Throttled calls.
    pub throttles: u64,
    /// Iterators that expired and were renewed.
    pub expired_iterators: u64,
}

#[derive(Default)]
struct Counters {
    records: AtomicU64,
    calls: AtomicU64,
    throttles: AtomicU64,
    expired: AtomicU64,
    /// Milliseconds since the consumer started of the last sign of data.
    last_activity_ms: AtomicU64,
    /// Batches being handed over (a reader blocked by backpressure is not idle).
    sending: AtomicU64,
    /// Shards whose last successful GetRecords was not caught up (or that have not had
    /// one yet). Throttled or failed calls leave a shard's state as it was: they say
    /// nothing about whether it has data.
    not_caught_up: AtomicU64,
}

/// Failed calls in a row (connection refused, timeouts, 5xx) after which a shard reader
/// gives up and the run fails; with back-off up to 10 s, about four minutes.
const MAX_TRANSIENT_FAILURES: u32 = 30;

/// How often a caught-up fan-out subscription looks whether its shard was closed.
const CLOSED_CHECK: Duration = Duration::from_secs(2);

/// Per-shard polling pace.
const MIN_POLL: Duration = Duration::from_millis(200);
const MAX_IDLE_POLL: Duration = Duration::from_secs(1);

/// Reads the stream until it is idle for `exit_when_idle`, `stop` turns true, or an
/// error that retrying cannot fix. Batches go to `out` in lineage order per shard.
///
/// # Errors
/// A call that cannot succeed (missing stream, bad credentials, ...).
pub async fn consume(
    client: Client,
    config: ConsumerConfig,
    out: mpsc::Sender<RecordBatch>,
    mut stop: watch::Receiver<bool>,
) -> Result<ConsumerStats, KinesisError> {
    let started = Instant::now();
    let counters = Arc::new(Counters::default());
    let consumer_arn: Option<Arc<str>> = match &config.fan_out {
        Some(name) => Some(Arc::from(
            crate::fan_out::register(&client, &config.stream, name).await?,
        )),
        None => None,
    };
    let mut lineage = ShardLineage::new(config.finished.clone());
    if let Some(only) = &config.only {
        lineage = lineage.only(only.clone());
    }
    let reader = Readers {
        client: &client,
        config: &config,
        consumer_arn: consumer_arn.as_ref(),
        out: &out,
        counters: &counters,
        started,
    };
    let mut tasks: JoinSet<Result<String, KinesisError>> = JoinSet::new();
    let mut discovery = tokio::time::interval(config.discovery_interval);
    discovery.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut idle_check = tokio::time::interval(Duration::from_millis(100));
    idle_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut stats = ConsumerStats::default();
    loop {
        tokio::select! {
            // Cancel safety: `interval::tick`, `watch::changed` and `JoinSet::join_next`
            // are cancel-safe; nothing is lost when another arm wins.
            _ = discovery.tick() => {
                if lineage.all_ended() {
                    break;
                }
                lineage.listed(list_shards(&client, &config.stream).await?);
                for (shard, at) in lineage.ready() {
                    tasks.spawn(reader.start(shard, at));
                }
            }
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                let shard_id = match done {
                    Ok(Ok(id)) => id,
                    Ok(Err(e)) => return Err(e),
                    Err(join) => return Err(KinesisError::InvalidRecord(format!("shard reader failed: {join}"))),
                };
                tracing::debug!(stream = %config.stream, shard = %shard_id, "Shard read to its end.");
                lineage.finished(&shard_id);
                stats.shards_finished += 1;
                if lineage.all_ended() {
                    tracing::info!(stream = %config.stream, "Every leased shard read to its end.");
                    break;
                }
                // Children appear in ListShards when their parents close: look now, and
                // start them before the idle check can see a moment with nothing running.
                lineage.listed(list_shards(&client, &config.stream).await?);
                for (shard, at) in lineage.ready() {
                    tasks.spawn(reader.start(shard, at));
                }
            }
            _ = idle_check.tick() => {
                if let Some(limit) = config.exit_when_idle {
                    let now = started.elapsed().as_millis() as u64;
                    let last = counters.last_activity_ms.load(Ordering::Relaxed);
                    let busy = counters.sending.load(Ordering::Relaxed) + counters.not_caught_up.load(Ordering::Relaxed);
                    if lineage.listed_once() && busy == 0 && now.saturating_sub(last) >= limit.as_millis() as u64 {
                        tracing::info!(stream = %config.stream, "Every shard idle; stopping.");
                        break;
                    }
                }
            }
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
            }
        }
    }
    tasks.abort_all();
    stats.records = counters.records.load(Ordering::Relaxed);
    stats.calls = counters.calls.load(Ordering::Relaxed);
    stats.throttles = counters.throttles.load(Ordering::Relaxed);
    stats.expired_iterators = counters.expired.load(Ordering::Relaxed);
    Ok(stats)
}

/// What every shard reader of a consumer shares; [`Readers::start`] makes one.
struct Readers<'a> {
    client: &'a Client,
    config: &'a ConsumerConfig,
    consumer_arn: Option<&'a Arc<str>>,
    out: &'a mpsc::Sender<RecordBatch>,
    counters: &'a Arc<Counters>,
    started: Instant,
}

impl Readers<'_> {
    /// The reading of `shard` from `at`, to spawn.
    fn start(
        &self,
        shard: ShardInfo,
        at: StartAt,
    ) -> impl std::future::Future<Output = Result<String, KinesisError>> + use<> {
        let start = match at {
            StartAt::Configured => self.config.start.clone(),
            StartAt::TrimHorizon => StartPosition::TrimHorizon,
        };
        tracing::debug!(stream = %self.config.stream, shard = %shard.id, "Reading shard.");
        // Counted as not caught up from now, not from when the task first runs.
        self.counters.not_caught_up.fetch_add(1, Ordering::Relaxed);
        let reader = ShardReader {
            client: self.client.clone(),
            stream: self.config.stream.clone(),
            shard_id: Arc::from(shard.id.as_str()),
            shard,
            limit: self.config.limit,
            consumer_arn: self.consumer_arn.cloned(),
            out: self.out.clone(),
            counters: Arc::clone(self.counters),
            started: self.started,
            lags: self.config.lags.clone(),
        };
        reader.run(start)
    }
}

struct ShardReader {
    client: Client,
    stream: String,
    shard: ShardInfo,
    shard_id: Arc<str>,
    limit: i32,
    consumer_arn: Option<Arc<str>>,
    out: mpsc::Sender<RecordBatch>,
    counters: Arc<Counters>,
    started: Instant,
    lags: crate::lag::ShardLags,
}

impl ShardReader {
    async fn run(self, start: StartPosition) -> Result<String, KinesisError> {
        let mut caught_up = CaughtUp::new(&self.counters);
        let result = match self.consumer_arn.clone() {
            Some(arn) => self.read_fan_out(&arn, start, &mut caught_up).await,
            None => self.read(start, &mut caught_up).await,
        };
        drop(caught_up);
        if result.is_ok() {
            self.lags.ended(&self.shard_id);
            // The shard's end, after its last records: a checkpoint records it as
            // finished, so that a restarted job goes on with its children.
            let end = RecordBatch {
                shard_id: Arc::clone(&self.shard_id),
                records: Vec::new(),
                end_of_shard: true,
            };
            let _ = self.out.send(end).await;
        }
        result
    }

    async fn read(
        &self,
        start: StartPosition,
        caught_up: &mut CaughtUp<'_>,
    ) -> Result<String, KinesisError> {
        let mut last_sequence: Option<String> = match &start {
            StartPosition::After(positions) => positions.get(&self.shard.id).cloned(),
            _ => None,
        };
        let mut iterator = self.iterator(&start, last_sequence.as_deref()).await?;
        let mut backoff = Backoff::new(
            Duration::from_millis(200),
            Duration::from_secs(10),
            hash(&self.shard.id),
        );
        let mut idle_poll = MIN_POLL;
        let mut failures = 0u32;
        loop {
            let call_started = Instant::now();
            self.counters.calls.fetch_add(1, Ordering::Relaxed);
            let result = self
                .client
                .get_records()
                .shard_iterator(&iterator)
                .limit(self.limit)
                .send()
                .await;
            let out = match result {
                Ok(out) => out,
                Err(e) => {
                    let e = KinesisError::from_sdk("GetRecords", &self.stream, e);
                    match e.retry() {
                        Retry::Throttled => {
                            self.counters.throttles.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(backoff.next_delay()).await;
                        }
                        Retry::Transient => {
                            failures += 1;
                            if failures > MAX_TRANSIENT_FAILURES {
                                return Err(e);
                            }
                            tracing::warn!(error = %e, shard = %self.shard.id, failures, "GetRecords failed; retrying.");
                            tokio::time::sleep(backoff.next_delay()).await;
                        }
                        Retry::ExpiredIterator => {
                            self.counters.expired.fetch_add(1, Ordering::Relaxed);
                            let resume = match &last_sequence {
                                Some(_) => StartPosition::After(HashMap::new()),
                                None => start.clone(),
                            };
                            iterator = self.iterator(&resume, last_sequence.as_deref()).await?;
                        }
                        Retry::Never => return Err(e),
                    }
                    continue;
                }
            };
            backoff.reset();
            failures = 0;
            let behind = out.millis_behind_latest().unwrap_or(0);
            self.lags.set(&self.shard_id, behind);
            let records = out.records();
            caught_up.set(records.is_empty() && behind == 0);
            if !records.is_empty() {
                let batch = self.batch(records);
                if let Some(last) = records.last() {
                    last_sequence = Some(last.sequence_number().to_owned());
                }
                self.counters
                    .records
                    .fetch_add(batch.records.len() as u64, Ordering::Relaxed);
                self.touch();
                self.counters.sending.fetch_add(1, Ordering::Relaxed);
                let sent = self.out.send(batch).await;
                self.counters.sending.fetch_sub(1, Ordering::Relaxed);
                self.touch();
                if sent.is_err() {
                    return Ok(self.shard.id.clone()); // the job is stopping
                }
            } else if behind > 0 {
                self.touch();
            }
            let caught_up_on_closed =
                records.is_empty() && behind == 0 && self.shard.ending_sequence.is_some();
            match out.next_shard_iterator() {
                Some(next) if !caught_up_on_closed => iterator = next.to_owned(),
                _ => return Ok(self.shard.id.clone()),
            }
            let pause = if records.is_empty() && behind == 0 {
                let pause = idle_poll;
                idle_poll = (idle_poll * 2).min(MAX_IDLE_POLL);
                pause
            } else {
                idle_poll = MIN_POLL;
                MIN_POLL
            };
            tokio::time::sleep(pause.saturating_sub(call_started.elapsed())).await;
        }
    }

    /// Enhanced fan-out: SubscribeToShard, re-subscribed from the last continuation
    /// sequence number when a subscription ends (the service ends each after 5 minutes;
    /// we also do after 5 minutes, for servers that do not) or fails.
    async fn read_fan_out(
        &self,
        consumer_arn: &str,
        start: StartPosition,
        caught_up: &mut CaughtUp<'_>,
    ) -> Result<String, KinesisError> {
        use aws_sdk_kinesis::types::{StartingPosition, SubscribeToShardEventStream};
        const SUBSCRIPTION: Duration = Duration::from_secs(300);
        let mut continuation: Option<String> = match &start {
            StartPosition::After(positions) => positions.get(&self.shard.id).cloned(),
            _ => None,
        };
        let mut backoff = Backoff::new(
            Duration::from_millis(200),
            Duration::from_secs(10),
            hash(&self.shard.id),
        );
        let mut last_closed_check = Instant::now();
        let mut subscribe_failures = 0u32;
        loop {
            let position = match (&continuation, &start) {
                (Some(seq), _) => StartingPosition::builder()
                    .r#type(ShardIteratorType::AfterSequenceNumber)
                    .sequence_number(seq),
                (None, StartPosition::Latest) => {
                    StartingPosition::builder().r#type(ShardIteratorType::Latest)
                }
                (None, StartPosition::AtTimestamp(ms)) => StartingPosition::builder()
                    .r#type(ShardIteratorType::AtTimestamp)
                    .timestamp(DateTime::from_millis(*ms)),
                (None, _) => StartingPosition::builder().r#type(ShardIteratorType::TrimHorizon),
            }
            .build()
            .map_err(|e| KinesisError::InvalidRecord(e.to_string()))?;
            let subscribed = self
                .client
                .subscribe_to_shard()
                .consumer_arn(consumer_arn)
                .shard_id(&self.shard.id)
                .starting_position(position)
                .send()
                .await;
            let mut subscription = match subscribed {
                Ok(out) => out,
                Err(e) => {
                    let e = KinesisError::from_sdk("SubscribeToShard", &self.stream, e);
                    // ResourceInUse: the previous subscription is still closing.
                    if e.retry() == Retry::Never && e.code() != Some("ResourceInUseException") {
                        return Err(e);
                    }
                    if e.retry() == Retry::Throttled {
                        self.counters.throttles.fetch_add(1, Ordering::Relaxed);
                    } else {
                        subscribe_failures += 1;
                        if subscribe_failures > MAX_TRANSIENT_FAILURES {
                            return Err(e);
                        }
                    }
                    tokio::time::sleep(backoff.next_delay()).await;
                    continue;
                }
            };
            subscribe_failures = 0;
            let deadline = tokio::time::Instant::now() + SUBSCRIPTION;
            loop {
                let event = match tokio::time::timeout_at(
                    deadline,
                    subscription.event_stream.recv(),
                )
                .await
                {
                    Err(_) => break, // re-subscribe
                    Ok(Ok(Some(event))) => event,
                    Ok(Ok(None)) => break,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, shard = %self.shard.id, "Subscription failed; re-subscribing.");
                        tokio::time::sleep(backoff.next_delay()).await;
                        break;
                    }
                };
                backoff.reset();
                let SubscribeToShardEventStream::SubscribeToShardEvent(event) = event else {
                    continue;
                };
                let records = event.records();
                self.lags.set(&self.shard_id, event.millis_behind_latest());
                let now_caught_up = records.is_empty() && event.millis_behind_latest() == 0;
                caught_up.set(now_caught_up);
                if !records.is_empty() {
                    let batch = self.batch(records);
                    self.counters
                        .records
                        .fetch_add(batch.records.len() as u64, Ordering::Relaxed);
                    self.touch();
                    self.counters.sending.fetch_add(1, Ordering::Relaxed);
                    let sent = self.out.send(batch).await;
                    self.counters.sending.fetch_sub(1, Ordering::Relaxed);
                    self.touch();
                    if sent.is_err() {
                        return Ok(self.shard.id.clone());
                    }
                } else if event.millis_behind_latest() > 0 {
                    self.touch();
                }
                let next = event.continuation_sequence_number();
                if !next.is_empty() {
                    continuation = Some(next.to_owned());
                }
                // Child shards come only with the shard's last event (its records, if any,
                // were handed over above).
                if !event.child_shards().is_empty() {
                    return Ok(self.shard.id.clone());
                }
                // Not every server sends that last event: once caught up, look whether the
                // shard was closed, and if so finish it by polling, which sees its end.
                if now_caught_up && last_closed_check.elapsed() >= CLOSED_CHECK {
                    last_closed_check = Instant::now();
                    if self.is_closed().await? {
                        let resume = match &continuation {
                            Some(seq) => StartPosition::After(HashMap::from([(
                                self.shard.id.clone(),
                                seq.clone(),
                            )])),
                            None => start.clone(),
                        };
                        return self.read(resume, caught_up).await;
                    }
                }
            }
        }
    }

    /// Whether ListShards now shows this shard closed (with an ending sequence number).
    async fn is_closed(&self) -> Result<bool, KinesisError> {
        if self.shard.ending_sequence.is_some() {
            return Ok(true);
        }
        let shards = list_shards(&self.client, &self.stream).await?;
        Ok(shards
            .iter()
            .any(|s| s.id == self.shard.id && s.ending_sequence.is_some()))
    }

    fn touch(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        self.counters
            .last_activity_ms
            .fetch_max(now, Ordering::Relaxed);
    }

    async fn iterator(
        &self,
        start: &StartPosition,
        after: Option<&str>,
    ) -> Result<String, KinesisError> {
        let mut request = self
            .client
            .get_shard_iterator()
            .stream_name(&self.stream)
            .shard_id(&self.shard.id);
        request = match (start, after) {
            (_, Some(sequence)) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(sequence),
            (StartPosition::Latest, None) => request.shard_iterator_type(ShardIteratorType::Latest),
            (StartPosition::AtTimestamp(ms), None) => request
                .shard_iterator_type(ShardIteratorType::AtTimestamp)
                .timestamp(DateTime::from_millis(*ms)),
            (StartPosition::TrimHorizon | StartPosition::After(_), None) => {
                request.shard_iterator_type(ShardIteratorType::TrimHorizon)
            }
        };
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10), 1);
        let mut failures = 0u32;
        loop {
            match request.clone().send().await {
                Ok(out) => {
                    return out.shard_iterator().map(str::to_owned).ok_or_else(|| {
                        KinesisError::Call {
                            op: "GetShardIterator",
                            stream: self.stream.clone(),
                            code: "NoIterator".into(),
                            message: format!("no iterator for shard {}", self.shard.id),
                            retry: Retry::Never,
                        }
                    });
                }
                Err(e) => {
                    let e = KinesisError::from_sdk("GetShardIterator", &self.stream, e);
                    failures += 1;
                    match e.retry() {
                        Retry::Throttled | Retry::Transient
                            if failures <= MAX_TRANSIENT_FAILURES =>
                        {
                            tokio::time::sleep(backoff.next_delay()).await
                        }
                        _ => return Err(e),
                    }
                }
            }
        }
    }

    /// The user records of a GetRecords answer, KPL aggregates unpacked.
    fn batch(&self, records: &[aws_sdk_kinesis::types::Record]) -> RecordBatch {
        let mut out = Vec::with_capacity(records.len());
        for r in records {
            let arrival_ms = r
                .approximate_arrival_timestamp()
                .and_then(|t| t.to_millis().ok())
                .unwrap_or(0);
            let sequence: Arc<str> = Arc::from(r.sequence_number());
            let data = r.data().as_ref();
            match kpl::deaggregate(data) {
                Some(Ok(subs)) => {
                    for (i, sub) in subs.into_iter().enumerate() {
                        out.push(ConsumedRecord {
                            data: Bytes::copy_from_slice(sub.data),
                            arrival_ms,
                            partition_key: Arc::from(sub.partition_key),
                            position: ShardPosition {
                                shard_id: Arc::clone(&self.shard_id),
                                sequence: Arc::clone(&sequence),
                                sub_sequence: Some(u32::try_from(i).unwrap_or(u32::MAX)),
                            },
                        });
                    }
                }
                Some(Err(e)) => {
                    // Delivered as is: the decoder makes it a dead letter with the record.
                    tracing::warn!(%e, shard = %self.shard.id, "Malformed KPL aggregate.");
                    out.push(self.plain(r, arrival_ms, sequence));
                }
                None => out.push(self.plain(r, arrival_ms, sequence)),
            }
        }
        RecordBatch {
            shard_id: Arc::clone(&self.shard_id),
            records: out,
            end_of_shard: false,
        }
    }

    fn plain(
        &self,
        record: &aws_sdk_kinesis::types::Record,
        arrival_ms: i64,
        sequence: Arc<str>,
    ) -> ConsumedRecord {
        ConsumedRecord {
            data: Bytes::copy_from_slice(record.data().as_ref()),
            arrival_ms,
            partition_key: Arc::from(record.partition_key()),
            position: ShardPosition {
                shard_id: Arc::clone(&self.shard_id),
                sequence,
                sub_sequence: None,
            },
        }
    }
}

/// A shard's part in [`Counters::not_caught_up`]; gives it back when dropped (the shard
/// ended, or its task was stopped).
struct CaughtUp<'a> {
    counters: &'a Counters,
    caught_up: bool,
}

impl<'a> CaughtUp<'a> {
    /// Takes over the count made when the shard's task was spawned.
    fn new(counters: &'a Counters) -> Self {
        Self {
            counters,
            caught_up: false,
        }
    }

    fn set(&mut self, caught_up: bool) {
        if caught_up != self.caught_up {
            if caught_up {
                self.counters.not_caught_up.fetch_sub(1, Ordering::Relaxed);
            } else {
                self.counters.not_caught_up.fetch_add(1, Ordering::Relaxed);
            }
            self.caught_up = caught_up;
        }
    }
}

impl Drop for CaughtUp<'_> {
    fn drop(&mut self) {
        self.set(true);
    }
}

fn hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x1000_0000_01b3)
    })
}
