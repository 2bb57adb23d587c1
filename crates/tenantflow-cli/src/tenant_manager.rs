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

    /// `sqlite://FILE` (created and migrated on start) or `postgres://USER[:PASSWORD]@HOST:PORT/DB`.
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

    /// Seeding replaces tenants that exist already; by default they are kept, so that a
    /// tenant changed through the API stays changed across restarts.
    #[arg(long, requires = "seed", env = "TENANTFLOW_TM_SEED_OVERWRITE")]
    seed_overwrite: bool,
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
            seed_overwrite: args.seed_overwrite,
        })
        .await?;
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
        if let Some(path) = &args.seed {
            eprintln!(
                "tenant-manager: seeding from {}: tenant requests and /readyz answer 503 until done",
                path.display()
            );
        }
        let seed = args.seed.clone();
        service
            .serve(shutdown_signal(), move |seeded| {
                if let (Some(s), Some(path)) = (seeded, &seed) {
                    eprintln!(
                        "tenant-manager: seeded {} tenants from {}: {} created, {} replaced, {} kept as they were ({} lines skipped)",
                        s.tenants,
                        path.display(),
                        s.created,
                        s.replaced,
                        s.kept,
                        s.skipped
                    );
                }
                eprintln!("tenant-manager: ready");
            })
            .await?;
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
