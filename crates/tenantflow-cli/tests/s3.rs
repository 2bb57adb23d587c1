//! Against an S3-compatible server (moto, started by scripts/test.sh at
//! `$AWS_ENDPOINT_URL_S3`; each test makes a bucket of its own named after
//! `$TENANTFLOW_TEST_S3_BUCKET`): results written
//! to S3 with crashes at random moments equal one uninterrupted run; Parquet results
//! read back by an independent reader (pyarrow, `$TENANTFLOW_TEST_PYTHON`) give the same
//! five figures; twenty kills of a job with lookups and remote scoring lose and
//! duplicate nothing.
#![cfg(feature = "s3-integration-tests")]

use std::path::Path;
use std::process::Command;

use tenantflow_sinks::store::{S3Store, Store};

use std::time::Duration;

use tenantflow_core::rng::SplitMix64;

use crate::common::{
    assert_same_results, check_output_figures, gen_w1, sorted_result_lines, tenantflow,
};
use crate::crash::{command, job_events, kill_after, kill_repeatedly};
use crate::faults::write_tenants_and_jobs;
use crate::lookup::start_tenant_manager;
use crate::scoring::{builtin_model, start_scorer};

pub fn bucket() -> String {
    std::env::var("TENANTFLOW_TEST_S3_BUCKET")
        .expect("TENANTFLOW_TEST_S3_BUCKET is set by scripts/test.sh, which starts the server")
}

