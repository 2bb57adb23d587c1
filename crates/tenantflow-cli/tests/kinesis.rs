//! Against a Kinesis-compatible server (kinesis-local, started by scripts/test.sh at
//! `$TENANTFLOW_TEST_KINESIS_ENDPOINT`): W1 published with `produce`, consumed with
//! `run --input kinesis://…`, gives exactly the results of the same file read from disk,
//! plain or KPL-aggregated, and across a split and a merge during consumption.
#![cfg(feature = "kinesis-integration-tests")]

use std::path::Path;
use std::process::{Child, Command, Output};

use crate::common::{
    assert_same_results, gen_w1, local_aws, read_summary, shared, sorted_result_lines, succeeded,
    summary_path, tenantflow,
};

pub(crate) fn endpoint() -> String {
    std::env::var("TENANTFLOW_TEST_KINESIS_ENDPOINT").expect(
        "TENANTFLOW_TEST_KINESIS_ENDPOINT is set by scripts/test.sh, which starts the server",
    )
}

/// `tenantflow` with the AWS settings of the local server.
fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tenantflow"));
    local_aws(cmd.args(args))
        .env("AWS_ENDPOINT_URL", endpoint())
        .env_remove("AWS_ENDPOINT_URL_KINESIS");
    cmd
}

fn kinesis(args: &[&str]) -> Output {
    succeeded(args, command(args).output().expect("tenantflow starts"))
}

fn stream_name(test: &str) -> String {
    format!("{test}-{}", std::process::id())
}

/// A stream of the local server for one test, deleted when dropped: when the test ends,
/// and when it panics.
struct TestStream {
    name: String,
    deleted: bool,
}

impl TestStream {
    /// Creates the stream `TEST-PID` with `shards` shards.
    fn create(test: &str, shards: u32) -> Self {
        let name = stream_name(test);
        kinesis(&[
            "streams",
            "create",
            "--name",
            &name,
            "--shards",
            &shards.to_string(),
        ]);
        Self {
            name,
            deleted: false,
        }
    }

    fn as_str(&self) -> &str {
        &self.name
    }

    /// Deletes the stream with `tenantflow streams delete`, which must succeed.
    fn delete(mut self) {
        kinesis(&["streams", "delete", "--name", &self.name]);
        self.deleted = true;
    }
}

impl std::ops::Deref for TestStream {
    type Target = str;

    fn deref(&self) -> &str {
        &self.name
    }
}

impl std::fmt::Display for TestStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl Drop for TestStream {
    fn drop(&mut self) {
        if !self.deleted {
            // A panicking test: best effort, the server goes at the end of the run.
            let _ = command(&["streams", "delete", "--name", &self.name]).output();
        }
    }
}

fn model() -> String {
    shared("bench/model.json").to_str().unwrap().to_owned()
}

/// One process over `input`, from disk: the reference a stream run must equal.
pub(crate) fn run_file(input: &Path, out: &Path) {
    tenantflow(&[
        "run",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--model",
        &model(),
        "--quiet",
    ]);
}

/// `run` on the stream until it has been idle for `idle`.
fn consume(stream: &str, out: &Path, idle: &str) -> Child {
    consume_url(&format!("kinesis://{stream}"), out, idle)
}

fn consume_url(url: &str, out: &Path, idle: &str) -> Child {
    command(&[
        "run",
        "--input",
        url,
        "--exit-when-idle",
        idle,
        "--output",
        out.to_str().unwrap(),
        "--model",
        &model(),
        "--quiet",
    ])
    .spawn()
    .expect("tenantflow starts")
}

#[test]
#[cfg_attr(not(have_shared), ignore = "needs ../shared/ beside the repository")]
fn w1_from_a_4_shard_stream_equals_w1_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let input = gen_w1(dir.path(), 100_000, 10_000, 21);
    let stream = TestStream::create("w1-agg", 4);
    let published = kinesis(&[
        "produce",
        "--stream",
        &stream,
        "--input",
        input.to_str().unwrap(),
        "--aggregate",
    ]);
    let summary = String::from_utf8_lossy(&published.stdout);
    // 100,000 events plus the 10,000 initial company records.
    assert!(
        summary.contains("published 110,000 records") && summary.contains("KPL-aggregated"),
        "{summary}"
    );

    let from_stream = dir.path().join("stream");
    let status = consume(&stream, &from_stream, "5s").wait().unwrap();
    assert!(status.success());
    let from_disk = dir.path().join("disk");
    run_file(&input, &from_disk);
    assert_same_results(&from_stream, &from_disk, "aggregated W1 from Kinesis");
    stream.delete();
}

