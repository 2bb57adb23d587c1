//! The stream stage: one thread per Kinesis input, routing the records its consumer
//! delivers. A record may hold several NDJSON lines; each is a record of its own.

use tenantflow_core::decode::Decoder;
use tenantflow_kinesis::consumer::RecordBatch;
use tenantflow_sources::InputFormat;
use tokio::sync::mpsc;

use crate::job::RunError;
use crate::router::{Origin, Router};

pub(crate) fn route_stream(
    mut batches: mpsc::Receiver<RecordBatch>,
    source: u32,
    name: &str,
    decoder: Decoder,
    max_record_bytes: usize,
    mut router: Router<'_>,
) -> Result<(), RunError> {
    loop {
        // A stream has no end to flush at: whenever nothing more is waiting, partial
        // batches go to the workers, so a record's latency is bounded by the poll pace,
        // not by how long a batch takes to fill.
        let batch = match batches.try_recv() {
            Ok(batch) => batch,
            Err(mpsc::error::TryRecvError::Empty) => {
                router.flush_partial()?;
                match batches.blocking_recv() {
                    Some(batch) => batch,
                    None => break,
                }
            }
            Err(mpsc::error::TryRecvError::Disconnected) => break,
        };
        for record in &batch.records {
            let position = &record.position;
            let origin = Origin {
                source,
                name,
                line: None,
                shard: Some((
                    &position.shard_id,
                    &position.sequence,
                    position.sub_sequence,
                )),
            };
            let data = record.data.strip_suffix(b"\n").unwrap_or(&record.data);
            for line in data.split(|&b| b == b'\n') {
                if line.len() > max_record_bytes {
                    let prefix =
                        &line[..line.len().min(tenantflow_sources::lines::TOO_LARGE_PREFIX)];
                    router.too_large(prefix, line.len() as u64, max_record_bytes, &origin)?;
                } else {
                    router.record(
                        line.trim_ascii_end(),
                        InputFormat::Ndjson,
                        decoder,
                        record.arrival_ms,
                        &origin,
                    )?;
                }
            }
        }
    }
    router.finish()
}
