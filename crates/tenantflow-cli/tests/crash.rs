//! Crash tests: the job killed (SIGKILL) at seeded random moments and started again with
//! the same command ends with exactly the results of one uninterrupted run: nothing lost,
//! nothing twice. Also a crash between a manifest's write and its commit, and one during
//! recovery itself (`TENANTFLOW_FAULT`).

use std::path::Path;
use std::process::{Command, Stdio};

use std::time::{Duration, Instant};

use parquet::file::reader::{FileReader, SerializedFileReader};
use tenantflow_core::rng::SplitMix64;

use crate::common::{
    assert_same_results, files_where, gen_w1, result_files, sorted_result_lines, tenantflow,
};

/// Starts `cmd` and kills it with SIGKILL `after` from now, unless it ends first;
/// true if it was killed.
pub fn kill_after(mut cmd: Command, after: Duration) -> bool {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tenantflow starts");
    let deadline = Instant::now() + after;
    // The crash moment is a point in time: poll the child until then.
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.success(),
                "a run ended with {status} before its crash"
            );
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    true
}

/// Job events (lines tagged as jobs) in a W1 file.
pub fn job_events(w1: &Path) -> usize {
    std::fs::read_to_string(w1)
        .unwrap()
        .lines()
        .filter(|l| l.contains(r#""type":"job""#))
        .count()
}

/// Starts `rounds` runs of `command()`, each killed at a seeded moment between
/// `window.0` and `window.1` milliseconds (unless it ends first); asserts that at least
/// `at_least` were killed before their end.
pub fn kill_repeatedly(
    rounds: usize,
    at_least: usize,
    seed: u64,
    window: (u64, u64),
    command: impl Fn() -> Command,
) {
    let mut rng = SplitMix64::new(seed);
    let mut killed = 0;
    for _ in 0..rounds {
        let moment = Duration::from_millis(window.0 + rng.next_u64() % (window.1 - window.0));
        killed += usize::from(kill_after(command(), moment));
    }
    assert!(
        killed >= at_least,
        "only {killed} runs were killed before their end"
    );
}

/// `tenantflow ARGS`, not yet started.
pub fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tenantflow"));
    cmd.args(args);
    cmd
}

/// No upload left in progress and one final checkpoint: the output of a run that
/// ended.
fn assert_clean(out: &Path) {
    let mut stack = vec![out.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(!name.ends_with(".inprogress"), "left in progress: {name}");
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            }
        }
    }
    let manifests: Vec<String> = std::fs::read_dir(out.join("_checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("manifest-"))
        .collect();
    assert_eq!(manifests.len(), 1, "{manifests:?}");
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.join("_checkpoints").join(&manifests[0])).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["final_checkpoint"], true);
    for worker in manifest["workers"].as_array().unwrap() {
        assert_eq!(worker["files"]["open"].as_array().map(Vec::len), Some(0));
    }
}

#[test]
#[cfg_attr(not(have_shared), ignore = "needs ../shared/ beside the repository")]
fn killed_at_random_moments_a_run_resumes_to_exactly_the_uninterrupted_results() {
    let dir = tempfile::tempdir().unwrap();
    let w1 = gen_w1(dir.path(), 1_000_000, 10_000, 5);
    let want = dir.path().join("want");
    tenantflow(&[
        "run",
        "--input",
        w1.to_str().unwrap(),
        "--output",
        want.to_str().unwrap(),
        "--checkpoint-interval",
        "off",
        "--quiet",
    ]);
    let out = dir.path().join("got");
    let args = [
        "run",
        "--input",
        w1.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--checkpoint-interval",
        "200ms",
        "--max-file-size",
        "256KiB",
        "--quiet",
    ];
    kill_repeatedly(6, 3, 1, (400, 2_000), || command(&args));
    tenantflow(&args);

    assert_eq!(sorted_result_lines(&want).len(), job_events(&w1));
    assert_same_results(&out, &want, "after crashes");
    assert_clean(&out);
}

/// Every row of every Parquet result file under `dir`, as text, sorted.
fn parquet_rows(dir: &Path) -> Vec<String> {
    let mut rows = Vec::new();
    for file in result_files(dir, ".parquet") {
        let reader = SerializedFileReader::new(std::fs::File::open(&file).unwrap()).unwrap();
        for row in reader.get_row_iter(None).unwrap() {
            rows.push(row.unwrap().to_string());
        }
    }
    rows.sort();
    rows
}

