//! W1 files from `gen_workload.py`: tenantflow's results equal the reference's, record
//! by record and in the five figures, for every format, seed, size and worker count.

use std::path::Path;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::RowAccessor;
use serde_json::Value;

use crate::common::{
    assert_check_output_matches, check_output_figures, gen_w1, result_files, shared, tenantflow,
};
use crate::reference::{Expected, Figures, RefModel, run_ndjson};

fn sort(mut results: Vec<Expected>) -> Vec<Expected> {
    results.sort_by(|a, b| {
        (
            &a.company_id,
            a.creation_date,
            &a.user_id,
            a.job30,
            a.churn_score.to_bits(),
        )
            .cmp(&(
                &b.company_id,
                b.creation_date,
                &b.user_id,
                b.job30,
                b.churn_score.to_bits(),
            ))
    });
    results
}

/// Asserts equal sets of typed results (the job's against the reference's), printing
/// the first difference rather than everything. (`common::assert_same_results`
/// compares two output folders.)
fn assert_same_expected(got: Vec<Expected>, want: Vec<Expected>, case: &str) {
    let (got, want) = (sort(got), sort(want));
    if let Some(i) = (0..got.len().min(want.len())).find(|&i| got[i] != want[i]) {
        panic!(
            "{case}: result {i} differs:\n got  {:?}\n want {:?}",
            got[i], want[i]
        );
    }
    assert_eq!(got.len(), want.len(), "{case}: number of results");
}

fn read_ndjson(dir: &Path) -> Vec<Expected> {
    let mut out = Vec::new();
    for file in result_files(dir, ".ndjson") {
        for line in std::fs::read_to_string(file).unwrap().lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            out.push(Expected {
                company_id: v["companyID"].as_str().unwrap().into(),
                user_id: v["userID"].as_str().unwrap().into(),
                creation_date: v["creationDate"].as_i64().unwrap(),
                job30: v["job30"].as_i64().unwrap(),
                job90: v["job90"].as_i64().unwrap(),
                risk_of_churn: v["riskOfChurn"].as_bool().unwrap(),
                churn_score: v["churnScore"].as_f64().unwrap(),
            });
        }
    }
    out
}

fn read_parquet(dir: &Path) -> Vec<Expected> {
    let mut out = Vec::new();
    for file in result_files(dir, ".parquet") {
        let reader = SerializedFileReader::new(std::fs::File::open(file).unwrap()).unwrap();
        let names: Vec<String> = reader
            .metadata()
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .map(|c| c.name().to_owned())
            .collect();
        assert_eq!(names[0], "companyID");
        assert_eq!(names[12], "creationDate");
        for row in reader.get_row_iter(None).unwrap() {
            let row = row.unwrap();
            out.push(Expected {
                company_id: row.get_string(0).unwrap().clone(),
                user_id: row.get_string(10).unwrap().clone(),
                creation_date: row.get_timestamp_millis(12).unwrap(),
                job30: row.get_long(4).unwrap(),
                job90: row.get_long(5).unwrap(),
                risk_of_churn: row.get_bool(8).unwrap(),
                churn_score: row.get_double(9).unwrap(),
            });
        }
    }
    out
}

/// CSV has the original 9 columns only: lines, job30, job90 and riskOfChurn.
fn csv_figures(dir: &Path) -> (u64, i128, i128, u64) {
    let mut figures = (0, 0, 0, 0);
    for file in result_files(dir, ".csv") {
        for line in std::fs::read_to_string(file).unwrap().lines() {
            let cells: Vec<&str> = line.split(',').collect();
            assert_eq!(cells.len(), 9, "{line}");
            figures.0 += 1;
            figures.1 += cells[4].parse::<i128>().unwrap();
            figures.2 += cells[5].parse::<i128>().unwrap();
            figures.3 += u64::from(cells[8].parse::<bool>().unwrap());
        }
    }
    figures
}

fn run_w1(input: &Path, out: &Path, format: &str, workers: &str) {
    tenantflow(&[
        "run",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--model",
        shared("bench/model.json").to_str().unwrap(),
        "--format",
        format,
        "--workers",
        workers,
        "--quiet",
    ]);
}

#[test]
#[cfg_attr(not(have_shared), ignore = "needs ../shared/ beside the repository")]
fn w1_ndjson_results_equal_the_reference_for_seeds_sizes_and_worker_counts() {
    let dir = tempfile::tempdir().unwrap();
    let model = RefModel::load(&shared("bench/model.json"));
    for (events, companies, seed, workers) in [
        (60_000, 2_000, 1, "2"),
        (40_000, 50, 7, "3"),
        (20_000, 1, 3, "1"),
        (30_000, 30_000, 11, "4"),
    ] {
        let input = gen_w1(dir.path(), events, companies, seed);
        let want = run_ndjson(&input, &model);
        let out = dir.path().join(format!("out-{seed}"));
        run_w1(&input, &out, "ndjson", workers);
        let case = format!("events {events}, companies {companies}, seed {seed}");
        assert_same_expected(read_ndjson(&out), want.clone(), &case);
        let figures = Figures::of(&want);
        assert_check_output_matches(&out, &figures);
        check_output_figures(&out).assert_matches(&figures, &case);
    }
}

#[test]
#[cfg_attr(not(have_shared), ignore = "needs ../shared/ beside the repository")]
fn w1_parquet_and_csv_results_equal_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let model = RefModel::load(&shared("bench/model.json"));
    let input = gen_w1(dir.path(), 50_000, 500, 5);
    let want = run_ndjson(&input, &model);
    let figures = Figures::of(&want);

    let parquet = dir.path().join("parquet");
    run_w1(&input, &parquet, "parquet", "2");
    let got = read_parquet(&parquet);
    Figures::of(&got).assert_matches(&figures, "parquet");
    assert_same_expected(got, want.clone(), "parquet");

    let csv = dir.path().join("csv");
    run_w1(&input, &csv, "csv", "2");
    assert_eq!(
        csv_figures(&csv),
        (
            figures.lines,
            figures.sum_job30,
            figures.sum_job90,
            figures.churn_true
        )
    );
}
