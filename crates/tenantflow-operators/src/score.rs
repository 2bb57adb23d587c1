//! The churn model, from a model file of one of two kinds:
//!
//! - `logistic_regression` (the format of `bench/model.json`):
//!   `z = intercept + Σ weight_i · (x_i − mean_i) / std_i + industry_weight`, summed in
//!   that order (the order of the file's features);
//! - `gradient_boosted_trees` (written by `tenantflow train --kind trees`):
//!   `z = base_score + Σ leaf of each tree`, a numeric node sending `x < threshold`
//!   left, an industry node sending its industries left (an unknown industry right).
//!
//! `churnScore = 1 / (1 + e^−z)` (an overflowing exponential gives exactly 0),
//! `riskOfChurn = churnScore >= threshold`.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::contract::Contract;

/// The model used when none is given.
const BUILTIN_MODEL: &str = include_str!("../models/builtin.json");

/// Why a model file cannot be used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The file cannot be read.
    #[error("cannot read model file {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a model of a known kind.
    #[error("model file {path} is not a valid model")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The model's values are unusable.
    #[error("model {name}: {problem}")]
    Invalid {
        /// The model's name.
        name: String,
        /// What is wrong.
        problem: String,
    },
}

/// A model input feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Feature {
    /// Revenue.
    #[serde(rename = "revenu")]
    Revenu,
    /// Employees.
    #[serde(rename = "employees")]
    Employees,
    /// 30-day job count (with the window).
    #[serde(rename = "job30")]
    Job30,
    /// 90-day job count (with the window).
    #[serde(rename = "job90")]
    Job90,
    /// Monthly fee.
    #[serde(rename = "monthlyFee")]
    MonthlyFee,
    /// Total fee.
    #[serde(rename = "totalFee")]
    TotalFee,
}

/// The numeric inputs of one scoring.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Features {
    /// Revenue.
    pub revenu: f64,
    /// Employees.
    pub employees: f64,
    /// 30-day job count.
    pub job30: f64,
    /// 90-day job count.
    pub job90: f64,
    /// Monthly fee.
    pub monthly_fee: f64,
    /// Total fee.
    pub total_fee: f64,
}

impl Feature {
    /// Every feature, in the order of the contract's columns after the industry.
    pub const ALL: [Feature; 6] = [
        Feature::Revenu,
        Feature::Employees,
        Feature::Job30,
        Feature::Job90,
        Feature::MonthlyFee,
        Feature::TotalFee,
    ];
}

impl Features {
    fn get(&self, feature: Feature) -> f64 {
        match feature {
            Feature::Revenu => self.revenu,
            Feature::Employees => self.employees,
            Feature::Job30 => self.job30,
            Feature::Job90 => self.job90,
            Feature::MonthlyFee => self.monthly_fee,
            Feature::TotalFee => self.total_fee,
        }
    }
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum ModelFile {
    LogisticRegression(LogisticRegressionFile),
    GradientBoostedTrees(TreesFile),
}

#[derive(Deserialize)]
struct TreesFile {
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    contract: Option<Contract>,
    threshold: f64,
    base_score: f64,
    trees: Vec<Vec<TreeNode>>,
}

/// A node of a tree as model files store it (`tenantflow train` writes these, the job
/// reads them). Children are indices into the tree's list of nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TreeNode {
    /// `feature < threshold` goes to `left`.
    Numeric {
        /// The feature compared.
        feature: Feature,
        /// The threshold.
        threshold: f64,
        /// Index of the left child.
        left: usize,
        /// Index of the right child.
        right: usize,
    },
    /// An industry in `industries` goes to `left`; any other, to `right`.
    Industry {
        /// The industries that go left.
        industries: Vec<String>,
        /// Index of the left child.
        left: usize,
        /// Index of the right child.
        right: usize,
    },
    /// A leaf: added to the log-odds.
    Leaf {
        /// The value.
        leaf: f64,
    },
}

#[derive(Debug, Clone)]
enum Node {
    Numeric {
        feature: Feature,
        threshold: f64,
        left: u32,
        right: u32,
    },
    Industry {
        industries: Box<[Box<str>]>,
        left: u32,
        right: u32,
    },
    Leaf(f64),
}

#[derive(Debug, Clone)]
enum Kind {
    Logistic {
        intercept: f64,
        terms: Vec<Term>,
        industry: HashMap<Box<str>, f64>,
    },
    Trees {
        base: f64,
        trees: Vec<Box<[Node]>>,
    },
}

