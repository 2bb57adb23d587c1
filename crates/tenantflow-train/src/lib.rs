//! Training the churn model (`tenantflow train`).
//!
//! - [`data`]: the original training layout
//!   (`Company,Industry,Revenue,Employees,#job30,#job90,MonthlyCharge,TotalCharge,Churn`),
//!   and [`data::generate`], which makes such data by the original generator's rules.
//! - [`split`]: a reproducible train/test split.
//! - [`logistic`]: logistic regression (standardised numeric features, one-hot industry,
//!   L2), fitted by Newton's method to a stated tolerance; written in the format of
//!   `bench/model.json`.
//! - [`trees`]: gradient-boosted decision trees on the same features.
//! - [`metrics`]: accuracy, precision, recall, ROC AUC and the confusion matrix.
//!
//! Training is offline work: nothing here is on the job's hot path.

use tenantflow_operators::score::{Features, Model};

pub mod data;
pub mod logistic;
pub mod metrics;
pub mod split;
pub mod trees;

/// The numeric features, in the order of every model file.
pub const NUMERIC: [&str; 6] = [
    "revenu",
    "employees",
    "job30",
    "job90",
    "monthlyFee",
    "totalFee",
];

/// One labelled company.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// Industry.
    pub industry: String,
    /// The numeric features, in [`NUMERIC`] order.
    pub x: [f64; 6],
    /// Churned.
    pub churn: bool,
}

/// What training made of a data set: both models and their test metrics.
#[derive(Debug, Clone)]
pub struct Trained {
    /// Rows trained on.
    pub train_rows: usize,
    /// The logistic regression.
    pub logistic: logistic::Logistic,
    /// Its metrics on the test split.
    pub logistic_metrics: metrics::Metrics,
    /// The tree ensemble.
    pub trees: trees::Ensemble,
    /// Its metrics on the test split.
    pub trees_metrics: metrics::Metrics,
    /// The industries of the training split, sorted.
    pub industries: Vec<String>,
}

impl Trained {
    /// The feature contract both models were trained to (`contract` in a model file,
    /// which loading checks): the job's columns, and the industries seen.
    pub fn contract(&self) -> serde_json::Value {
        serde_json::json!({
            "columns": tenantflow_operators::contract::COLUMNS,
            "industries": self.industries,
        })
    }
}

/// Why training failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// The regression could not be fitted.
    #[error(transparent)]
    Fit(#[from] logistic::FitError),
    /// A fitted model does not load as the job loads it (a bug: the writer and the
    /// reader of model files disagree).
    #[error("the fitted model does not load")]
    Load(#[from] tenantflow_operators::score::ModelError),
}

impl Example {
    /// The numeric features, as the job's [`Model`] takes them.
    pub fn features(&self) -> Features {
        let x = &self.x;
        Features {
            revenu: x[0],
            employees: x[1],
            job30: x[2],
            job90: x[3],
            monthly_fee: x[4],
            total_fee: x[5],
        }
    }
}

/// The industries of `rows`, sorted, each once.
fn industries(rows: &[Example]) -> Vec<String> {
    let mut industries: Vec<String> = rows.iter().map(|r| r.industry.clone()).collect();
    industries.sort_unstable();
    industries.dedup();
    industries
}

/// The job's scores of `rows` by `model`.
fn scores(model: &Model, rows: &[Example]) -> Vec<f64> {
    rows.iter()
        .map(|r| {
            model.score(
                &r.features(),
                &r.industry,
                model.industry_weight(&r.industry),
            )
        })
        .collect()
}

/// Splits `rows` (`test_fraction` for test, shuffled by `seed`), fits both models on
/// the training split and measures them on the test split. The measuring is done by
/// the job's own scorer ([`Model`]) on the model files as written, so the metrics are
/// those of what the job and `tenantflow scorer` will run.
///
/// # Errors
/// Too few rows to train on, or a failed fit.
pub fn train(rows: Vec<Example>, test_fraction: f64, seed: u64) -> Result<Trained, TrainError> {
    let (train, test) = split::split(rows, test_fraction, seed);
    let industries = industries(&train);
    let logistic = logistic::fit(&train, logistic::Settings::default())?;
    let trees = trees::fit(&train, trees::Settings::default());
    let labels: Vec<bool> = test.iter().map(|r| r.churn).collect();
    let load = |file: serde_json::Value| Model::from_json(&file.to_string(), "fitted model");
    let lr_scores = scores(&load(logistic.to_json("fitted", ()))?, &test);
    let tree_scores = scores(&load(trees.to_json("fitted", ()))?, &test);
    Ok(Trained {
        train_rows: train.len(),
        logistic_metrics: metrics::evaluate(&lr_scores, &labels, 0.5),
        trees_metrics: metrics::evaluate(&tree_scores, &labels, 0.5),
        logistic,
        trees,
        industries,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_numeric_features_are_the_contracts_columns_after_the_industry() {
        assert_eq!(
            super::NUMERIC[..],
            tenantflow_operators::contract::COLUMNS[1..]
        );
    }
}
