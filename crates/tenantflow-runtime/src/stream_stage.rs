//! The stream runtime: a small Tokio runtime of its own, with the Kinesis consumers, the
//! writer of the output stream, and the signal watch.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use tenantflow_kinesis::KinesisError;
use tenantflow_kinesis::consumer::{ConsumerConfig, ConsumerStats, RecordBatch};
use tenantflow_kinesis::writer::{RecordWriter, WriterStats};

use crate::error::RunError;
use crate::job::JobConfig;
use crate::resume::Resume;
use crate::shutdown;
use crate::stream_sink::{Chunk, SINK_QUEUE_PER_WORKER};

/// The Kinesis consumers, on a small Tokio runtime of their own, and the signal watch.
pub(crate) struct StreamStage {
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    pub(crate) receivers: Vec<tokio::sync::mpsc::Receiver<RecordBatch>>,
    consumers: Vec<tokio::task::JoinHandle<Result<ConsumerStats, KinesisError>>>,
    sink: Option<tokio::sync::mpsc::Sender<Chunk>>,
    sink_task: Option<tokio::task::JoinHandle<Result<WriterStats, KinesisError>>>,
    /// A shard job's consumers' lags, no longer reported once it ends.
    registered: Option<(Arc<crate::Metrics>, Vec<tenantflow_kinesis::lag::ShardLags>)>,
    /// Stops the job as a signal would (see [`StreamStage::stopper`]).
    told: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Drop for StreamStage {
    fn drop(&mut self) {
        if let Some((metrics, lags)) = self.registered.take() {
            for lags in &lags {
                metrics.status.forget_lags(lags);
            }
        }
    }
}

/// Batches queued per stream between its consumer and its routing thread.
const STREAM_QUEUE: usize = 16;

impl StreamStage {
    pub(crate) fn start(
        config: &JobConfig,
        resume: &Resume<'_>,
        stop: Arc<AtomicBool>,
        metrics: &Arc<crate::Metrics>,
    ) -> Result<Self, RunError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("tenantflow-kinesis")
            .enable_all()
            .build()
            .map_err(RunError::Runtime)?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        // A job stops as on a signal when it is told: a shard job by its worker (lease
        // lost, worker stopping) or when its shard was read to its end; any job when its
        // checkpoints fail.
        let (told_tx, told_rx) = tokio::sync::watch::channel(false);
        let told_tx = Arc::new(told_tx);
        if let Some(mut outside) = config.stop.clone() {
            let told = Arc::clone(&told_tx);
            runtime.spawn(async move {
                if outside.wait_for(|stop| *stop).await.is_ok() {
                    let _ = told.send(true);
                }
            });
        }
        let client = if config.streams.is_empty() && config.output_stream.is_none() {
            None
        } else {
            Some(runtime.block_on(tenantflow_kinesis::client::connect()))
        };
        let mut receivers = Vec::new();
        let mut registered = Vec::new();
        let mut consumers = Vec::new();
        for (input, client) in config.streams.iter().zip(client.iter().cycle()) {
            let (tx, rx) = tokio::sync::mpsc::channel(STREAM_QUEUE);
            let mut consumer = ConsumerConfig::new(&input.stream);
            (consumer.start, consumer.finished) = resume.stream_start(input);
            consumer.exit_when_idle = config.exit_when_idle;
            consumer.fan_out = input.consumer.clone();
            consumer.lags = metrics.status.shard_lags(&input.stream);
            registered.push(consumer.lags.clone());
            consumer.only = crate::job::ShardScope::only(config.shard.as_ref(), &input.stream);
            let consume = tenantflow_kinesis::consumer::consume(
                client.clone(),
                consumer,
                tx,
                stop_rx.clone(),
            );
            let metrics = Arc::clone(metrics);
            let stream = input.stream.clone();
            let leased = consumer_only_leased(config, &input.stream).then(|| Arc::clone(&told_tx));
            consumers.push(runtime.spawn(async move {
                let result = consume.await;
                if let (Ok(_), Some(told)) = (&result, leased) {
                    // The leased shard was read to its end: the job finishes.
                    let _ = told.send(true);
                }
                // Not ready from the moment a source fails, not only once the run
                // has wound down.
                if let Err(e) = &result {
                    metrics.status.fail(format!("reading stream {stream}: {e}"));
                }
                result
            }));
            receivers.push(rx);
        }
        // Ctrl-C or SIGTERM: consumers stop polling, everything read so far is
        // processed and flushed, and the run ends normally.
        runtime.spawn(shutdown::on_signal(stop, stop_tx, Some(told_rx)));
        let (sink, sink_task) = match (&config.output_stream, &client) {
            (Some(stream), Some(client)) => {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<Chunk>(
                    config.workers.get() * SINK_QUEUE_PER_WORKER,
                );
                let mut writer = RecordWriter::new(client.clone(), stream, false);
                let task = runtime.spawn(async move {
                    while let Some(chunk) = rx.recv().await {
                        match chunk {
                            Chunk::Results(results) => {
                                for (key, json) in results {
                                    writer.send(&key, json).await?;
                                }
                                // Nothing else waiting: what is queued goes now, not
                                // when enough results for a full request have come
                                // (at a low rate, minutes later, or at the next
                                // checkpoint). Under load, results gather in the
                                // channel while a request is out, so requests stay
                                // full.
                                if rx.is_empty() {
                                    writer.flush().await?;
                                }
                            }
                            Chunk::Sync(done) => {
                                writer.flush().await?;
                                let _ = done.send(());
                            }
                        }
                    }
                    writer.flush().await?;
                    Ok(writer.stats())
                });
                (Some(tx), Some(task))
            }
            _ => (None, None),
        };
        Ok(Self {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            receivers,
            consumers,
            sink,
            sink_task,
            registered: config
                .shard
                .is_some()
                .then(|| (Arc::clone(metrics), registered)),
            told: told_tx,
        })
    }

