//! The job with its companies from the TenantManager: against the real service (the
//! same figures as with the companies in the input), and against a test server that
//! delays, fails, resets and times out at seeded points (every event ends as a result
//! or a dead letter with the right reason, each tenant's events in order, in-flight
//! requests within the bound).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::common::{
    Server, assert_check_output_matches, assert_same_results, check_output_figures, gen_w1,
    read_summary, result_files, splitmix, summary_path, tenantflow,
};
use crate::crash::{command, kill_repeatedly};

/// A `tenantflow tenant-manager` seeded from `seed`, on SQLite in `dir`.
pub(crate) fn start_tenant_manager(dir: &Path, seed: &Path) -> Server {
    let db = format!("sqlite://{}", dir.join("tenants.db").display());
    Server::start(
        &[
            "tenant-manager",
            "--database",
            &db,
            "--seed",
            seed.to_str().unwrap(),
        ],
        "tenant-manager: ready",
    )
}

#[test]
#[cfg_attr(not(have_shared), ignore = "needs ../shared/ beside the repository")]
fn companies_from_the_tenant_manager_give_the_figures_of_companies_in_the_input_even_after_crashes()
{
    let dir = tempfile::tempdir().unwrap();
    let w1 = gen_w1(dir.path(), 60_000, 800, 5);
    let text = std::fs::read_to_string(&w1).unwrap();
    // The company block seeds the service; the job events alone are the input. Updates
    // (company records after the block) are left out of both runs.
    let mut companies = String::new();
    let mut jobs = String::new();
    let mut in_block = true;
    for line in text.lines() {
        let is_company = line.contains(r#""type":"company""#);
        if in_block && is_company {
            companies.push_str(line);
            companies.push('\n');
        } else if !is_company {
            in_block = false;
            jobs.push_str(line);
            jobs.push('\n');
        }
    }
    let seed = dir.path().join("companies.ndjson");
    let job_file = dir.path().join("jobs.ndjson");
    let both = dir.path().join("both.ndjson");
    std::fs::write(&seed, &companies).unwrap();
    std::fs::write(&job_file, &jobs).unwrap();
    std::fs::write(&both, format!("{companies}{jobs}")).unwrap();

    let service = start_tenant_manager(dir.path(), &seed);
    let from_input = dir.path().join("from-input");
    tenantflow(&[
        "run",
        "--quiet",
        "--input",
        both.to_str().unwrap(),
        "--output",
        from_input.to_str().unwrap(),
    ]);
    let looked_up = dir.path().join("looked-up");
    let summary_path = summary_path(&looked_up);
    tenantflow(&[
        "run",
        "--quiet",
        "--input",
        job_file.to_str().unwrap(),
        "--output",
        looked_up.to_str().unwrap(),
        "--tenant-manager",
        &service.url,
        "--checkpoint-interval",
        "300ms",
        "--summary-json",
        summary_path.to_str().unwrap(),
    ]);
    let summary = read_summary(&summary_path);
    let lookups = &summary["tenant_lookups"];
    assert_eq!(
        (
            &lookups["profiles_fetched"],
            &lookups["calls"]["requests"],
            &lookups["calls"]["retried"]
        ),
        (&Value::from(800), &Value::from(800), &Value::from(0)),
        "{summary}"
    );
    let want = check_output_figures(&from_input);
    assert_eq!(want.lines, jobs.lines().count() as u64);
    assert_check_output_matches(&looked_up, &want);

    // Killed at seeded moments (lookups in flight, profiles half fetched) and started
    // again: the same results, line for line.
    let crashed = dir.path().join("crashed");
    let run = || {
        let mut cmd = command(&[
            "run",
            "--quiet",
            "--input",
            job_file.to_str().unwrap(),
            "--output",
            crashed.to_str().unwrap(),
            "--tenant-manager",
            &service.url,
            "--checkpoint-interval",
            "100ms",
        ]);
        cmd.env_remove("TENANTFLOW_LOG");
        cmd
    };
    kill_repeatedly(5, 2, 2026, (200, 2500), run);
    let status = run().status().unwrap();
    assert!(status.success());
    assert_same_results(&crashed, &looked_up, "killed runs with lookups");
}

/// What the fault server does with each tenant.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fate {
    /// 404: a dead letter `unknown_company`.
    Unknown,
    /// 500 at every attempt: a dead letter `lookup_failed`.
    Broken,
    /// `n` faulty attempts (of the kind the seed picks), then the profile.
    Flaky(u64),
}

const TENANTS: u64 = 240;
const EVENTS: u64 = 4_000;
const MAX_IN_FLIGHT: usize = 4;

fn fate(tenant: u64) -> Fate {
    match tenant % 10 {
        0 => Fate::Unknown,
        1 => Fate::Broken,
        _ => Fate::Flaky(splitmix(tenant) % 4),
    }
}

#[derive(Default)]
struct FaultStats {
    /// Answer every tenant at once, with `job30` = how many times it was asked.
    no_faults: bool,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    requests: AtomicUsize,
    attempts: Mutex<HashMap<u64, u64>>,
}

