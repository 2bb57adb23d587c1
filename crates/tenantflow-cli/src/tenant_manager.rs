//! `tenantflow tenant-manager`: the TenantManager service.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use tenantflow_tenants::{Service, ServiceConfig};

use crate::config::service::TenantManagerConfig;
use crate::config::{self, ConfigError};
use crate::flags::UsageError;

/// Flags of `tenantflow tenant-manager`. Each can also be set by its `TENANTFLOW_*`
/// variable and by a key of the `--config` file; a flag's default is its key's.
#[derive(Debug, Args)]
pub struct TenantManagerArgs {
    /// A configuration file (TOML; `tenantflow config example tenant-manager` prints one).
    /// Variables and flags override its keys.
    #[arg(long, value_name = "FILE", env = "TENANTFLOW_TM_CONFIG")]
    config: Option<PathBuf>,

    /// Address to listen on.
    #[arg(long, value_name = "ADDR", env = "TENANTFLOW_TM_LISTEN")]
    listen: Option<SocketAddr>,

    /// `sqlite://FILE` (created and migrated on start) or `postgres://USER[:PASSWORD]@HOST:PORT/DB`.
    #[arg(long, value_name = "URL", env = "TENANTFLOW_TM_DATABASE")]
    database: Option<String>,

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
    /// tenant changed through the API stays changed across restarts. Needs a seed.
    #[arg(long, env = "TENANTFLOW_TM_SEED_OVERWRITE")]
    seed_overwrite: bool,
}

/// `(flag id, key)` of the flags with a default.
const FLAG_KEYS: &[(&str, &str)] = &[("listen", "listen"), ("database", "database")];

/// The flags with their defaults in `--help`, from the configuration's.
pub fn with_defaults_in_help(command: clap::Command) -> clap::Command {
    config::defaults_in_help::<TenantManagerConfig>(command, FLAG_KEYS)
}

impl TenantManagerArgs {
    /// The configuration: the defaults, then the `--config` file, then the variables
    /// and flags given.
    pub fn layered(
        self,
        file: Option<&std::path::Path>,
    ) -> Result<TenantManagerConfig, ConfigError> {
        let mut config = match file.or(self.config.as_deref()) {
            Some(path) => config::read::<TenantManagerConfig>(path)?,
            None => TenantManagerConfig::default(),
        };
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(database) = self.database {
            config.database = database;
        }
        if self.api_key.is_some() {
            config.api_key = self.api_key;
        }
        if self.companies_stream.is_some() {
            config.companies_stream = self.companies_stream;
        }
        if self.seed.is_some() {
            config.seed = self.seed;
        }
        if self.seed_overwrite {
            config.seed_overwrite = true;
        }
        Ok(config)
    }
}

/// Runs the service until Ctrl-C or SIGTERM.
pub fn run(args: TenantManagerArgs) -> Result<()> {
    let args = args.layered(None)?;
    if args.seed_overwrite && args.seed.is_none() {
        return Err(UsageError(
            "--seed-overwrite (seed_overwrite) needs a seed: --seed or `seed` in --config".into(),
        )
        .into());
    }
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