/// Parquet files outlive checkpoints as row files do: killed at seeded moments (with a
/// checkpoint every 200 ms) and started again, a Parquet run ends with exactly the rows
/// of an uninterrupted one, in one file per event hour and worker (not one per
/// checkpoint), each file several row groups long and read whole by pyarrow too.
#[test]
#[cfg_attr(not(have_shared), ignore = "needs ../shared/ beside the repository")]
fn killed_at_random_moments_a_parquet_run_resumes_to_exactly_the_uninterrupted_rows() {
    let dir = tempfile::tempdir().unwrap();
    let w1 = gen_w1(dir.path(), 300_000, 2_000, 23);
    let want = dir.path().join("want");
    tenantflow(&[
        "run",
        "--input",
        w1.to_str().unwrap(),
        "--output",
        want.to_str().unwrap(),
        "--format",
        "parquet",
        "--checkpoint-interval",
        "off",
        "--quiet",
    ]);
    let out = dir.path().join("got");
    let args = [
        "run",
        "--input",
        w1.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--format",
        "parquet",
        "--checkpoint-interval",
        "200ms",
        "--quiet",
    ];
    kill_repeatedly(6, 3, 4, (300, 1_500), || command(&args));
    tenantflow(&args);

    let rows = parquet_rows(&want);
    assert_eq!(rows.len(), job_events(&w1));
    assert!(parquet_rows(&out) == rows, "the rows differ after crashes");
    assert_clean(&out);
    // One file per event hour and worker.
    let files = result_files(&out, ".parquet");
    let mut owners: Vec<(String, String)> = files
        .iter()
        .map(|f| {
            let hour = f.parent().unwrap().file_name().unwrap().to_string_lossy();
            let name = f.file_name().unwrap().to_string_lossy();
            let worker = name.split('-').nth(1).unwrap().to_owned();
            (hour.into_owned(), worker)
        })
        .collect();
    owners.sort();
    owners.dedup();
    assert_eq!(
        owners.len(),
        files.len(),
        "more than one file for an hour and a worker"
    );
    // Files written across checkpoints hold several row groups.
    let most = files
        .iter()
        .map(|f| {
            SerializedFileReader::new(std::fs::File::open(f).unwrap())
                .unwrap()
                .metadata()
                .num_row_groups()
        })
        .max()
        .unwrap();
    assert!(most > 1, "no file spans a checkpoint");
    if let Ok(python) = std::env::var("TENANTFLOW_TEST_PYTHON") {
        let read = Command::new(python)
            .args([
                "-c",
                "import pathlib, sys, pyarrow.parquet as pq\n\
                 print(sum(pq.read_table(f).num_rows for f in sys.argv[1:]))",
            ])
            .args(&files)
            .output()
            .unwrap();
        assert!(
            read.status.success(),
            "{}",
            String::from_utf8_lossy(&read.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&read.stdout).trim(),
            rows.len().to_string()
        );
    }
}

#[test]
#[cfg_attr(not(have_shared), ignore = "needs ../shared/ beside the repository")]
fn a_crash_after_the_manifest_and_one_during_recovery_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let w1 = gen_w1(dir.path(), 100_000, 2_000, 9);
    let want = dir.path().join("want");
    tenantflow(&[
        "run",
        "--input",
        w1.to_str().unwrap(),
        "--output",
        want.to_str().unwrap(),
        "--quiet",
    ]);
    let out = dir.path().join("got");
    // Only the final checkpoint, #1: every file is pending in it.
    let args = [
        "run",
        "--input",
        w1.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--checkpoint-interval",
        "off",
        "--max-file-size",
        "64KiB",
        "--quiet",
    ];
    let crash = |fault: &str| {
        let run = command(&args)
            .env("TENANTFLOW_FAULT", fault)
            .output()
            .unwrap();
        assert!(!run.status.success(), "{fault}: the run did not crash");
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(stderr.contains("Crashing on purpose"), "{fault}: {stderr}");
    };
    crash("after-manifest:1");
    assert!(
        result_files(&out, ".ndjson").is_empty(),
        "files visible before their commit"
    );
    crash("recovery:1");
    assert_eq!(
        result_files(&out, ".ndjson").len(),
        1,
        "the recovery committed one file, then crashed"
    );
    let last = tenantflow(&args[..args.len() - 1]);
    let summary = String::from_utf8_lossy(&last.stdout);
    assert!(summary.contains("resumed from #1"), "{summary}");
    assert_same_results(
        &out,
        &want,
        "after a crash after the manifest and one in recovery",
    );
    assert_clean(&out);
}

