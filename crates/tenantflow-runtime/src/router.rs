//! Decoding records and routing them to the keyed workers: one `Router` per thread that
//! produces records (the file reader, each stream's thread).

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;

use crossbeam_channel::Sender as WorkerSender;

use tenantflow_core::batch::Position;
use tenantflow_core::clock::now_ms;
use tenantflow_core::dead_letter::Redriven;
use tenantflow_core::decode::Decoder;
use tenantflow_core::partition::worker_for;
use tenantflow_core::time::EventTimeBounds;
use tenantflow_core::{Batch, DeadLetter, DeadLetterReason, Record};
use tenantflow_sinks::dead_letter::DeadLetterSink;
use tenantflow_sources::InputFormat;

use crate::checkpoint::gate::{Gate, SourcePart};
use crate::checkpoint::manifest::{CheckpointStore, FilesPosition, StreamPosition};
use crate::error::RunError;
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::worker::WorkerMessage;

/// Records per batch.
pub(crate) const BATCH_RECORDS: usize = 4096;
/// Arena bytes after which a batch is sent even if it has fewer records.
const BATCH_ARENA_BYTES: usize = 1 << 20;

/// Where a record comes from, for batches and dead letters.
pub(crate) struct Origin<'a> {
    /// Index of the input in the job's list of sources.
    pub(crate) source: u32,
    /// Its name: a path, `-`, `generator`, `kinesis://…`.
    pub(crate) name: &'a str,
    /// Line number, for inputs with lines.
    pub(crate) line: Option<u64>,
    /// Shard, sequence number and index in a KPL aggregate, for stream records.
    pub(crate) shard: Option<(&'a str, &'a str, Option<u32>)>,
    /// The partition key, for stream records.
    pub(crate) partition_key: Option<&'a str>,
}

/// Which tenants' records a source routes, in a job that holds a shard's lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyRule {
    /// Every record (a job without leases).
    #[default]
    All,
    /// The leased stream: a record must be keyed by its tenant (its partition key is its
    /// `companyID`), else it is a dead letter `not_keyed_by_tenant`.
    KeyedByTenant,
    /// A stream read in full (`companies`): only the tenants whose hash key the shard's
    /// range holds; the others are counted and left to their own shard's job.
    InRange(tenantflow_kinesis::hash_key::HashRange),
}

/// What a source thread shares with the others: the job's counters, the stop flag,
/// the checkpoint gate and store.
#[derive(Clone, Copy)]
pub(crate) struct SourceContext<'a> {
    pub(crate) metrics: &'a Metrics,
    pub(crate) stop: &'a AtomicBool,
    pub(crate) gate: &'a Gate,
    pub(crate) checkpoints: &'a CheckpointStore,
    /// The event times the job accepts.
    pub(crate) event_time: EventTimeBounds,
}

/// What a job event without `creationDate` becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MissingEventTime {
    /// It takes its arrival time (stream records: Kinesis' arrival timestamp; files:
    /// only when the user asks for it).
    #[serde(rename = "arrival")]
    ArrivalTime,
    /// It is a dead letter `missing_event_time` (files, by default: a replayed file
    /// read today is not today's events).
    #[serde(rename = "reject")]
    DeadLetter,
}

pub(crate) struct Router<'a> {
    batches: Vec<Batch>,
    workers: Vec<WorkerSender<WorkerMessage>>,
    recycled: Option<Receiver<Batch>>,
    dead_letters: DeadLetterSink,
    local: MetricsSnapshot,
    context: SourceContext<'a>,
    metrics: &'a Metrics,
    /// This source's index at the gate, and its stage name.
    source: usize,
    stage: String,
    /// Records read by this stage, for the metrics.
    stage_records: std::sync::Arc<std::sync::atomic::AtomicU64>,
    last_arrived: u64,
    left: bool,
    missing_event_time: MissingEventTime,
    key_rule: KeyRule,
    /// The latest accepted event time, from the wall clock when last read (read again
    /// only when an event is past it, so the clock is not read per record).
    max_event_ms: i64,
}

