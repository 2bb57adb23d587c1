//! Results to a Kinesis stream (`--output-stream`): each result as one JSON record,
//! partition key companyID.
//!
//! Workers buffer results and hand them to one writer task per batch. A tenant's results
//! come from one worker, in order, and the channel keeps each worker's order, so the
//! writer ([`tenantflow_kinesis::writer::RecordWriter`]) sees them in order and keeps
//! them so on the stream. The writer sends what it holds as soon as no chunk is waiting,
//! so a result is on the stream a request's time after its batch was processed, at any
//! rate; under load, results gather while a request is out and requests stay full. At
//! each checkpoint every worker waits until the writer has
//! written what it sent before the barrier. Delivery is at least once: after a crash,
//! results written since the last checkpoint are written again.

use tokio::sync::mpsc;

use crate::error::RunError;

/// What workers send the writer task.
pub(crate) enum Chunk {
    /// `(partition key, JSON)` results.
    Results(Vec<(String, Vec<u8>)>),
    /// A checkpoint: write everything received so far, then answer.
    Sync(tokio::sync::oneshot::Sender<()>),
}

/// Chunks queued per worker before a worker blocks: backpressure from the stream.
pub(crate) const SINK_QUEUE_PER_WORKER: usize = 4;

/// A worker's handle on the stream sink.
pub(crate) struct StreamSink {
    tx: mpsc::Sender<Chunk>,
    buffer: Vec<(String, Vec<u8>)>,
}

impl StreamSink {
    pub(crate) fn new(tx: mpsc::Sender<Chunk>) -> Self {
        Self {
            tx,
            buffer: Vec::new(),
        }
    }

    /// Buffers one result.
    pub(crate) fn push(&mut self, company_id: &str, json: Vec<u8>) {
        self.buffer.push((company_id.to_owned(), json));
    }

    /// Hands the buffered results to the writer task; blocks while its queue is full.
    pub(crate) fn flush(&mut self) -> Result<(), RunError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::take(&mut self.buffer);
        self.tx
            .blocking_send(Chunk::Results(chunk))
            .map_err(|_| RunError::OutputStreamStopped)
    }

    /// Hands over the buffered results and waits until the writer has written all it
    /// received (at a checkpoint: results before the barrier are on the stream).
    pub(crate) fn sync(&mut self) -> Result<(), RunError> {
        self.flush()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx
            .blocking_send(Chunk::Sync(tx))
            .map_err(|_| RunError::OutputStreamStopped)?;
        rx.blocking_recv()
            .map_err(|_| RunError::OutputStreamStopped)
    }
}
