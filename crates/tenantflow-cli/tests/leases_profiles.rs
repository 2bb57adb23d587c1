//! Profile updates on a `companies` stream of their own, whose shards do not line up with
//! those of the job stream, reach the tenants' owners across hand-overs (a worker killed,
//! a worker added), with results and checkpoints in S3: the committed results equal, line
//! for line, those of one process over the same records in the same order per tenant.
//!
//! Kinesis is kinesis-local, the lease table and S3 are moto (all started by
//! scripts/test.sh). Two streams give no order between a tenant's profile updates and its
//! job events, so the test makes one: each phase's profile updates are published only
//! once the results of the phase before are committed, and the phase's job events only
//! once every shard's committed checkpoint is past those updates (read from the manifest
//! its lease row names). The one-process reference reads the same phases from one file.
#![cfg(all(
    feature = "kinesis-integration-tests",
    feature = "s3-integration-tests"
))]

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tenantflow_sinks::store::{S3Store, Store};

use crate::common::{assert_same_results, gen_w1, http};
use crate::leases::{Process, lease_rows, lease_worker, ok, produce, stop_all};

/// Job events and profile updates, in the order one process reads them.
struct Phase {
    companies: Vec<String>,
    jobs: Vec<String>,
}

/// W1 cut into `n` phases: the first holds the company block, every one its share of
/// the events, each phase's company records (updates) before its job events.
fn phases(w1: &Path, n: usize) -> Vec<Phase> {
    let text = std::fs::read_to_string(w1).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let first_event = lines
        .iter()
        .position(|l| l.contains("\"type\":\"job\""))
        .unwrap();
    let share = (lines.len() - first_event).div_ceil(n);
    let mut out: Vec<Phase> = (0..n)
        .map(|_| Phase {
            companies: Vec::new(),
            jobs: Vec::new(),
        })
        .collect();
    for (i, line) in lines.iter().enumerate() {
        let phase = &mut out[i.saturating_sub(first_event) / share];
        if line.contains("\"type\":\"company\"") {
            phase.companies.push((*line).to_owned());
        } else {
            phase.jobs.push((*line).to_owned());
        }
    }
    out
}

