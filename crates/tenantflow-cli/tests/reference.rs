//! An independent, straightforward reference implementation of the job's semantics
//! (DESIGN.md §2), sharing no code with tenantflow: generic JSON values, every day kept
//! in an ordered map, window sums by definition, the model read as plain JSON.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::Value;

/// One expected result, enough to compare record by record.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    pub company_id: String,
    pub user_id: String,
    pub creation_date: i64,
    pub job30: i64,
    pub job90: i64,
    pub risk_of_churn: bool,
    pub churn_score: f64,
}

/// The five W1 answer figures.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub lines: u64,
    pub sum_job30: i128,
    pub sum_job90: i128,
    pub churn_true: u64,
    pub sum_churn_score: f64,
}

impl Figures {
    pub fn of(results: &[Expected]) -> Figures {
        let mut f = Figures::default();
        let mut scores = Vec::with_capacity(results.len());
        for r in results {
            f.add(r.job30, r.job90, r.risk_of_churn);
            scores.push(r.churn_score);
        }
        f.sum_churn_score = exact_sum(&scores);
        f
    }

    pub fn add(&mut self, job30: i64, job90: i64, risk: bool) {
        self.lines += 1;
        self.sum_job30 += i128::from(job30);
        self.sum_job90 += i128::from(job90);
        self.churn_true += u64::from(risk);
    }

    /// Parses `name value` lines as `check_output.py` prints them.
    pub fn parse(text: &str) -> Figures {
        let mut f = Figures::default();
        for line in text.lines() {
            let (name, value) = line.split_once(' ').unwrap();
            match name {
                "lines" => f.lines = value.parse().unwrap(),
                "sum_job30" => f.sum_job30 = value.parse().unwrap(),
                "sum_job90" => f.sum_job90 = value.parse().unwrap(),
                "churn_true" => f.churn_true = value.parse().unwrap(),
                "sum_churn_score" => f.sum_churn_score = value.parse().unwrap(),
                _ => panic!("unexpected figure {line}"),
            }
        }
        f
    }

    pub fn to_check_output_text(&self) -> String {
        format!(
            "lines {}\nsum_job30 {}\nsum_job90 {}\nchurn_true {}\nsum_churn_score {:?}\n",
            self.lines, self.sum_job30, self.sum_job90, self.churn_true, self.sum_churn_score
        )
    }

    /// Integers equal, score sums equal to a relative 1e-9 (as `check_output.py`).
    pub fn assert_matches(&self, want: &Figures, what: &str) {
        assert_eq!(
            (self.lines, self.sum_job30, self.sum_job90, self.churn_true),
            (want.lines, want.sum_job30, want.sum_job90, want.churn_true),
            "{what}: integer figures differ"
        );
        let (a, b) = (self.sum_churn_score, want.sum_churn_score);
        assert!(
            (a - b).abs() <= 1e-9 * b.abs().max(1e-300),
            "{what}: sum_churn_score {a} vs {b}"
        );
    }
}

/// Neumaier summation: exact enough that the order of the terms does not matter here.
pub fn exact_sum(values: &[f64]) -> f64 {
    let (mut sum, mut compensation) = (0.0f64, 0.0f64);
    for &v in values {
        let t = sum + v;
        compensation += if sum.abs() >= v.abs() {
            (sum - t) + v
        } else {
            (v - t) + sum
        };
        sum = t;
    }
    sum + compensation
}

/// The churn model, read as plain JSON.
pub struct RefModel {
    json: Value,
}

impl RefModel {
    pub fn load(path: &Path) -> RefModel {
        RefModel {
            json: serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap(),
        }
    }