impl<'a> Router<'a> {
    pub(crate) fn new(
        workers: Vec<WorkerSender<WorkerMessage>>,
        recycled: Option<Receiver<Batch>>,
        dead_letters: DeadLetterSink,
        context: SourceContext<'a>,
        source: usize,
        stage: &str,
        missing_event_time: MissingEventTime,
    ) -> Self {
        Self {
            missing_event_time,
            key_rule: KeyRule::All,
            max_event_ms: context.event_time.max_ms(now_ms()),
            batches: (0..workers.len())
                .map(|_| Batch::with_capacity(BATCH_RECORDS))
                .collect(),
            workers,
            recycled,
            dead_letters,
            local: MetricsSnapshot::default(),
            context,
            metrics: context.metrics,
            source,
            stage: stage.to_owned(),
            stage_records: context.metrics.status.stage_counter(stage),
            last_arrived: 0,
            left: false,
        }
    }

    /// Routes only the records `rule` lets through.
    pub(crate) fn with_key_rule(mut self, rule: KeyRule) -> Self {
        self.key_rule = rule;
        self
    }

    /// Adds the local counts to the job's (and this stage's records read to its own).
    fn publish(&mut self) {
        self.stage_records
            .fetch_add(self.local.lines_read, Ordering::Relaxed);
        self.metrics.publish(&mut self.local);
    }

    /// The checkpoint this source must stop for now, if any.
    pub(crate) fn checkpoint_due(&self) -> Option<u64> {
        let requested = self.context.gate.requested();
        (requested > self.last_arrived).then_some(requested)
    }

    /// Arrives at checkpoint `n`'s barrier at the given position: sends the partial
    /// batches, makes the dead letters durable, and waits at the gate.
    pub(crate) fn arrive(
        &mut self,
        n: u64,
        files: Option<FilesPosition>,
        stream: Option<(String, StreamPosition)>,
    ) -> Result<(), RunError> {
        self.flush_partial()?;
        self.publish();
        let tails = self.context.checkpoints.checkpoint_folder(n).child("tails");
        let (dead_letters, pending) = self.dead_letters.checkpoint(&tails, now_ms())?;
        self.last_arrived = n;
        let part = SourcePart {
            stage: self.stage.clone(),
            files,
            stream,
            dead_letters,
            pending,
        };
        if self.context.gate.arrive(self.source, n, part) {
            Ok(())
        } else {
            Err(RunError::Aborted)
        }
    }

    /// True once the job was asked to stop (Ctrl-C, SIGTERM).
    pub(crate) fn stopping(&self) -> bool {
        self.context.stop.load(Ordering::Relaxed)
    }

