//! `tenantflow tenant-manager`: the TenantManager service.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use tenantflow_tenants::{Service, ServiceConfig};

/// Flags of `tenantflow tenant-manager`.
#[derive(Debug, Args)]
pub struct TenantManagerArgs {
    /// Address to listen on.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:8080",
        env = "TENANTFLOW_TM_LISTEN"
    )]
    listen: SocketAddr,

    /// `sqlite://FILE` (created and migrated on start) or `postgres://USER@HOST:PORT/DB`.
    #[arg(
        long,
        value_name = "URL",
        default_value = "sqlite://tenants.db",
        env = "TENANTFLOW_TM_DATABASE"
    )]
    database: String,

    /// The key that writes (POST, PUT, DELETE) must carry in `x-api-key`. Without it the
    /// API is read-only. Prefer the environment variable: a flag shows in `ps`.
    #[arg(
        long,
        value_name = "KEY",
        env = "TENANTFLOW_API_KEY",
        hide_env_values = true
    )]
    api_key: Option<String>,

    /// Publish every create, update and delete to this Kinesis stream (through an
    /// outbox in the database: in order per tenant, retried, nothing lost).
    #[arg(long, value_name = "STREAM", env = "TENANTFLOW_TM_COMPANIES_STREAM")]
    companies_stream: Option<String>,

    /// Load tenants at start from a CSV file of the original layout
    /// (`Company,Industry,Revenue,Employees,#job30,#job90,MonthlyCharge,TotalCharge[,Churn]`)
    /// or NDJSON (job events in it are skipped).
    #[arg(long, value_name = "FILE", env = "TENANTFLOW_TM_SEED")]
    seed: Option<PathBuf>,
}

/// Runs the service until Ctrl-C or SIGTERM.
pub fn run(args: TenantManagerArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let read_only = args.api_key.is_none();
        let service = Service::start(ServiceConfig {
            listen: args.listen,
            database: args.database.clone(),
            api_key: args.api_key,
            companies_stream: args.companies_stream.clone(),
            seed: args.seed.clone(),
        })
        .await?;
        if let (Some(seeded), Some(path)) = (&service.seeded, &args.seed) {
            eprintln!(
                "tenant-manager: seeded {} tenants from {} ({} lines skipped)",
                seeded.tenants,
                path.display(),
                seeded.skipped
            );
        }
        eprintln!(
            "tenant-manager: listening on http://{} ({}{}{})",
            service.addr,
            tenantflow_tenants::db::redact(&args.database),
            if read_only {
                ", read-only: no --api-key"
            } else {
                ""
            },
            match &args.companies_stream {
                Some(s) => format!(", publishing to {s}"),
                None => String::new(),
            }
        );
        service.serve(shutdown_signal()).await?;
        eprintln!("tenant-manager: stopped");
        Ok(())
    })
}

/// Completes on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