#[derive(Deserialize)]
struct LogisticRegressionFile {
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    contract: Option<Contract>,
    threshold: f64,
    intercept: f64,
    features: Vec<FeatureFile>,
    #[serde(default)]
    categorical: CategoricalFile,
}

#[derive(Deserialize)]
struct FeatureFile {
    name: Feature,
    mean: f64,
    std: f64,
    weight: f64,
}

#[derive(Deserialize, Default)]
struct CategoricalFile {
    #[serde(default)]
    industry: HashMap<String, f64>,
}

#[derive(Debug, Clone, Copy)]
struct Term {
    feature: Feature,
    mean: f64,
    std: f64,
    weight: f64,
}

/// A validated churn model, ready to score.
#[derive(Debug, Clone)]
pub struct Model {
    name: String,
    /// The file's `version` (written by `tenantflow train`), else the name.
    version: String,
    threshold: f64,
    kind: Kind,
}

impl Model {
    /// The built-in model, for runs without a model file.
    pub fn builtin() -> Self {
        Self::from_json(BUILTIN_MODEL, "<builtin>").expect("the built-in model is valid")
    }

    /// Loads and validates a model file.
    ///
    /// # Errors
    /// When the file cannot be read, parsed or used.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&text, &path.display().to_string())
    }

    /// Parses and validates a model from JSON text; `origin` names it in errors.
    ///
    /// # Errors
    /// When the text is not a valid model.
    pub fn from_json(text: &str, origin: &str) -> Result<Self, ModelError> {
        let file: ModelFile = serde_json::from_str(text).map_err(|source| ModelError::Parse {
            path: origin.to_owned(),
            source,
        })?;
        match file {
            ModelFile::LogisticRegression(file) => Self::logistic(file),
            ModelFile::GradientBoostedTrees(file) => Self::trees(file),
        }
    }

    fn logistic(file: LogisticRegressionFile) -> Result<Self, ModelError> {
        let invalid = |problem: String| ModelError::Invalid {
            name: file.name.clone(),
            problem,
        };
        check_threshold(&file.name, file.threshold)?;
        check_contract(
            &file.name,
            file.contract.as_ref(),
            file.categorical.industry.keys(),
        )?;
        if !file.intercept.is_finite() {
            return Err(invalid("intercept is not finite".into()));
        }
        let mut terms: Vec<Term> = Vec::with_capacity(file.features.len());
        for f in &file.features {
            if terms.iter().any(|t| t.feature == f.name) {
                return Err(invalid(format!("feature {:?} appears twice", f.name)));
            }
            if !(f.std.is_finite() && f.std > 0.0 && f.mean.is_finite() && f.weight.is_finite()) {
                return Err(invalid(format!(
                    "feature {:?}: mean and weight must be finite and std > 0",
                    f.name
                )));
            }
            terms.push(Term {
                feature: f.name,
                mean: f.mean,
                std: f.std,
                weight: f.weight,
            });
        }
        if let Some((k, _)) = file
            .categorical
            .industry
            .iter()
            .find(|(_, w)| !w.is_finite())
        {
            return Err(invalid(format!("industry weight of {k} is not finite")));
        }
        Ok(Self {
            version: file.version.unwrap_or_else(|| file.name.clone()),
            threshold: file.threshold,
            kind: Kind::Logistic {
                intercept: file.intercept,
                terms,
                industry: file
                    .categorical
                    .industry
                    .into_iter()
                    .map(|(k, w)| (k.into_boxed_str(), w))
                    .collect(),
            },
            name: file.name,
        })
    }

    fn trees(file: TreesFile) -> Result<Self, ModelError> {
        let invalid = |problem: String| ModelError::Invalid {
            name: file.name.clone(),
            problem,
        };
        check_threshold(&file.name, file.threshold)?;
        let industries = file.trees.iter().flatten().flat_map(|node| match node {
            TreeNode::Industry { industries, .. } => industries.as_slice(),
            _ => &[],
        });
        check_contract(&file.name, file.contract.as_ref(), industries)?;
        if !file.base_score.is_finite() {
            return Err(invalid("base_score is not finite".into()));
        }
        let mut trees = Vec::with_capacity(file.trees.len());
        for (t, tree) in file.trees.iter().enumerate() {
            if tree.is_empty() {
                return Err(invalid(format!("tree {t} has no node")));
            }
            // Children come after their parent: every walk ends at a leaf.
            let child = |i: usize, c: usize| -> Result<u32, ModelError> {
                if c > i && c < tree.len() {
                    Ok(c as u32)
                } else {
                    Err(invalid(format!(
                        "tree {t}, node {i}: child {c} must come after it and within the tree's {} nodes",
                        tree.len()
                    )))
                }
            };
            let mut nodes = Vec::with_capacity(tree.len());
            for (i, node) in tree.iter().enumerate() {
                nodes.push(match node {
                    TreeNode::Leaf { leaf } if leaf.is_finite() => Node::Leaf(*leaf),
                    TreeNode::Leaf { .. } => {
                        return Err(invalid(format!("tree {t}, node {i}: leaf is not finite")));
                    }
                    TreeNode::Numeric {
                        feature,
                        threshold,
                        left,
                        right,
                    } => {
                        if !threshold.is_finite() {
                            return Err(invalid(format!(
                                "tree {t}, node {i}: threshold is not finite"
                            )));
                        }
                        Node::Numeric {
                            feature: *feature,
                            threshold: *threshold,
                            left: child(i, *left)?,
                            right: child(i, *right)?,
                        }
                    }
                    TreeNode::Industry {
                        industries,
                        left,
                        right,
                    } => Node::Industry {
                        industries: industries.iter().map(|s| s.as_str().into()).collect(),
                        left: child(i, *left)?,
                        right: child(i, *right)?,
                    },
                });
            }
            trees.push(nodes.into_boxed_slice());
        }
        Ok(Self {
            version: file.version.unwrap_or_else(|| file.name.clone()),
            threshold: file.threshold,
            kind: Kind::Trees {
                base: file.base_score,
                trees,
            },
            name: file.name,
        })
    }

    /// The model's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The model's version: the file's `version` (`tenantflow train` writes the name and
    /// a hash of the model), else its name.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The weight of an industry for a logistic regression; 0 for an industry the model
    /// does not list, and for tree models (which read the industry itself).
    pub fn industry_weight(&self, industry: &str) -> f64 {
        match &self.kind {
            Kind::Logistic { industry: w, .. } => w.get(industry).copied().unwrap_or(0.0),
            Kind::Trees { .. } => 0.0,
        }
    }

    /// The churn probability of a tenant of `industry`, whose
    /// [`industry_weight`](Self::industry_weight) is given (computed once per profile).
    pub fn score(&self, features: &Features, industry: &str, industry_weight: f64) -> f64 {
        let z = match &self.kind {
            Kind::Logistic {
                intercept, terms, ..
            } => {
                let mut z = *intercept;
                for t in terms {
                    z += t.weight * (features.get(t.feature) - t.mean) / t.std;
                }
                z + industry_weight
            }
            Kind::Trees { base, trees } => {
                let mut z = *base;
                for tree in trees {
                    z += walk(tree, features, industry);
                }
                z
            }
        };
        1.0 / (1.0 + (-z).exp())
    }

    /// Whether a score flags a churn risk.
    pub fn is_risk(&self, score: f64) -> bool {
        score >= self.threshold
    }
}