    /// Decodes one record and routes it, or makes it a dead letter. `arrival_ms` is the
    /// event time of a job event that carries none.
    pub(crate) fn record(
        &mut self,
        bytes: &[u8],
        format: InputFormat,
        decoder: Decoder,
        arrival_ms: i64,
        origin: &Origin<'_>,
    ) -> Result<(), RunError> {
        self.local.lines_read += 1;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            self.local.empty_lines += 1;
            return Ok(());
        }
        // A dead letter read again: its record, read as a stream record is.
        let redriven;
        let (bytes, format, first_line) = match format {
            InputFormat::DeadLetters => match Redriven::parse(bytes) {
                Ok(letter) => {
                    self.local.redriven += 1;
                    let format = InputFormat::of_redriven(&letter);
                    redriven = letter.record;
                    (&*redriven, format, false)
                }
                Err(e) => {
                    let error = format!("re-driving a dead letter: {e}");
                    return self.dead_letter(
                        DeadLetterReason::Malformed,
                        &error,
                        origin,
                        bytes,
                        None,
                    );
                }
            },
            other => (bytes, other, origin.line == Some(1)),
        };
        let decoded = match format {
            InputFormat::Csv => decoder.decode_csv(bytes, first_line),
            InputFormat::Ndjson | InputFormat::Auto | InputFormat::DeadLetters => {
                decoder.decode_json(bytes).map(Some)
            }
        };
        let mut record = match decoded {
            Ok(Some(record)) => record,
            Ok(None) => {
                self.local.header_lines += 1;
                return Ok(());
            }
            Err(e) => {
                return self.dead_letter(
                    DeadLetterReason::Malformed,
                    &e.to_string(),
                    origin,
                    bytes,
                    None,
                );
            }
        };
        match self.key_rule {
            KeyRule::All => {}
            KeyRule::KeyedByTenant => {
                let key = origin.partition_key.unwrap_or_default();
                if key != record.company_id() {
                    let error = format!(
                        "partition key {key:?} is not the record's companyID {:?}: with leases, \
                         a tenant's records must be put with its companyID as partition key \
                         (tenantflow repartition re-keys a stream)",
                        record.company_id()
                    );
                    return self.dead_letter(
                        DeadLetterReason::NotKeyedByTenant,
                        &error,
                        origin,
                        bytes,
                        None,
                    );
                }
            }
            KeyRule::InRange(range) => {
                if !range.holds(record.company_id()) {
                    self.local.other_shard_records += 1;
                    return Ok(());
                }
            }
        }
        match &mut record {
            Record::Job(job) => {
                self.local.job_events += 1;
                // Kept for the event's dead letter, should it become one in its worker.
                job.raw = std::str::from_utf8(bytes).ok().map(Cow::Borrowed);
                let event_ms = match (job.creation_date, self.missing_event_time) {
                    (Some(t), _) => t,
                    (None, MissingEventTime::ArrivalTime) => {
                        self.local.event_time_from_arrival += 1;
                        arrival_ms
                    }
                    (None, MissingEventTime::DeadLetter) => {
                        return self.dead_letter(
                            DeadLetterReason::MissingEventTime,
                            "job event without `creationDate` (or `ts`, `timestamp`); \
                             --missing-event-time arrival gives it the time it was read",
                            origin,
                            bytes,
                            None,
                        );
                    }
                };
                if let Err(e) = self.check_event_time(event_ms) {
                    return self.dead_letter(
                        DeadLetterReason::EventTimeOutOfRange,
                        &e.to_string(),
                        origin,
                        bytes,
                        None,
                    );
                }
            }
            Record::Company(_) => self.local.company_records += 1,
        }
        let worker = worker_for(record.company_id(), self.batches.len());
        let position = Position {
            source: origin.source,
            line: origin.line.unwrap_or(0),
        };
        let batch = &mut self.batches[worker];
        batch.push(&record, arrival_ms, position);
        if batch.len() >= BATCH_RECORDS || batch.arena_len() >= BATCH_ARENA_BYTES {
            self.send(worker)?;
        }
        Ok(())
    }

    /// Checks an event time against the job's bounds, reading the wall clock again only
    /// when the time is past the latest accepted one last read.
    fn check_event_time(
        &mut self,
        event_ms: i64,
    ) -> Result<(), tenantflow_core::time::EventTimeError> {
        if event_ms > self.max_event_ms {
            self.max_event_ms = self.context.event_time.max_ms(now_ms());
        }
        EventTimeBounds::check(event_ms, self.max_event_ms)
    }

    /// A record over the size limit: a dead letter with its first bytes.
    pub(crate) fn too_large(
        &mut self,
        prefix: &[u8],
        len: u64,
        max: usize,
        origin: &Origin<'_>,
    ) -> Result<(), RunError> {
        self.local.lines_read += 1;
        let error = format!("record of {len} bytes is over the limit of {max} bytes");
        self.dead_letter(
            DeadLetterReason::RecordTooLarge,
            &error,
            origin,
            prefix,
            Some(len),
        )
    }

    fn dead_letter(
        &mut self,
        reason: DeadLetterReason,
        error: &str,
        origin: &Origin<'_>,
        bytes: &[u8],
        truncated_from: Option<u64>,
    ) -> Result<(), RunError> {
        self.local.dead_letters[reason.index()] += 1;
        let record = String::from_utf8_lossy(bytes);
        let lossy = matches!(record, Cow::Owned(_));
        let sequence = origin.shard.map(|(_, seq, sub)| match sub {
            Some(i) => format!("{seq}/{i}"),
            None => seq.to_owned(),
        });
        self.dead_letters
            .write(&DeadLetter {
                reason,
                error,
                source: origin.name,
                line: origin.line,
                shard: origin.shard.map(|(shard, _, _)| shard),
                sequence: sequence.as_deref(),
                record: &record,
                record_lossy: lossy,
                record_bytes: lossy.then_some(bytes),
                record_truncated_from: truncated_from,
            })
            .map_err(RunError::Sink)
    }

    /// Sends worker `w`'s batch, replacing it with a recycled one when there is one.
    /// Blocks while the worker's channel is full: backpressure.
    fn send(&mut self, w: usize) -> Result<(), RunError> {
        let fresh = self
            .recycled
            .as_ref()
            .and_then(|r| r.try_recv().ok())
            .unwrap_or_else(|| Batch::with_capacity(BATCH_RECORDS));
        let full = std::mem::replace(&mut self.batches[w], fresh);
        self.publish();
        self.workers[w]
            .send(WorkerMessage::Batch(full))
            .map_err(|_| RunError::WorkerStopped(w))
    }

    /// Sends every non-empty batch now.
    pub(crate) fn flush_partial(&mut self) -> Result<(), RunError> {
        for worker in 0..self.batches.len() {
            if !self.batches[worker].is_empty() {
                self.send(worker)?;
            }
        }
        // Dead letters alone send no batch: their counts go out here.
        self.publish();
        Ok(())
    }

    /// Sends what is left, finishes the dead-letter file, and leaves the gate with the
    /// source's final position.
    pub(crate) fn finish(
        mut self,
        files: Option<FilesPosition>,
        stream: Option<(String, StreamPosition)>,
    ) -> Result<(), RunError> {
        self.flush_partial()?;
        self.publish();
        let (dead_letters, pending) = self.dead_letters.close()?;
        let part = SourcePart {
            stage: self.stage.clone(),
            files,
            stream,
            dead_letters,
            pending,
        };
        self.left = true;
        self.context.gate.leave(self.source, Some(part));
        Ok(())
    }
}

