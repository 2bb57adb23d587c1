//! `tenantflow scorer`: serves a churn model over HTTP (SageMaker's container contract
//! and the original `/assessChurn` route).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use tenantflow_operators::score::Model;

use crate::config::service::{ScorerConfig, ScorerInFlight};
use crate::config::{self, ConfigError};
use crate::flags::UsageError;

/// Flags of `tenantflow scorer`. Each can also be set by its `TENANTFLOW_*` variable
/// and by a key of the `--config` file; a flag's default is its key's.
#[derive(Debug, Args)]
pub struct ScorerArgs {
    /// A configuration file (TOML; `tenantflow config example scorer` prints one).
    /// Variables and flags override its keys.
    #[arg(long, value_name = "FILE", env = "TENANTFLOW_SCORER_CONFIG")]
    config: Option<PathBuf>,

    /// The model file (`tenantflow train` writes one; `../shared/bench/model.json` is one
    /// too). Required, as a flag or as `model` in --config.
    #[arg(long, value_name = "MODEL", env = "TENANTFLOW_SCORER_MODEL")]
    model: Option<PathBuf>,

    /// Address to listen on.
    #[arg(long, value_name = "ADDR", env = "TENANTFLOW_SCORER_LISTEN")]
    listen: Option<SocketAddr>,

    /// Scoring requests served at once; one more gets a 503 with `Retry-After` before its
    /// body (up to 6 MB) is read, so memory stays bounded.
    #[arg(long, value_name = "N", env = "TENANTFLOW_SCORER_MAX_IN_FLIGHT")]
    max_in_flight: Option<ScorerInFlight>,
}

/// `(flag id, key)` of the flags with a default.
const FLAG_KEYS: &[(&str, &str)] = &[("listen", "listen"), ("max_in_flight", "max_in_flight")];

/// The flags with their defaults in `--help`, from the configuration's.
pub fn with_defaults_in_help(command: clap::Command) -> clap::Command {
    config::defaults_in_help::<ScorerConfig>(command, FLAG_KEYS)
}

impl ScorerArgs {
    /// The configuration: the defaults, then the `--config` file, then the variables
    /// and flags given.
    pub fn layered(self, file: Option<&std::path::Path>) -> Result<ScorerConfig, ConfigError> {
        let mut config = match file.or(self.config.as_deref()) {
            Some(path) => config::read::<ScorerConfig>(path)?,
            None => ScorerConfig::default(),
        };
        if self.model.is_some() {
            config.model = self.model;
        }
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(n) = self.max_in_flight {
            config.max_in_flight = n;
        }
        Ok(config)
    }
}

/// Serves until Ctrl-C or SIGTERM.
pub fn run(args: ScorerArgs) -> Result<()> {
    let args = args.layered(None)?;
    let Some(model_path) = &args.model else {
        return Err(UsageError(
            "a model is required: --model FILE, TENANTFLOW_SCORER_MODEL or `model` in --config"
                .into(),
        )
        .into());
    };
    let model = Model::load(model_path)?;
    let name = model.name().to_owned();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        tenantflow_scorer::serve(
            model,
            args.listen,
            args.max_in_flight.as_usize(),
            |addr| eprintln!("scorer: serving model `{name}` on http://{addr} (POST /invocations, /assessChurn)"),
            crate::tenant_manager::shutdown_signal(),
        )
        .await
        .with_context(|| format!("serving on {}", args.listen))
    })?;
    eprintln!("scorer: stopped");
    Ok(())
}
