//! `tenantflow config`: a commented example file, and a check of a file that prints the
//! effective configuration (the file with the `TENANTFLOW_*` variables over it),
//! secrets masked.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, FromArgMatches, Subcommand, ValueEnum};

use crate::config::run::RunConfig;
use crate::config::service::{ScorerConfig, TenantManagerConfig};
use crate::config::{effective, example};

/// Flags of `tenantflow config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Print a configuration file with every key at its default, each explained.
    Example {
        /// The command whose file to print.
        #[arg(value_enum, default_value_t = Of::Run)]
        command: Of,
    },
    /// Check a configuration file and print the effective configuration (the file's
    /// keys with the TENANTFLOW_* variables over them), secrets masked. A refused file
    /// exits 2, naming the key, the value and what was expected.
    Check {
        /// The file.
        file: PathBuf,
        /// The command the file is for.
        #[arg(long = "for", value_enum, default_value_t = Of::Run)]
        command: Of,
    },
}

/// The commands with a configuration file.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Of {
    Run,
    TenantManager,
    Scorer,
}

/// Runs `tenantflow config`.
pub fn run(args: ConfigArgs) -> Result<()> {
    match args.action {
        Action::Example { command } => {
            print!(
                "{}",
                match command {
                    Of::Run => example::<RunConfig>("tenantflow run --config FILE"),
                    Of::TenantManager =>
                        example::<TenantManagerConfig>("tenantflow tenant-manager --config FILE"),
                    Of::Scorer => example::<ScorerConfig>("tenantflow scorer --config FILE"),
                }
            );
        }
        Action::Check { file, command } => {
            let shown = match command {
                Of::Run => {
                    let mut args = from_environment::<crate::run::RunArgs>("run")?;
                    args.set_config(file.clone());
                    effective(&args.layered()?)
                }
                Of::TenantManager => effective(
                    &from_environment::<crate::tenant_manager::TenantManagerArgs>(
                        "tenant-manager",
                    )?
                    .layered(Some(&file))?,
                ),
                Of::Scorer => effective(
                    &from_environment::<crate::scorer::ScorerArgs>("scorer")?
                        .layered(Some(&file))?,
                ),
            };
            eprintln!(
                "tenantflow: {} is valid; the effective configuration, with TENANTFLOW_* variables applied:",
                file.display()
            );
            print!("{shown}");
        }
    }
    Ok(())
}

/// A command's flags as the `TENANTFLOW_*` variables alone set them.
fn from_environment<A: Args + FromArgMatches>(name: &'static str) -> Result<A> {
    let command = A::augment_args(clap::Command::new(name).no_binary_name(true));
    let matches = command.try_get_matches_from(std::iter::empty::<String>())?;
    Ok(A::from_arg_matches(&matches)?)
}
