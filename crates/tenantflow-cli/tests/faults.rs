//! Faults the job rides out, each compared with an undisturbed run: the TenantManager
//! and the scorer down for seconds (the job slows, retries, and ends with the same
//! results and no dead letter), S3 answering 503 and answering slowly (the same), and a
//! full disk (the job stops with the error; once space is freed the same command
//! resumes to exactly the results of an undisturbed run).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{JobRun, sorted_result_lines, splitmix};
use crate::fault_http::{self, Action, Then};
use crate::lookup::start_tenant_manager;
use crate::scoring::{builtin_model, start_scorer};

const T0: i64 = 1_767_225_600_000;

/// `companies` profiles and `events` job events over them (seeded), one every
/// `every_ms` of event time, as two NDJSON files in `dir`.
pub fn write_tenants_and_jobs(
    dir: &Path,
    companies: u64,
    events: u64,
    seed: u64,
    every_ms: i64,
) -> (PathBuf, PathBuf) {
    let industries = ["retail", "finance", "healthcare", "IT", "media"];
    let profiles: Vec<String> = (0..companies)
        .map(|c| {
            let r = splitmix(seed ^ c);
            format!(
                r#"{{"type":"company","companyID":"c-{c:04}","industry":"{}","revenu":{},"employees":{},"job30":{},"job90":{},"monthlyFee":{}.5,"totalFee":{}}}"#,
                industries[(r % 5) as usize],
                1_000 + r % 90_000,
                1 + (r >> 8) % 5_000,
                (r >> 16) % 40,
                40 + (r >> 24) % 80,
                10 + (r >> 32) % 300,
                100 + (r >> 40) % 9_000,
            )
        })
        .collect();
    let jobs: Vec<String> = (0..events)
        .map(|i| {
            let r = splitmix(seed.wrapping_add(1) ^ (i << 20));
            format!(
                r#"{{"type":"job","companyID":"c-{:04}","userID":"u-{}","nbJobs":{},"creationDate":{}}}"#,
                r % companies,
                (r >> 20) % 50,
                1 + (r >> 32) % 9,
                T0 + i as i64 * every_ms,
            )
        })
        .collect();
    let companies_path = dir.join("companies.ndjson");
    let jobs_path = dir.join("jobs.ndjson");
    std::fs::write(&companies_path, profiles.join("\n") + "\n").unwrap();
    std::fs::write(&jobs_path, jobs.join("\n") + "\n").unwrap();
    (companies_path, jobs_path)
}

/// A plan that forwards everything, except for `outage` from the `from`-th request on,
/// when it does `then`: a service down for a while.
fn outage(from: u64, outage: Duration, then: Then) -> impl Fn(&fault_http::Request<'_>) -> Action {
    let seen = AtomicU64::new(0);
    let started: Mutex<Option<Instant>> = Mutex::new(None);
    move |_| {
        let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
        let mut started = started.lock().unwrap();
        if n >= from && started.is_none() {
            *started = Some(Instant::now());
        }
        let down = started.is_some_and(|t| t.elapsed() < outage);
        Action {
            delay: Duration::ZERO,
            then: if down { then } else { Then::Forward },
        }
    }
}

fn calls(summary: &Value, service: &str) -> (u64, u64) {
    let calls = match service {
        "lookup" => &summary["tenant_lookups"]["calls"],
        _ => &summary["scoring_requests"],
    };
    (
        calls["retried"].as_u64().unwrap(),
        calls["failed_for_good"].as_u64().unwrap(),
    )
}

#[test]
fn the_tenant_manager_and_the_scorer_down_for_seconds_change_no_result() {
    let dir = tempfile::tempdir().unwrap();
    let (companies, jobs) = write_tenants_and_jobs(dir.path(), 120, 6_000, 7, 45_000);
    let manager = start_tenant_manager(dir.path(), &companies);
    let scorer = start_scorer(&builtin_model());
    let run = |out: &Path, manager: &str, scorer: &str| {
        JobRun::new(out)
            .input(&jobs)
            .args(&[
                "--tenant-manager",
                manager,
                "--scorer",
                &format!("{scorer}/invocations"),
                "--checkpoint-interval",
                "300ms",
            ])
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .summary()
    };
    let undisturbed = dir.path().join("undisturbed");
    let want = run(&undisturbed, &manager.url, &scorer.url);
    assert_eq!(want["results"], 6_000, "{want}");

    // Each service down for 4 s from its 10th request: the TenantManager refusing
    // connections (each closed at once), the scorer answering 503.
    let down = Duration::from_secs(4);
    let tm_proxy = fault_http::start(
        manager.url.trim_start_matches("http://").to_owned(),
        outage(10, down, Then::Reset),
    );
    let scorer_proxy = fault_http::start(
        scorer.url.trim_start_matches("http://").to_owned(),
        outage(10, down, Then::Status(503)),
    );
    let disturbed = dir.path().join("disturbed");
    let started = Instant::now();
    let got = run(&disturbed, &tm_proxy.url, &scorer_proxy.url);
    let took = started.elapsed();
    assert_eq!(got["dead_letters"], 0, "{got}");
    assert_eq!(got["results"], 6_000, "{got}");
    let (lookup_retries, lookup_failures) = calls(&got, "lookup");
    let (score_retries, score_failures) = calls(&got, "scoring");
    assert!(lookup_retries > 0 && score_retries > 0, "{got}");
    assert_eq!((lookup_failures, score_failures), (0, 0), "{got}");
    assert!(tm_proxy.stats.faults("reset") > 0);
    assert!(scorer_proxy.stats.faults("503") > 0);
    assert_eq!(
        sorted_result_lines(&disturbed),
        sorted_result_lines(&undisturbed)
    );
    eprintln!(
        "remote services down 4 s: {lookup_retries} lookup retries, {score_retries} scoring \
         retries, {} resets and {} 503s injected, run took {took:.1?}, no dead letter",
        tm_proxy.stats.faults("reset"),
        scorer_proxy.stats.faults("503"),
    );
}

