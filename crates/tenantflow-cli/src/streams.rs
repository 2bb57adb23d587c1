//! `tenantflow streams create|describe|delete`: the original system's streams.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use tenantflow_cluster::dynamo::DynamoLeaseStore;
use tenantflow_cluster::{Checkpoint, Lease, LeaseStore};
use tenantflow_kinesis::admin;

/// The streams of the original setup.
const DEFAULT_STREAMS: [&str; 3] = ["bigdatajobs", "companies", "enrichedcompanies"];

/// Manage Kinesis streams (AWS settings from the standard chain, `AWS_ENDPOINT_URL` for a
/// local server).
#[derive(Debug, Args)]
pub struct StreamsArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Create streams and wait until they are ACTIVE (existing ones are left as they are).
    Create {
        #[command(flatten)]
        names: Names,
        /// Shards per stream.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=10_000))]
        shards: i32,
    },
    /// Show each stream's status and shards: id, hash key range, parents, open or closed;
    /// with --lease-table, each shard's lease (owner, checkpoint, lag) and the live
    /// workers.
    Describe {
        #[command(flatten)]
        names: Names,
        /// A lease table of workers sharing the stream (`run --lease-table`): each
        /// shard's owner, checkpoint and lag behind its newest record, and the workers.
        #[arg(long, value_name = "TABLE")]
        lease_table: Option<String>,
    },
    /// Delete streams and wait until they are gone.
    Delete {
        #[command(flatten)]
        names: Names,
    },
}

#[derive(Debug, Args)]
struct Names {
    /// Stream name; repeatable. Default: bigdatajobs, companies, enrichedcompanies.
    #[arg(long = "name", value_name = "NAME")]
    names: Vec<String>,
}

impl Names {
    fn list(&self) -> Vec<String> {
        if self.names.is_empty() {
            DEFAULT_STREAMS.iter().map(|s| (*s).to_owned()).collect()
        } else {
            self.names.clone()
        }
    }
}

/// Runs the command.
pub fn run(args: StreamsArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let client = tenantflow_kinesis::client::connect().await;
        match args.action {
            Action::Create { names, shards } => {
                for name in names.list() {
                    admin::create_stream(&client, &name, shards).await?;
                    println!("{name}: ACTIVE");
                }
            }
            Action::Describe { names, lease_table } => {
                let leases = match &lease_table {
                    Some(table) => Some(
                        DynamoLeaseStore::connect(table)
                            .await
                            .list()
                            .await
                            .with_context(|| format!("reading the lease table {table}"))?,
                    ),
                    None => None,
                };
                for name in names.list() {
                    let info = admin::describe_stream(&client, &name).await?;
                    println!(
                        "{} ({}, {} shards)",
                        info.name,
                        info.status,
                        info.shards.len()
                    );
                    for s in &info.shards {
                        let parents: Vec<&str> = [&s.parent, &s.adjacent_parent]
                            .into_iter()
                            .flatten()
                            .map(String::as_str)
                            .collect();
                        println!(
                            "  {}  {}  hash {}..{}{}",
                            s.id,
                            if s.ending_sequence.is_some() {
                                "closed"
                            } else {
                                "open  "
                            },
                            s.hash_start,
                            s.hash_end,
                            if parents.is_empty() {
                                String::new()
                            } else {
                                format!("  parents {}", parents.join(", "))
                            }
                        );
                        if let Some(lease) = leases
                            .as_ref()
                            .and_then(|l| l.iter().find(|l| l.key == s.id))
                        {
                            println!("{}", describe_lease(&client, &name, lease).await?);
                        }
                    }
                }
                if let Some(leases) = &leases {
                    print_workers(leases);
                }
            }
            Action::Delete { names } => {
                for name in names.list() {
                    admin::delete_stream(&client, &name).await?;
                    println!("{name}: deleted");
                }
            }
        }
        Ok(())
    })
}

/// A shard's lease: owner, counter, checkpoint, and how far the checkpoint is behind the
/// shard's newest record.
async fn describe_lease(
    client: &tenantflow_kinesis::client::Client,
    stream: &str,
    lease: &Lease,
) -> Result<String> {
    let lag = match &lease.checkpoint {
        Checkpoint::ShardEnd => "read to its end".to_owned(),
        Checkpoint::Latest => "starts at the newest record".to_owned(),
        checkpoint => {
            let after = match checkpoint {
                Checkpoint::Sequence { sequence, .. } => Some(sequence.as_str()),
                _ => None,
            };
            match tenantflow_kinesis::shards::millis_behind(client, stream, &lease.key, after)
                .await?
            {
                Some(ms) => format!(
                    "lag {}",
                    humantime::format_duration(std::time::Duration::from_millis(
                        u64::try_from(ms).unwrap_or(0)
                    ))
                ),
                None => "lag unknown".to_owned(),
            }
        }
    };
    Ok(format!(
        "      lease: owner {}, counter {}, checkpoint {}, {lag}",
        lease.owner.as_deref().unwrap_or("none"),
        lease.counter,
        lease.checkpoint,
    ))
}

/// The workers holding leases, with how many each holds.
fn print_workers(leases: &[Lease]) {
    let mut workers: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for lease in leases.iter().filter(|l| !l.is_finished()) {
        if let Some(owner) = &lease.owner {
            *workers.entry(owner).or_default() += 1;
        }
    }
    let unowned = leases
        .iter()
        .filter(|l| !l.is_finished() && l.owner.is_none())
        .count();
    println!("workers ({}):", workers.len());
    for (worker, held) in &workers {
        println!("  {worker}: {held} leases");
    }
    if unowned > 0 {
        println!("  (no owner: {unowned} leases)");
    }
}
