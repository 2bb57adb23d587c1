//! The original system's batch-join data, run as CSV input.
//!
//! `companies.csv` (comp_0..comp_8) and `jobs.csv` (six events, no timestamps) from
//! `../shared/data/upstream/rt-analytics/bg-job-processing/data/`. With
//! `--missing-event-time arrival` all six events get the same read time, so they fall on one day and each counts on top of the earlier
//! events of its tenant.

use std::collections::HashMap;

use serde_json::Value;

use crate::common::{read_summary, result_files, shared, summary_path, tenantflow};
use crate::reference::RefModel;

const DATA: &str = "data/upstream/rt-analytics/bg-job-processing/data";

#[test]
#[cfg_attr(not(have_shared), ignore = "needs ../shared/ beside the repository")]
fn original_batch_join_data_gives_cumulative_window_counts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let companies = shared(&format!("{DATA}/companies.csv"));
    let jobs = shared(&format!("{DATA}/jobs.csv"));
    let model_path = shared("bench/model.json");
    let summary_path = summary_path(&out);
    tenantflow(&[
        "run",
        "--input",
        companies.to_str().unwrap(),
        "--input",
        jobs.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--format",
        "csv",
        "--model",
        model_path.to_str().unwrap(),
        "--missing-event-time",
        "arrival",
        "--summary-json",
        summary_path.to_str().unwrap(),
    ]);
    let summary = read_summary(&summary_path);
    assert_eq!(summary["event_time_from_arrival"], 6, "{summary}");

    // Rows per tenant, in processing order (one worker's file keeps a tenant's order).
    let mut rows: HashMap<String, Vec<Vec<String>>> = HashMap::new();
    let files = result_files(&out, ".csv");
    for file in &files {
        for line in std::fs::read_to_string(file).unwrap().lines() {
            let cells: Vec<String> = line.split(',').map(str::to_owned).collect();
            assert_eq!(cells.len(), 9, "{line}");
            rows.entry(cells[0].clone()).or_default().push(cells);
        }
    }
    assert_eq!(rows.values().map(Vec::len).sum::<usize>(), 6);

    // Our semantics: job30/job90 = profile baseline + all jobs of the tenant in the
    // window so far (the events accumulate).
    let expected: [(&str, &[(i64, i64)]); 3] = [
        ("comp_4", &[(5, 14), (6, 15), (7, 16)]),
        ("comp_5", &[(7, 77)]),
        ("comp_6", &[(10, 86), (12, 88)]),
    ];
    // The original output.txt added each job to the fixed base and never accumulated:
    // comp_4 got (5, 14) three times and comp_6 (11, 87) for its second event of 2 jobs.
    let original_output = std::fs::read_to_string(shared(&format!("{DATA}/output.txt"))).unwrap();
    let mut original: HashMap<&str, Vec<(i64, i64)>> = HashMap::new();
    for line in original_output.lines() {
        let c: Vec<&str> = line.split(' ').collect();
        original
            .entry(c[0])
            .or_default()
            .push((c[4].parse().unwrap(), c[5].parse().unwrap()));
    }

    let model = RefModel::load(&model_path);
    for (company, counts) in expected {
        let got = &rows[company];
        let got_counts: Vec<(i64, i64)> = got
            .iter()
            .map(|c| (c[4].parse().unwrap(), c[5].parse().unwrap()))
            .collect();
        assert_eq!(got_counts, counts, "{company}");
        // The first event of each tenant agrees with the original; later ones differ by
        // exactly the jobs the original forgot to accumulate.
        assert_eq!(
            got_counts[0], original[company][0],
            "{company}: first event"
        );
        for (ours, theirs) in got_counts.iter().zip(&original[company]).skip(1) {
            assert!(
                ours.0 > theirs.0 && ours.1 > theirs.1,
                "{company}: {ours:?} vs original {theirs:?}"
            );
        }
        for (cells, &(job30, job90)) in got.iter().zip(counts) {
            let profile: Value = serde_json::json!({
                "industry": cells[1], "revenu": cells[2].parse::<f64>().unwrap(),
                "employees": cells[3].parse::<f64>().unwrap(),
                "monthlyFee": cells[6].parse::<f64>().unwrap(), "totalFee": cells[7].parse::<f64>().unwrap(),
            });
            let risk = model.score(&profile, job30, job90) >= model.threshold();
            assert_eq!(cells[8], risk.to_string(), "{company} riskOfChurn");
        }
    }
    // The unchanged columns are the profile's, as in the original.
    assert_eq!(
        rows["comp_4"][0][..4],
        ["comp_4", "retail", "29080", "14540"]
    );
    assert_eq!(rows["comp_4"][0][6..8], ["461.0", "1172.0"]);
}