/// Serves `GET /api/v1/tenants/t-NNN` by each tenant's fate; faulty attempts are 500,
/// 429, a reset connection, or no answer for 2 s (past the job's timeout), by seed.
fn start_fault_server(no_faults: bool) -> (String, Arc<FaultStats>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stats = Arc::new(FaultStats {
        no_faults,
        ..FaultStats::default()
    });
    let shared = Arc::clone(&stats);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let stats = Arc::clone(&shared);
            std::thread::spawn(move || serve_connection(stream, &stats));
        }
    });
    (url, stats)
}

fn serve_connection(mut stream: TcpStream, stats: &FaultStats) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                break;
            }
        }
        let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        stats.most_in_flight.fetch_max(now, Ordering::SeqCst);
        stats.requests.fetch_add(1, Ordering::SeqCst);
        let id = request_line
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.strip_prefix("/api/v1/tenants/"))
            .unwrap_or("")
            .to_owned();
        let tenant: u64 = id.trim_start_matches("t-").parse().unwrap_or(0);
        let attempt = {
            let mut attempts = stats.attempts.lock().unwrap();
            let n = attempts.entry(tenant).or_default();
            *n += 1;
            *n
        };
        let roll = splitmix(tenant * 31 + attempt);
        std::thread::sleep(Duration::from_millis(roll % 15));
        let respond = |stream: &mut TcpStream, status: &str, body: &str| {
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
        };
        let fate = if stats.no_faults {
            Fate::Flaky(0)
        } else {
            fate(tenant)
        };
        let faulty = match fate {
            // The original service's answer for a missing tenant.
            Fate::Unknown if tenant % 20 == 10 => {
                respond(&mut stream, "204 No Content", "");
                None
            }
            Fate::Unknown => {
                respond(
                    &mut stream,
                    "404 Not Found",
                    r#"{"error":"no such tenant"}"#,
                );
                None
            }
            Fate::Broken => Some(0),
            Fate::Flaky(n) if attempt <= n => Some(roll % 4),
            Fate::Flaky(_) => {
                let body = format!(
                    r#"{{"tenantID":"{id}","industry":"retail","revenu":{},"employees":40,"job30":{},"job90":20,"monthlyFee":300.0,"totalFee":900.0}}"#,
                    1000 + tenant,
                    if stats.no_faults { attempt } else { 3 }
                );
                respond(&mut stream, "200 OK", &body);
                None
            }
        };
        stats.in_flight.fetch_sub(1, Ordering::SeqCst);
        match faulty {
            None => {}
            Some(0) => respond(
                &mut stream,
                "500 Internal Server Error",
                r#"{"error":"boom"}"#,
            ),
            Some(1) => {
                let _ = write!(
                    stream,
                    "HTTP/1.1 429 Too Many Requests\r\nretry-after: 0\r\ncontent-length: 0\r\n\r\n"
                );
            }
            Some(2) => {
                // A reset: the connection closes with no answer.
                let _ = stream.shutdown(std::net::Shutdown::Both);
                return;
            }
            Some(_) => {
                // No answer within the job's timeout; the job gives up on this one.
                std::thread::sleep(Duration::from_secs(2));
                return;
            }
        }
        let _ = stream.flush();
    }
}

