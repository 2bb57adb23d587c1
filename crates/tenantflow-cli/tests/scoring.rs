//! The job with a remote scorer: `tenantflow scorer` over HTTP, through the SageMaker
//! client, and on the original `/assessChurn` route, gives the embedded model's results
//! line for line (and so the same five W1 figures); behind a proxy that delays, fails,
//! resets and times out, every event still ends as a result or a dead letter
//! `scoring_failed`, once, each tenant's results in order.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::common::{
    Server, assert_same_results, gen_w1, read_summary, result_files, shared, splitmix, succeeded,
    summary_path,
};
use crate::crash::{command, kill_repeatedly};

/// `tenantflow scorer` serving `model`.
fn start_scorer(model: &Path) -> Server {
    Server::start(
        &["scorer", "--model", model.to_str().unwrap()],
        "scorer: serving",
    )
}

/// Runs `tenantflow run --quiet? ARGS` with static AWS credentials and region (for the
/// SageMaker client; nothing leaves loopback), panicking unless it succeeds.
fn run(args: &[&str]) -> Output {
    let out = command(args)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    succeeded(args, out)
}

/// `tenantflow run` of `input` into `output`, with `more` flags: its `--summary-json`,
/// and the text it printed.
fn run_job(input: &Path, output: &Path, more: &[&str]) -> (Value, String) {
    let summary = summary_path(output);
    let mut args = vec![
        "run",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--summary-json",
        summary.to_str().unwrap(),
    ];
    args.extend_from_slice(more);
    let text = String::from_utf8_lossy(&run(&args).stdout).into_owned();
    (read_summary(&summary), text)
}

#[test]
#[cfg_attr(not(have_shared), ignore = "needs ../shared/ beside the repository")]
fn every_scorer_gives_the_embedded_models_results_on_w1() {
    let dir = tempfile::tempdir().unwrap();
    let model = shared("bench/model.json");
    let model_arg = model.to_str().unwrap();
    let w1 = gen_w1(dir.path(), 40_000, 500, 11);
    let scorer = start_scorer(&model);

    let embedded = dir.path().join("embedded");
    run_job(&w1, &embedded, &["--quiet", "--model", model_arg]);

    let invocations = format!("{}/invocations", scorer.url);
    let http = dir.path().join("http");
    let (summary, _) = run_job(
        &w1,
        &http,
        &[
            "--scorer",
            &invocations,
            "--score-batch",
            "50",
            "--score-max-in-flight",
            "4",
            "--checkpoint-interval",
            "300ms",
        ],
    );
    assert_eq!(
        summary["model"],
        format!("scorer {invocations}"),
        "{summary}"
    );
    // Batched: far fewer requests than results.
    let results = summary["results"].as_u64().unwrap();
    let requests = summary["scoring_requests"]["requests"].as_u64().unwrap();
    assert!(
        requests * 10 < results && requests >= results / 50,
        "{requests} requests for {results} results\n{summary}"
    );
    assert_same_results(&http, &embedded, "scorer over HTTP");

    // The SageMaker runtime client (SigV4, InvokeEndpoint), pointed at the scorer.
    let sagemaker = dir.path().join("sagemaker");
    let (summary, _) = run_job(
        &w1,
        &sagemaker,
        &[
            "--scorer",
            "sagemaker://churn-w1",
            "--sagemaker-endpoint-url",
            &scorer.url,
            "--score-order",
            "ordered",
        ],
    );
    assert_eq!(summary["model"], "scorer sagemaker://churn-w1", "{summary}");
    assert_same_results(&sagemaker, &embedded, "SageMaker client");

    // The original route takes one company per request: a smaller W1.
    let small = gen_w1(dir.path(), 6_000, 200, 12);
    let small_embedded = dir.path().join("small-embedded");
    run_job(&small, &small_embedded, &["--quiet", "--model", model_arg]);
    let assess = dir.path().join("assess");
    let (summary, _) = run_job(
        &small,
        &assess,
        &[
            "--scorer",
            &format!("{}/assessChurn", scorer.url),
            "--score-max-in-flight",
            "16",
        ],
    );
    assert_eq!(
        summary["scoring_requests"]["requests"], summary["results"],
        "{summary}"
    );
    assert_same_results(&assess, &small_embedded, "/assessChurn");

    // Results can name the model that scored them: the scorer says which.
    let versioned = dir.path().join("versioned");
    run_job(
        &small,
        &versioned,
        &[
            "--quiet",
            "--scorer",
            &invocations,
            "--model-version-field",
            "--format",
            "csv",
        ],
    );
    let files = result_files(&versioned, ".csv");
    assert!(!files.is_empty());
    for file in files {
        for line in std::fs::read_to_string(file).unwrap().lines() {
            assert!(line.ends_with(",w1-churn-fixed"), "{line}");
        }
    }
}