impl Drop for Router<'_> {
    fn drop(&mut self) {
        if !self.left {
            // Ended by an error: the job fails, and no checkpoint may count on this
            // source's position.
            self.context.gate.leave(self.source, None);
        }
    }
}

#[cfg(test)]
mod tests {
    //! The router's batching: by tenant, full batches at once, the rest at a barrier
    //! or the end; what it refuses goes to its dead letters, not to a worker.
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use tenantflow_core::decode::DefaultKind;
    use tenantflow_core::partition::worker_for;
    use tenantflow_sinks::store::MemoryStore;
    use tenantflow_sinks::upload::{Location, Staging};

    use super::*;

    const T0: i64 = 1_767_225_600_000;

    fn job(tenant: &str, user: usize) -> String {
        format!(
            r#"{{"type":"job","companyID":"{tenant}","userID":"u{user}","nbJobs":1,"creationDate":{T0}}}"#
        )
    }

    /// The records of the batches that reached each worker: `tenant@line`, in order.
    fn received(rx: &crossbeam_channel::Receiver<WorkerMessage>) -> (usize, Vec<String>) {
        let mut batches = 0;
        let mut records = Vec::new();
        for message in rx.try_iter() {
            if let WorkerMessage::Batch(batch) = message {
                batches += 1;
                for (record, position) in batch.iter() {
                    records.push(format!("{}@{}", record.company_id(), position.line));
                }
            }
        }
        (batches, records)
    }

    /// What a router under test shares with its job: a store, counters, a gate.
    struct Parts {
        root: Location,
        checkpoints: CheckpointStore,
        metrics: Metrics,
        stop: AtomicBool,
        gate: Gate,
    }

    impl Parts {
        fn new(sources: usize) -> Self {
            let root = Location::root(Arc::new(MemoryStore::new()));
            Self {
                checkpoints: CheckpointStore {
                    location: root.child("_checkpoints"),
                },
                root,
                metrics: Metrics::default(),
                stop: AtomicBool::new(false),
                gate: Gate::new(sources),
            }
        }

