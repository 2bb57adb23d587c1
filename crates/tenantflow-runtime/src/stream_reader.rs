//! The stream stage: one thread per Kinesis input, routing the records its consumer
//! delivers. A record may hold several lines (NDJSON or CSV, as the stream's `format`
//! says); each is a record of its own.
//! Between two batches the thread stops at a checkpoint's barrier with the stream's
//! position: the last sequence number processed per shard, and the shards ended.

use tenantflow_core::decode::Decoder;
use tenantflow_kinesis::consumer::RecordBatch;
use tenantflow_kinesis::url::RecordFormat;
use tenantflow_sources::InputFormat;
use tokio::sync::{mpsc, watch};

use crate::checkpoint::manifest::StreamPosition;
use crate::error::RunError;
use crate::router::{Origin, Router};

/// One stream's thread.
pub(crate) struct StreamRoute<'a> {
    pub(crate) batches: mpsc::Receiver<RecordBatch>,
    pub(crate) source: u32,
    pub(crate) name: &'a str,
    pub(crate) stream: String,
    pub(crate) decoder: Decoder,
    /// How the stream's records are written.
    pub(crate) format: RecordFormat,
    pub(crate) max_record_bytes: usize,
    pub(crate) position: StreamPosition,
    pub(crate) checkpoints: watch::Receiver<u64>,
    pub(crate) runtime: tokio::runtime::Handle,
}

impl StreamRoute<'_> {
    pub(crate) fn run(mut self, mut router: Router<'_>) -> Result<(), RunError> {
        loop {
            if let Some(n) = router.checkpoint_due() {
                let position = (self.stream.clone(), self.position.clone());
                router.arrive(n, None, Some(position))?;
            }
            // A stream has no end to flush at: whenever nothing more is waiting, partial
            // batches go to the workers, so a record's latency is bounded by the poll
            // pace, not by how long a batch takes to fill.
            let batch = match self.batches.try_recv() {
                Ok(batch) => batch,
                Err(mpsc::error::TryRecvError::Empty) => {
                    router.flush_partial()?;
                    let batches = &mut self.batches;
                    let checkpoints = &mut self.checkpoints;
                    let next = self.runtime.block_on(async {
                        tokio::select! {
                            batch = batches.recv() => Some(batch),
                            // A checkpoint was requested: go and arrive at it.
                            _ = checkpoints.changed() => None,
                        }
                    });
                    match next {
                        Some(Some(batch)) => batch,
                        Some(None) => break,
                        None => continue,
                    }
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
            };
            self.route(&batch, &mut router)?;
        }
        let position = (self.stream.clone(), self.position.clone());
        router.finish(None, Some(position))
    }

    fn route(&mut self, batch: &RecordBatch, router: &mut Router<'_>) -> Result<(), RunError> {
        if batch.end_of_shard {
            self.position.positions.remove(&*batch.shard_id);
            self.position.finished.insert(batch.shard_id.to_string());
            return Ok(());
        }
        for record in &batch.records {
            let position = &record.position;
            let origin = Origin {
                source: self.source,
                name: self.name,
                line: None,
                shard: Some((
                    &position.shard_id,
                    &position.sequence,
                    position.sub_sequence,
                )),
                partition_key: Some(&record.partition_key),
            };
            let data = record.data.strip_suffix(b"\n").unwrap_or(&record.data);
            for line in data.split(|&b| b == b'\n') {
                if line.len() > self.max_record_bytes {
                    let prefix =
                        &line[..line.len().min(tenantflow_sources::lines::TOO_LARGE_PREFIX)];
                    router.too_large(prefix, line.len() as u64, self.max_record_bytes, &origin)?;
                } else {
                    let format = if self.format.is_json(line) {
                        InputFormat::Ndjson
                    } else {
                        InputFormat::Csv
                    };
                    router.record(
                        line.trim_ascii_end(),
                        format,
                        self.decoder,
                        record.arrival_ms,
                        &origin,
                    )?;
                }
            }
        }
        if let Some(last) = batch.records.last() {
            self.position.positions.insert(
                batch.shard_id.to_string(),
                last.position.sequence.to_string(),
            );
        }
        Ok(())
    }
}