#[test]
fn bad_scoring_flags_are_refused() {
    let out = command(&[
        "run",
        "--generate",
        "10",
        "--output",
        "/nonexistent/never-written",
        "--scorer",
        "http://127.0.0.1:9/invocations",
        "--model",
        "m.json",
    ])
    .output()
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--model is the embedded scorer's"),
        "{stderr}"
    );
    // SageMaker without a region: refused at the start, not a dead letter per event.
    let dir = tempfile::tempdir().unwrap();
    let out = command(&[
        "run",
        "--generate",
        "10",
        "--output",
        dir.path().join("out").to_str().unwrap(),
        "--scorer",
        "sagemaker://churn",
    ])
    .env_remove("AWS_REGION")
    .env_remove("AWS_DEFAULT_REGION")
    .env_remove("AWS_PROFILE")
    .env("AWS_CONFIG_FILE", dir.path().join("none"))
    .env("AWS_EC2_METADATA_DISABLED", "true")
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("no AWS region"),
        "{stderr}"
    );
    let out = command(&[
        "run",
        "--generate",
        "10",
        "--scorer",
        "http://127.0.0.1:9/invocations",
        "--score-batch",
        "60000",
    ])
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(2) && stderr.contains("1..=50000"),
        "{stderr}"
    );
    let out = command(&["run", "--generate", "10", "--scorer", "http://h/score"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("/invocations or /assessChurn"),
        "{stderr}"
    );
}

#[test]
#[cfg_attr(not(have_shared), ignore = "needs ../shared/ beside the repository")]
fn killed_runs_with_a_remote_scorer_give_the_same_results() {
    let dir = tempfile::tempdir().unwrap();
    let model = shared("bench/model.json");
    let w1 = gen_w1(dir.path(), 30_000, 400, 13);
    let scorer = start_scorer(&model);
    let embedded = dir.path().join("embedded");
    run_job(
        &w1,
        &embedded,
        &["--quiet", "--model", model.to_str().unwrap()],
    );
    // Killed with batches in flight and half-written files, then started again.
    let crashed = dir.path().join("crashed");
    let invocations = format!("{}/invocations", scorer.url);
    let job = || {
        let mut cmd = command(&[
            "run",
            "--quiet",
            "--input",
            w1.to_str().unwrap(),
            "--output",
            crashed.to_str().unwrap(),
            "--scorer",
            &invocations,
            "--score-batch",
            "20",
            "--checkpoint-interval",
            "100ms",
        ]);
        cmd.env_remove("TENANTFLOW_LOG");
        cmd
    };
    kill_repeatedly(5, 2, 2027, (200, 2000), job);
    assert!(job().status().unwrap().success());
    assert_same_results(&crashed, &embedded, "killed runs with a remote scorer");
}

/// Tenants whose rows the proxy always fails (their industry says so).
fn is_poison(tenant: u64) -> bool {
    tenant % 100 == 7
}

const TENANTS: u64 = 200;
const EVENTS: u64 = 4_000;
const MAX_IN_FLIGHT: usize = 3;