/// Writes `events` job events to `path`: event `i` is of tenant `t-NNN` (`tenant(i)`),
/// by user `u-i` (so a result names its event), `step_ms` after the one before.
fn write_jobs(path: &Path, events: u64, tenant: impl Fn(u64) -> u64, step_ms: u64) {
    let mut text = String::new();
    for i in 0..events {
        text.push_str(&format!(
            r#"{{"type":"job","companyID":"t-{:03}","userID":"u-{i}","nbJobs":1,"creationDate":{}}}"#,
            tenant(i),
            1_767_225_600_000 + i * step_ms
        ));
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

/// The tenant number and event index of a result (or a dead letter's record) of
/// [`write_jobs`]'s events.
fn tenant_and_event(record: &Value) -> (u64, u64) {
    let number = |field: &str| record[field].as_str().unwrap()[2..].parse().unwrap();
    (number("companyID"), number("userID"))
}

fn fault_run(order: &str) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("jobs.ndjson");
    write_jobs(&input, EVENTS, |i| splitmix(i ^ 0xfeed) % TENANTS, 60_000);
    let (url, stats) = start_fault_server(false);
    let output = dir.path().join("out");
    tenantflow(&[
        "run",
        "--quiet",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--tenant-manager",
        &url,
        "--lookup-max-in-flight",
        &MAX_IN_FLIGHT.to_string(),
        "--lookup-timeout",
        "300ms",
        "--lookup-attempts",
        "5",
        "--lookup-order",
        order,
        "--checkpoint-interval",
        "200ms",
    ]);
    // Each result's event index by tenant, in file order.
    let mut seen = vec![false; EVENTS as usize];
    for file in result_files(&output, ".ndjson") {
        let mut last: HashMap<u64, u64> = HashMap::new();
        for line in std::fs::read_to_string(&file).unwrap().lines() {
            let (number, index) = tenant_and_event(&serde_json::from_str(line).unwrap());
            assert!(
                matches!(fate(number), Fate::Flaky(_)),
                "t-{number:03} has a result"
            );
            assert!(!seen[index as usize], "event {index} twice");
            seen[index as usize] = true;
            if let Some(before) = last.insert(number, index) {
                assert!(
                    before < index,
                    "{order}: t-{number:03}'s events out of order in {file:?}"
                );
            }
        }
    }
    let rejected = output.join("_rejected");
    let mut reasons: HashMap<String, u64> = HashMap::new();
    for file in result_files(&rejected, ".ndjson") {
        for line in std::fs::read_to_string(&file).unwrap().lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            let record: Value = serde_json::from_str(v["record"].as_str().unwrap()).unwrap();
            let (number, index) = tenant_and_event(&record);
            let reason = v["reason"].as_str().unwrap().to_owned();
            let want = match fate(number) {
                Fate::Unknown => "unknown_company",
                Fate::Broken => "lookup_failed",
                Fate::Flaky(_) => "none",
            };
            assert_eq!(reason, want, "{order}: event {index} of t-{number:03}: {v}");
            assert!(!seen[index as usize], "event {index} twice");
            seen[index as usize] = true;
            *reasons.entry(reason).or_default() += 1;
        }
    }
    let lost: Vec<usize> = (0..seen.len()).filter(|&i| !seen[i]).collect();
    assert!(lost.is_empty(), "{order}: events lost: {lost:?}");
    assert!(
        reasons["unknown_company"] > 0 && reasons["lookup_failed"] > 0,
        "{reasons:?}"
    );
    let most = stats.most_in_flight.load(Ordering::SeqCst);
    assert!(most <= MAX_IN_FLIGHT, "{order}: {most} requests in flight");
    // Requests were coalesced and answers kept: a flaky tenant was asked exactly once per
    // faulty attempt plus once more, however many events it has.
    for (&tenant, &asked) in stats.attempts.lock().unwrap().iter() {
        match fate(tenant) {
            Fate::Flaky(n) => {
                assert_eq!(asked, n + 1, "{order}: t-{tenant:03} asked {asked} times")
            }
            // Remembered as unknown (for --unknown-tenant-ttl, 1m): asked once.
            Fate::Unknown => assert_eq!(asked, 1, "{order}: t-{tenant:03} asked {asked} times"),
            // Failures are not remembered: asked again for later events.
            Fate::Broken => assert!(asked >= 5),
        }
    }
}

#[test]
fn faults_of_the_tenant_manager_lose_nothing_and_keep_each_tenants_order() {
    fault_run("unordered");
}

#[test]
fn ordered_emission_under_faults_loses_nothing() {
    fault_run("ordered");
}

/// A result of [`ttl_run`]: tenant, k-th event of the tenant, job30.
type TtlResult = (u64, u64, i64);

/// Runs 10 tenants × 20 events (one day) against a server whose `job30` is how many
/// times the tenant was asked, one lookup in flight at a time, in input order; returns
/// each tenant's requests and each result's (tenant, k-th event of it, job30).
fn ttl_run(ttl: &str) -> (HashMap<u64, u64>, Vec<TtlResult>) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("jobs.ndjson");
    write_jobs(&input, 200, |i| i % 10, 1000);
    let (url, stats) = start_fault_server(true);
    let output = dir.path().join("out");
    tenantflow(&[
        "run",
        "--quiet",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--tenant-manager",
        &url,
        "--tenant-ttl",
        ttl,
        "--lookup-max-in-flight",
        "1",
        "--lookup-order",
        "ordered",
    ]);
    let mut results = Vec::new();
    for file in result_files(&output, ".ndjson") {
        for line in std::fs::read_to_string(&file).unwrap().lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            let (tenant, index) = tenant_and_event(&v);
            results.push((tenant, index / 10 + 1, v["job30"].as_i64().unwrap()));
        }
    }
    assert_eq!(results.len(), 200);
    let attempts = stats.attempts.lock().unwrap().clone();
    (attempts, results)
}

#[test]
fn fetched_profiles_are_refreshed_after_their_ttl() {
    // Within the TTL: one request per tenant; the k-th event counts k jobs on top of
    // the first answer's baseline of 1.
    let (attempts, results) = ttl_run("1h");
    assert!(attempts.values().all(|&n| n == 1), "{attempts:?}");
    for (tenant, k, job30) in &results {
        assert_eq!(*job30, 1 + *k as i64, "t-{tenant:03}, event {k}");
    }
    // A TTL of zero, the 200 events in one batch: a tenant's later events come while
    // its first lookup is out (the worker does not wait for answers at the in-flight
    // bound), so they wait for that answer and use it, as fresh as they are. That an
    // event coming after the answer was used asks again is the worker's unit test
    // `a_profile_past_its_ttl_is_fetched_again_for_a_later_event`, which can pace the
    // events; a command line cannot.
    let (attempts, results) = ttl_run("0s");
    assert!(attempts.values().all(|&n| n == 1), "{attempts:?}");
    for (tenant, k, job30) in &results {
        assert_eq!(*job30, 1 + *k as i64, "t-{tenant:03}, event {k}");
    }
}
