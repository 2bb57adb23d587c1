//! A scoring contract: how rows go to a remote scorer and how its answer is read.
//!
//! tenantflow's own scorer takes `text/csv` rows in the feature contract's order
//! (`industry,revenu,…`, [`tenantflow_operators::contract::COLUMNS`]) and answers
//! `{"predictions":[{"score","predicted_label"}]}`. Endpoints deployed by others expect
//! something else: a SageMaker linear-learner trained from a notebook takes numbers and
//! a one-hot industry block, and the original API Gateway route takes one company as
//! JSON and answers `{"churn":bool}`. A contract file (TOML, `--score-contract FILE`)
//! says which:
//!
//! ```toml
//! request = "csv"                  # or "company-json": one company per request
//! columns = ["revenu", "employees", "job30", "job90", "monthlyFee", "totalFee", "industry"]
//! industry = "one-hot"             # or "text"
//! industries = ["consulting", "retail", "service", "health", "finance", "gov", "travel", "energy"]
//! answer = "sagemaker"             # or "tenantflow", "churn"
//! threshold = 0.5                  # a `sagemaker` answer without predicted_label
//! ```

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;
use tenantflow_operators::contract::{COLUMNS, write_csv_row};

use crate::score::{Prediction, ScoreRow, Scored};

/// How a request carries its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequestBody {
    /// `text/csv`, one line per row, any number of rows per request.
    Csv,
    /// `application/json`, one company per request, as the original route takes it:
    /// `{"industry","revenu","employees","employee","job30","job90","monthlyFee","totalFee"}`.
    CompanyJson,
}

/// How the industry column is written in a CSV row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IndustryEncoding {
    /// As text (quoted when it holds a comma, a quote or a line break).
    Text,
    /// One column per industry of `industries`, in that order: 1 for the row's, 0 for
    /// the others; an industry not in the list is all zeros.
    OneHot,
}

/// How the answer is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnswerFormat {
    /// tenantflow's scorer: `{"predictions":[{"score","predicted_label"}…],"model_version"}`,
    /// both fields of each prediction required.
    Tenantflow,
    /// SageMaker built-in algorithms: `{"predictions":[{"score", "predicted_label"?}…]}`;
    /// without a label the risk is `score >= threshold`.
    Sagemaker,
    /// The original route: `{"churn":bool}`, with `score` optional.
    Churn,
}

/// A column of a CSV row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Industry,
    Number(usize),
}

/// A scoring contract, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreContract {
    request: RequestBody,
    columns: Vec<Column>,
    industry: IndustryEncoding,
    industries: Vec<Box<str>>,
    answer: AnswerFormat,
    threshold: f64,
}

/// Why a contract file is refused.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    /// The file cannot be read.
    #[error("scoring contract `{path}`: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a contract.
    #[error("scoring contract `{path}`: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, with the key.
        message: String,
    },
}

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContractFile {
    #[serde(default = "default_request")]
    request: RequestBody,
    #[serde(default)]
    columns: Option<Vec<String>>,
    #[serde(default = "default_industry")]
    industry: IndustryEncoding,
    #[serde(default)]
    industries: Vec<String>,
    answer: AnswerFormat,
    #[serde(default = "default_threshold")]
    threshold: f64,
}

fn default_request() -> RequestBody {
    RequestBody::Csv
}

fn default_industry() -> IndustryEncoding {
    IndustryEncoding::Text
}

fn default_threshold() -> f64 {
    0.5
}

/// The feature contract's layout ([`COLUMNS`]): the industry, then the numbers in the
/// order of [`Features`](tenantflow_operators::score::Features)' fields.
const FEATURE_LAYOUT: [Column; 7] = [
    Column::Industry,
    Column::Number(0),
    Column::Number(1),
    Column::Number(2),
    Column::Number(3),
    Column::Number(4),
    Column::Number(5),
];