/// Companies `t-000`… (a poison tenant's industry is `poison`), then `EVENTS` job
/// events: event `i` by user `u-i`, of a seeded tenant, a minute after the one before.
fn write_input(path: &Path) {
    let mut text = String::new();
    for t in 0..TENANTS {
        let industry = if is_poison(t) {
            "poison"
        } else {
            ["retail", "finance", "IT", "media"][(t % 4) as usize]
        };
        text.push_str(&format!(
            r#"{{"type":"company","companyID":"t-{t:03}","industry":"{industry}","revenu":{},"employees":{},"job30":{},"job90":{},"monthlyFee":{},"totalFee":{}}}"#,
            1000 + t * 37,
            10 + t,
            t % 9,
            10 + t % 80,
            100 + t,
            400 + t * 3
        ));
        text.push('\n');
    }
    for i in 0..EVENTS {
        text.push_str(&format!(
            r#"{{"type":"job","companyID":"t-{:03}","userID":"u-{i}","nbJobs":1,"creationDate":{}}}"#,
            splitmix(i ^ 0xbeef) % TENANTS,
            1_767_225_600_000 + i * 60_000
        ));
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

/// What the proxy did.
#[derive(Default)]
struct ProxyStats {
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    /// Faults injected, by kind: 500, 429, reset, no answer.
    faults: [AtomicUsize; 4],
    /// Attempts per request body.
    attempts: Mutex<HashMap<u64, u64>>,
}

/// A proxy in front of `upstream` (`host:port`): a body with a `poison` row gets 500
/// at every attempt; any other body gets `0..=2` faulty attempts (by a hash of the
/// body: 500, 429, a reset, or no answer for 2 s), then the scorer's answer. Every
/// request first waits 0 to 14 ms.
fn start_proxy(upstream: String) -> (String, Arc<ProxyStats>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/invocations", listener.local_addr().unwrap());
    let stats = Arc::new(ProxyStats::default());
    let shared = Arc::clone(&stats);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let stats = Arc::clone(&shared);
            let upstream = upstream.clone();
            std::thread::spawn(move || proxy_connection(stream, &upstream, &stats));
        }
    });
    (url, stats)
}

fn proxy_connection(mut stream: TcpStream, upstream: &str, stats: &ProxyStats) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        stats.most_in_flight.fetch_max(now, Ordering::SeqCst);
        let hash = body.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let attempt = {
            let mut attempts = stats.attempts.lock().unwrap();
            let n = attempts.entry(hash).or_default();
            *n += 1;
            *n
        };
        let roll = splitmix(hash ^ attempt);
        std::thread::sleep(Duration::from_millis(roll % 15));
        let poison = body.windows(6).any(|w| w == b"poison");
        let fault = if poison {
            Some(0)
        } else if attempt <= splitmix(hash) % 3 {
            Some((roll % 4) as usize)
        } else {
            None
        };
        let answer = match fault {
            None => Some(forward(upstream, &body)),
            Some(kind) => {
                stats.faults[kind].fetch_add(1, Ordering::SeqCst);
                match kind {
                    0 => Some(
                        "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\n\r\nboom"
                            .as_bytes()
                            .to_vec(),
                    ),
                    1 => Some(
                        "HTTP/1.1 429 Too Many Requests\r\nretry-after: 0\r\ncontent-length: 0\r\n\r\n"
                            .as_bytes()
                            .to_vec(),
                    ),
                    _ => None,
                }
            }
        };
        stats.in_flight.fetch_sub(1, Ordering::SeqCst);
        match (answer, fault) {
            (Some(bytes), _) => {
                let _ = stream.write_all(&bytes);
                let _ = stream.flush();
            }
            (None, Some(2)) => {
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
            (None, _) => {
                // No answer within the job's timeout.
                std::thread::sleep(Duration::from_secs(2));
                return;
            }
        }
    }
}

