//! The job's metrics in the Prometheus (OpenMetrics) text format.
//!
//! A [`Collector`] reads the run's counters and status at each scrape and hands them to
//! `prometheus-client`'s encoder as constant metrics: the hot path keeps its own
//! batched atomics and never touches the exporter.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tenantflow_core::DeadLetterReason;
use tenantflow_core::clock::now_ms;
use tenantflow_runtime::Metrics;

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric's name, without the `_total` a counter gets, for tests and docs.
pub const NAMES: &[&str] = &[
    "tenantflow_ready",
    "tenantflow_records_read",
    "tenantflow_job_events",
    "tenantflow_company_records",
    "tenantflow_results",
    "tenantflow_churn_flags",
    "tenantflow_dead_letters",
    "tenantflow_shard_lag_milliseconds",
    "tenantflow_lease_held",
    "tenantflow_lookups",
    "tenantflow_other_shard_records",
    "tenantflow_remote_calls",
    "tenantflow_remote_retries",
    "tenantflow_remote_failures",
    "tenantflow_remote_in_flight",
    "tenantflow_remote_call_duration_seconds",
    "tenantflow_checkpoints",
    "tenantflow_checkpoint_duration_seconds",
    "tenantflow_checkpoint_bytes",
    "tenantflow_checkpoint_age_seconds",
    "tenantflow_tenants",
    "tenantflow_state_bytes",
    "tenantflow_open_result_files",
];

/// The run's metrics, read at each scrape.
#[derive(Debug)]
struct JobCollector {
    metrics: Arc<Metrics>,
}

/// A registry holding the job's collector.
pub fn registry(metrics: Arc<Metrics>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(JobCollector { metrics }));
    registry
}

/// The registry's metrics as text.
///
/// # Errors
/// Only if formatting fails (it writes to a `String`).
pub fn render(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut text = String::with_capacity(8 << 10);
    prometheus_client::encoding::text::encode(&mut text, registry)?;
    Ok(text)
}

type Fmt = Result<(), std::fmt::Error>;

