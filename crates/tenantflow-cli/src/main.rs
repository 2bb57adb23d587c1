//! `tenantflow`: real-time tenant analytics. See `tenantflow --help`.

mod config_command;
mod flags;
mod health;
mod produce;
mod progress;
mod repartition;
mod run;
mod scorer;
mod streams;
mod summary;
mod tenant_manager;
mod train;

use std::process::ExitCode;

// The configuration files' loader is the library's (so that a fuzz target can link it);
// `crate::config::…` names it throughout the binary.
use tenantflow_cli::config;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// The release and the commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("TENANTFLOW_GIT_HASH"),
    ")"
);

/// Real-time tenant analytics: job events joined with company profiles, 30/90-day job
/// counts and churn risk per tenant.
#[derive(Debug, Parser)]
#[command(name = "tenantflow", version = VERSION, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How logs are written to stderr: `text`, or `json` (one JSON object a line, with
    /// timestamp, level, target, message and fields: for CloudWatch and other
    /// collectors).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "TENANTFLOW_LOG_FORMAT")]
    log_format: LogFormat,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// JSON lines.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the job: read events, join, count, score, write results.
    Run(Box<run::RunArgs>),
    /// Publish records to a Kinesis stream.
    Produce(produce::ProduceArgs),
    /// Create, describe or delete Kinesis streams.
    Streams(streams::StreamsArgs),
    /// Re-publish a stream keyed by companyID (for one whose producers used random
    /// keys), shared among workers by leases.
    Repartition(repartition::RepartitionArgs),
    /// The TenantManager service: tenants over REST, in SQLite or PostgreSQL.
    TenantManager(tenant_manager::TenantManagerArgs),
    /// Train the churn model on labelled companies; print its test metrics.
    Train(train::TrainArgs),
    /// Serve a churn model over HTTP (SageMaker-compatible, and /assessChurn).
    Scorer(scorer::ScorerArgs),
    /// Print an example configuration file, or check one.
    Config(config_command::ConfigArgs),
    /// Ask a running job's admin server whether it is alive (or ready): exit 0 if so.
    Health(health::HealthArgs),
}

/// The command line, each flag's default in its help taken from its configuration key.
fn command_line() -> Cli {
    let command = Cli::command()
        .mut_subcommand("run", run::with_defaults_in_help)
        .mut_subcommand("tenant-manager", tenant_manager::with_defaults_in_help)
        .mut_subcommand("scorer", scorer::with_defaults_in_help);
    let matches = command.get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

fn main() -> ExitCode {
    let cli = command_line();
    let log_format = cli.log_format;
    init_logging(log_format);
    let result = match cli.command {
        Command::Run(args) => run::run(*args),
        Command::Produce(args) => produce::run(args),
        Command::Streams(args) => streams::run(args),
        Command::Repartition(args) => repartition::run(args),
        Command::TenantManager(args) => tenant_manager::run(args),
        Command::Train(args) => train::run(args),
        Command::Scorer(args) => scorer::run(args),
        Command::Config(args) => config_command::run(args),
        Command::Health(args) => health::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            match log_format {
                LogFormat::Text => eprintln!("tenantflow: error: {error:#}"),
                // A log collector reads every line as JSON: the last one too.
                LogFormat::Json => tracing::error!("tenantflow: error: {error:#}"),
            }
            // A refused configuration, or flags that do not fit together, are a usage
            // error, as clap's own are: status 2. Every other error is 1.
            if error.downcast_ref::<flags::UsageError>().is_some()
                || error.downcast_ref::<config::ConfigError>().is_some()
                || error.downcast_ref::<clap::Error>().is_some()
            {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Logs go to stderr, filtered by `TENANTFLOW_LOG` (or `RUST_LOG`), warnings by default;
/// as text, or as JSON lines.
fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("TENANTFLOW_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .and_then(|spec| EnvFilter::try_new(spec).ok())
        .unwrap_or_else(|| EnvFilter::new("warn"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        // Fields at the top level beside `message`, as log collectors index them.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}