    /// `z = intercept + Σ weight·(x − mean)/std + industry weight`, `1/(1+e^−z)`.
    pub fn score(&self, profile: &Value, job30: i64, job90: i64) -> f64 {
        let mut z = self.json["intercept"].as_f64().unwrap();
        for f in self.json["features"].as_array().unwrap() {
            let name = f["name"].as_str().unwrap();
            let x = match name {
                "job30" => job30 as f64,
                "job90" => job90 as f64,
                other => profile[other].as_f64().unwrap(),
            };
            let (mean, std, weight) = (
                f["mean"].as_f64().unwrap(),
                f["std"].as_f64().unwrap(),
                f["weight"].as_f64().unwrap(),
            );
            z += weight * (x - mean) / std;
        }
        let industry = profile["industry"].as_str().unwrap();
        z += self.json["categorical"]["industry"][industry]
            .as_f64()
            .unwrap_or(0.0);
        1.0 / (1.0 + (-z).exp())
    }

    pub fn threshold(&self) -> f64 {
        self.json["threshold"].as_f64().unwrap()
    }
}

/// Computes the expected results of a W1-style NDJSON file (tagged lines, canonical
/// field names), in input order. Malformed lines and unknown tenants give no result.
pub fn run_ndjson(input: &Path, model: &RefModel) -> Vec<Expected> {
    let text = std::fs::read_to_string(input).unwrap();
    let mut profiles: HashMap<String, Value> = HashMap::new();
    let mut days: HashMap<String, BTreeMap<i64, i64>> = HashMap::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let company = v["companyID"].as_str().unwrap_or_default().to_owned();
        if v["type"] == "company" {
            profiles.insert(company, v);
            continue;
        }
        let Some(profile) = profiles.get(&company) else {
            continue;
        };
        let ts = v["creationDate"].as_i64().unwrap();
        let nb = v["nbJobs"].as_i64().unwrap();
        let day = ts.div_euclid(86_400_000);
        let tenant_days = days.entry(company.clone()).or_default();
        let newest = tenant_days.keys().next_back().copied().unwrap_or(day);
        if newest - day > 90 {
            continue; // too late: a dead letter, no result
        }
        *tenant_days.entry(day).or_default() += nb;
        let window =
            |len: i64| -> i64 { tenant_days.range(day - len + 1..=day).map(|(_, n)| n).sum() };
        let job30 = profile["job30"].as_i64().unwrap() + window(30);
        let job90 = profile["job90"].as_i64().unwrap() + window(90);
        let churn_score = model.score(profile, job30, job90);
        out.push(Expected {
            company_id: company,
            user_id: v["userID"].as_str().unwrap().to_owned(),
            creation_date: ts,
            job30,
            job90,
            risk_of_churn: churn_score >= model.threshold(),
            churn_score,
        });
    }
    out
}

#[test]
#[cfg_attr(not(have_shared), ignore = "needs ../shared/ beside the repository")]
fn reference_sums_windows_by_definition() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.ndjson");
    let day = 86_400_000i64;
    let lines = [
        r#"{"type":"company","companyID":"a","industry":"retail","revenu":1,"employees":1,"job30":10,"job90":100,"monthlyFee":1.0,"totalFee":1.0}"#.to_owned(),
        format!(r#"{{"type":"job","companyID":"a","userID":"u","nbJobs":1,"creationDate":{}}}"#, 100 * day),
        format!(r#"{{"type":"job","companyID":"a","userID":"u","nbJobs":2,"creationDate":{}}}"#, 140 * day),
        format!(r#"{{"type":"job","companyID":"a","userID":"u","nbJobs":4,"creationDate":{}}}"#, 120 * day),
        format!(r#"{{"type":"job","companyID":"b","userID":"u","nbJobs":4,"creationDate":{}}}"#, 120 * day),
    ];
    std::fs::write(&path, lines.join("\n")).unwrap();
    let got = run_ndjson(
        &path,
        &RefModel::load(&crate::common::shared("bench/model.json")),
    );
    let counts: Vec<(i64, i64)> = got.iter().map(|e| (e.job30, e.job90)).collect();
    // The late event (day 120) sees day 100 in both windows, not day 140.
    assert_eq!(counts, vec![(11, 101), (12, 103), (15, 105)]);
}