/// One metric without labels.
fn single(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    metric: &impl EncodeMetric,
) -> Fmt {
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// One metric family: a value per label set.
fn family<'l, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    members: impl IntoIterator<Item = (Vec<(&'l str, String)>, M)>,
) -> Fmt {
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, metric) in members {
        metric.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for JobCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Fmt {
        let m = self.metrics.snapshot();
        let status = &self.metrics.status;
        let e = &mut encoder;
        single(
            e,
            "tenantflow_ready",
            "1 when the job has recovered and is reading, with no failed stage.",
            &ConstGauge::new(i64::from(status.ready())),
        )?;
        family(
            e,
            "tenantflow_records_read",
            "Records read, by source stage (reader: files, stdin, the generator; stream-NAME: a Kinesis stream).",
            MetricType::Counter,
            status
                .stage_records()
                .into_iter()
                .map(|s| (vec![("source", s.stage)], ConstCounter::new(s.records))),
        )?;
        single(
            e,
            "tenantflow_job_events",
            "Job events decoded.",
            &ConstCounter::new(m.job_events),
        )?;
        single(
            e,
            "tenantflow_company_records",
            "Company records decoded.",
            &ConstCounter::new(m.company_records),
        )?;
        single(
            e,
            "tenantflow_results",
            "Results written.",
            &ConstCounter::new(m.results),
        )?;
        single(
            e,
            "tenantflow_churn_flags",
            "Results with riskOfChurn true.",
            &ConstCounter::new(m.churn_flags),
        )?;
        family(
            e,
            "tenantflow_dead_letters",
            "Dead letters, by reason.",
            MetricType::Counter,
            DeadLetterReason::ALL.iter().map(|r| {
                (
                    vec![("reason", r.as_str().to_owned())],
                    ConstCounter::new(m.dead_letters[r.index()]),
                )
            }),
        )?;
        family(
            e,
            "tenantflow_shard_lag_milliseconds",
            "MillisBehindLatest of each shard's last read (0 once read to its end).",
            MetricType::Gauge,
            status.lags().into_iter().map(|l| {
                (
                    vec![("stream", l.stream), ("shard", l.shard)],
                    ConstGauge::new(l.lag.millis_behind),
                )
            }),
        )?;
        let leases = status.leases();
        family(
            e,
            "tenantflow_lease_held",
            "With --lease-table: 1 for each shard whose lease this worker holds (by worker and shard).",
            MetricType::Gauge,
            leases.into_iter().flat_map(|(worker, shards)| {
                shards.into_iter().map(move |shard| {
                    (
                        vec![("worker", worker.clone()), ("shard", shard)],
                        ConstGauge::new(1_i64),
                    )
                })
            }),
        )?;
        single(
            e,
            "tenantflow_lookups",
            "TenantManager lookups answered (a profile, unknown, or a failure for good).",
            &ConstCounter::new(m.lookups),
        )?;
        single(
            e,
            "tenantflow_other_shard_records",
            "Records of tenants another shard owns, left to that shard's job (a stream read in full by a job holding leases).",
            &ConstCounter::new(m.other_shard_records),
        )?;
        let remote = status.remote();
        let by_service = |read: fn(&tenantflow_runtime::CallStats) -> u64| {
            remote
                .iter()
                .map(move |(name, stats)| (vec![("service", (*name).to_owned())], read(stats)))
        };
        use std::sync::atomic::Ordering::Relaxed;
        family(
            e,
            "tenantflow_remote_calls",
            "Attempts at calling a remote service (lookup: the TenantManager; scoring: the remote scorer).",
            MetricType::Counter,
            by_service(|s| s.attempts.load(Relaxed)).map(|(l, v)| (l, ConstCounter::new(v))),
        )?;
        family(
            e,
            "tenantflow_remote_retries",
            "Attempts that failed and were retried.",
            MetricType::Counter,
            by_service(|s| s.retries.load(Relaxed)).map(|(l, v)| (l, ConstCounter::new(v))),
        )?;
        family(
            e,
            "tenantflow_remote_failures",
            "Calls that failed for good (their records became dead letters or stopped the run).",
            MetricType::Counter,
            by_service(|s| s.failures.load(Relaxed)).map(|(l, v)| (l, ConstCounter::new(v))),
        )?;
        family(
            e,
            "tenantflow_remote_in_flight",
            "Attempts under way.",
            MetricType::Gauge,
            by_service(|s| s.in_flight.load(Relaxed)).map(|(l, v)| (l, ConstGauge::new(v))),
        )?;
        let mut histograms = e.encode_descriptor(
            "tenantflow_remote_call_duration_seconds",
            "How long attempts at calling a remote service took.",
            None,
            MetricType::Histogram,
        )?;
        for (name, stats) in &remote {
            let (sum, count, buckets) = stats.latency.read();
            let labels = [("service", *name)];
            histograms
                .encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }
        let checkpoint = status.last_checkpoint();
        single(
            e,
            "tenantflow_checkpoints",
            "Checkpoints completed by this process.",
            &ConstCounter::new(checkpoint.map_or(0, |c| c.count)),
        )?;
        single(
            e,
            "tenantflow_checkpoint_duration_seconds",
            "How long the last checkpoint took, from its request to the commit of its files (0 before the first).",
            &ConstGauge::new(checkpoint.map_or(0.0, |c| c.duration.as_secs_f64())),
        )?;
        single(
            e,
            "tenantflow_checkpoint_bytes",
            "Bytes the last checkpoint wrote: state snapshots and waiting work (0 before the first).",
            &ConstGauge::new(checkpoint.map_or(0, |c| c.bytes)),
        )?;
        let since_ms = checkpoint.map_or(status.started_ms(), |c| c.completed_ms);
        single(
            e,
            "tenantflow_checkpoint_age_seconds",
            "Time since the last checkpoint completed, or since the run started before the first: how much work a crash now would replay.",
            &ConstGauge::new(now_ms().saturating_sub(since_ms).max(0) as f64 / 1000.0),
        )?;
        let workers = status.workers();
        let per_worker = |read: fn(&tenantflow_runtime::status::WorkerGauges) -> u64| {
            workers
                .iter()
                .enumerate()
                .map(move |(i, g)| (vec![("worker", i.to_string())], ConstGauge::new(read(g))))
        };
        family(
            e,
            "tenantflow_tenants",
            "Tenants with a profile in state, by worker.",
            MetricType::Gauge,
            per_worker(|g| g.tenants.load(Relaxed)),
        )?;
        family(
            e,
            "tenantflow_state_bytes",
            "Bytes of the worker's state snapshot at the last checkpoint.",
            MetricType::Gauge,
            per_worker(|g| g.state_bytes.load(Relaxed)),
        )?;
        family(
            e,
            "tenantflow_open_result_files",
            "Result files open, by worker.",
            MetricType::Gauge,
            per_worker(|g| g.open_files.load(Relaxed)),
        )?;
        Ok(())
    }
}