/// A bucket of its own for each test and process (moto lists a bucket while iterating
/// over all of its keys, unguarded: a concurrent test deleting keys in the same bucket
/// makes the listing fail with a 500), and a prefix in it.
pub fn s3_url(test: &str) -> String {
    let bucket = format!("{}-{test}-{}", bucket(), std::process::id());
    let python = std::env::var("TENANTFLOW_TEST_PYTHON")
        .expect("TENANTFLOW_TEST_PYTHON (with boto3) is set by scripts/test.sh");
    let out = Command::new(python)
        .args([
            "-c",
            "import boto3, os, sys; boto3.client('s3', endpoint_url=os.environ['AWS_ENDPOINT_URL_S3']).create_bucket(Bucket=sys.argv[1])",
            &bucket,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "creating bucket {bucket}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!("s3://{bucket}/{test}")
}

/// Copies every object under `url` to `dest` (same relative paths); checks that no
/// upload marker is left and that the one manifest left is final.
pub fn download(url: &str, dest: &Path) {
    let store = S3Store::from_env(url.strip_prefix("s3://").unwrap()).unwrap();
    let objects = store.list("").unwrap();
    assert!(!objects.is_empty(), "nothing under {url}");
    let mut manifests = 0;
    for object in objects {
        assert!(
            !object.path.starts_with("_checkpoints/uploads/"),
            "upload left in progress: {}",
            object.path
        );
        if object.path.starts_with("_checkpoints/") {
            if object.path.contains("manifest-") {
                manifests += 1;
                let manifest: serde_json::Value =
                    serde_json::from_slice(&store.get(&object.path).unwrap().unwrap()).unwrap();
                assert_eq!(manifest["final_checkpoint"], true);
            }
            continue;
        }
        let path = dest.join(&object.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, store.get(&object.path).unwrap().unwrap()).unwrap();
    }
    assert_eq!(manifests, 1, "one manifest left under {url}");
}

#[test]
#[cfg_attr(not(have_shared), ignore = "needs ../shared/ beside the repository")]
fn killed_at_random_moments_an_s3_run_resumes_to_exactly_the_uninterrupted_results() {
    let dir = tempfile::tempdir().unwrap();
    let w1 = gen_w1(dir.path(), 1_000_000, 10_000, 13);
    let want = dir.path().join("want");
    tenantflow(&[
        "run",
        "--input",
        w1.to_str().unwrap(),
        "--output",
        want.to_str().unwrap(),
        "--quiet",
    ]);
    let url = s3_url("crash");
    let args = [
        "run",
        "--input",
        w1.to_str().unwrap(),
        "--output",
        &url,
        "--checkpoint-interval",
        "1s",
        "--quiet",
    ];
    kill_repeatedly(5, 3, 3, (3_000, 23_000), || command(&args));
    tenantflow(&args);

    let got = dir.path().join("got");
    download(&url, &got);
    assert_eq!(sorted_result_lines(&want).len(), job_events(&w1));
    assert_same_results(&got, &want, "S3 after crashes");
}

/// Reads every Parquet result file under `src` with pyarrow and writes its rows as
/// NDJSON to `dest/all.ndjson`.
fn parquet_to_ndjson(src: &Path, dest: &Path) {
    const SCRIPT: &str = r#"
import json, pathlib, sys
import pyarrow as pa
import pyarrow.parquet as pq
src, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
dest.mkdir(parents=True, exist_ok=True)
with open(dest / "all.ndjson", "w") as out:
    for f in sorted(src.rglob("*.parquet")):
        parts = f.relative_to(src).parts
        if parts[0] == "aggregates" or any(p.startswith(("_", ".")) for p in parts):
            continue
        table = pq.read_table(f)
        assert table.schema.field("creationDate").type == pa.timestamp("ms", tz="UTC"), table.schema
        table = table.set_column(
            table.schema.get_field_index("creationDate"),
            "creationDate",
            table["creationDate"].cast(pa.int64()),
        )
        for row in table.to_pylist():
            out.write(json.dumps(row) + "\n")
"#;
    let python = std::env::var("TENANTFLOW_TEST_PYTHON")
        .expect("TENANTFLOW_TEST_PYTHON (with pyarrow) is set by scripts/test.sh");
    let out = Command::new(python)
        .args(["-c", SCRIPT])
        .arg(src)
        .arg(dest)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pyarrow failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[cfg_attr(not(have_shared), ignore = "needs ../shared/ beside the repository")]
fn parquet_results_read_by_pyarrow_give_the_same_five_figures() {
    let dir = tempfile::tempdir().unwrap();
    let w1 = gen_w1(dir.path(), 200_000, 5_000, 17);
    let ndjson = dir.path().join("ndjson");
    tenantflow(&[
        "run",
        "--input",
        w1.to_str().unwrap(),
        "--output",
        ndjson.to_str().unwrap(),
        "--quiet",
    ]);
    // To S3, with checkpoints every 200ms (Parquet files finish at each), and to disk.
    let url = s3_url("parquet");
    tenantflow(&[
        "run",
        "--input",
        w1.to_str().unwrap(),
        "--output",
        &url,
        "--format",
        "parquet",
        "--checkpoint-interval",
        "200ms",
        "--quiet",
    ]);
    let from_s3 = dir.path().join("from-s3");
    download(&url, &from_s3);
    let converted = dir.path().join("converted");
    parquet_to_ndjson(&from_s3, &converted);
    let want = check_output_figures(&ndjson);
    check_output_figures(&converted).assert_matches(&want, "Parquet from S3 read by pyarrow");
}

#[test]
fn a_second_job_on_an_s3_output_refuses_and_a_stale_lock_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    std::fs::write(
        &input,
        concat!(
            r#"{"type":"company","companyID":"c","industry":"retail","revenu":1,"employees":1,"job30":1,"job90":1,"monthlyFee":1,"totalFee":1}"#,
            "\n",
            r#"{"companyID":"c","userID":"u","nbJobs":1,"creationDate":1767225601555}"#,
            "\n"
        ),
    )
    .unwrap();
    let url = s3_url("lock");
    let store = S3Store::from_env(url.strip_prefix("s3://").unwrap()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let lock = |heartbeat_ms: i64| {
        serde_json::json!({"owner": "pid 7 on elsewhere", "token": "x", "heartbeatMs": heartbeat_ms,
            "host": "elsewhere", "pid": 7})
        .to_string()
    };
    let args = [
        "run",
        "-q",
        "--input",
        input.to_str().unwrap(),
        "--output",
        &url,
    ];

    // A job on another host renewed its lock a moment ago: refused, nothing written.
    store
        .put("_tenantflow.lock", lock(now).into_bytes().into())
        .unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_tenantflow"))
        .args(args)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("in use by another tenantflow job (pid 7 on elsewhere"),
        "{message}"
    );
    let paths: Vec<String> = store
        .list("")
        .unwrap()
        .into_iter()
        .map(|o| o.path)
        .collect();
    assert_eq!(paths, ["_tenantflow.lock"]);

    // Its heartbeat a minute old: that job died; the lock is taken over, and released at
    // the end.
    store
        .put("_tenantflow.lock", lock(now - 60_000).into_bytes().into())
        .unwrap();
    tenantflow(&args);
    assert!(store.get("_tenantflow.lock").unwrap().is_none());
    let results = store
        .list("")
        .unwrap()
        .into_iter()
        .filter(|o| o.path.contains("/part-"))
        .count();
    assert_eq!(results, 1);
}

/// The whole job at once, killed twenty times: tenants looked up from the TenantManager,
/// scored by the remote scorer, results and checkpoints in S3; each run killed with
/// SIGKILL at a seeded moment, the same command started again; the results are those
/// of one uninterrupted run, each event's exactly once.
#[test]
fn twenty_kills_with_lookups_and_remote_scoring_into_s3_lose_and_duplicate_nothing() {
    const EVENTS: u64 = 200_000;
    const KILLS: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let (companies, jobs) = write_tenants_and_jobs(dir.path(), 400, EVENTS, 29, 2_000);
    let manager = start_tenant_manager(dir.path(), &companies);
    let scorer = start_scorer(&builtin_model());
    let scorer_url = format!("{}/invocations", scorer.url);
    let job = |output: &str| {
        command(&[
            "run",
            "--quiet",
            "--input",
            jobs.to_str().unwrap(),
            "--output",
            output,
            "--tenant-manager",
            &manager.url,
            "--scorer",
            &scorer_url,
            "--checkpoint-interval",
            "200ms",
        ])
    };
    let want = dir.path().join("want");
    let status = job(want.to_str().unwrap()).status().unwrap();
    assert!(status.success());

    let url = s3_url("kills");
    let mut rng = SplitMix64::new(2026);
    let mut killed = 0;
    while killed < KILLS {
        let moment = Duration::from_millis(250 + rng.next_u64() % 750);
        assert!(
            kill_after(job(&url), moment),
            "the job ended after {killed} kills: the input is too small for {KILLS}"
        );
        killed += 1;
    }
    let status = job(&url).status().unwrap();
    assert!(status.success());

    let got = dir.path().join("got");
    download(&url, &got);
    let (got, want) = (sorted_result_lines(&got), sorted_result_lines(&want));
    assert_eq!(want.len() as u64, EVENTS);
    let lost = want
        .iter()
        .filter(|l| got.binary_search(l).is_err())
        .count();
    let twice = got.windows(2).filter(|w| w[0] == w[1]).count();
    assert_eq!(
        (lost, twice, got.len()),
        (0, 0, want.len()),
        "after {killed} kills"
    );
    assert!(got == want, "after {killed} kills the results differ");
    eprintln!("{killed} SIGKILLs with lookups and remote scoring into S3: 0 lost, 0 twice");
}