impl ScoreContract {
    /// tenantflow's own contract: CSV rows in the feature contract's order, the industry
    /// as text, tenantflow's answer.
    pub fn tenantflow() -> Self {
        Self {
            request: RequestBody::Csv,
            columns: FEATURE_LAYOUT.to_vec(),
            industry: IndustryEncoding::Text,
            industries: Vec::new(),
            answer: AnswerFormat::Tenantflow,
            threshold: default_threshold(),
        }
    }

    /// The original `/assessChurn` route: one company as JSON, `{"churn"}` back.
    pub fn assess_churn() -> Self {
        Self {
            request: RequestBody::CompanyJson,
            answer: AnswerFormat::Churn,
            ..Self::tenantflow()
        }
    }

    /// Reads and checks a contract file.
    ///
    /// # Errors
    /// A file that cannot be read, or is not a valid contract (the key and what is
    /// expected).
    pub fn read(path: &Path) -> Result<Self, ContractError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ContractError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ContractError::Invalid {
            path: shown,
            message,
        })
    }

    /// Checks a contract's text.
    ///
    /// # Errors
    /// What is wrong, with its key.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file = read_file(text)?;
        let columns = match &file.columns {
            Some(names) => {
                let mut seen = HashSet::new();
                let mut columns = Vec::with_capacity(names.len());
                for name in names {
                    let col = column(name).ok_or_else(|| {
                        format!(
                            "columns: unknown column `{name}`; expected {}",
                            COLUMNS.join(", ")
                        )
                    })?;
                    if !seen.insert(name.as_str()) {
                        return Err(format!("columns: `{name}` appears twice"));
                    }
                    columns.push(col);
                }
                if columns.is_empty() {
                    return Err("columns: expected at least one column".into());
                }
                columns
            }
            None => FEATURE_LAYOUT.to_vec(),
        };
        if file.request == RequestBody::CompanyJson && file.columns.is_some() {
            return Err(
                "columns: a company-json request sends the whole company; columns are for csv"
                    .into(),
            );
        }
        match file.industry {
            IndustryEncoding::OneHot if file.industries.is_empty() => {
                return Err(
                    "industries: one-hot needs the list of industries, in the model's order".into(),
                );
            }
            IndustryEncoding::Text if !file.industries.is_empty() => {
                return Err("industries: only for industry = \"one-hot\"".into());
            }
            _ => {}
        }
        let mut seen = HashSet::new();
        for industry in &file.industries {
            if industry.trim().is_empty() {
                return Err("industries: an industry is empty".into());
            }
            if !seen.insert(industry.as_str()) {
                return Err(format!("industries: `{industry}` appears twice"));
            }
        }
        if !(0.0..=1.0).contains(&file.threshold) {
            return Err(format!(
                "threshold: expected a number from 0 to 1, got {}",
                file.threshold
            ));
        }
        Ok(Self {
            request: file.request,
            columns,
            industry: file.industry,
            industries: file.industries.into_iter().map(Box::from).collect(),
            answer: file.answer,
            threshold: file.threshold,
        })
    }

    /// How requests carry rows.
    pub fn request(&self) -> RequestBody {
        self.request
    }

    /// Most rows one request can carry: one for a company-json request.
    pub fn max_batch(&self) -> Option<std::num::NonZeroUsize> {
        match self.request {
            RequestBody::CompanyJson => Some(std::num::NonZeroUsize::MIN),
            RequestBody::Csv => None,
        }
    }

    /// The content type and body of a request carrying `rows`.
    ///
    /// # Errors
    /// More than one row for a company-json request.
    pub fn body(&self, rows: &[ScoreRow]) -> Result<(&'static str, String), String> {
        match self.request {
            RequestBody::Csv => {
                let mut body = String::with_capacity(rows.len() * 64);
                for row in rows {
                    self.write_csv_row(&mut body, row);
                }
                Ok(("text/csv", body))
            }
            RequestBody::CompanyJson => {
                let [row] = rows else {
                    return Err(format!(
                        "a company-json request takes one company, not {}",
                        rows.len()
                    ));
                };
                let f = &row.features;
                // Both spellings: the original route's Lambda read `employee` (the
                // original job sent `employees`, and every call failed).
                let body = serde_json::json!({
                    "industry": row.industry, "revenu": f.revenu,
                    "employees": f.employees, "employee": f.employees,
                    "job30": f.job30, "job90": f.job90,
                    "monthlyFee": f.monthly_fee, "totalFee": f.total_fee,
                });
                Ok(("application/json", body.to_string()))
            }
        }
    }

    fn write_csv_row(&self, out: &mut String, row: &ScoreRow) {
        if self.is_feature_contract() {
            return write_csv_row(out, &row.industry, &row.features);
        }
        let f = &row.features;
        let numbers = [
            f.revenu,
            f.employees,
            f.job30,
            f.job90,
            f.monthly_fee,
            f.total_fee,
        ];
        let mut text = ryu::Buffer::new();
        for (i, col) in self.columns.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            match col {
                // Shortest form that reads back exactly, as the feature contract's.
                Column::Number(n) => out.push_str(text.format(numbers[*n])),
                Column::Industry => match self.industry {
                    IndustryEncoding::Text => push_csv_text(out, &row.industry),
                    IndustryEncoding::OneHot => {
                        for (j, industry) in self.industries.iter().enumerate() {
                            if j > 0 {
                                out.push(',');
                            }
                            out.push(if **industry == *row.industry {
                                '1'
                            } else {
                                '0'
                            });
                        }
                    }
                },
            }
        }
        out.push('\n');
    }

    /// The feature contract's layout: written by its own writer.
    fn is_feature_contract(&self) -> bool {
        self.industry == IndustryEncoding::Text && self.columns == FEATURE_LAYOUT
    }

    /// Reads the answer to a request of `rows` rows.
    ///
    /// # Errors
    /// Another shape, a score that is not a probability, or another number of
    /// predictions.
    pub fn read_answer(&self, body: &[u8], rows: usize) -> Result<Scored, String> {
        match self.answer {
            AnswerFormat::Tenantflow => read_predictions(body, rows, None),
            AnswerFormat::Sagemaker => read_predictions(body, rows, Some(self.threshold)),
            AnswerFormat::Churn => read_churn(body, rows),
        }
    }
}

