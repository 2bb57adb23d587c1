//! Training on the original 10,000 rows (`../shared/data/upstream/CompanyRisk/companies.csv`).
#![allow(clippy::unwrap_used)]

use std::path::Path;

use tenantflow_operators::score::Model;
use tenantflow_train::data::{generate, parse_csv};
use tenantflow_train::train;

fn original() -> Vec<tenantflow_train::Example> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/upstream/CompanyRisk/companies.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    parse_csv(&text, "companies.csv").unwrap()
}

#[test]
#[cfg_attr(not(have_shared), ignore = "needs ../shared/ beside the repository")]
fn trees_learn_the_rule_and_the_regression_beats_the_majority() {
    let rows = original();
    assert_eq!(rows.len(), 10_000);
    let trained = train(rows.clone(), 0.2, 42).unwrap();
    assert_eq!(trained.train_rows, 8_000);
    let t = &trained.trees_metrics;
    assert!(t.accuracy >= 0.99, "trees: {t:?}");
    let l = &trained.logistic_metrics;
    assert!(l.accuracy > l.majority_accuracy, "logistic: {l:?}");
    assert!(l.roc_auc > 0.5);
    assert!(trained.logistic.converged, "{:?}", trained.logistic);
    eprintln!("logistic: {l:?}\ntrees: {t:?}");

    // Reproducible from the seed; another seed, another split.
    let again = train(rows.clone(), 0.2, 42).unwrap();
    assert_eq!(again.logistic, trained.logistic);
    assert_eq!(again.trees, trained.trees);
    assert_ne!(train(rows, 0.2, 43).unwrap().logistic, trained.logistic);
}

/// The files as `tenantflow train` writes them (with the contract) load in the job, and
/// score an industry never seen in training (the original model crashed on one).
#[test]
fn both_files_load_with_their_contract_and_score_any_industry() {
    let rows = parse_csv(&generate(3000, 9), "gen").unwrap();
    let trained = train(rows.clone(), 0.25, 2).unwrap();
    assert_eq!(trained.industries.len(), 9);
    for mut file in [
        trained.trees.to_json("t", ()),
        trained.logistic.to_json("l", ()),
    ] {
        file["contract"] = trained.contract();
        let model = Model::from_json(&file.to_string(), "trained").unwrap();
        for industry in ["retail", "never-seen"] {
            let s = model.score(
                &rows[0].features(),
                industry,
                model.industry_weight(industry),
            );
            assert!((0.0..=1.0).contains(&s), "{industry}: {s}");
        }
        // Columns in another order are refused.
        file["contract"]["columns"][1] = "employees".into();
        file["contract"]["columns"][2] = "revenu".into();
        let error = Model::from_json(&file.to_string(), "swapped").unwrap_err();
        assert!(error.to_string().contains("expects columns"), "{error}");
    }
}