/// Sends `body` to the scorer at `upstream` and returns its whole answer, made to keep
/// the client's connection open.
fn forward(upstream: &str, body: &[u8]) -> Vec<u8> {
    let mut scorer = TcpStream::connect(upstream).unwrap();
    write!(
        scorer,
        "POST /invocations HTTP/1.1\r\nhost: {upstream}\r\ncontent-type: text/csv\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    scorer.write_all(body).unwrap();
    let mut answer = Vec::new();
    scorer.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8(answer).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.lines().next().unwrap();
    format!(
        "{status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The event index of a result, or of a dead letter's record.
fn event_of(record: &Value) -> (u64, usize) {
    let tenant = record["companyID"].as_str().unwrap()[2..].parse().unwrap();
    let index = record["userID"].as_str().unwrap()[2..].parse().unwrap();
    (tenant, index)
}

fn fault_run(order: &str) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.ndjson");
    write_input(&input);
    // Every event's result with the model in process, for comparison.
    let model = shared("bench/model.json");
    let embedded = dir.path().join("embedded");
    run_job(
        &input,
        &embedded,
        &["--quiet", "--model", model.to_str().unwrap()],
    );
    let mut want: HashMap<usize, String> = HashMap::new();
    for file in result_files(&embedded, ".ndjson") {
        for line in std::fs::read_to_string(file).unwrap().lines() {
            let (_, index) = event_of(&serde_json::from_str(line).unwrap());
            want.insert(index, line.to_owned());
        }
    }
    assert_eq!(want.len(), EVENTS as usize);

    let scorer = start_scorer(&model);
    let (url, stats) = start_proxy(scorer.url.trim_start_matches("http://").to_owned());
    let output = dir.path().join("out");
    let (summary, _) = run_job(
        &input,
        &output,
        &[
            "--scorer",
            &url,
            "--score-batch",
            "10",
            "--score-max-in-flight",
            &MAX_IN_FLIGHT.to_string(),
            "--score-timeout",
            "300ms",
            "--score-attempts",
            "5",
            "--score-order",
            order,
            "--checkpoint-interval",
            "200ms",
        ],
    );
    let mut seen = vec![false; EVENTS as usize];
    for file in result_files(&output, ".ndjson") {
        let mut last: HashMap<u64, usize> = HashMap::new();
        for line in std::fs::read_to_string(&file).unwrap().lines() {
            let (tenant, index) = event_of(&serde_json::from_str(line).unwrap());
            assert!(!is_poison(tenant), "{order}: t-{tenant:03} has a result");
            assert!(!seen[index], "{order}: event {index} twice");
            seen[index] = true;
            assert_eq!(line, want[&index], "{order}: event {index}'s result");
            if let Some(before) = last.insert(tenant, index) {
                assert!(
                    before < index,
                    "{order}: t-{tenant:03}'s results out of order in {file:?}"
                );
            }
        }
    }
    let mut failed = 0;
    let mut poison_failed = 0;
    for file in result_files(&output.join("_rejected"), ".ndjson") {
        for line in std::fs::read_to_string(&file).unwrap().lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["reason"], "scoring_failed", "{order}: {v}");
            let error = v["error"].as_str().unwrap();
            assert!(
                error.contains("gave up after 5 attempts") && error.contains("500"),
                "{order}: {error}"
            );
            let record: Value = serde_json::from_str(v["record"].as_str().unwrap()).unwrap();
            let (tenant, index) = event_of(&record);
            assert!(!seen[index], "{order}: event {index} twice");
            seen[index] = true;
            failed += 1;
            poison_failed += usize::from(is_poison(tenant));
        }
    }
    let lost: Vec<usize> = (0..seen.len()).filter(|&i| !seen[i]).collect();
    assert!(lost.is_empty(), "{order}: events lost: {lost:?}");
    // Every poison event failed, with at most its batch of 10.
    let poison_events = want
        .values()
        .filter(|l| l.contains(r#""industry":"poison""#))
        .count();
    assert_eq!(poison_failed, poison_events, "{order}");
    assert!(failed <= poison_events * 10, "{order}: {failed} failed");
    let most = stats.most_in_flight.load(Ordering::SeqCst);
    assert!(most <= MAX_IN_FLIGHT, "{order}: {most} requests in flight");
    for (kind, n) in stats.faults.iter().enumerate() {
        assert!(
            n.load(Ordering::SeqCst) > 0,
            "{order}: no fault of kind {kind}"
        );
    }
    assert_eq!(
        summary["dead_letters_by_reason"]["scoring_failed"], failed,
        "{order}: {summary}"
    );
}

#[test]
#[cfg_attr(not(have_shared), ignore = "needs ../shared/ beside the repository")]
fn faults_of_the_scorer_lose_nothing_and_keep_each_tenants_order() {
    fault_run("unordered");
}

#[test]
#[cfg_attr(not(have_shared), ignore = "needs ../shared/ beside the repository")]
fn ordered_scoring_under_faults_loses_nothing() {
    fault_run("ordered");
}

#[test]
fn an_unreachable_scorer_makes_every_event_a_dead_letter_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.ndjson");
    write_input(&input);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = dir.path().join("out");
    let (summary, text) = run_job(
        &input,
        &output,
        &[
            "--scorer",
            &format!("http://user:secret@127.0.0.1:{port}/invocations"),
            "--score-attempts",
            "2",
            "--score-batch",
            "500",
        ],
    );
    assert_eq!(
        summary["dead_letters_by_reason"]["scoring_failed"], EVENTS,
        "{summary}"
    );
    assert!(!summary.to_string().contains("secret"), "{summary}");
    assert!(!text.contains("secret"), "{text}");
    let rejected = result_files(&output.join("_rejected"), ".ndjson");
    let text = std::fs::read_to_string(&rejected[0]).unwrap();
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let error = first["error"].as_str().unwrap();
    assert!(
        error.contains("gave up after 2 attempts") && error.contains("connecting to"),
        "{error}"
    );
    assert!(!error.contains("secret"), "{error}");
}