#[test]
#[cfg_attr(not(have_shared), ignore = "needs ../shared/ beside the repository")]
fn plain_records_give_the_same_results_as_aggregated_ones() {
    let dir = tempfile::tempdir().unwrap();
    let input = gen_w1(dir.path(), 8_000, 2_000, 4);
    let from_disk = dir.path().join("disk");
    run_file(&input, &from_disk);
    for aggregate in [false, true] {
        let stream = TestStream::create(
            if aggregate {
                "plain-vs-agg-a"
            } else {
                "plain-vs-agg-p"
            },
            2,
        );
        let mut args = vec![
            "produce",
            "--stream",
            &stream,
            "--input",
            input.to_str().unwrap(),
            "--quiet",
        ];
        if aggregate {
            args.push("--aggregate");
        }
        kinesis(&args);
        let out = dir.path().join(format!("stream-{aggregate}"));
        assert!(consume(&stream, &out, "5s").wait().unwrap().success());
        assert_same_results(
            &out,
            &from_disk,
            if aggregate { "aggregated" } else { "plain" },
        );
        stream.delete();
    }
}

/// Splits every shard (4 → 8), then merges pairs back (8 → 4), while `run` consumes:
/// children are read only after their parents, so every tenant's records keep their
/// order.
#[test]
#[cfg_attr(not(have_shared), ignore = "needs ../shared/ beside the repository")]
fn resharding_during_consumption_changes_no_result() {
    let dir = tempfile::tempdir().unwrap();
    let input = gen_w1(dir.path(), 30_000, 3_000, 8);
    let text = std::fs::read_to_string(&input).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let third = lines.len() / 3;
    let parts: Vec<std::path::PathBuf> = (0..3)
        .map(|i| {
            let end = if i == 2 { lines.len() } else { (i + 1) * third };
            let path = dir.path().join(format!("part-{i}.ndjson"));
            std::fs::write(&path, lines[i * third..end].join("\n")).unwrap();
            path
        })
        .collect();

    let stream = TestStream::create("reshard", 4);
    kinesis(&[
        "produce",
        "--stream",
        &stream,
        "--input",
        parts[0].to_str().unwrap(),
        "--aggregate",
        "--quiet",
    ]);
    let out = dir.path().join("stream");
    // Idle long enough to outlast each publish and reshard below, even on a busy machine.
    // Two consumers at once: polling, and enhanced fan-out.
    let mut run = consume(&stream, &out, "20s");
    let out_fan_out = dir.path().join("stream-fan-out");
    let mut run_fan_out = consume_url(
        &format!("kinesis://{stream}?consumer=tf-reshard"),
        &out_fan_out,
        "20s",
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = local_client();
    let reshard = |target: i32| {
        runtime.block_on(async {
            client
                .update_shard_count()
                .stream_name(stream.as_str())
                .target_shard_count(target)
                .scaling_type(aws_sdk_kinesis::types::ScalingType::UniformScaling)
                .send()
                .await
                .unwrap();
            tenantflow_kinesis::admin::wait_active(&client, &stream)
                .await
                .unwrap();
        })
    };
    reshard(8);
    kinesis(&[
        "produce",
        "--stream",
        &stream,
        "--input",
        parts[1].to_str().unwrap(),
        "--aggregate",
        "--quiet",
    ]);
    reshard(4);
    kinesis(&[
        "produce",
        "--stream",
        &stream,
        "--input",
        parts[2].to_str().unwrap(),
        "--aggregate",
        "--quiet",
    ]);
    assert!(run.wait().unwrap().success());
    assert!(run_fan_out.wait().unwrap().success());

    let shards = runtime
        .block_on(tenantflow_kinesis::admin::list_shards(&client, &stream))
        .unwrap();
    assert!(
        shards.len() > 4 && shards.iter().any(|s| s.adjacent_parent.is_some()),
        "{shards:?}"
    );
    let from_disk = dir.path().join("disk");
    run_file(&input, &from_disk);
    assert_same_results(&out, &from_disk, "W1 across a split and a merge");
    assert_same_results(
        &out_fan_out,
        &from_disk,
        "W1 across a split and a merge, by fan-out",
    );
    stream.delete();
}

/// `--output-stream`: every result, as the JSON of the NDJSON files, on the stream; a
/// tenant's results all in one shard (partition key companyID), in the files' order.
#[test]
#[cfg_attr(not(have_shared), ignore = "needs ../shared/ beside the repository")]
fn results_go_to_the_output_stream_in_order_per_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let input = gen_w1(dir.path(), 3_000, 200, 12);
    let stream = TestStream::create("enriched", 2);
    let out = dir.path().join("out");
    let summary_file = summary_path(&out);
    kinesis(&[
        "run",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--model",
        &model(),
        "--output-stream",
        &stream,
        "--summary-json",
        summary_file.to_str().unwrap(),
    ]);
    let summary = read_summary(&summary_file);
    assert_eq!(
        summary["to_stream"]["records"], summary["results"],
        "{summary}"
    );

    let batches = read_stream(&stream);
    let mut per_tenant: std::collections::HashMap<String, (String, Vec<String>)> =
        Default::default();
    let mut all = Vec::new();
    for batch in &batches {
        for record in &batch.records {
            let text = String::from_utf8(record.data.to_vec()).unwrap();
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            let company = value["companyID"].as_str().unwrap().to_owned();
            let entry = per_tenant
                .entry(company.clone())
                .or_insert_with(|| (batch.shard_id.to_string(), Vec::new()));
            assert_eq!(entry.0, *batch.shard_id, "{company} is in two shards");
            entry.1.push(text.clone());
            all.push(text);
        }
    }
    all.sort();
    assert_eq!(all, sorted_result_lines(&out));
    // Each tenant's results are on the stream in the order of its job events in the input.
    let mut input_order: std::collections::HashMap<String, Vec<(String, i64)>> = Default::default();
    for line in std::fs::read_to_string(&input).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["type"] == "job" {
            input_order
                .entry(v["companyID"].as_str().unwrap().to_owned())
                .or_default()
                .push((
                    v["userID"].as_str().unwrap().to_owned(),
                    v["creationDate"].as_i64().unwrap(),
                ));
        }
    }
    assert_eq!(per_tenant.len(), input_order.len());
    for (company, (_, on_stream)) in &per_tenant {
        let stream_order: Vec<(String, i64)> = on_stream
            .iter()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["userID"].as_str().unwrap().to_owned(),
                    v["creationDate"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            stream_order, input_order[company],
            "{company}: results out of order on the stream"
        );
    }
    stream.delete();
}