/// Checks a model file's contract: the job's columns, and every industry the model
/// names among the contract's (when it lists them). A file without a contract (an older
/// or hand-written one) is taken to speak the job's.
fn check_contract<'a>(
    name: &str,
    contract: Option<&Contract>,
    named: impl IntoIterator<Item = &'a String>,
) -> Result<(), ModelError> {
    let Some(contract) = contract else {
        return Ok(());
    };
    let invalid = |problem: String| ModelError::Invalid {
        name: name.to_owned(),
        problem,
    };
    contract.check().map_err(invalid)?;
    if !contract.industries.is_empty()
        && let Some(stray) = named.into_iter().find(|i| !contract.industries.contains(i))
    {
        return Err(invalid(format!(
            "industry `{stray}` is not among the contract's industries"
        )));
    }
    Ok(())
}

/// The leaf a tree gives: children come after their parents (checked at load), so the
/// walk ends.
fn walk(tree: &[Node], features: &Features, industry: &str) -> f64 {
    let mut at = 0;
    loop {
        match &tree[at] {
            Node::Leaf(value) => return *value,
            Node::Numeric {
                feature,
                threshold,
                left,
                right,
            } => {
                let go_left = features.get(*feature) < *threshold;
                at = if go_left { *left } else { *right } as usize;
            }
            Node::Industry {
                industries,
                left,
                right,
            } => {
                let go_left = industries.iter().any(|i| **i == *industry);
                at = if go_left { *left } else { *right } as usize;
            }
        }
    }
}

