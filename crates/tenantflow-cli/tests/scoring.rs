//! The job with a remote scorer: `tenantflow scorer` over HTTP, through the SageMaker
//! client, and on the original `/assessChurn` route, gives the embedded model's results
//! line for line (and so the same five W1 figures); behind a proxy that delays, fails,
//! resets and times out, every event still ends as a result or a dead letter
//! `scoring_failed`, once, each tenant's results in order.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::Output;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;

use crate::common::{
    Server, assert_same_results, files_where, gen_w1, local_aws, read_summary, result_files,
    shared, splitmix, succeeded, summary_path,
};
use crate::crash::{command, kill_repeatedly};
use crate::fault_http::{self, Action, Request, Then};

/// `tenantflow scorer` serving `model`.
pub(crate) fn start_scorer(model: &Path) -> Server {
    Server::start(
        &["scorer", "--model", model.to_str().unwrap()],
        "scorer: serving",
    )
}

/// Runs `tenantflow run --quiet? ARGS` with static AWS credentials and region (for the
/// SageMaker client; nothing leaves loopback), panicking unless it succeeds.
fn run(args: &[&str]) -> Output {
    let out = local_aws(&mut command(args)).output().unwrap();
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
    // Settings for a remote service that is not there, a contract that is not one, a
    // key without its authentication: refused at start (exit 2), the key not shown.
    let contract = dir.path().join("contract.toml");
    std::fs::write(&contract, "answer = \"maybe\"\n").unwrap();
    for (args, says) in [
        (
            &["--score-contract", contract.to_str().unwrap()][..],
            "are for a remote scorer",
        ),
        (&["--score-auth", "sigv4"], "are for a remote scorer"),
        (
            &["--lookup-auth", "api-key", "--lookup-api-key", "k-secret-1"],
            "--tenant-manager",
        ),
        (
            &[
                "--scorer",
                "http://127.0.0.1:9/invocations",
                "--score-contract",
                contract.to_str().unwrap(),
            ],
            "answer: unknown variant `maybe`",
        ),
        (
            &[
                "--scorer",
                "http://127.0.0.1:9/invocations",
                "--score-auth",
                "api-key",
            ],
            "api-key needs the key",
        ),
        (
            &[
                "--scorer",
                "http://127.0.0.1:9/invocations",
                "--score-api-key",
                "k-secret-2",
            ],
            "not api-key",
        ),
        (
            &[
                "--scorer",
                "sagemaker://churn",
                "--score-auth",
                "api-key",
                "--score-api-key",
                "k-secret-3",
            ],
            "an API key is for HTTP scorers",
        ),
    ] {
        let mut all = vec!["run", "--generate", "10", "--output"];
        let out_dir = dir.path().join("refused");
        all.push(out_dir.to_str().unwrap());
        all.extend_from_slice(args);
        let out = command(&all).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.code() == Some(2) && stderr.contains(says),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("k-secret"), "{stderr}");
    }
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

/// The faults of the scorer's proxy: a body with a `poison` row gets 500 at every
/// attempt; any other body gets `0..=2` faulty attempts (by a hash of the body: 500,
/// 429, a reset, or no answer for 2 s), then the scorer's answer. Every request first
/// waits 0 to 14 ms.
fn scorer_faults(request: &Request<'_>) -> Action {
    let roll = splitmix(request.hash ^ request.attempt);
    let then = if request.body.windows(6).any(|w| w == b"poison") {
        Then::Status(500)
    } else if request.attempt <= splitmix(request.hash) % 3 {
        match roll % 4 {
            0 => Then::Status(500),
            1 => Then::Status(429),
            2 => Then::Reset,
            _ => Then::Silence(Duration::from_secs(2)),
        }
    } else {
        Then::Forward
    };
    Action {
        delay: Duration::from_millis(roll % 15),
        then,
    }
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
    let proxy = fault_http::start(
        scorer.url.trim_start_matches("http://").to_owned(),
        scorer_faults,
    );
    let (url, stats) = (format!("{}/invocations", proxy.url), proxy.stats);
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
    for kind in ["500", "429", "reset", "silence"] {
        assert!(stats.faults(kind) > 0, "{order}: no fault of kind {kind}");
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

/// The built-in model's file, for a `tenantflow scorer` that scores as the embedded
/// model does.
pub(crate) fn builtin_model() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tenantflow-operators/models/builtin.json")
}

/// A checkpoint does not wait for a slow scorer: the rows waiting for scores go into
/// it, and a run that resumes from it scores them then. With every scoring request held
/// 1.5 s, checkpoints every 200 ms each take far less than one stall; killed at seeded
/// moments (with rows in flight) and started again, the runs end with exactly the
/// results of an undisturbed run.
#[test]
fn checkpoints_do_not_wait_for_a_slow_scorer() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.ndjson");
    write_input(&input);
    let embedded = dir.path().join("embedded");
    run_job(&input, &embedded, &["--quiet"]);
    let want = crate::common::sorted_result_lines(&embedded);
    assert_eq!(want.len(), EVENTS as usize);

    let stall = Duration::from_millis(1500);
    let scorer = start_scorer(&builtin_model());
    let proxy = fault_http::start(
        scorer.url.trim_start_matches("http://").to_owned(),
        move |_| Action {
            delay: stall,
            then: Then::Forward,
        },
    );
    let url = format!("{}/invocations", proxy.url);
    let slow = |output: &Path| -> Vec<String> {
        [
            "run",
            "--quiet",
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
            "--scorer",
            &url,
            "--score-batch",
            "500",
            "--score-max-in-flight",
            "4",
            "--score-timeout",
            "10s",
            "--checkpoint-interval",
            "200ms",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    };

    // Undisturbed: many checkpoints, none as long as a stall.
    let output = dir.path().join("slow");
    let summary_file = summary_path(&output);
    let mut args = slow(&output);
    args.extend([
        "--summary-json".into(),
        summary_file.to_str().unwrap().into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&args);
    let summary = read_summary(&summary_file);
    assert_eq!(summary["results"], EVENTS, "{summary}");
    let checkpoints = &summary["checkpoints"];
    let longest = checkpoints["longest_seconds"].as_f64().unwrap();
    assert!(
        longest < stall.as_secs_f64() * 2.0 / 3.0,
        "a checkpoint waited for the scorer: {checkpoints}"
    );
    assert!(
        checkpoints["taken"].as_u64().unwrap() >= 4,
        "checkpoints every 200 ms over two stalls: {checkpoints}"
    );
    assert_eq!(crate::common::sorted_result_lines(&output), want);

    // Killed while every row waits for its score: the checkpoint holds them.
    let crashed = dir.path().join("crashed");
    let job = || {
        let args = slow(&crashed);
        let mut cmd = command(&args.iter().map(String::as_str).collect::<Vec<_>>());
        cmd.env_remove("TENANTFLOW_LOG");
        cmd
    };
    assert!(crate::crash::kill_after(job(), Duration::from_millis(1200)));
    let waiting = files_where(&crashed.join("_checkpoints"), &|n| {
        n.starts_with("in-flight-")
    });
    assert!(
        !waiting.is_empty(),
        "a checkpoint taken while rows waited for scores holds them"
    );
    // Then at seeded moments, and to the end.
    kill_repeatedly(4, 2, 2028, (300, 2500), job);
    assert!(job().status().unwrap().success());
    assert_eq!(
        crate::common::sorted_result_lines(&crashed),
        want,
        "killed runs with a slow scorer"
    );
}
