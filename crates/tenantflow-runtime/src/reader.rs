//! The reader stage: inputs in order → decoded records → per-worker batches.

use std::sync::mpsc::{Receiver, SyncSender};

use tenantflow_core::batch::Position;
use tenantflow_core::decode::{Decoder, DefaultKind};
use tenantflow_core::partition::worker_for;
use tenantflow_core::{Batch, DeadLetter, DeadLetterReason, Record};
use tenantflow_sinks::dead_letter::DeadLetterSink;
use tenantflow_sources::lines::{Line, LineEvent, LineReader, ReadError};
use tenantflow_sources::{Input, InputFormat};

use crate::job::RunError;
use crate::metrics::{Metrics, MetricsSnapshot};

/// Records per batch.
pub(crate) const BATCH_RECORDS: usize = 4096;
/// Arena bytes after which a batch is sent even if it has fewer records.
const BATCH_ARENA_BYTES: usize = 1 << 20;

pub(crate) struct Reader<'a> {
    pub(crate) inputs: &'a [Input],
    pub(crate) default_kind: DefaultKind,
    pub(crate) max_record_bytes: usize,
    pub(crate) workers: Vec<SyncSender<Batch>>,
    pub(crate) recycled: Receiver<Batch>,
    pub(crate) dead_letters: DeadLetterSink,
    pub(crate) metrics: &'a Metrics,
}

struct State<'a> {
    workers: &'a [SyncSender<Batch>],
    recycled: &'a Receiver<Batch>,
    batches: Vec<Batch>,
    dead_letters: &'a mut DeadLetterSink,
    local: MetricsSnapshot,
    metrics: &'a Metrics,
}

impl Reader<'_> {
    /// Reads every input to its end, then flushes the batches and closes the channels.
    pub(crate) fn run(mut self) -> Result<u64, RunError> {
        let mut state = State {
            workers: &self.workers,
            recycled: &self.recycled,
            batches: (0..self.workers.len())
                .map(|_| Batch::with_capacity(BATCH_RECORDS))
                .collect(),
            dead_letters: &mut self.dead_letters,
            local: MetricsSnapshot::default(),
            metrics: self.metrics,
        };
        for (index, input) in self.inputs.iter().enumerate() {
            tracing::debug!(input = input.name(), "Reading input.");
            let stream = input.open()?;
            let source = u32::try_from(index).unwrap_or(u32::MAX);
            let decoder = Decoder::new(self.default_kind);
            let format = input.format();
            let max = self.max_record_bytes;
            LineReader::new(stream, max)
                .read_all(|event| state.on_line(event, source, input, format, decoder, max))
                .map_err(|e| match e {
                    ReadError::Io(source) => RunError::Read {
                        input: input.name().to_owned(),
                        source,
                    },
                    ReadError::Handler(e) => e,
                })?;
        }
        for worker in 0..state.batches.len() {
            if !state.batches[worker].is_empty() {
                state.send(worker)?;
            }
        }
        state.metrics.publish(&mut state.local);
        drop(state);
        self.dead_letters.close().map_err(RunError::Sink)
    }
}

impl State<'_> {
    fn on_line(
        &mut self,
        event: LineEvent<'_>,
        source: u32,
        input: &Input,
        format: InputFormat,
        decoder: Decoder,
        max: usize,
    ) -> Result<(), RunError> {
        self.local.lines_read += 1;
        let position = Position {
            source,
            line: event.number,
        };
        let bytes = match event.line {
            Line::Record(bytes) => bytes,
            Line::TooLarge { prefix, len } => {
                let error = format!("record of {len} bytes is over the limit of {max} bytes");
                return self.dead_letter(
                    DeadLetterReason::RecordTooLarge,
                    &error,
                    input,
                    position,
                    prefix,
                    Some(len),
                );
            }
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            self.local.empty_lines += 1;
            return Ok(());
        }
        let decoded = match format {
            InputFormat::Csv => decoder.decode_csv(bytes),
            InputFormat::Ndjson | InputFormat::Auto => decoder.decode_json(bytes).map(Some),
        };
        let record = match decoded {
            Ok(Some(record)) => record,
            Ok(None) => {
                self.local.header_lines += 1;
                return Ok(());
            }
            Err(e) => {
                return self.dead_letter(
                    DeadLetterReason::Malformed,
                    &e.to_string(),
                    input,
                    position,
                    bytes,
                    None,
                );
            }
        };
        match &record {
            Record::Job(job) => {
                self.local.job_events += 1;
                if job.creation_date.is_none() {
                    self.local.event_time_from_arrival += 1;
                }
            }
            Record::Company(_) => self.local.company_records += 1,
        }
        let worker = worker_for(record.company_id(), self.batches.len());
        let batch = &mut self.batches[worker];
        batch.push(&record, event.arrival_ms, position);
        if batch.len() >= BATCH_RECORDS || batch.arena_len() >= BATCH_ARENA_BYTES {
            self.send(worker)?;
        }
        Ok(())
    }

    fn dead_letter(
        &mut self,
        reason: DeadLetterReason,
        error: &str,
        input: &Input,
        position: Position,
        bytes: &[u8],
        truncated_from: Option<u64>,
    ) -> Result<(), RunError> {
        self.local.dead_letters[reason.index()] += 1;
        let record = String::from_utf8_lossy(bytes);
        self.dead_letters
            .write(&DeadLetter {
                reason,
                error,
                source: input.name(),
                line: Some(position.line),
                record: &record,
                record_lossy: std::str::from_utf8(bytes).is_err(),
                record_truncated_from: truncated_from,
            })
            .map_err(RunError::Sink)
    }

    /// Sends worker `w`'s batch, replacing it with a recycled one when there is one.
    /// Blocks while the worker's channel is full: backpressure.
    fn send(&mut self, w: usize) -> Result<(), RunError> {
        let fresh = self
            .recycled
            .try_recv()
            .unwrap_or_else(|_| Batch::with_capacity(BATCH_RECORDS));
        let full = std::mem::replace(&mut self.batches[w], fresh);
        self.metrics.publish(&mut self.local);
        self.workers[w]
            .send(full)
            .map_err(|_| RunError::WorkerStopped(w))
    }
}
