//! The outbox relay: publishes the rows each write left in the `outbox` table to the
//! companies stream, oldest first, then deletes them. A tenant's records keep their
//! order (the writer never reorders a partition key's records, and the tenant id is
//! the key); a failure is retried with back-off and loses nothing. A crash between
//! publishing and deleting publishes those rows again: at least once.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tenantflow_kinesis::backoff::Backoff;
use tenantflow_kinesis::writer::RecordWriter;
use tokio::sync::{Notify, watch};

use crate::api::ApiMetrics;
use crate::db::Db;

/// Rows published per round.
const BATCH: i64 = 500;
/// How often the outbox is looked at when no write says so.
const POLL: Duration = Duration::from_secs(1);

/// Publishes the outbox to `stream` until `stop` turns true, then once more.
pub async fn relay(
    db: Db,
    stream: String,
    wake: Arc<Notify>,
    metrics: Arc<ApiMetrics>,
    mut stop: watch::Receiver<bool>,
) {
    let client = tenantflow_kinesis::client::connect().await;
    let mut writer = RecordWriter::new(client, &stream, false);
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10), 7);
    loop {
        match publish_some(&db, &mut writer).await {
            Ok(0) => {
                backoff.reset();
                if *stop.borrow() {
                    return;
                }
                tokio::select! {
                    () = wake.notified() => {}
                    () = tokio::time::sleep(POLL) => {}
                    _ = stop.changed() => {}
                }
            }
            Ok(n) => {
                backoff.reset();
                metrics.outbox_published.fetch_add(n, Ordering::Relaxed);
            }
            Err(error) => {
                metrics.outbox_errors.fetch_add(1, Ordering::Relaxed);
                let delay = backoff.next_delay();
                tracing::warn!(%error, stream, retry_in_ms = delay.as_millis() as u64, "Publishing the outbox failed; retrying.");
                if *stop.borrow() {
                    return;
                }
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Publishes one batch; how many rows.
async fn publish_some(db: &Db, writer: &mut RecordWriter) -> Result<u64, String> {
    let rows = db.outbox_batch(BATCH).await.map_err(|e| e.to_string())?;
    let Some(&(last, _, _)) = rows.last() else {
        return Ok(0);
    };
    let published = rows.len() as u64;
    for (_, tenant, payload) in rows {
        writer
            .send(&tenant, payload.into_bytes())
            .await
            .map_err(|e| e.to_string())?;
    }
    writer.flush().await.map_err(|e| e.to_string())?;
    db.outbox_done(last).await.map_err(|e| e.to_string())?;
    Ok(published)
}
