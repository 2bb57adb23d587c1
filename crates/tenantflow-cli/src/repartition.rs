//! `tenantflow repartition`: re-publish a stream keyed by tenant, shared among workers by
//! leases.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use tenantflow_cluster::LeaseSettings;
use tenantflow_cluster::dynamo::DynamoLeaseStore;
use tenantflow_kinesis::url::KinesisInput;
use tenantflow_runtime::Metrics;
use tenantflow_runtime::cluster::{ClusterConfig, run_workers};
use tenantflow_runtime::repartition::{RepartitionConfig, RepartitionWork};

use crate::progress::thousands;

/// Re-publish a stream whose records are not keyed by tenant (the original producers
/// used random partition keys) to another stream, each record with its companyID as
/// partition key, so that `run --lease-table` can share it among workers. Run as many
/// as you like: they share the input's shards through a lease table. Runs until
/// Ctrl-C or SIGTERM.
#[derive(Debug, Args)]
pub struct RepartitionArgs {
    /// The stream to re-key: `kinesis://STREAM[?start=…&kind=…&format=…&consumer=…]`,
    /// as for `run`.
    #[arg(long, value_name = "URL")]
    input: String,

    /// The stream to write, keyed by companyID.
    #[arg(long, value_name = "STREAM")]
    output_stream: String,

    /// The DynamoDB table of the leases on the input's shards (created if missing);
    /// default: `tenantflow-repartition-STREAM`.
    #[arg(long, value_name = "TABLE")]
    lease_table: Option<String>,

    /// This worker's name in the lease table; default: host name, process id and a
    /// random suffix.
    #[arg(long, value_name = "NAME")]
    worker_id: Option<String>,

    /// No summary at the end.
    #[arg(long, short)]
    quiet: bool,
}

/// Runs the command.
pub fn run(args: RepartitionArgs) -> Result<()> {
    if !KinesisInput::is_kinesis(&args.input) {
        bail!(
            "--input {}: repartition reads a kinesis://STREAM",
            args.input
        );
    }
    let input =
        KinesisInput::parse(&args.input).with_context(|| format!("--input {}", args.input))?;
    if input.stream == args.output_stream {
        bail!(
            "--output-stream {} is the input: re-keyed records would be read again",
            args.output_stream
        );
    }
    let table = args
        .lease_table
        .clone()
        .unwrap_or_else(|| format!("tenantflow-repartition-{}", input.stream));
    let worker_id = args
        .worker_id
        .clone()
        .unwrap_or_else(crate::run::default_worker_id);
    let store = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a runtime")?
        .block_on(DynamoLeaseStore::connect(&table));
    tracing::info!(input = %input.stream, output = %args.output_stream, lease_table = %table, worker = %worker_id, "Re-publishing keyed by companyID.");
    let cluster = ClusterConfig {
        worker_id: worker_id.clone(),
        settings: LeaseSettings::default(),
        shard_sync_interval: std::time::Duration::from_secs(10),
    };
    let work = RepartitionWork::new(RepartitionConfig {
        input,
        output_stream: args.output_stream.clone(),
    });
    let metrics = Arc::new(Metrics::default());
    let summary =
        run_workers(&work, &cluster, Arc::new(store), &metrics).context("repartitioning failed")?;
    if !args.quiet {
        let (keyed, unkeyed) = summary
            .jobs
            .iter()
            .filter_map(|(_, s)| s.as_ref())
            .fold((0, 0), |(k, u), s| (k + s.keyed, u + s.unkeyed));
        println!(
            "worker {worker_id}: {} leases taken, {} lost; {} records re-published keyed by companyID, {} that could not be decoded with their own keys",
            summary.taken,
            summary.lost,
            thousands(keyed),
            thousands(unkeyed),
        );
    }
    Ok(())
}
