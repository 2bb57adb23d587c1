//! `tenantflow train`: fits the churn model on labelled companies and writes a model
//! file, with its test metrics.

use std::path::PathBuf;

use crate::flags;
use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use serde_json::json;
use tenantflow_train::data::{generate, parse_csv};
use tenantflow_train::metrics::Metrics;
use tenantflow_train::train;

/// Flags of `tenantflow train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Training data in the original layout
    /// (`Company,Industry,Revenue,Employees,#job30,#job90,MonthlyCharge,TotalCharge,Churn`).
    #[arg(long, value_name = "FILE", required_unless_present = "generate")]
    data: Option<PathBuf>,

    /// Make N companies by the original generator's rules instead of reading --data.
    #[arg(long, value_name = "N", conflicts_with = "data", value_parser = flags::count::<usize>(10, 100_000_000))]
    generate: Option<usize>,

    /// Where the model file goes.
    #[arg(long, value_name = "MODEL")]
    out: PathBuf,

    /// Which model the file holds (both are trained and measured): `best` (the one with
    /// the higher accuracy on the test rows; on a tie the higher ROC AUC, then the
    /// logistic regression), `logistic` (the format of ../shared/bench/model.json) or
    /// `trees`. `tenantflow run --model` reads either.
    #[arg(long, value_name = "KIND", default_value = "best")]
    kind: KindArg,

    /// Seed of the split (and of --generate).
    #[arg(long, value_name = "S", default_value_t = 42)]
    seed: u64,

    /// Share of the rows held out to measure the models.
    #[arg(long, value_name = "F", default_value_t = 0.2, value_parser = fraction)]
    test_fraction: f64,

    /// The model's name (default: the file's stem).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum KindArg {
    Best,
    Logistic,
    Trees,
}

/// The model kind that scored better on the test rows: higher accuracy, then higher ROC
/// AUC, then the logistic regression (the simpler model, and the shared bench's format).
fn better(logistic: &Metrics, trees: &Metrics) -> KindArg {
    let key = |m: &Metrics| (m.accuracy, m.roc_auc);
    if key(trees) > key(logistic) {
        KindArg::Trees
    } else {
        KindArg::Logistic
    }
}

/// A share strictly between 0 and 1.
fn fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(f) if f > 0.0 && f < 1.0 => Ok(f),
        _ => Err(format!(
            "`{text}` must be a number between 0 and 1 (exclusive)"
        )),
    }
}

/// Trains, prints the metrics, writes the model.
pub fn run(args: TrainArgs) -> Result<()> {
    let (text, source) = match (&args.data, args.generate) {
        (Some(path), _) => (
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
            path.display().to_string(),
        ),
        (None, Some(n)) => (generate(n, args.seed), format!("{n} generated rows")),
        (None, None) => bail!("give --data FILE or --generate N"),
    };
    let rows = parse_csv(&text, &source)?;
    let total = rows.len();
    if total < 10 {
        bail!("{source} has {total} rows: too few to train and test on");
    }
    let trained = train(rows, args.test_fraction, args.seed)?;
    let test_rows = total - trained.train_rows;
    println!(
        "tenantflow: trained on {} of {} rows from {source}; tested on {test_rows} (seed {}):",
        trained.train_rows, total, args.seed
    );
    print_metrics("logistic regression", &trained.logistic_metrics);
    print_metrics("gradient-boosted trees", &trained.trees_metrics);
    let name = args.name.clone().unwrap_or_else(|| {
        args.out
            .file_stem()
            .map_or_else(|| "churn".into(), |s| s.to_string_lossy().into_owned())
    });
    let training = |metrics: &Metrics, extra: serde_json::Value| {
        json!({
            "data": source,
            "rows": total,
            "train_rows": trained.train_rows,
            "test_rows": test_rows,
            "seed": args.seed,
            "test_fraction": args.test_fraction,
            "test_metrics": metrics,
            "fit": extra,
        })
    };
    let kind = match args.kind {
        KindArg::Best => better(&trained.logistic_metrics, &trained.trees_metrics),
        kind => kind,
    };
    let model = match kind {
        KindArg::Best | KindArg::Logistic => {
            let lr = &trained.logistic;
            lr.to_json(
                &name,
                training(
                    &trained.logistic_metrics,
                    json!({"method": "newton", "l2": 1.0, "tolerance": 1e-9,
                        "iterations": lr.iterations, "gradient": lr.gradient, "converged": lr.converged}),
                ),
            )
        }
        KindArg::Trees => trained.trees.to_json(
            &name,
            training(
                &trained.trees_metrics,
                json!({"rounds": trained.trees.trees.len(), "depth": 3, "learning_rate": 0.3, "lambda": 1.0}),
            ),
        ),
    };
    // The version names this very model: its name and a hash of everything in the file.
    let mut model = model;
    model["contract"] = trained.contract();
    let version = format!(
        "{name}-{:016x}",
        fnv1a(serde_json::to_string(&model)?.as_bytes())
    );
    model["version"] = json!(version);
    let text = serde_json::to_string_pretty(&model)?;
    std::fs::write(&args.out, text + "\n")
        .with_context(|| format!("writing {}", args.out.display()))?;
    let what = match kind {
        KindArg::Best | KindArg::Logistic => "logistic regression",
        KindArg::Trees => "gradient-boosted trees",
    };
    let why = if args.kind == KindArg::Best {
        ", the better on the test rows"
    } else {
        ", as --kind asks"
    };
    println!("  model ({what}{why}) -> {}", args.out.display());
    Ok(())
}

/// FNV-1a, 64 bits.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn print_metrics(what: &str, m: &Metrics) {
    let [[tn, fp], [fn_, tp]] = m.confusion;
    println!(
        "  {what:<24} accuracy {:.4}  precision {:.4}  recall {:.4}  ROC AUC {:.4}  (majority class {:.4})",
        m.accuracy, m.precision, m.recall, m.roc_auc, m.majority_accuracy
    );
    println!(
        "  {:<24} confusion: TN {tn}  FP {fp}  FN {fn_}  TP {tp}",
        ""
    );
}
