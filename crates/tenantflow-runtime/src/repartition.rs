//! `tenantflow repartition`: re-publishes a stream whose records are not keyed by tenant
//! (the original producers used random partition keys) to another stream, each record
//! with its `companyID` as partition key, so that workers sharing the second stream
//! through leases find each tenant's records in the shard that owns its state: Kafka
//! Streams' repartition topic.
//!
//! It is itself shared among workers by leases (`run_workers`): each worker reads the
//! shards it holds, re-publishes their records in order (a tenant's records keep the
//! order they had in their source shard: the writer keeps per-key order), and after
//! each batch is acknowledged records the batch's last sequence number in the shard's
//! lease. At least once: after a crash, the records since the last recorded position
//! are published again.

use std::collections::HashSet;
use std::sync::Arc;
use std::thread::JoinHandle;

use tenantflow_cluster::Checkpoint;
use tenantflow_core::decode::{Decoder, DefaultKind};
use tenantflow_kinesis::KinesisError;
use tenantflow_kinesis::consumer::{ConsumerConfig, RecordBatch, consume};
use tenantflow_kinesis::url::KinesisInput;
use tenantflow_kinesis::url::RecordFormat;
use tenantflow_kinesis::writer::RecordWriter;

use crate::cluster::{ShardWork, StartShard};
use crate::error::RunError;
use crate::lease_fence::commit_position;

/// How often a shard's position is recorded in its lease while records flow.
const COMMIT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// What to re-key, and where to.
#[derive(Debug, Clone)]
pub struct RepartitionConfig {
    /// The stream read (its shards are leased).
    pub input: KinesisInput,
    /// The stream written, keyed by `companyID`.
    pub output_stream: String,
}

/// What one shard's re-publishing did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepartitionSummary {
    /// Records (lines) published, keyed by their `companyID`.
    pub keyed: u64,
    /// Lines that could not be decoded, published with their original partition key:
    /// the job reading the output stream makes them dead letters, with the reason.
    pub unkeyed: u64,
}

/// The work of `repartition`, per shard.
pub struct RepartitionWork {
    config: RepartitionConfig,
}

impl RepartitionWork {
    /// The work of re-keying `config.input` into `config.output_stream`.
    pub fn new(config: RepartitionConfig) -> Self {
        Self { config }
    }
}

impl ShardWork for RepartitionWork {
    type Outcome = RepartitionSummary;

    fn stream(&self) -> &str {
        &self.config.input.stream
    }

    fn initial(&self) -> Checkpoint {
        match self.config.input.start {
            tenantflow_kinesis::consumer::StartPosition::Latest => Checkpoint::Latest,
            _ => Checkpoint::TrimHorizon,
        }
    }

    fn start(
        &self,
        shard: StartShard<'_>,
    ) -> Result<JoinHandle<Result<RepartitionSummary, RunError>>, RunError> {
        let mut consumer = ConsumerConfig::new(&self.config.input.stream);
        consumer.start = shard.start_position();
        consumer.only = Some(HashSet::from([shard.lease.key.clone()]));
        consumer.fan_out = self.config.input.consumer.clone();
        let task = ShardTask {
            shard_id: shard.lease.key.clone(),
            output_stream: self.config.output_stream.clone(),
            decoder: Decoder::new(match self.config.input.kind {
                Some(tenantflow_core::RecordKind::Job) => DefaultKind::Job,
                Some(tenantflow_core::RecordKind::Company) => DefaultKind::Company,
                None => DefaultKind::Infer,
            }),
            format: self.config.input.format,
            leases: Arc::clone(shard.leases),
            lease_runtime: shard.runtime.clone(),
        };
        let stop = shard.stop;
        tracing::info!(shard = %task.shard_id, "Re-publishing the shard.");
        std::thread::Builder::new()
            .name(format!("tenantflow-{}", task.shard_id))
            .spawn(move || task.run(consumer, stop))
            .map_err(|e| RunError::Cluster(format!("starting a shard's re-publishing: {e}")))
    }
}

struct ShardTask {
    shard_id: String,
    output_stream: String,
    decoder: Decoder,
    format: RecordFormat,
    leases: Arc<crate::lease_fence::SharedLeases>,
    lease_runtime: tokio::runtime::Handle,
}

impl ShardTask {
    fn run(
        self,
        consumer: ConsumerConfig,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<RepartitionSummary, RunError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(RunError::Runtime)?;
        let client = runtime.block_on(tenantflow_kinesis::client::connect());
        let (tx, mut rx) = tokio::sync::mpsc::channel::<RecordBatch>(4);
        let reading = runtime.spawn(consume(client.clone(), consumer, tx, stop));
        let mut writer = RecordWriter::new(client, &self.output_stream, false);
        let mut summary = RepartitionSummary::default();
        let mut read_to: Option<String> = None;
        let mut ended = false;
        let mut committed = std::time::Instant::now();
        while let Some(batch) = runtime.block_on(rx.recv()) {
            if batch.end_of_shard {
                ended = true;
                break;
            }
            runtime
                .block_on(self.publish(&batch, &mut writer, &mut summary))
                .map_err(|e| self.failed(e))?;
            if let Some(last) = batch.records.last() {
                read_to = Some(last.position.sequence.to_string());
                // Acknowledged by Kinesis: now the lease may say so (at most once a
                // second: one DynamoDB write, not one per GetRecords).
                if committed.elapsed() >= COMMIT_EVERY {
                    self.commit(read_to.as_deref(), false)?;
                    committed = std::time::Instant::now();
                }
            }
        }
        match runtime.block_on(reading) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(self.failed(e)),
            Err(e) => {
                return Err(RunError::Panicked(format!(
                    "reading shard {}: {e}",
                    self.shard_id
                )));
            }
        }
        runtime
            .block_on(writer.flush())
            .map_err(|e| self.failed(e))?;
        self.commit(read_to.as_deref(), ended)?;
        tracing::info!(shard = %self.shard_id, keyed = summary.keyed, unkeyed = summary.unkeyed, ended, "Re-published the shard.");
        Ok(summary)
    }

    /// Each line of each record, keyed by its `companyID`, then flushed.
    async fn publish(
        &self,
        batch: &RecordBatch,
        writer: &mut RecordWriter,
        summary: &mut RepartitionSummary,
    ) -> Result<(), KinesisError> {
        for record in &batch.records {
            let data = record.data.strip_suffix(b"\n").unwrap_or(&record.data);
            for line in data.split(|&b| b == b'\n') {
                let line = line.trim_ascii_end();
                if line.is_empty() {
                    continue;
                }
                let decoded = if self.format.is_json(line) {
                    self.decoder.decode_json(line).map(Some)
                } else {
                    self.decoder.decode_csv(line, false)
                };
                match decoded {
                    Ok(Some(decoded)) => {
                        writer.send(decoded.company_id(), line.to_vec()).await?;
                        summary.keyed += 1;
                    }
                    // A CSV header: not a record.
                    Ok(None) => {}
                    Err(_) => {
                        writer.send(&record.partition_key, line.to_vec()).await?;
                        summary.unkeyed += 1;
                    }
                }
            }
        }
        writer.flush().await
    }

    fn commit(&self, read_to: Option<&str>, ended: bool) -> Result<(), RunError> {
        commit_position(
            &self.leases,
            &self.lease_runtime,
            &self.shard_id,
            read_to,
            ended,
            None,
        )
        .map_err(RunError::LeaseLost)
    }

    fn failed(&self, e: KinesisError) -> RunError {
        RunError::Cluster(format!("re-publishing shard {}: {e}", self.shard_id))
    }
}
