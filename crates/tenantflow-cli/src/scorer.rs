//! `tenantflow scorer`: serves a churn model over HTTP (SageMaker's container contract
//! and the original `/assessChurn` route).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use tenantflow_operators::score::Model;

/// Flags of `tenantflow scorer`.
#[derive(Debug, Args)]
pub struct ScorerArgs {
    /// The model file (`tenantflow train` writes one; `../shared/bench/model.json` is one too).
    #[arg(long, value_name = "MODEL", env = "TENANTFLOW_SCORER_MODEL")]
    model: PathBuf,

    /// Address to listen on.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:8081",
        env = "TENANTFLOW_SCORER_LISTEN"
    )]
    listen: SocketAddr,

    /// Scoring requests served at once; one more gets a 503 with `Retry-After` before its
    /// body (up to 6 MB) is read, so memory stays bounded.
    #[arg(long, value_name = "N", default_value_t = tenantflow_scorer::DEFAULT_MAX_IN_FLIGHT, value_parser = crate::flags::count::<usize>(1, 1024), env = "TENANTFLOW_SCORER_MAX_IN_FLIGHT")]
    max_in_flight: usize,
}

/// Serves until Ctrl-C or SIGTERM.
pub fn run(args: ScorerArgs) -> Result<()> {
    let model = Model::load(&args.model)?;
    let name = model.name().to_owned();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        tenantflow_scorer::serve(
            model,
            args.listen,
            args.max_in_flight,
            |addr| eprintln!("scorer: serving model `{name}` on http://{addr} (POST /invocations, /assessChurn)"),
            crate::tenant_manager::shutdown_signal(),
        )
        .await
        .with_context(|| format!("serving on {}", args.listen))
    })?;
    eprintln!("scorer: stopped");
    Ok(())
}