/// The file's keys, or what is wrong with the key named and the line.
fn read_file(text: &str) -> Result<ContractFile, String> {
    let line = |span: Option<std::ops::Range<usize>>| {
        span.map(|s| {
            let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: ")
        })
        .unwrap_or_default()
    };
    let deserializer = toml::de::Deserializer::parse(text)
        .map_err(|e| format!("{}{}", line(e.span()), e.message()))?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        if key.is_empty() || key == "." {
            format!("{}{}", line(inner.span()), inner.message())
        } else {
            format!("{}{key}: {}", line(inner.span()), inner.message())
        }
    })
}

fn column(name: &str) -> Option<Column> {
    if name == "industry" {
        return Some(Column::Industry);
    }
    // The numbers follow the industry in the feature contract.
    COLUMNS[1..]
        .iter()
        .position(|n| *n == name)
        .map(Column::Number)
}

fn push_csv_text(out: &mut String, text: &str) {
    if text.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(text);
    }
}

/// Reads `{"predictions":[{"score":…,"predicted_label":0|1},…],"model_version":…}`,
/// which must hold `rows` predictions. Without `threshold`, each prediction needs its
/// label; with it, a missing label is `score >= threshold`.
///
/// # Errors
/// Another shape, a score that is not a probability, or another number of predictions.
pub fn read_predictions(
    body: &[u8],
    rows: usize,
    threshold: Option<f64>,
) -> Result<Scored, String> {
    /// The answer, read without a tree of values.
    #[derive(Deserialize)]
    struct Answer {
        predictions: Vec<PredictionFile>,
        #[serde(default)]
        model_version: Option<Box<str>>,
    }
    #[derive(Deserialize)]
    struct PredictionFile {
        score: Option<f64>,
        predicted_label: Option<Label>,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Label {
        Bool(bool),
        Number(f64),
    }
    let answer: Answer = serde_json::from_slice(body).map_err(|e| {
        format!("expected {{\"predictions\":[{{\"score\":…,\"predicted_label\":0|1}},…]}}: {e}")
    })?;
    if answer.predictions.len() != rows {
        return Err(format!(
            "sent {rows} rows, got {} predictions",
            answer.predictions.len()
        ));
    }
    let predictions = answer
        .predictions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let label = match p.predicted_label {
                Some(Label::Bool(b)) => Some(b),
                Some(Label::Number(1.0)) => Some(true),
                Some(Label::Number(0.0)) => Some(false),
                Some(Label::Number(_)) => {
                    return Err(format!(
                        "prediction {}: predicted_label is not 0 or 1",
                        i + 1
                    ));
                }
                None => None,
            };
            let score = probability(p.score)
                .ok_or_else(|| format!("prediction {}: expected a score between 0 and 1", i + 1))?;
            let risk = match (label, threshold) {
                (Some(label), _) => label,
                (None, Some(threshold)) => score >= threshold,
                (None, None) => {
                    return Err(format!(
                        "prediction {}: expected a predicted_label 0 or 1",
                        i + 1
                    ));
                }
            };
            Ok(Prediction {
                score: Some(score),
                risk,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Scored {
        predictions,
        model_version: answer.model_version.map(Arc::from),
    })
}

/// Reads the route's `{"churn":bool}`, with an optional `"score"` and `"model_version"`.
///
/// # Errors
/// Another shape, or a score that is not a probability.
pub fn read_churn(body: &[u8], rows: usize) -> Result<Scored, String> {
    if rows != 1 {
        return Err(format!("a churn answer is for one company, not {rows}"));
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the answer is not JSON: {e}"))?;
    let risk = value
        .get("churn")
        .and_then(Value::as_bool)
        .ok_or("expected {\"churn\":true|false}")?;
    let score = match value.get("score") {
        None | Some(Value::Null) => None,
        Some(v) => {
            Some(probability(v.as_f64()).ok_or("expected a score between 0 and 1, or no score")?)
        }
    };
    Ok(Scored {
        predictions: vec![Prediction { score, risk }],
        model_version: value
            .get("model_version")
            .and_then(Value::as_str)
            .map(Arc::from),
    })
}

fn probability(score: Option<f64>) -> Option<f64> {
    score.filter(|s| (0.0..=1.0).contains(s))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tenantflow_operators::score::Features;

    fn row(industry: &str) -> ScoreRow {
        ScoreRow {
            industry: industry.into(),
            features: Features {
                revenu: 24670.0,
                employees: 6168.0,
                job30: 7.0,
                job90: 41.0,
                monthly_fee: 97.5,
                total_fee: 1645.0,
            },
        }
    }

    const LINEAR_LEARNER: &str = r#"
        request = "csv"
        columns = ["revenu", "employees", "job30", "job90", "monthlyFee", "totalFee", "industry"]
        industry = "one-hot"
        industries = ["consulting", "retail", "service", "health", "finance", "gov", "travel", "energy"]
        answer = "sagemaker"
    "#;

    #[test]
    fn one_hot_rows_are_numbers_then_the_industry_block() {
        let contract = ScoreContract::parse(LINEAR_LEARNER).unwrap();
        let (kind, body) = contract.body(&[row("gov"), row("IT")]).unwrap();
        assert_eq!(kind, "text/csv");
        assert_eq!(
            body,
            concat!(
                "24670.0,6168.0,7.0,41.0,97.5,1645.0,0,0,0,0,0,1,0,0\n",
                "24670.0,6168.0,7.0,41.0,97.5,1645.0,0,0,0,0,0,0,0,0\n",
            )
        );
    }

    #[test]
    fn the_default_contract_is_the_feature_contract() {
        let (_, body) = ScoreContract::tenantflow().body(&[row("a,b")]).unwrap();
        assert_eq!(body, "\"a,b\",24670.0,6168.0,7.0,41.0,97.5,1645.0\n");
    }

    #[test]
    fn answers_are_read_by_format() {
        let contract = ScoreContract::parse(LINEAR_LEARNER).unwrap();
        let scored = contract
            .read_answer(
                br#"{"predictions":[{"score":0.7},{"score":0.2,"predicted_label":1}]}"#,
                2,
            )
            .unwrap();
        let risks: Vec<bool> = scored.predictions.iter().map(|p| p.risk).collect();
        assert_eq!(risks, [true, true]);
        let tenantflow = ScoreContract::tenantflow();
        assert!(
            tenantflow
                .read_answer(br#"{"predictions":[{"score":0.7}]}"#, 1)
                .unwrap_err()
                .contains("predicted_label")
        );
        let churn = ScoreContract::assess_churn();
        let scored = churn.read_answer(br#"{ "churn":true}"#, 1).unwrap();
        assert_eq!(
            scored.predictions,
            [Prediction {
                score: None,
                risk: true
            }]
        );
        let scored = churn
            .read_answer(br#"{"churn":false,"score":0.25}"#, 1)
            .unwrap();
        assert_eq!(scored.predictions[0].score, Some(0.25));
        assert!(churn.read_answer(br#"{"score":0.9}"#, 1).is_err());
        assert!(
            churn
                .read_answer(br#"{"churn":true,"score":7}"#, 1)
                .is_err()
        );
        assert!(
            tenantflow
                .read_answer(br#"{"predictions":[{"score":0.5,"predicted_label":1}]}"#, 3)
                .unwrap_err()
                .contains("sent 3 rows, got 1")
        );
        let versioned = tenantflow
            .read_answer(
                br#"{"predictions":[{"score":0.25,"predicted_label":0}],"model_version":"m-1"}"#,
                1,
            )
            .unwrap();
        assert_eq!(versioned.model_version.as_deref(), Some("m-1"));
        assert_eq!(
            versioned.predictions,
            [Prediction {
                score: Some(0.25),
                risk: false
            }]
        );
        for bad in [
            &br#"{"predictions":[{"score":1.5,"predicted_label":1}]}"#[..],
            br#"{"predictions":[{"score":0.5,"predicted_label":2}]}"#,
        ] {
            let error = tenantflow.read_answer(bad, 1).unwrap_err();
            assert!(error.contains("prediction 1"), "{error}");
        }
        assert!(tenantflow.read_answer(b"[]", 0).is_err());
    }

    #[test]
    fn the_shipped_contracts_are_valid() {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contracts");
        let trained = ScoreContract::read(&folder.join("linear-learner.toml")).unwrap();
        let (_, body) = trained.body(&[row("gov")]).unwrap();
        // 5 numbers (no totalFee) and 9 industries, `gov` the fifth.
        assert_eq!(body, "24670.0,6168.0,7.0,41.0,97.5,0,0,0,0,1,0,0,0,0\n");
        let lambda = ScoreContract::read(&folder.join("assess-churn-lambda.toml")).unwrap();
        let (_, body) = lambda.body(&[row("gov")]).unwrap();
        assert_eq!(
            body,
            "24670.0,6168.0,7.0,41.0,97.5,1645.0,0,0,0,0,0,1,0,0\n"
        );
    }

    #[test]
    fn bad_contracts_say_which_key() {
        for (text, key) in [
            (r#"answer = "nope""#, "answer"),
            (
                r#"answer = "churn"
                columns = ["revenu", "bogus"]"#,
                "bogus",
            ),
            (
                r#"answer = "churn"
                columns = ["revenu", "revenu"]"#,
                "twice",
            ),
            (
                r#"answer = "sagemaker"
                industry = "one-hot""#,
                "industries",
            ),
            (
                r#"answer = "sagemaker"
                threshold = 2.0"#,
                "threshold",
            ),
            (
                r#"answer = "churn"
                request = "company-json"
                columns = ["revenu"]"#,
                "columns",
            ),
            (
                r#"answer = "churn"
                extra = 1"#,
                "extra",
            ),
        ] {
            let error = ScoreContract::parse(text).unwrap_err();
            assert!(error.contains(key), "{text}: {error}");
        }
    }
}