/// Kinesis sequence numbers are decimal numbers of up to 128 bits and more digits than a
/// `u128` holds: compared by length, then by digits.
fn sequence_cmp(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Puts each company record with its `companyID` as partition key, one at a time (in
/// order per tenant); returns the last sequence number put on each shard.
fn put_companies(
    runtime: &tokio::runtime::Runtime,
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    records: &[String],
    last: &mut BTreeMap<String, String>,
) {
    runtime.block_on(async {
        for record in records {
            let value: serde_json::Value = serde_json::from_str(record).unwrap();
            let key = value["companyID"].as_str().unwrap();
            let put = client
                .put_record()
                .stream_name(stream)
                .partition_key(key)
                .data(aws_sdk_kinesis::primitives::Blob::new(record.as_bytes()))
                .send()
                .await
                .unwrap();
            last.insert(put.shard_id().to_owned(), put.sequence_number().to_owned());
        }
    });
}

/// The committed results in S3 (objects outside `_checkpoints/`, `_rejected/` and
/// `aggregates/`), counted by line; a committed file never changes, so each is read once.
struct Committed {
    store: S3Store,
    lines: HashMap<String, usize>,
}

impl Committed {
    fn new(url: &str) -> Self {
        Self {
            store: S3Store::from_env(url.strip_prefix("s3://").unwrap()).unwrap(),
            lines: HashMap::new(),
        }
    }

    fn is_result(path: &str) -> bool {
        !path.starts_with('_') && !path.starts_with("aggregates/") && path.ends_with(".ndjson")
    }

    /// Results committed so far; panics at the first dead letter (every record of the
    /// test is good, and every tenant's profile is on the companies stream).
    fn count(&mut self) -> usize {
        for object in self.store.list("").unwrap() {
            if object.path.starts_with("_rejected/") {
                let bytes = self.store.get(&object.path).unwrap().unwrap_or_default();
                panic!(
                    "dead letters in {}: {}",
                    object.path,
                    String::from_utf8_lossy(&bytes[..bytes.len().min(2_000)])
                );
            }
            if Self::is_result(&object.path) && !self.lines.contains_key(&object.path) {
                let bytes = self.store.get(&object.path).unwrap().unwrap();
                let n = bytes
                    .split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .count();
                self.lines.insert(object.path, n);
            }
        }
        self.lines.values().sum()
    }

    /// Waits until `n` results are committed.
    fn wait_for(&mut self, n: usize, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut got = self.count();
        while got < n {
            assert!(Instant::now() < deadline, "{what}: {got} of {n} results");
            std::thread::sleep(Duration::from_millis(500));
            got = self.count();
        }
        assert_eq!(got, n, "{what}: no result twice");
    }

    /// Copies the results to `dest`, at the same relative paths.
    fn download(&self, dest: &Path) {
        for object in self.store.list("").unwrap() {
            if Self::is_result(&object.path) {
                let path = dest.join(&object.path);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, self.store.get(&object.path).unwrap().unwrap()).unwrap();
            }
        }
    }

    /// Waits until every lease of `table` (one per job shard) names a committed
    /// checkpoint whose position on `companies` is at or past `last` on every shard: its
    /// tenants' profiles include every update put so far, and a next owner restores them.
    fn wait_for_profiles(
        &self,
        runtime: &tokio::runtime::Runtime,
        table: &str,
        job_shards: usize,
        companies: &str,
        last: &BTreeMap<String, String>,
    ) {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let leases = lease_rows(runtime, table);
            let behind: Vec<String> = leases
                .iter()
                .filter(|lease| {
                    let Some(state) = &lease.state else {
                        return true;
                    };
                    // A checkpoint committed since the row was read deletes the
                    // manifest it named (after updating the row): read the rows again.
                    let Some(manifest) = self.store.get(state).unwrap() else {
                        return true;
                    };
                    let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
                    let positions = &manifest["streams"][companies]["positions"];
                    !last.iter().all(|(shard, sequence)| {
                        positions[shard]
                            .as_str()
                            .is_some_and(|read| sequence_cmp(read, sequence) != Ordering::Less)
                    })
                })
                .map(|lease| lease.key.clone())
                .collect();
            if leases.len() == job_shards && behind.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "checkpoints behind the profile updates: {behind:?} of {leases:?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// The tenant state API with leases: each worker answers for the tenants of the shards
/// it holds (with their events, restored across the hand-overs), 404 for the others'.
fn tenants_answered_by_their_shards_workers(
    runtime: &tokio::runtime::Runtime,
    table: &str,
    workers: &[&Process],
    phases: &[Phase],
) {
    let mut events: BTreeMap<String, u64> = BTreeMap::new();
    for line in phases.iter().flat_map(|p| &p.jobs) {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        *events
            .entry(value["companyID"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let addrs: Vec<String> = workers.iter().map(|w| w.admin_addr()).collect();
    // Once the shares are even (2 and 2) and every shard job answers.
    let deadline = Instant::now() + Duration::from_secs(120);
    let lists = loop {
        let leases = lease_rows(runtime, table);
        let held = |worker: &str| {
            leases
                .iter()
                .filter(|l| l.owner.as_deref() == Some(worker))
                .count()
        };
        let lists: Vec<BTreeMap<String, u64>> = addrs
            .iter()
            .map(|addr| {
                let (status, body) = http(addr, "GET", "/tenants?limit=1000", &[], None);
                assert_eq!(status, 200, "{body}");
                let body: serde_json::Value = serde_json::from_str(&body).unwrap();
                body["tenants"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| {
                        (
                            t["companyID"].as_str().unwrap().to_owned(),
                            t["events"].as_u64().unwrap(),
                        )
                    })
                    .collect()
            })
            .collect();
        let answered: usize = lists.iter().map(BTreeMap::len).sum();
        if held("a") == 2 && held("c") == 2 && answered == events.len() {
            break lists;
        }
        assert!(
            Instant::now() < deadline,
            "{answered} of {} tenants answered; leases {leases:?}",
            events.len()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    // Every tenant on exactly one worker, with all its events.
    let mut merged = BTreeMap::new();
    for list in &lists {
        assert!(!list.is_empty(), "each worker holds tenants");
        for (id, n) in list {
            assert!(
                merged.insert(id.clone(), *n).is_none(),
                "{id} on two workers"
            );
        }
    }
    assert_eq!(
        merged, events,
        "each tenant's events, across the hand-overs"
    );
    // One tenant: 200 from its worker, 404 from the other.
    for (i, list) in lists.iter().enumerate() {
        let id = list.keys().next().unwrap();
        for (j, addr) in addrs.iter().enumerate() {
            let (status, body) = http(addr, "GET", &format!("/tenants/{id}"), &[], None);
            let want = if i == j { 200 } else { 404 };
            assert_eq!(status, want, "{id} from worker {j}: {body}");
        }
    }
}

/// A worker reading the job stream (whose shards it shares) and the companies stream (in
/// full), writing to S3, results filed by the hour they are written in (few files).
fn worker(dir: &Path, jobs: &str, companies: &str, table: &str, name: &str, out: &str) -> Process {
    let (jobs, companies) = (
        format!("kinesis://{jobs}"),
        format!("kinesis://{companies}?kind=company"),
    );
    lease_worker(
        dir,
        table,
        name,
        &[
            "--input",
            &jobs,
            "--input",
            &companies,
            "--output",
            out,
            "--partition-time",
            "processing",
            "--admin",
            "127.0.0.1:0",
        ],
    )
}

fn write_lines(path: &Path, lines: &[String]) -> PathBuf {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
    path.to_path_buf()
}

#[test]
#[cfg_attr(not(have_shared), ignore = "needs ../shared/ beside the repository")]
fn profile_updates_on_their_own_stream_follow_their_tenants_across_hand_overs() {
    let dir = tempfile::tempdir().unwrap();
    let w1 = gen_w1(dir.path(), 9_000, 200, 14);
    let phases = phases(&w1, 3);
    assert!(phases.iter().all(|p| !p.companies.is_empty()));
    // One process over the same phases, each phase's updates before its events.
    let ordered: Vec<String> = phases
        .iter()
        .flat_map(|p| p.companies.iter().chain(&p.jobs).cloned())
        .collect();
    let reference_input = write_lines(&dir.path().join("ordered.ndjson"), &ordered);
    let from_disk = dir.path().join("disk");
    crate::kinesis::run_file(&reference_input, &from_disk);

    let pid = std::process::id();
    let (jobs, companies) = (format!("jobs-{pid}"), format!("companies-{pid}"));
    let table = format!("profiles-leases-{pid}");
    // 4 shards and 3: the hash-key ranges do not line up.
    ok(&["streams", "create", "--name", &jobs, "--shards", "4"]);
    ok(&["streams", "create", "--name", &companies, "--shards", "3"]);
    let out = crate::s3::s3_url("profiles");
    let mut results = Committed::new(&out);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = crate::kinesis::local_client();
    let mut last = BTreeMap::new();
    let mut expected = 0;
    let publish_jobs = |k: usize, part: &[String]| {
        let path = write_lines(&dir.path().join(format!("jobs-{k}.ndjson")), part);
        produce(&jobs, &path);
    };

    let mut a = worker(dir.path(), &jobs, &companies, &table, "a", &out);
    let mut b = worker(dir.path(), &jobs, &companies, &table, "b", &out);

    // Phase 0: the profiles, then the first events.
    put_companies(
        &runtime,
        &client,
        &companies,
        &phases[0].companies,
        &mut last,
    );
    results.wait_for_profiles(&runtime, &table, 4, &companies, &last);
    publish_jobs(0, &phases[0].jobs);
    expected += phases[0].jobs.len();
    results.wait_for(expected, "phase 0");

    // Phase 1: updates, then half the events; b dies with some of them uncommitted,
    // and a takes its shards over from their checkpoints.
    put_companies(
        &runtime,
        &client,
        &companies,
        &phases[1].companies,
        &mut last,
    );
    results.wait_for_profiles(&runtime, &table, 4, &companies, &last);
    let (first, second) = phases[1].jobs.split_at(phases[1].jobs.len() / 2);
    publish_jobs(1, first);
    let deadline = Instant::now() + Duration::from_secs(300);
    while results.count() == expected {
        assert!(Instant::now() < deadline, "no result of phase 1 committed");
        std::thread::sleep(Duration::from_millis(200));
    }
    b.kill();
    publish_jobs(11, second);
    expected += phases[1].jobs.len();
    results.wait_for(expected, "phase 1, b killed");

    // Phase 2: a new worker takes its share from a while the updates arrive.
    let mut c = worker(dir.path(), &jobs, &companies, &table, "c", &out);
    put_companies(
        &runtime,
        &client,
        &companies,
        &phases[2].companies,
        &mut last,
    );
    results.wait_for_profiles(&runtime, &table, 4, &companies, &last);
    publish_jobs(2, &phases[2].jobs);
    expected += phases[2].jobs.len();
    results.wait_for(expected, "phase 2, c added");
    tenants_answered_by_their_shards_workers(&runtime, &table, &[&a, &c], &phases);

    stop_all(&mut [&mut a, &mut c]);
    let got = dir.path().join("s3");
    results.download(&got);
    assert_same_results(
        &got,
        &from_disk,
        "profile updates on their own 3-shard stream, 4 job shards, a worker killed and one added",
    );

    // The killed worker's checkpoints went once its shards' next owners committed
    // theirs (a stopping worker's may stay, until its shards' next hand-over).
    let left: Vec<String> = results
        .store
        .list("_checkpoints/shards/")
        .unwrap()
        .into_iter()
        .map(|o| o.path)
        .collect();
    assert!(
        left.iter().any(|p| p.contains("-a/manifest-")),
        "a's checkpoints stay: {left:?}"
    );
    assert!(
        !left.iter().any(|p| p.contains("-b/")),
        "b's checkpoints went: {left:?}"
    );

    // The hand-overs happened as planned, and the stops released every lease.
    let leases = lease_rows(&runtime, &table);
    assert!(leases.iter().all(|l| l.owner.is_none()), "{leases:?}");
    assert!(a.took_from("b"), "a took b's leases");
    assert!(c.took_from("a"), "c took a lease from a");
    ok(&["streams", "delete", "--name", &jobs]);
    ok(&["streams", "delete", "--name", &companies]);
}