/// `--output-stream` sends results as they come, not when a full request's worth has
/// gathered or at a checkpoint: with checkpoints off and a handful of events, every
/// result is on the stream while the job still runs.
#[test]
fn a_few_results_reach_the_output_stream_while_the_job_runs() {
    let dir = tempfile::tempdir().unwrap();
    let input = TestStream::create("trickle-in", 1);
    let output = TestStream::create("trickle-out", 1);
    let lines = [
        r#"{"type":"company","companyID":"c1","industry":"retail","revenu":10,"employees":2,"job30":1,"job90":3,"monthlyFee":9.5,"totalFee":20.0}"#,
        r#"{"type":"job","companyID":"c1","userID":"u1","nbJobs":1,"creationDate":1767225600000}"#,
        r#"{"type":"job","companyID":"c1","userID":"u2","nbJobs":2,"creationDate":1767225601000}"#,
        r#"{"type":"job","companyID":"c1","userID":"u3","nbJobs":3,"creationDate":1767225602000}"#,
    ];
    let file = dir.path().join("trickle.ndjson");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    kinesis(&[
        "produce",
        "--stream",
        &input,
        "--input",
        file.to_str().unwrap(),
        "--quiet",
    ]);
    let out = dir.path().join("out");
    let mut run = command(&[
        "run",
        "--input",
        &format!("kinesis://{input}"),
        "--output",
        out.to_str().unwrap(),
        "--output-stream",
        &output,
        "--checkpoint-interval",
        "off",
    ])
    .stdout(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut users = Vec::new();
    runtime.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let config = tenantflow_kinesis::consumer::ConsumerConfig::new(&output);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let consumer = tokio::spawn(tenantflow_kinesis::consumer::consume(
            local_client(),
            config,
            tx,
            stop_rx,
        ));
        // Bounded: before the fix the results stayed in the writer until the job ended.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        while users.len() < 3 {
            let batch = tokio::time::timeout_at(deadline, rx.recv()).await;
            let Ok(Some(batch)) = batch else {
                break;
            };
            for record in &batch.records {
                let row: serde_json::Value = serde_json::from_slice(&record.data).unwrap();
                users.push(row["userID"].as_str().unwrap().to_owned());
            }
        }
        let _ = stop_tx.send(true);
        let _ = consumer.await;
    });
    let still_running = run.try_wait().unwrap().is_none();
    let _ = Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status();
    let status = run.wait().unwrap();
    assert_eq!(users, ["u1", "u2", "u3"], "results on the output stream");
    assert!(still_running, "the job ended before its results were read");
    assert!(status.success(), "{status:?}");
    input.delete();
    output.delete();
}