/// True if a file under `dir` ends with `suffix`.
fn any_file_ending(dir: &Path, suffix: &str) -> bool {
    !files_where(dir, &|n| n.ends_with(suffix)).is_empty()
}

/// SIGTERM stops a run over files at a line: what was read before it is processed and
/// written, a final checkpoint records where it stopped, and the run exits 0. Started
/// again, it reads on from there and ends with exactly an undisturbed run's results.
#[test]
fn sigterm_stops_a_file_run_cleanly_and_it_resumes_to_the_same_results() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    // The built-in generator's events, as a file (stopping and resuming need a file).
    let generated = dir.path().join("generated");
    tenantflow(&[
        "run",
        "--quiet",
        "--generate",
        "200000",
        "--companies",
        "500",
        "--output",
        generated.to_str().unwrap(),
    ]);
    let undisturbed = sorted_result_lines(&generated);
    let mut lines = Vec::new();
    for result in &undisturbed {
        let v: serde_json::Value = serde_json::from_str(result).unwrap();
        lines.push(v);
    }
    // Companies first, then one job event per result, in event-time order.
    let mut text = String::new();
    let mut companies = std::collections::BTreeMap::new();
    for v in &lines {
        companies
            .entry(v["companyID"].as_str().unwrap().to_owned())
            .or_insert_with(|| {
                serde_json::json!({
                    "type": "company", "companyID": v["companyID"], "industry": v["industry"],
                    "revenu": v["revenu"], "employees": v["employees"], "job30": 0, "job90": 0,
                    "monthlyFee": v["monthlyFee"], "totalFee": v["totalFee"],
                })
            });
    }
    for company in companies.values() {
        text.push_str(&company.to_string());
        text.push('\n');
    }
    let mut jobs: Vec<&serde_json::Value> = lines.iter().collect();
    jobs.sort_by_key(|v| v["creationDate"].as_i64().unwrap());
    for v in jobs {
        text.push_str(
            &serde_json::json!({
                "type": "job", "companyID": v["companyID"], "userID": v["userID"],
                "nbJobs": v["nbJobs"], "creationDate": v["creationDate"],
            })
            .to_string(),
        );
        text.push('\n');
    }
    std::fs::write(&input, text).unwrap();
    let reference = dir.path().join("reference");
    tenantflow(&[
        "run",
        "--quiet",
        "--input",
        input.to_str().unwrap(),
        "--output",
        reference.to_str().unwrap(),
    ]);
    let want = sorted_result_lines(&reference);

    let out = dir.path().join("out");
    let summary = out.with_extension("summary.json");
    let args = [
        "run",
        "--quiet",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--summary-json",
        summary.to_str().unwrap(),
    ];
    let mut run = command(&args).spawn().unwrap();
    // Bounded wait until results are being written, then SIGTERM.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !any_file_ending(&out, ".inprogress") {
        assert!(
            run.try_wait().unwrap().is_none(),
            "the run ended before its stop"
        );
        assert!(Instant::now() < deadline, "no results after 60 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    let killed = Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(run.wait().unwrap().success(), "a stopped run exits 0");
    let first: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert!(
        !any_file_ending(&out, ".inprogress"),
        "nothing left in progress"
    );
    let read = first["records_read"].as_u64().unwrap();
    let total = companies.len() as u64 + want.len() as u64;
    assert_eq!(first["stopped_by_signal"], true, "{first}");
    assert!(read < total, "stopped before the end: {first}");
    // Started again: on from where it stopped.
    tenantflow(&args);
    let second: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_eq!(
        read + second["records_read"].as_u64().unwrap(),
        total,
        "every line read once: {first} {second}"
    );
    assert_eq!(sorted_result_lines(&out), want);
    assert_clean(&out);
}