    /// Stops the job as a signal would: the consumers stop polling, the sources end,
    /// the workers finish. For a job that cannot go on (its checkpoints failed).
    pub(crate) fn stopper(&self) -> Arc<tokio::sync::watch::Sender<bool>> {
        Arc::clone(&self.told)
    }

    /// A handle on the runtime, for threads that wait on its channels.
    pub(crate) fn handle(&self) -> tokio::runtime::Handle {
        self.handle.clone()
    }

    /// A sender to the output stream's writer, for a worker.
    pub(crate) fn sink_sender(&self) -> Option<tokio::sync::mpsc::Sender<Chunk>> {
        self.sink.clone()
    }

    /// Waits for the stream consumers to end.
    pub(crate) fn finish_consumers(&mut self) -> Result<(), RunError> {
        let Some(runtime) = &self.runtime else {
            return Ok(());
        };
        for consumer in std::mem::take(&mut self.consumers) {
            match runtime.block_on(consumer) {
                Ok(Ok(stats)) => tracing::info!(?stats, "Stream consumer done."),
                Ok(Err(e)) => return Err(RunError::Kinesis(e)),
                Err(_) => return Err(RunError::Panicked("kinesis consumer".into())),
            }
        }
        Ok(())
    }

    /// After the workers are done: waits for the output stream's writer to flush.
    pub(crate) fn finish_sink(mut self) -> Result<Option<WriterStats>, RunError> {
        self.sink = None;
        let Some(runtime) = self.runtime.take() else {
            return Ok(None);
        };
        let result = match self.sink_task.take() {
            Some(task) => match runtime.block_on(task) {
                Ok(Ok(stats)) => Ok(Some(stats)),
                Ok(Err(e)) => Err(RunError::OutputStream(e)),
                Err(_) => Err(RunError::Panicked("output stream writer".into())),
            },
            None => Ok(None),
        };
        runtime.shutdown_timeout(Duration::from_secs(1));
        result
    }
}

/// Whether `stream` is the leased stream of a shard job.
fn consumer_only_leased(config: &JobConfig, stream: &str) -> bool {
    config
        .shard
        .as_ref()
        .is_some_and(|shard| shard.stream == stream)
}