/// Every record of `stream`, read from its start until it has been idle for 2 s.
fn read_stream(stream: &str) -> Vec<tenantflow_kinesis::consumer::RecordBatch> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let mut config = tenantflow_kinesis::consumer::ConsumerConfig::new(stream);
        config.exit_when_idle = Some(std::time::Duration::from_secs(2));
        let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let consumer = tokio::spawn(tenantflow_kinesis::consumer::consume(
            local_client(),
            config,
            tx,
            stop_rx,
        ));
        let mut batches = Vec::new();
        while let Some(batch) = rx.recv().await {
            batches.push(batch);
        }
        consumer.await.unwrap().unwrap();
        batches
    })
}

pub(crate) fn local_client() -> aws_sdk_kinesis::Client {
    let config = aws_sdk_kinesis::config::Builder::new()
        .behavior_version(aws_sdk_kinesis::config::BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .region(aws_sdk_kinesis::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_kinesis::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .build();
    aws_sdk_kinesis::Client::from_conf(config)
}

/// Throttled and partly failed PutRecords, throttled GetRecords and expired iterators
/// (injected by a proxy on loopback) slow the run down but change no result.
#[test]
#[cfg_attr(not(have_shared), ignore = "needs ../shared/ beside the repository")]
fn throttling_and_expired_iterators_change_no_result() {
    let upstream = endpoint().trim_start_matches("http://").to_owned();
    let (proxy, injected) = crate::fault_proxy::start(upstream);
    let dir = tempfile::tempdir().unwrap();
    let input = gen_w1(dir.path(), 4_000, 300, 17);
    let stream = TestStream::create("faults", 2);
    let produced = command(&[
        "produce",
        "--stream",
        &stream,
        "--input",
        input.to_str().unwrap(),
    ])
    .env("AWS_ENDPOINT_URL", &proxy)
    .output()
    .unwrap();
    assert!(
        produced.status.success(),
        "{}",
        String::from_utf8_lossy(&produced.stderr)
    );
    let summary = String::from_utf8_lossy(&produced.stdout);
    assert!(!summary.contains("throttled 0"), "{summary}");

    let out = dir.path().join("stream");
    let mut run = consume(&stream, &out, "5s");
    run.wait().unwrap();
    // The first consumer went straight to the server; now one through the proxy.
    let out_faulty = dir.path().join("stream-faulty");
    let status = command(&[
        "run",
        "--input",
        &format!("kinesis://{stream}"),
        "--exit-when-idle",
        "5s",
        "--output",
        out_faulty.to_str().unwrap(),
        "--model",
        &model(),
        "--quiet",
    ])
    .env("AWS_ENDPOINT_URL", &proxy)
    .status()
    .unwrap();
    assert!(status.success());

    let from_disk = dir.path().join("disk");
    run_file(&input, &from_disk);
    assert_same_results(&out, &from_disk, "published through faults");
    assert_same_results(&out_faulty, &from_disk, "consumed through faults");
    for (what, count) in [
        ("throttled GetRecords", &injected.get_throttled),
        ("expired iterators", &injected.get_expired),
        ("throttled PutRecords", &injected.put_throttled),
        ("partly failed PutRecords", &injected.put_partial),
    ] {
        assert!(
            count.load(std::sync::atomic::Ordering::Relaxed) > 0,
            "no {what} were injected"
        );
    }
    stream.delete();
}

/// Enhanced fan-out (`?consumer=NAME`): registered, subscribed per shard, same results.
#[test]
#[cfg_attr(not(have_shared), ignore = "needs ../shared/ beside the repository")]
fn enhanced_fan_out_gives_the_same_results() {
    let dir = tempfile::tempdir().unwrap();
    let input = gen_w1(dir.path(), 6_000, 500, 31);
    let stream = TestStream::create("fan-out", 3);
    kinesis(&[
        "produce",
        "--stream",
        &stream,
        "--input",
        input.to_str().unwrap(),
        "--aggregate",
        "--quiet",
    ]);
    let out = dir.path().join("stream");
    let status = consume_url(&format!("kinesis://{stream}?consumer=tf-test"), &out, "5s")
        .wait()
        .unwrap();
    assert!(status.success());
    let from_disk = dir.path().join("disk");
    run_file(&input, &from_disk);
    assert_same_results(&out, &from_disk, "W1 by enhanced fan-out");
    stream.delete();
}

/// SIGTERM while reading a stream (no --exit-when-idle): what was read is processed and
/// written, every file is completed, and the run exits 0.
#[test]
#[cfg_attr(not(have_shared), ignore = "needs ../shared/ beside the repository")]
fn sigterm_stops_a_stream_run_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let input = gen_w1(dir.path(), 3_000, 200, 41);
    let stream = TestStream::create("sigterm", 2);
    kinesis(&[
        "produce",
        "--stream",
        &stream,
        "--input",
        input.to_str().unwrap(),
        "--aggregate",
        "--quiet",
    ]);
    let out = dir.path().join("stream");
    let summary_file = summary_path(&out);
    let run = command(&[
        "run",
        "--input",
        &format!("kinesis://{stream}"),
        "--output",
        out.to_str().unwrap(),
        "--model",
        &model(),
        "--summary-json",
        summary_file.to_str().unwrap(),
    ])
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    // Wait (bounded) until results are being written: in-progress files exist.
    let writing = |dir: &Path| -> bool {
        let Ok(hours) = std::fs::read_dir(dir) else {
            return false;
        };
        hours.flatten().any(|h| {
            std::fs::read_dir(h.path())
                .map(|files| {
                    files
                        .flatten()
                        .any(|f| f.file_name().to_string_lossy().ends_with(".inprogress"))
                })
                .unwrap_or(false)
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !writing(&out) {
        assert!(
            std::time::Instant::now() < deadline,
            "no results being written after 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let killed = Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let finished = run.wait_with_output().unwrap();
    assert!(
        finished.status.success(),
        "exit status {:?}",
        finished.status
    );
    let summary = read_summary(&summary_file);
    assert_eq!(summary["stopped_by_signal"], true, "{summary}");
    assert!(!writing(&out), "in-progress files left behind");

    let from_disk = dir.path().join("disk");
    run_file(&input, &from_disk);
    let all: std::collections::HashSet<String> =
        sorted_result_lines(&from_disk).into_iter().collect();
    let written = sorted_result_lines(&out);
    assert!(!written.is_empty());
    for line in &written {
        assert!(all.contains(line), "a result not in the full run: {line}");
    }
    stream.delete();
}

/// Positions are typed and resumable: reading again after a recorded (shard, sequence
/// number) gives exactly the records after it; `latest` gives none of the old ones.
#[test]
fn reading_resumes_after_a_recorded_position() {
    use tenantflow_kinesis::consumer::{ConsumerConfig, StartPosition, consume};
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("jobs.ndjson");
    let lines: Vec<String> = (0..100)
        .map(|i| {
            format!(
                r#"{{"type":"job","companyID":"c-{}","userID":"u","nbJobs":{i},"creationDate":0}}"#,
                i % 7
            )
        })
        .collect();
    std::fs::write(&input, lines.join("\n")).unwrap();
    let stream = TestStream::create("resume", 1);
    kinesis(&[
        "produce",
        "--stream",
        &stream,
        "--input",
        input.to_str().unwrap(),
        "--quiet",
    ]);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let read = |start: StartPosition| {
        runtime.block_on(async {
            let (tx, mut rx) = tokio::sync::mpsc::channel(16);
            let mut config = ConsumerConfig::new(&stream);
            config.start = start;
            config.exit_when_idle = Some(std::time::Duration::from_secs(1));
            let (_stop, stop_rx) = tokio::sync::watch::channel(false);
            let task = tokio::spawn(consume(local_client(), config, tx, stop_rx));
            let mut records = Vec::new();
            while let Some(batch) = rx.recv().await {
                records.extend(batch.records);
            }
            task.await.unwrap().unwrap();
            records
        })
    };
    let all = read(StartPosition::TrimHorizon);
    let texts = |records: &[tenantflow_kinesis::consumer::ConsumedRecord]| -> Vec<String> {
        records
            .iter()
            .map(|r| String::from_utf8(r.data.to_vec()).unwrap())
            .collect()
    };
    // Each tenant's lines keep their order; across tenants the writer may interleave.
    let mut sorted = texts(&all);
    sorted.sort();
    let mut want = lines.clone();
    want.sort();
    assert_eq!(sorted, want);

    let position = &all[39].position;
    let after = StartPosition::After(std::collections::HashMap::from([(
        position.shard_id.to_string(),
        position.sequence.to_string(),
    )]));
    assert_eq!(texts(&read(after)), texts(&all[40..]));
    assert!(read(StartPosition::Latest).is_empty());
    stream.delete();
}

/// From a stream into S3, killed at seeded random moments and started again with the
/// same command: exactly the results of the file read once. W1 has 30,000 events here,
/// not 1,000,000: the local Kinesis server takes over ten minutes to accept a million
/// (aggregated; plain records are slower still), and a KPL-aggregated replay of history
/// makes a small file per event hour touched (README, "Output layout"), each a few
/// requests to the local S3 server.
#[cfg(feature = "s3-integration-tests")]
#[test]
#[cfg_attr(not(have_shared), ignore = "needs ../shared/ beside the repository")]
fn killed_at_random_moments_a_stream_run_into_s3_resumes_to_exactly_the_results() {
    use crate::crash::kill_repeatedly;
    use crate::s3::{download, s3_url};

    let dir = tempfile::tempdir().unwrap();
    let input = gen_w1(dir.path(), 30_000, 3_000, 29);
    let stream = TestStream::create("crash", 4);
    kinesis(&[
        "produce",
        "--stream",
        &stream,
        "--input",
        input.to_str().unwrap(),
        "--aggregate",
    ]);
    let url = s3_url("kinesis-crash");
    let source = format!("kinesis://{stream}");
    let args = [
        "run",
        "--input",
        &source,
        "--exit-when-idle",
        "5s",
        "--output",
        &url,
        "--model",
        &model(),
        "--checkpoint-interval",
        "2s",
        "--quiet",
    ];
    kill_repeatedly(4, 2, 17, (2_000, 10_000), || command(&args));
    kinesis(&args);

    let got = dir.path().join("got");
    download(&url, &got);
    let want = dir.path().join("want");
    run_file(&input, &want);
    assert_same_results(&got, &want, "from Kinesis into S3, after crashes");
    stream.delete();
}

/// One HTTP/1.1 request on a fresh connection: (status, body).
/// `http` with the TenantManager's write key.
fn http(addr: &str, method: &str, path: &str, body: Option<&str>, key: &str) -> (u16, String) {
    crate::common::http(addr, method, path, &[("x-api-key", key)], body)
}

/// Every create, update and delete of the TenantManager reaches the companies stream
/// through the outbox, in order per tenant.
#[test]
fn the_outbox_publishes_every_change_in_order_per_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let stream = TestStream::create("companies", 2);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut service = command(&[
        "tenant-manager",
        "--listen",
        &addr,
        "--database",
        &format!("sqlite://{}", dir.path().join("t.db").display()),
        "--companies-stream",
        &stream,
    ])
    .env("TENANTFLOW_API_KEY", "k")
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let stderr = service.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    assert!(lines.any(|l| l.unwrap().contains("listening on")));

    let tenant = |id: &str, job30: u32| {
        format!(
            r#"{{"tenantID":"{id}","industry":"retail","revenu":1000,"employees":10,"job30":{job30},"job90":50,"monthlyFee":100.0,"totalFee":300.0}}"#
        )
    };
    // Ten tenants written concurrently, each by its own thread: a create, then three
    // updates; one is deleted at the end.
    std::thread::scope(|scope| {
        for t in 0..10 {
            let addr = &addr;
            let tenant = &tenant;
            scope.spawn(move || {
                let id = format!("tm-{t}");
                let (status, body) =
                    http(addr, "POST", "/api/v1/tenants", Some(&tenant(&id, 0)), "k");
                assert_eq!(status, 201, "{body}");
                for job30 in 1..=3 {
                    let path = format!("/api/v1/tenants/{id}");
                    let (status, body) = http(addr, "PUT", &path, Some(&tenant(&id, job30)), "k");
                    assert_eq!(status, 200, "{body}");
                }
            });
        }
    });
    assert_eq!(
        http(&addr, "DELETE", "/api/v1/tenants/tm-5", None, "k").0,
        204
    );
    // A stop publishes what is left in the outbox before the service exits.
    let killed = Command::new("kill")
        .args(["-TERM", &service.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(service.wait().unwrap().success());

    let batches = read_stream(&stream);
    let mut per_tenant: std::collections::BTreeMap<String, Vec<(i64, bool)>> = Default::default();
    for batch in &batches {
        for record in &batch.records {
            let v: serde_json::Value = serde_json::from_slice(&record.data).unwrap();
            assert_eq!(v["type"], "company");
            per_tenant
                .entry(v["companyID"].as_str().unwrap().to_owned())
                .or_default()
                .push((v["job30"].as_i64().unwrap(), v["deleted"] == true));
        }
    }
    assert_eq!(per_tenant.len(), 10);
    for (id, changes) in &per_tenant {
        let mut want = vec![(0, false), (1, false), (2, false), (3, false)];
        if id == "tm-5" {
            want.push((3, true));
        }
        assert_eq!(changes, &want, "{id}: changes out of order or missing");
    }

    stream.delete();
}

/// Companies then job events, as CSV lines in the original producers' layouts and as
/// the same records in NDJSON: `(csv, ndjson)`.
fn original_producer_records() -> (String, String) {
    let industries = ["retail", "gov", "IT", "health", "travel"];
    let (mut csv, mut ndjson) = (String::new(), String::new());
    for c in 0..30 {
        let industry = industries[c % industries.len()];
        let (revenu, employees) = (10_000 + c * 731, 50 + c * 7);
        let (job30, job90) = (c % 9, 20 + c % 13);
        let (monthly, total) = (100 + c * 3, 900 + c * 11);
        csv.push_str(&format!(
            "comp_{c},{industry},{revenu},{employees},{job30},{job90},{monthly}.0,{total}.0\n"
        ));
        ndjson.push_str(&format!(
            r#"{{"companyID":"comp_{c}","industry":"{industry}","revenu":{revenu},"employees":{employees},"job30":{job30},"job90":{job90},"monthlyFee":{monthly}.0,"totalFee":{total}.0}}"#
        ));
        ndjson.push('\n');
    }
    let mut state = 7u64;
    for e in 0..600u64 {
        state = crate::common::splitmix(state);
        let company = state % 30;
        let jobs = 1 + (state >> 8) % 5;
        let at = 1_767_225_600_000 + e * 3_600_000 + (state >> 16) % 1000;
        csv.push_str(&format!("comp_{company},user_{},{jobs},{at}\n", e % 17));
        ndjson.push_str(&format!(
            r#"{{"companyID":"comp_{company}","userID":"user_{}","nbJobs":{jobs},"creationDate":{at}}}"#,
            e % 17
        ));
        ndjson.push('\n');
    }
    (csv, ndjson)
}

#[test]
fn csv_records_on_a_stream_give_the_results_of_the_same_records_as_ndjson() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, ndjson) = original_producer_records();
    let csv_file = dir.path().join("records.csv");
    let ndjson_file = dir.path().join("records.ndjson");
    std::fs::write(&csv_file, csv).unwrap();
    std::fs::write(&ndjson_file, ndjson).unwrap();
    let run = |url: &str, out: &Path| {
        let child = command(&[
            "run",
            "--input",
            url,
            "--exit-when-idle",
            "3s",
            "--output",
            out.to_str().unwrap(),
            "--summary-json",
            summary_path(out).to_str().unwrap(),
            "--quiet",
        ])
        .spawn()
        .unwrap();
        let status = child.wait_with_output().unwrap().status;
        assert!(status.success(), "{url}");
        read_summary(&summary_path(out))
    };
    let csv_stream = TestStream::create("csv-records", 2);
    let json_stream = TestStream::create("json-records", 2);
    // `produce` publishes a `.csv` file's lines as they are, keyed by their tenant.
    for (stream, file) in [(&csv_stream, &csv_file), (&json_stream, &ndjson_file)] {
        kinesis(&[
            "produce",
            "--stream",
            stream,
            "--input",
            file.to_str().unwrap(),
            "--quiet",
        ]);
    }
    let from_json = dir.path().join("json");
    let summary = run(&format!("kinesis://{json_stream}"), &from_json);
    assert_eq!(summary["results"], 600, "{summary}");
    for format in ["csv", "auto"] {
        let out = dir.path().join(format);
        let summary = run(&format!("kinesis://{csv_stream}?format={format}"), &out);
        assert_eq!(summary["dead_letters"], 0, "{format}: {summary}");
        assert_eq!(
            sorted_result_lines(&out),
            sorted_result_lines(&from_json),
            "CSV records read with format={format}"
        );
    }
    // Read as NDJSON (the default), the CSV records are dead letters, not results.
    let wrong = dir.path().join("wrong");
    let summary = run(&format!("kinesis://{csv_stream}"), &wrong);
    assert_eq!(
        summary["dead_letters_by_reason"]["malformed"], 630,
        "{summary}"
    );
    csv_stream.delete();
    json_stream.delete();
}

/// The original job's Managed Flink properties, with the original producers' CSV
/// records on its jobs stream and its scoring route (a stand-in, behind its API key),
/// run the same job as the equivalent flags.
#[test]
fn a_managed_flink_properties_file_runs_the_job_of_the_equivalent_flags() {
    use crate::stand_ins::{Gateway, RouteAuth};
    let dir = tempfile::tempdir().unwrap();
    let (csv, _) = original_producer_records();
    let records = dir.path().join("records.csv");
    std::fs::write(&records, csv).unwrap();
    let stream = TestStream::create("properties", 2);
    kinesis(&[
        "produce",
        "--stream",
        &stream,
        "--input",
        records.to_str().unwrap(),
        "--quiet",
    ]);
    let key = "route-key-properties";
    let gateway = Gateway::start(
        tenantflow_operators::score::Model::builtin(),
        RouteAuth::ApiKey(key.into()),
        false,
    );
    let from_properties = dir.path().join("from-properties");
    let properties = dir.path().join("application_properties.json");
    std::fs::write(
        &properties,
        serde_json::json!([
            {"PropertyGroupId": "ProducerConfigProperties",
             "PropertyMap": {"flink.stream.initpos": "TRIM_HORIZON", "aws.region": "us-east-1",
                             "AggregationEnabled": "false"}},
            {"PropertyGroupId": "ApplicationConfigProperties",
             "PropertyMap": {"predictChurnApiEndpoint": gateway.route,
                             "predictChurnApiKey": key,
                             "S3SinkPath": from_properties.to_str().unwrap()}},
            {"PropertyGroupId": "ConsumerConfigProperties",
             "PropertyMap": {"aws.region": "us-east-1", "jobs.stream.name": stream.as_str()}},
        ])
        .to_string(),
    )
    .unwrap();
    let run = |args: &[&str], out: &Path| {
        let summary = summary_path(out);
        let mut all = vec!["run", "--exit-when-idle", "3s", "--quiet"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--summary-json", summary.to_str().unwrap()]);
        let output = command(&all).output().unwrap();
        let text = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{all:?}\n{text}");
        assert!(!text.contains(key), "the key shows: {text}");
        read_summary(&summary)
    };
    let summary = run(
        &["--properties", properties.to_str().unwrap()],
        &from_properties,
    );
    assert_eq!(summary["results"], 600, "{summary}");
    assert_eq!(summary["dead_letters"], 0, "{summary}");
    let from_flags = dir.path().join("from-flags");
    let input = format!("kinesis://{stream}?kind=job&format=auto&start=trim_horizon");
    run(
        &[
            "--input",
            &input,
            "--scorer",
            &gateway.route,
            "--score-auth",
            "api-key",
            "--score-api-key",
            key,
            "--output",
            from_flags.to_str().unwrap(),
        ],
        &from_flags,
    );
    let lines = sorted_result_lines(&from_properties);
    assert_eq!(lines.len(), 600);
    assert_eq!(lines, sorted_result_lines(&from_flags));
    stream.delete();
}

#[test]
#[cfg_attr(not(have_shared), ignore = "needs ../shared/ beside the repository")]
fn the_admin_server_reports_every_shards_lag_during_a_w1_stream_run() {
    let dir = tempfile::tempdir().unwrap();
    let input = gen_w1(dir.path(), 3_000, 100, 43);
    let lines = std::fs::read_to_string(&input).unwrap().lines().count() as f64;
    let stream = TestStream::create("admin-lag", 2);
    kinesis(&[
        "produce",
        "--stream",
        &stream,
        "--input",
        input.to_str().unwrap(),
        "--quiet",
    ]);
    let out = dir.path().join("out");
    let url = format!("kinesis://{stream}");
    let endpoint = endpoint();
    // Stdin stays open (the run reads it too) until the checks are done; then the
    // stream's idleness ends the run.
    let mut run = crate::admin::LiveRun::start(
        &out,
        None,
        &[
            "--input",
            &url,
            "--exit-when-idle",
            "2s",
            "--model",
            &model(),
        ],
        &[("AWS_ENDPOINT_URL", &endpoint)],
    );
    let read = format!("tenantflow_records_read_total{{source=\"stream-{stream}\"}}");
    let m = run.wait_for_metrics("every record of the stream", |m| {
        m.samples.get(&read) == Some(&lines)
    });
    let lags: Vec<&String> = m
        .samples
        .keys()
        .filter(|k| k.starts_with("tenantflow_shard_lag_milliseconds{"))
        .collect();
    assert_eq!(lags.len(), 2, "{}", m.text);
    assert!(
        lags.iter()
            .all(|k| k.contains(&format!("stream=\"{stream}\""))),
        "{lags:?}"
    );
    // The dashboard's series carry both shards (a sample a second).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, series) = run.json("/api/series");
        let shards = series["samples"]
            .as_array()
            .unwrap()
            .last()
            .map_or(0, |s| s["lags"].as_object().unwrap().len());
        if shards == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no lag in the series");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    run.finish();
    stream.delete();
}
