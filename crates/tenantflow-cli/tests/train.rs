//! `tenantflow train`: on the original training set, a model file the job reads; from
//! generated data, reproducibly.

use crate::common::{shared, tenantflow};

#[test]
#[cfg_attr(not(have_shared), ignore = "needs ../shared/ beside the repository")]
fn a_trained_model_is_written_with_its_metrics_and_runs_in_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("churn.json");
    let out = tenantflow(&[
        "train",
        "--data",
        shared("data/upstream/CompanyRisk/companies.csv")
            .to_str()
            .unwrap(),
        "--out",
        model.to_str().unwrap(),
        "--seed",
        "7",
        "--kind",
        "logistic",
    ]);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("trained on 8000 of 10000 rows"),
        "{printed}"
    );
    assert!(
        printed.contains("(logistic regression, as --kind asks)"),
        "{printed}"
    );
    assert!(printed.contains("gradient-boosted trees"), "{printed}");
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&model).unwrap()).unwrap();
    assert_eq!(file["kind"], "logistic_regression");
    let version = file["version"].as_str().unwrap();
    assert!(
        version.starts_with("churn-") && version.len() == "churn-".len() + 16,
        "{version}"
    );
    assert_eq!(file["training"]["test_rows"], 2000);
    // The feature contract: the job's columns in order, the industries trained on.
    assert_eq!(
        file["contract"]["columns"],
        serde_json::json!([
            "industry",
            "revenu",
            "employees",
            "job30",
            "job90",
            "monthlyFee",
            "totalFee"
        ])
    );
    assert_eq!(file["contract"]["industries"].as_array().unwrap().len(), 9);
    let accuracy = file["training"]["test_metrics"]["accuracy"]
        .as_f64()
        .unwrap();
    let majority = file["training"]["test_metrics"]["majority_accuracy"]
        .as_f64()
        .unwrap();
    assert!(accuracy > majority, "{accuracy} vs {majority}");
    assert_eq!(file["training"]["fit"]["converged"], true);
    // Each result names the model that scored it.
    let out = dir.path().join("out");
    tenantflow(&[
        "run",
        "--quiet",
        "--generate",
        "5000",
        "--model",
        model.to_str().unwrap(),
        "--model-version-field",
        "--output",
        out.to_str().unwrap(),
    ]);
    let lines = crate::common::sorted_result_lines(&out);
    assert!(!lines.is_empty());
    for line in lines {
        let result: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(result["modelVersion"], version, "{line}");
    }

    // Generated data, trees: the same file twice from the same seed.
    let trees = |name: &str| {
        let path = dir.path().join(name);
        tenantflow(&[
            "train",
            "--generate",
            "3000",
            "--kind",
            "trees",
            "--seed",
            "3",
            "--out",
            path.to_str().unwrap(),
            "--name",
            "t",
        ]);
        std::fs::read_to_string(path).unwrap()
    };
    let first = trees("a.json");
    assert_eq!(first, trees("b.json"));
    let file: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(file["kind"], "gradient_boosted_trees");
    assert!(
        file["training"]["test_metrics"]["accuracy"]
            .as_f64()
            .unwrap()
            >= 0.99
    );
}

/// Without `--kind`, the file holds the model that scored better on the test rows: on
/// the original training set, the trees (about 0.99 accuracy against about 0.90).
#[test]
#[cfg_attr(not(have_shared), ignore = "needs ../shared/ beside the repository")]
fn by_default_the_better_model_on_the_test_rows_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("churn.json");
    let out = tenantflow(&[
        "train",
        "--data",
        shared("data/upstream/CompanyRisk/companies.csv")
            .to_str()
            .unwrap(),
        "--out",
        model.to_str().unwrap(),
    ]);
    let printed = String::from_utf8_lossy(&out.stdout);
    let accuracy = |what: &str| -> f64 {
        let line = printed
            .lines()
            .find(|l| l.trim_start().starts_with(what) && l.contains("accuracy"))
            .unwrap_or_else(|| panic!("no {what} line in {printed}"));
        line.split_whitespace()
            .skip_while(|w| *w != "accuracy")
            .nth(1)
            .unwrap()
            .parse()
            .unwrap()
    };
    let (logistic, trees) = (
        accuracy("logistic regression"),
        accuracy("gradient-boosted trees"),
    );
    assert!(trees > logistic, "{printed}");
    assert!(
        printed.contains("(gradient-boosted trees, the better on the test rows)"),
        "{printed}"
    );
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&model).unwrap()).unwrap();
    assert_eq!(file["kind"], "gradient_boosted_trees");
    let written = file["training"]["test_metrics"]["accuracy"]
        .as_f64()
        .unwrap();
    assert!((written - trees).abs() < 1e-4, "{written} against {trees}");
}
