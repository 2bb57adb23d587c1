//! `tenantflow streams create|describe|delete`: the original system's streams.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

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
    /// Show each stream's status and shards: id, hash key range, parents, open or closed.
    Describe {
        #[command(flatten)]
        names: Names,
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
            Action::Describe { names } => {
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
                    }
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