fn check_threshold(name: &str, threshold: f64) -> Result<(), ModelError> {
    if (0.0..=1.0).contains(&threshold) {
        Ok(())
    } else {
        Err(ModelError::Invalid {
            name: name.to_owned(),
            problem: format!("threshold {threshold} is not in [0, 1]"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The built-in model's file: the tests' logistic model (no file outside the
    /// repository is needed).
    const MODEL: &str = include_str!("../models/builtin.json");

    fn features() -> Features {
        Features {
            revenu: 1_234_567.0,
            employees: 250.0,
            job30: 15.0,
            job90: 43.0,
            monthly_fee: 450.0,
            total_fee: 9800.0,
        }
    }

    #[test]
    fn scores_by_the_formula() {
        let model = Model::from_json(MODEL, "model.json").unwrap();
        let f = features();
        let z = -0.6
            + -0.3 * (f.revenu - 1e7) / 5.8e6
            + -0.2 * (f.employees - 1000.0) / 580.0
            + -0.8 * (f.job30 - 120.0) / 150.0
            + -0.5 * (f.job90 - 350.0) / 400.0
            + 0.9 * (f.monthly_fee - 1260.0) / 720.0
            + -0.4 * (f.total_fee - 23000.0) / 20000.0
            + 0.3;
        let score = model.score(&f, "retail", model.industry_weight("retail"));
        assert_eq!(score, 1.0 / (1.0 + (-z).exp()));
        assert_eq!(model.industry_weight("agriculture"), 0.0);
        assert_eq!(model.is_risk(score), score >= 0.5);
    }

    #[test]
    fn overflowing_exponent_scores_zero() {
        let model = Model::from_json(MODEL, "model.json").unwrap();
        let f = Features {
            revenu: 1e300,
            ..features()
        };
        assert_eq!(model.score(&f, "x", 0.0), 0.0);
    }

    #[test]
    fn builtin_model_loads() {
        assert_eq!(Model::builtin().name(), "tenantflow-builtin-v1");
    }

    #[test]
    fn invalid_models_say_what_is_wrong() {
        let bad = MODEL.replace("\"std\": 400.0", "\"std\": 0.0");
        let err = Model::from_json(&bad, "m").unwrap_err();
        assert!(err.to_string().contains("std > 0"), "{err}");
        let err = Model::from_json(r#"{"kind":"forest"}"#, "m").unwrap_err();
        assert!(matches!(err, ModelError::Parse { .. }), "{err}");
    }

    #[test]
    fn tree_models_score_and_bad_trees_are_refused() {
        let file = r#"{"kind":"gradient_boosted_trees","name":"t","threshold":0.5,"base_score":0.0,
            "trees":[[{"feature":"job30","threshold":5.0,"left":1,"right":2},{"leaf":2.0},
                      {"industries":["retail"],"left":3,"right":4},{"leaf":1.0},{"leaf":-3.0}]]}"#;
        let model = Model::from_json(file, "t").unwrap();
        let mut f = Features {
            revenu: 0.0,
            employees: 0.0,
            job30: 3.0,
            job90: 0.0,
            monthly_fee: 0.0,
            total_fee: 0.0,
        };
        let sigmoid = |z: f64| 1.0 / (1.0 + (-z).exp());
        assert_eq!(model.score(&f, "IT", 0.0), sigmoid(2.0));
        f.job30 = 7.0;
        assert_eq!(model.score(&f, "retail", 0.0), sigmoid(1.0));
        assert_eq!(model.score(&f, "unseen", 0.0), sigmoid(-3.0));
        assert_eq!(model.industry_weight("retail"), 0.0);
        let cycle = file.replace(r#""left":3,"right":4"#, r#""left":0,"right":4"#);
        let err = Model::from_json(&cycle, "t").unwrap_err().to_string();
        assert!(err.contains("must come after it"), "{err}");
    }

    #[test]
    fn a_contract_is_checked_at_load() {
        let columns = r#""columns":["industry","revenu","employees","job30","job90","monthlyFee","totalFee"]"#;
        let with =
            |contract: &str| MODEL.replacen('{', &format!("{{\"contract\":{{{contract}}},"), 1);
        let ok = with(&format!(
            r#"{columns},"industries":["gov","health","retail","travel","energy","IT","finance","consulting","service"]"#
        ));
        Model::from_json(&ok, "m").unwrap();
        let swapped = with(&columns.replace("\"job30\",\"job90\"", "\"job90\",\"job30\""));
        let err = Model::from_json(&swapped, "m").unwrap_err().to_string();
        assert!(err.contains("expects columns"), "{err}");
        let stray = with(&format!(r#"{columns},"industries":["IT","finance"]"#));
        let err = Model::from_json(&stray, "m").unwrap_err().to_string();
        assert!(err.contains("not among the contract's industries"), "{err}");
    }
}