/// Mounts a tmpfs of `size` (e.g. `1m`) on `at`, or changes its size: false where this
/// process may not mount (not root).
fn mount_tmpfs(at: &Path, size: &str, remount: bool) -> bool {
    let options = if remount {
        format!("remount,size={size}")
    } else {
        format!("size={size}")
    };
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", &options, "tmpfs"])
        .arg(at)
        .output()
        .is_ok_and(|o| o.status.success())
}

struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_stops_the_job_with_the_error_and_it_resumes_exactly_once_space_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let (companies, jobs) = write_tenants_and_jobs(dir.path(), 300, 30_000, 11, 45_000);
    let want = dir.path().join("want");
    JobRun::new(&want).input(&companies).input(&jobs).summary();

    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    if !mount_tmpfs(&small, "2m", false) {
        eprintln!("skipped: mounting a tmpfs needs root; the full-disk test did not run");
        return;
    }
    let _unmount = Unmount(small.clone());
    let out = small.join("out");
    let job = || {
        let mut cmd = JobRun::new(&out)
            .input(&companies)
            .input(&jobs)
            .args(&["--checkpoint-interval", "100ms"])
            .command();
        cmd.env_remove("TENANTFLOW_LOG");
        cmd
    };
    // About 9 MB of results into 2 MiB: the job stops with the error, exit 1.
    let full = job().output().unwrap();
    let stderr = String::from_utf8_lossy(&full.stderr);
    assert_eq!(full.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // Still full: the same command fails again the same way, and changes nothing.
    let again = job().output().unwrap();
    assert_eq!(again.status.code(), Some(1));

    // Space freed: the same command resumes and ends with exactly the results of an
    // undisturbed run.
    assert!(mount_tmpfs(&small, "64m", true), "growing the tmpfs");
    let resumed = job().output().unwrap();
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let (got, want) = (sorted_result_lines(&out), sorted_result_lines(&want));
    assert_eq!(got.len(), 30_000);
    assert!(
        got == want,
        "the resumed run's results differ from an undisturbed run's"
    );
}

#[cfg(feature = "s3-integration-tests")]
#[test]
fn s3_answering_503_and_slowly_changes_no_result() {
    use crate::s3::{download, s3_url};

    let dir = tempfile::tempdir().unwrap();
    let (companies, jobs) = write_tenants_and_jobs(dir.path(), 150, 10_000, 23, 45_000);
    let want = dir.path().join("want");
    JobRun::new(&want).input(&companies).input(&jobs).summary();

    // In front of the S3 server: every 4th request answered 503 (the first time it
    // comes), every 13th forwarded after 1 s.
    let moto = std::env::var("AWS_ENDPOINT_URL_S3").expect("set by scripts/test.sh");
    let seen = AtomicU64::new(0);
    let proxy = fault_http::start(
        moto.trim_start_matches("http://").to_owned(),
        move |request| {
            let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
            let then = if n.is_multiple_of(4) && request.attempt == 1 {
                Then::Status(503)
            } else {
                Then::Forward
            };
            let delay = if n.is_multiple_of(13) {
                Duration::from_secs(1)
            } else {
                Duration::ZERO
            };
            Action { delay, then }
        },
    );
    let url = s3_url("faults");
    let summary_path = dir.path().join("s3.summary.json");
    let out = Command::new(env!("CARGO_BIN_EXE_tenantflow"))
        .args(["run", "--quiet", "--output", &url, "--input"])
        .arg(&companies)
        .arg("--input")
        .arg(&jobs)
        .args(["--checkpoint-interval", "1s", "--max-file-age", "2s"])
        .arg("--summary-json")
        .arg(&summary_path)
        .env("AWS_ENDPOINT_URL_S3", &proxy.url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = crate::common::read_summary(&summary_path);
    assert!(
        summary["checkpoints"]["taken"].as_u64().unwrap() > 1,
        "{summary}"
    );
    assert!(proxy.stats.faults("503") > 0);
    let got = dir.path().join("got");
    download(&url, &got);
    assert_eq!(sorted_result_lines(&got), sorted_result_lines(&want));
    eprintln!(
        "S3 faults: {} requests, {} answered 503, one in 13 delayed 1 s; results exact",
        proxy.stats.requests.load(Ordering::SeqCst),
        proxy.stats.faults("503"),
    );
}
