//! Workers sharing a stream's shards through leases (kinesis-local for Kinesis, moto for
//! the DynamoDB lease table, both started by scripts/test.sh): with one worker killed
//! by SIGKILL, a shard split and a worker added mid-run, the committed results equal,
//! line for line, those of one process over the same records.
#![cfg(feature = "kinesis-integration-tests")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use tenantflow_cluster::dynamo::DynamoLeaseStore;
use tenantflow_cluster::{Lease, LeaseStore};

use crate::common::{assert_same_results, gen_w1, local_aws, shared, sorted_result_lines};

/// `tenantflow` against kinesis-local, with the lease table in moto
/// (`$AWS_ENDPOINT_URL_DYNAMODB`, which wins over `AWS_ENDPOINT_URL` for DynamoDB).
fn command(args: &[&str]) -> Command {
    assert!(
        std::env::var_os("AWS_ENDPOINT_URL_DYNAMODB").is_some(),
        "AWS_ENDPOINT_URL_DYNAMODB is set by scripts/test.sh, which starts moto"
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tenantflow"));
    local_aws(cmd.args(args))
        .env("AWS_ENDPOINT_URL", crate::kinesis::endpoint())
        .env_remove("AWS_ENDPOINT_URL_KINESIS");
    cmd
}

pub(crate) fn ok(args: &[&str]) {
    let out = command(args).output().unwrap();
    assert!(
        out.status.success(),
        "tenantflow {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Short lease settings, so that a dead worker's shards move within seconds.
fn cluster_config(dir: &Path) -> PathBuf {
    let path = dir.join("cluster.toml");
    std::fs::write(
        &path,
        "[cluster]\nlease_timeout = \"4s\"\nlease_renew_interval = \"1s\"\nlease_take_interval = \"1s\"\nshard_sync_interval = \"2s\"\n",
    )
    .unwrap();
    path
}

/// A `run` worker of lease table `table` named `name` (its log `worker-NAME.log` in
/// `dir`): short lease settings, a checkpoint a second, one keyed worker per shard job,
/// W1's model; `rest` says what it reads and where it writes.
pub(crate) fn lease_worker(dir: &Path, table: &str, name: &str, rest: &[&str]) -> Process {
    let config = cluster_config(dir);
    let model = shared("bench/model.json");
    let mut args = vec![
        "run",
        "--config",
        config.to_str().unwrap(),
        "--lease-table",
        table,
        "--worker-id",
        name,
        "--checkpoint-interval",
        "1s",
        "--workers",
        "1",
        "--model",
        model.to_str().unwrap(),
    ];
    args.extend_from_slice(rest);
    Process::spawn(&mut command(&args), dir.join(format!("worker-{name}.log")))
}

/// A worker on `stream`, files finished a second after they open (so that committed
/// results show progress).
fn worker(dir: &Path, stream: &str, table: &str, name: &str, out: &Path) -> Process {
    let input = format!("kinesis://{stream}");
    lease_worker(
        dir,
        table,
        name,
        &[
            "--input",
            &input,
            "--output",
            out.to_str().unwrap(),
            "--max-file-age",
            "1s",
            "--admin",
            "off",
        ],
    )
}

/// The rows of lease table `table`.
pub(crate) fn lease_rows(runtime: &tokio::runtime::Runtime, table: &str) -> Vec<Lease> {
    runtime.block_on(async { DynamoLeaseStore::connect(table).await.list().await.unwrap() })
}

pub(crate) fn produce(stream: &str, part: &Path) {
    ok(&[
        "produce",
        "--stream",
        stream,
        "--input",
        part.to_str().unwrap(),
        "--aggregate",
        "--quiet",
    ]);
}

/// Lines committed so far under `out` (files being written are hidden).
fn committed(out: &Path) -> usize {
    if !out.exists() {
        return 0;
    }
    sorted_result_lines(out).len()
}

/// A `tenantflow` process of a test, with its log: killed when dropped, so that a failing
/// test leaves no worker behind.
pub(crate) struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `cmd` with its stderr (the log) in `log`.
    pub(crate) fn spawn(cmd: &mut Command, log: PathBuf) -> Self {
        let file = std::fs::File::create(&log).unwrap();
        let child = cmd
            .env("TENANTFLOW_LOG", "info")
            .stderr(file)
            .spawn()
            .unwrap();
        Self { child, log }
    }

    /// SIGKILL, and waits for it to end.
    pub(crate) fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM: the graceful stop.
    pub(crate) fn stop(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for it to end; a failure shows the end of its log.
    pub(crate) fn assert_succeeds(&mut self) {
        let status = self.child.wait().unwrap();
        if !status.success() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "{} failed ({status}):\n{}",
                self.log.display(),
                tail.join("\n")
            );
        }
    }

    /// Its log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The address its admin server listens on (`--admin 127.0.0.1:0`), from its log.
    pub(crate) fn admin_addr(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = self.log();
            let addr = log
                .lines()
                .find(|l| l.contains("Admin server listening"))
                .and_then(|l| l.split_once("addr=").map(|(_, a)| a.trim().to_owned()));
            if let Some(addr) = addr {
                return addr;
            }
            assert!(
                Instant::now() < deadline,
                "{}: no admin server",
                self.log.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether its log says it took a lease from `worker`.
    pub(crate) fn took_from(&self, worker: &str) -> bool {
        let log = self.log();
        log.contains(&format!("from=\"{worker}\"")) || log.contains(&format!("from={worker}"))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Stops every process with SIGTERM, then waits for each to succeed.
pub(crate) fn stop_all(processes: &mut [&mut Process]) {
    for process in processes.iter() {
        process.stop();
    }
    for process in processes.iter_mut() {
        process.assert_succeeds();
    }
}

#[test]
#[cfg_attr(not(have_shared), ignore = "needs ../shared/ beside the repository")]
fn workers_killed_added_and_a_split_shard_change_no_result() {
    let dir = tempfile::tempdir().unwrap();
    let input = gen_w1(dir.path(), 200_000, 2_000, 11);
    let from_disk = dir.path().join("disk");
    crate::kinesis::run_file(&input, &from_disk);
    let expected = sorted_result_lines(&from_disk).len();
    // Four parts, published one after the other: a tenant's records keep their order.
    let text = std::fs::read_to_string(&input).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let quarter = lines.len().div_ceil(4);
    let parts: Vec<PathBuf> = lines
        .chunks(quarter)
        .enumerate()
        .map(|(i, chunk)| {
            let path = dir.path().join(format!("part-{i}.ndjson"));
            std::fs::write(&path, chunk.join("\n")).unwrap();
            path
        })
        .collect();

    let stream = format!("leases-{}", std::process::id());
    let table = format!("tenantflow-leases-{}", std::process::id());
    ok(&["streams", "create", "--name", &stream, "--shards", "8"]);
    let out = dir.path().join("out");
    produce(&stream, &parts[0]);
    let mut a = worker(dir.path(), &stream, &table, "a", &out);
    let mut b = worker(dir.path(), &stream, &table, "b", &out);
    let mut c = worker(dir.path(), &stream, &table, "c", &out);
    produce(&stream, &parts[1]);
    // b dies once some of its work is committed and some is not.
    let deadline = Instant::now() + Duration::from_secs(120);
    while committed(&out) < expected / 8 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    b.kill();
    let killed = Instant::now();
    produce(&stream, &parts[2]);
    // A split: the parent is read to its end before its children are leased.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = crate::kinesis::local_client();
    runtime.block_on(async {
        let shards = tenantflow_kinesis::admin::list_shards(&client, &stream)
            .await
            .unwrap();
        let third = &shards[3];
        let (start, end): (u128, u128) = (
            third.hash_start.parse().unwrap(),
            third.hash_end.parse().unwrap(),
        );
        client
            .split_shard()
            .stream_name(&stream)
            .shard_to_split(&third.id)
            .new_starting_hash_key((start + (end - start) / 2).to_string())
            .send()
            .await
            .unwrap();
        tenantflow_kinesis::admin::wait_active(&client, &stream)
            .await
            .unwrap();
    });
    let mut d = worker(dir.path(), &stream, &table, "d", &out);
    produce(&stream, &parts[3]);

    let deadline = Instant::now() + Duration::from_secs(600);
    while committed(&out) < expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(1));
    }
    let complete_after = killed.elapsed();
    stop_all(&mut [&mut a, &mut c, &mut d]);
    eprintln!("all results committed {complete_after:?} after the kill");
    assert_same_results(
        &out,
        &from_disk,
        "workers sharing 8 shards, one killed, one added, one shard split",
    );

    // Every shard was read: the split parent to its end, the others (children too)
    // past their start; every lease released.
    let leases = lease_rows(&runtime, &table);
    assert_eq!(leases.len(), 10, "{leases:?}");
    for lease in &leases {
        match lease.key.as_str() {
            "shardId-000000000003" => assert!(lease.is_finished(), "{lease:?}"),
            _ => {
                assert!(
                    matches!(
                        lease.checkpoint,
                        tenantflow_cluster::Checkpoint::Sequence { .. }
                    ),
                    "{lease:?}"
                );
                assert_eq!(lease.owner, None, "{lease:?}");
            }
        }
        assert!(lease.state.is_some(), "{lease:?}");
    }
    let children: Vec<_> = leases.iter().filter(|l| !l.parents.is_empty()).collect();
    assert_eq!(children.len(), 2);
    assert!(
        [&a, &c, &d].iter().any(|w| w.took_from("b")),
        "b's leases were taken over"
    );
    ok(&["streams", "delete", "--name", &stream]);
}

/// The original producers' random keys, re-keyed by `repartition` (itself a worker of
/// leases on the first stream), then two workers on the re-keyed stream: the results
/// of one process over the same records.
#[test]
#[cfg_attr(not(have_shared), ignore = "needs ../shared/ beside the repository")]
fn repartition_in_front_of_a_randomly_keyed_stream_changes_no_result() {
    let dir = tempfile::tempdir().unwrap();
    let input = gen_w1(dir.path(), 10_000, 300, 12);
    let from_disk = dir.path().join("disk");
    crate::kinesis::run_file(&input, &from_disk);
    let expected = sorted_result_lines(&from_disk).len();
    let pid = std::process::id();
    // One shard: its order is the file's, whatever the keys.
    let random = format!("random-{pid}");
    let keyed = format!("keyed-{pid}");
    ok(&["streams", "create", "--name", &random, "--shards", "1"]);
    ok(&["streams", "create", "--name", &keyed, "--shards", "4"]);
    ok(&[
        "produce",
        "--stream",
        &random,
        "--input",
        input.to_str().unwrap(),
        "--random-keys",
        "--quiet",
    ]);
    let mut repartition = Process::spawn(
        &mut command(&[
            "repartition",
            "--input",
            &format!("kinesis://{random}"),
            "--output-stream",
            &keyed,
            "--lease-table",
            &format!("repartition-{pid}"),
        ]),
        dir.path().join("repartition.log"),
    );
    let out = dir.path().join("out");
    let table = format!("keyed-leases-{pid}");
    let mut a = worker(dir.path(), &keyed, &table, "a", &out);
    let mut b = worker(dir.path(), &keyed, &table, "b", &out);
    // kinesis-local writes about a thousand records a second, shared with the other
    // Kinesis tests: a generous bound, for a loaded machine.
    let deadline = Instant::now() + Duration::from_secs(900);
    while committed(&out) < expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(1));
    }
    stop_all(&mut [&mut repartition, &mut a, &mut b]);
    assert_same_results(&out, &from_disk, "W1 re-keyed by repartition, two workers");
    ok(&["streams", "delete", "--name", &random]);
    ok(&["streams", "delete", "--name", &keyed]);
}