        fn context(&self) -> SourceContext<'_> {
            SourceContext {
                metrics: &self.metrics,
                stop: &self.stop,
                gate: &self.gate,
                checkpoints: &self.checkpoints,
                event_time: EventTimeBounds {
                    max_future_skew_ms: 86_400_000,
                },
            }
        }
    }

    #[test]
    fn records_go_to_their_tenants_worker_full_batches_at_once_the_rest_at_the_end() {
        let parts = Parts::new(1);
        let (root, checkpoints) = (&parts.root, &parts.checkpoints);
        let (metrics, gate) = (&parts.metrics, &parts.gate);
        let context = parts.context();
        let (tx0, rx0) = crossbeam_channel::unbounded();
        let (tx1, rx1) = crossbeam_channel::unbounded();
        let dead_letters = DeadLetterSink::new(
            root.child("_rejected"),
            Staging {
                location: checkpoints.location.clone(),
            },
            "reader",
        );
        let mut router = Router::new(
            vec![tx0, tx1],
            None,
            dead_letters,
            context,
            0,
            "reader",
            MissingEventTime::DeadLetter,
        );
        // Two tenants on different workers.
        let (a, b) = (
            "t-a",
            (0..100)
                .map(|i| format!("t-{i}"))
                .find(|t| worker_for(t, 2) != worker_for("t-a", 2))
                .unwrap(),
        );
        let decoder = Decoder::new(DefaultKind::Infer);
        let mut line = 0;
        let mut feed = |router: &mut Router<'_>, text: &str| {
            line += 1;
            let origin = Origin {
                source: 0,
                name: "in.ndjson",
                line: Some(line),
                shard: None,
                partition_key: None,
            };
            router
                .record(text.as_bytes(), InputFormat::Ndjson, decoder, T0, &origin)
                .unwrap();
        };
        for i in 0..BATCH_RECORDS {
            feed(&mut router, &job(a, i));
        }
        feed(&mut router, &job(&b, 0));
        feed(&mut router, "not json");
        feed(&mut router, "   ");
        feed(&mut router, &job(a, 1));
        let (wa, wb) = (worker_for(a, 2), worker_for(&b, 2));
        let rxs = [&rx0, &rx1];
        // A full batch goes at once; the others wait.
        let (batches, records) = received(rxs[wa]);
        assert_eq!((batches, records.len()), (1, BATCH_RECORDS));
        assert_eq!(records[0], format!("{a}@1"));
        assert_eq!(received(rxs[wb]).0, 0, "a partial batch waits");
        router.finish(None, None).unwrap();
        assert_eq!(received(rxs[wa]).1, [format!("{a}@{}", BATCH_RECORDS + 4)]);
        assert_eq!(received(rxs[wb]).1, [format!("{b}@{}", BATCH_RECORDS + 1)]);
        let m = metrics.snapshot();
        assert_eq!(m.lines_read, BATCH_RECORDS as u64 + 4);
        assert_eq!(m.empty_lines, 1);
        assert_eq!(m.dead_letters_total(), 1, "the malformed line");
        // It left the gate with its part.
        assert_eq!(gate.wait_all_left(std::time::Duration::ZERO), Ok(true));
    }

    #[test]
    fn a_leased_stream_takes_only_records_keyed_by_their_tenant_and_a_full_one_only_its_range() {
        use tenantflow_kinesis::hash_key::{HashRange, hash_key};
        let parts = Parts::new(2);
        let (root, checkpoints, metrics) = (&parts.root, &parts.checkpoints, &parts.metrics);
        let context = parts.context();
        let staging = Staging {
            location: checkpoints.location.clone(),
        };
        let (tx, rx) = crossbeam_channel::unbounded();
        let router = |source, rule| {
            Router::new(
                vec![tx.clone()],
                None,
                DeadLetterSink::new(root.child("_rejected"), staging.clone(), "stream"),
                context,
                source,
                "stream",
                MissingEventTime::ArrivalTime,
            )
            .with_key_rule(rule)
        };
        let decoder = Decoder::new(DefaultKind::Infer);
        let feed = |router: &mut Router<'_>, text: &str, key: &str| {
            let origin = Origin {
                source: 0,
                name: "kinesis://s",
                line: None,
                shard: Some(("shardId-000000000000", "1", None)),
                partition_key: Some(key),
            };
            router
                .record(text.as_bytes(), InputFormat::Ndjson, decoder, T0, &origin)
                .unwrap();
        };
        let mut keyed = router(0, KeyRule::KeyedByTenant);
        feed(&mut keyed, &job("t-1", 0), "t-1");
        feed(&mut keyed, &job("t-1", 1), "0b1c2d");
        keyed.finish(None, None).unwrap();
        // The lower half of the hash keys: of two tenants, the one it holds passes.
        let half = HashRange {
            start: 0,
            end: u128::MAX / 2,
        };
        let (inside, outside) = if half.contains(hash_key("t-1")) {
            ("t-1", "t-2")
        } else {
            ("t-2", "t-1")
        };
        assert_ne!(
            half.holds(inside),
            half.holds(outside),
            "pick two tenants apart"
        );
        let company = |id: &str| {
            format!(
                r#"{{"type":"company","companyID":"{id}","industry":"retail","revenu":1,"employees":1,"job30":0,"job90":0,"monthlyFee":1,"totalFee":1}}"#
            )
        };
        let mut full = router(1, KeyRule::InRange(half));
        feed(&mut full, &company(inside), "any");
        feed(&mut full, &company(outside), "any");
        full.finish(None, None).unwrap();
        assert_eq!(received(&rx).1, ["t-1@0".to_owned(), format!("{inside}@0")]);
        let m = metrics.snapshot();
        assert_eq!(
            m.dead_letters[DeadLetterReason::NotKeyedByTenant.index()],
            1,
            "the job event put with another key"
        );
        assert_eq!(m.other_shard_records, 1);
    }
}
