//! The admin server of a running job, from outside: its metrics present and moving, its
//! health while it recovers, its tenant state API and the BI aggregates against an
//! independent computation, JSON logs that parse, and (with the `browser-tests`
//! feature) the dashboard in headless Chromium.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::Value;
use tenantflow_operators::score::Model;

use crate::common::{http, local_aws, sorted_result_lines};
use crate::stand_ins::{LinearLearner, OriginalTenantManager};

const DAY: i64 = 86_400_000;
/// 2026-01-01.
const START: i64 = 1_767_225_600_000;

/// A company record and the events of one tenant.
struct Tenant {
    id: String,
    industry: &'static str,
    revenu: i64,
    employees: i64,
    job30: i64,
    job90: i64,
    monthly_fee: f64,
    total_fee: f64,
    /// `(creationDate, nbJobs)`, in time order.
    events: Vec<(i64, u64)>,
}

impl Tenant {
    fn company_json(&self) -> String {
        format!(
            r#"{{"companyID":"{}","industry":"{}","revenu":{},"employees":{},"job30":{},"job90":{},"monthlyFee":{:?},"totalFee":{:?}}}"#,
            self.id,
            self.industry,
            self.revenu,
            self.employees,
            self.job30,
            self.job90,
            self.monthly_fee,
            self.total_fee
        )
    }

    /// What the job must know of the tenant after all its events: `(job30, job90,
    /// events, lastEventTime)`, computed from the events, not from the job.
    fn expected(&self) -> (i64, i64, u64, i64) {
        let newest = self.events.iter().map(|e| e.0).max().unwrap();
        let newest_day = newest.div_euclid(DAY);
        let within = |days: i64| -> i64 {
            self.events
                .iter()
                .filter(|e| newest_day - e.0.div_euclid(DAY) < days)
                .map(|e| e.1 as i64)
                .sum()
        };
        (
            self.job30 + within(30),
            self.job90 + within(90),
            self.events.len() as u64,
            newest,
        )
    }

    /// Jobs per day (days since 1970), of the days the window keeps: 90 days of
    /// lateness and the 90-day window before the newest day.
    fn days(&self) -> BTreeMap<i64, u64> {
        let newest_day = self
            .events
            .iter()
            .map(|e| e.0)
            .max()
            .unwrap()
            .div_euclid(DAY);
        let mut days = BTreeMap::new();
        for &(t, n) in &self.events {
            let day = t.div_euclid(DAY);
            if newest_day - day < 180 {
                *days.entry(day).or_default() += n;
            }
        }
        days
    }
}

const INDUSTRIES: [&str; 5] = ["retail", "IT", "finance", "travel", "gov"];

/// `n` tenants with events over 120 days, from a seed: event times strictly increase
/// within a tenant, and no event is later than the allowed lateness.
fn workload(n: usize, events_each: usize, seed: u64) -> Vec<Tenant> {
    let mut rng = tenantflow_core::rng::SplitMix64::new(seed);
    (0..n)
        .map(|i| {
            let mut t = START + (rng.next_u64() % 10) as i64 * DAY;
            let events = (0..events_each)
                .map(|_| {
                    t += 1 + (rng.next_u64() % (3 * DAY as u64)) as i64;
                    (t, 1 + rng.next_u64() % 4)
                })
                .collect();
            Tenant {
                id: format!("t-{i:04}"),
                industry: INDUSTRIES[i % INDUSTRIES.len()],
                revenu: 10_000 + (rng.next_u64() % 3_000_000) as i64,
                employees: 1 + (rng.next_u64() % 500) as i64,
                job30: (rng.next_u64() % 40) as i64,
                job90: 40 + (rng.next_u64() % 200) as i64,
                monthly_fee: 100.0 + (rng.next_u64() % 3000) as f64,
                total_fee: 500.0 + (rng.next_u64() % 9000) as f64,
                events,
            }
        })
        .collect()
}

/// Company records, then every job event in time order (over all tenants), as NDJSON
/// lines; the tenants in `looked_up` have no company record (the TenantManager has
/// them).
fn lines(tenants: &[Tenant], looked_up: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = tenants
        .iter()
        .filter(|t| !looked_up.contains(&t.id.as_str()))
        .map(Tenant::company_json)
        .collect();
    let mut events: Vec<(i64, &str, u64, usize)> = tenants
        .iter()
        .flat_map(|t| {
            t.events
                .iter()
                .enumerate()
                .map(|(i, &(at, n))| (at, t.id.as_str(), n, i))
        })
        .collect();
    events.sort();
    out.extend(events.into_iter().map(|(at, id, n, i)| {
        format!(r#"{{"companyID":"{id}","userID":"u{i}","nbJobs":{n},"creationDate":{at}}}"#)
    }));
    out
}

/// A `tenantflow run` in progress, its admin server on a free port, its JSON logs read.
pub(crate) struct LiveRun {
    child: Child,
    stdin: Option<ChildStdin>,
    admin: String,
    /// Every log line, each a parsed JSON object.
    logs: Receiver<Value>,
}

impl LiveRun {
    pub(crate) fn start(
        out: &Path,
        input: Option<&Path>,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tenantflow"));
        local_aws(&mut cmd)
            .args(["--log-format", "json", "run", "--quiet", "--output"])
            .arg(out)
            .args(["--admin", "127.0.0.1:0"])
            .args(args)
            .env("TENANTFLOW_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        match input {
            Some(path) => cmd.arg("--input").arg(path).stdin(Stdio::null()),
            None => cmd.args(["--input", "-"]).stdin(Stdio::piped()),
        };
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdin = child.stdin.take();
        let stderr = child.stderr.take().unwrap();
        let (tx, logs) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let line = line.unwrap();
                let log: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"));
                for field in ["timestamp", "level", "target", "message"] {
                    assert!(log.get(field).is_some(), "no `{field}` in {line}");
                }
                if tx.send(log).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let admin = loop {
            match logs.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(log) if log["target"] == "tenantflow_admin" => {
                    break log["addr"].as_str().unwrap().to_owned();
                }
                Ok(_) => {}
                Err(e) => panic!("the admin server did not say where it listens: {e:?}"),
            }
        };
        Self {
            child,
            stdin,
            admin,
            logs,
        }
    }

    fn get(&self, path: &str) -> (u16, String) {
        http(&self.admin, "GET", path, &[], None)
    }

    pub(crate) fn json(&self, path: &str) -> (u16, Value) {
        let (status, body) = self.get(path);
        let value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"));
        (status, value)
    }

    fn write(&mut self, lines: &[String]) {
        let stdin = self.stdin.as_mut().unwrap();
        for line in lines {
            writeln!(stdin, "{line}").unwrap();
        }
        stdin.flush().unwrap();
    }

    /// Polls (bounded) until `done` holds of the metrics text.
    pub(crate) fn wait_for_metrics(&self, what: &str, done: impl Fn(&Metrics) -> bool) -> Metrics {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let metrics = Metrics::parse(&self.get("/metrics").1);
            if done(&metrics) {
                return metrics;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{}",
                metrics.text
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Closes stdin and waits for the run to end well; returns the logs it wrote.
    pub(crate) fn finish(&mut self) -> Vec<Value> {
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the run failed: {status}");
        let mut logs = Vec::new();
        loop {
            match self.logs.recv_timeout(Duration::from_secs(10)) {
                Ok(log) => logs.push(log),
                Err(RecvTimeoutError::Disconnected) => return logs,
                Err(RecvTimeoutError::Timeout) => panic!("the log reader hangs"),
            }
        }
    }
}

impl Drop for LiveRun {
    /// A test that fails leaves no run behind writing into its removed folder.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scrape: every sample's value by its name and labels, as written.
pub(crate) struct Metrics {
    pub(crate) text: String,
    pub(crate) samples: BTreeMap<String, f64>,
}

impl Metrics {
    fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (name, value) = l.rsplit_once(' ').unwrap();
                (name.to_owned(), value.parse().unwrap())
            })
            .collect();
        Self {
            text: text.to_owned(),
            samples,
        }
    }

    fn get(&self, sample: &str) -> f64 {
        *self
            .samples
            .get(sample)
            .unwrap_or_else(|| panic!("no sample {sample} in:\n{}", self.text))
    }
}

/// The last result of each tenant (its newest event), by `companyID`.
fn last_results(out: &Path) -> BTreeMap<String, Value> {
    let mut last: BTreeMap<String, Value> = BTreeMap::new();
    for line in sorted_result_lines(out) {
        let result: Value = serde_json::from_str(&line).unwrap();
        let id = result["companyID"].as_str().unwrap().to_owned();
        let newer = last
            .get(&id)
            .is_none_or(|r| r["creationDate"].as_i64() < result["creationDate"].as_i64());
        if newer {
            last.insert(id, result);
        }
    }
    last
}

/// A tenant as `GET /tenants/{id}` shows it agrees with the independent computation
/// and with its last result.
fn assert_tenant(view: &Value, tenant: &Tenant, last: &Value) {
    let (job30, job90, events, last_event) = tenant.expected();
    assert_eq!(view["companyID"], tenant.id.as_str(), "{view}");
    assert_eq!(view["job30"], job30, "{view}");
    assert_eq!(view["job90"], job90, "{view}");
    assert_eq!(view["events"], events, "{view}");
    assert_eq!(view["lastEventTime"], last_event, "{view}");
    assert_eq!(view["profile"]["industry"], tenant.industry, "{view}");
    assert_eq!(view["profile"]["revenu"], tenant.revenu, "{view}");
    assert_eq!(view["profile"]["job30"], tenant.job30, "{view}");
    assert_eq!(view["churnScore"], last["churnScore"], "{view} vs {last}");
    assert_eq!(view["riskOfChurn"], last["riskOfChurn"], "{view} vs {last}");
}

#[test]
fn metrics_health_and_tenant_state_of_a_live_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let tenants = workload(120, 30, 14);
    // Three tenants are checked one by one; the third is known only to the
    // TenantManager (looked up), so that lookups move too.
    let watched = ["t-0003", "t-0042", "t-0077"];
    let looked_up = tenants
        .iter()
        .find(|t| t.id == watched[2])
        .map(|t| {
            serde_json::json!({"tenantID": t.id, "industry": t.industry, "revenu": t.revenu,
                "employees": t.employees, "job30": t.job30, "job90": t.job90,
                "monthlyFee": t.monthly_fee, "totalFee": t.total_fee, "riskOfChurn": false})
        })
        .unwrap();
    let manager = OriginalTenantManager::start(vec![(watched[2].into(), looked_up)], "tm-key");
    let industries = crate::stand_ins::linear_learner_industries();
    let contract_path = dir.path().join("contract.toml");
    crate::stand_ins::write_linear_learner_contract(&contract_path, &industries);
    let endpoint = LinearLearner::start("churn-ll", Model::builtin(), industries);
    let all = lines(&tenants, &[watched[2]]);
    let mut run = LiveRun::start(
        &out,
        None,
        &[
            "--tenant-manager",
            &manager.url,
            "--lookup-auth",
            "api-key",
            "--lookup-api-key",
            "tm-key",
            "--scorer",
            "sagemaker://churn-ll",
            "--sagemaker-endpoint-url",
            &endpoint.url,
            "--score-contract",
            contract_path.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(run.get("/healthz"), (200, "ok\n".to_owned()));
    let deadline = Instant::now() + Duration::from_secs(60);
    while run.get("/readyz").0 != 200 {
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_, ready) = run.json("/readyz");
    assert_eq!(ready["phase"], "running");
    // The container's health check says so too.
    let health = Command::new(env!("CARGO_BIN_EXE_tenantflow"))
        .args(["health", "--ready", "--admin", &run.admin])
        .output()
        .unwrap();
    assert!(health.status.success(), "{health:?}");

    // Half the records, then the rest: two scrapes, each once the job has caught up.
    let half = all.len() / 2;
    let jobs_in = |lines: &[String]| lines.iter().filter(|l| l.contains("nbJobs")).count();
    let first_jobs = jobs_in(&all[..half]) as f64;
    run.write(&all[..half]);
    let first = run.wait_for_metrics("the first half", |m| {
        m.samples.get("tenantflow_results_total") == Some(&first_jobs)
    });
    run.write(&all[half..]);
    let total_jobs = jobs_in(&all) as f64;
    let second = run.wait_for_metrics("every record", |m| {
        m.samples.get("tenantflow_results_total") == Some(&total_jobs)
    });

    for name in tenantflow_admin::METRIC_NAMES {
        assert!(
            second.text.contains(&format!("# TYPE {name} ")),
            "{name} missing:\n{}",
            second.text
        );
    }
    for moving in [
        r#"tenantflow_records_read_total{source="reader"}"#,
        "tenantflow_job_events_total",
        "tenantflow_results_total",
        r#"tenantflow_remote_calls_total{service="scoring"}"#,
        r#"tenantflow_remote_call_duration_seconds_count{service="scoring"}"#,
    ] {
        assert!(
            second.get(moving) > first.get(moving),
            "{moving} did not move: {} then {}",
            first.get(moving),
            second.get(moving)
        );
    }
    assert_eq!(
        second.get(r#"tenantflow_remote_calls_total{service="lookup"}"#),
        1.0
    );
    assert_eq!(second.get("tenantflow_lookups_total"), 1.0);
    assert_eq!(
        second.get(r#"tenantflow_remote_in_flight{service="scoring"}"#),
        0.0
    );
    assert_eq!(second.get("tenantflow_ready"), 1.0);
    let tenants_in_state: f64 = (0..2)
        .map(|w| second.get(&format!(r#"tenantflow_tenants{{worker="{w}"}}"#)))
        .sum();
    assert_eq!(tenants_in_state, tenants.len() as f64);
    assert!(second.get(r#"tenantflow_open_result_files{worker="0"}"#) >= 1.0);
    assert_eq!(
        second.get(r#"tenantflow_dead_letters_total{reason="unknown_company"}"#),
        0.0
    );

    // The tenant state API, against the events themselves; scores against the results
    // once they are committed (below).
    let mut views = BTreeMap::new();
    for id in watched {
        let (status, view) = run.json(&format!("/tenants/{id}"));
        assert_eq!(status, 200, "{view}");
        views.insert(id, view);
    }
    let (status, _) = run.json("/tenants/nobody");
    assert_eq!(status, 404);
    assert_eq!(run.json("/tenants?risk=maybe").0, 400);
    assert_eq!(run.json("/tenants?limit=0").0, 400);
    let (status, top) = run.json("/tenants?risk=high&limit=5");
    assert_eq!(status, 200);
    let top = top["tenants"].as_array().unwrap();
    assert!(!top.is_empty() && top.len() <= 5, "{top:?}");
    let scores: Vec<f64> = top
        .iter()
        .map(|t| {
            assert_eq!(t["riskOfChurn"], true, "{t}");
            t["churnScore"].as_f64().unwrap()
        })
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    let (_, everyone) = run.json("/tenants?limit=1000");
    assert_eq!(everyone["tenants"].as_array().unwrap().len(), tenants.len());

    let logs = run.finish();
    assert!(
        logs.iter()
            .any(|l| l["message"] == "Checkpoint complete." && l["final_checkpoint"] == true),
        "no final checkpoint in the logs"
    );
    let last = last_results(&out);
    for id in watched {
        let tenant = tenants.iter().find(|t| t.id == id).unwrap();
        assert_tenant(&views[id], tenant, &last[id]);
    }
    let highest = last
        .values()
        .filter(|r| r["riskOfChurn"] == true)
        .map(|r| r["churnScore"].as_f64().unwrap())
        .fold(f64::MIN, f64::max);
    assert_eq!(scores[0], highest, "the riskiest tenant first");
    assert_aggregates(&out, &tenants, &last);
}

/// `aggregates/customers.csv` and `jobs.csv` hold exactly what the events say, and the
/// last results' scores.
fn assert_aggregates(out: &Path, tenants: &[Tenant], last: &BTreeMap<String, Value>) {
    let customers = std::fs::read_to_string(out.join("aggregates/customers.csv")).unwrap();
    let mut lines = customers.lines();
    assert_eq!(
        lines.next(),
        Some(tenantflow_sinks::aggregates::CUSTOMERS_HEADER)
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), tenants.len());
    for (row, tenant) in rows.iter().zip(tenants) {
        let (job30, job90, events, _) = tenant.expected();
        let result = &last[&tenant.id];
        assert_eq!(row[0], tenant.id);
        assert_eq!(row[1], tenant.industry);
        assert_eq!(
            row[6..10],
            [
                tenant.job30.to_string(),
                tenant.job90.to_string(),
                job30.to_string(),
                job90.to_string()
            ]
        );
        assert_eq!(row[10], result["riskOfChurn"].to_string());
        let score: f64 = row[11].parse().unwrap();
        assert_eq!(Some(score), result["churnScore"].as_f64(), "{}", tenant.id);
        assert!(row[12].ends_with('Z'), "{}", row[12]);
        assert_eq!(row[13], events.to_string());
    }
    let jobs = std::fs::read_to_string(out.join("aggregates/jobs.csv")).unwrap();
    let mut want = vec!["companyID,day,jobs".to_owned()];
    for tenant in tenants {
        for (day, n) in tenant.days() {
            let (y, m, d) = tenantflow_core::time::civil_from_days(day);
            want.push(format!("{},{y:04}-{m:02}-{d:02},{n}", tenant.id));
        }
    }
    assert_eq!(jobs.lines().collect::<Vec<_>>(), want);
}

/// A whole aggregates file: the header, then rows of the header's width, each ended.
fn assert_whole(text: &str, header: &str) {
    assert!(text.starts_with(header), "torn: {text:.80}");
    assert!(text.ends_with('\n'), "torn at the end");
    let width = header.split(',').count();
    for line in text.lines() {
        assert_eq!(line.split(',').count(), width, "torn row: {line}");
    }
}

#[test]
fn aggregates_are_never_torn_across_a_kill_and_the_job_is_not_ready_while_recovering() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let input = dir.path().join("in.ndjson");
    // Long enough that the first run is still reading after two checkpoints, however
    // loaded the machine (180,000 events were sometimes read in fewer).
    let tenants = workload(3000, 150, 21);
    std::fs::write(&input, lines(&tenants, &[]).join("\n") + "\n").unwrap();
    let args = [
        "--checkpoint-interval",
        "200ms",
        "--aggregates-interval",
        "200ms",
    ];

    // A reader that never stops looking while the runs write.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let stop = std::sync::Arc::clone(&stop);
        let customers = out.join("aggregates/customers.csv");
        let jobs = out.join("aggregates/jobs.csv");
        std::thread::spawn(move || {
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(text) = std::fs::read_to_string(&customers) {
                    assert_whole(&text, tenantflow_sinks::aggregates::CUSTOMERS_HEADER);
                    reads += 1;
                }
                if let Ok(text) = std::fs::read_to_string(&jobs) {
                    assert_whole(&text, tenantflow_sinks::aggregates::JOBS_HEADER);
                }
            }
            reads
        })
    };

    // The first run is killed once it has rewritten the aggregates at a checkpoint.
    let mut first = LiveRun::start(&out, Some(&input), &args, &[]);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let m = Metrics::parse(&first.get("/metrics").1);
        if m.samples.get("tenantflow_checkpoints_total") >= Some(&2.0) {
            break;
        }
        assert!(Instant::now() < deadline, "no checkpoint");
        std::thread::sleep(Duration::from_millis(20));
    }
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let health = Command::new(env!("CARGO_BIN_EXE_tenantflow"))
        .args(["health", "--admin", &first.admin])
        .output()
        .unwrap();
    assert_eq!(health.status.code(), Some(1), "{health:?}");
    assert!(String::from_utf8_lossy(&health.stderr).contains("asking the admin server"));
    assert!(out.join("aggregates/customers.csv").exists());

    // The second resumes; while it recovers it is alive but not ready.
    let mut second = LiveRun::start(
        &out,
        Some(&input),
        &args,
        &[("TENANTFLOW_PAUSE", "recovery:1500")],
    );
    assert_eq!(second.get("/healthz").0, 200);
    // Not ready from its start: `starting` (the admin server may answer before the
    // recovery begins), then `recovering` (held 1.5 s).
    let started = Instant::now();
    let (status, body) = loop {
        let (status, body) = second.json("/readyz");
        if body["phase"] != "starting" || started.elapsed() > Duration::from_secs(30) {
            break (status, body);
        }
        assert_eq!(status, 503, "{body}");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(
        (status, &body["phase"]),
        (503, &Value::from("recovering")),
        "{body}"
    );
    assert_eq!(
        Metrics::parse(&second.get("/metrics").1).get("tenantflow_ready"),
        0.0
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut became_ready = false;
    while Instant::now() < deadline {
        match second.json("/readyz") {
            (200, body) => {
                assert_eq!(body["phase"], "running");
                became_ready = true;
                break;
            }
            (503, body) if body["phase"] == "recovering" => {}
            // The run may end before a poll sees it running: then it was, and finished.
            (503, body) if body["phase"] == "finished" => {
                became_ready = true;
                break;
            }
            other => panic!("{other:?}"),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(became_ready, "never ready after recovering");
    let logs = second.finish();
    assert!(
        logs.iter()
            .any(|l| l["message"] == "Resuming from checkpoint: state and files restored."),
        "the second run did not resume"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(
        reader.join().unwrap() > 0,
        "the reader never saw the aggregates"
    );
    let last = last_results(&out);
    assert_eq!(last.len(), tenants.len());
    assert_aggregates(&out, &tenants, &last);
}

#[cfg(feature = "browser-tests")]
#[test]
fn the_dashboard_draws_its_charts_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let tenants = workload(200, 50, 3);
    let mut all = lines(&tenants, &[]);
    // Some dead letters, so that their chart has bars.
    all.push("{not json".into());
    all.push(
        r#"{"companyID":"ghost","userID":"u","nbJobs":1,"creationDate":1767225600000}"#.into(),
    );
    let mut run = LiveRun::start(&out, None, &[], &[]);
    let half = all.len() / 2;
    run.write(&all[..half]);
    // Two samples of throughput at least (one a second), then the rest.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, series) = run.json("/api/series");
        if series["samples"].as_array().unwrap().len() >= 3 {
            break;
        }
        assert!(Instant::now() < deadline, "no samples");
        std::thread::sleep(Duration::from_millis(100));
    }
    run.write(&all[half..]);
    let results = tenants.iter().map(|t| t.events.len()).sum::<usize>() as f64;
    run.wait_for_metrics("every record", |m| {
        m.samples
            .get("tenantflow_dead_letters_total{reason=\"malformed\"}")
            == Some(&1.0)
            && m.samples
                .get("tenantflow_dead_letters_total{reason=\"unknown_company\"}")
                == Some(&1.0)
            && m.samples.get("tenantflow_results_total") == Some(&results)
    });
    // A sample taken after the last record, so that the chart ends where the run is.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, series) = run.json("/api/series");
        let samples = series["samples"].as_array().unwrap();
        if samples.last().and_then(|s| s["results"].as_f64()) == Some(results) {
            break;
        }
        assert!(Instant::now() < deadline, "no sample of the whole run");
        std::thread::sleep(Duration::from_millis(100));
    }

    let url = format!("http://{}/", run.admin);
    let profile = tempfile::tempdir().unwrap();
    let chromium = |extra: &[&str]| {
        let output = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--virtual-time-budget=5000",
                "--window-size=1400,1200",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(&url)
            .output()
            .expect("chromium runs (scripts/test.sh installs it)");
        assert!(
            output.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    };
    let dom = String::from_utf8(chromium(&["--dump-dom"])).unwrap();
    let points = |id: &str| -> usize {
        let at = dom
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("no #{id} in the page"));
        let tag = &dom[dom[..at].rfind('<').unwrap()..];
        let tag = &tag[..tag.find('>').unwrap()];
        let value = tag.split("data-points=\"").nth(1).unwrap();
        value[..value.find('"').unwrap()].parse().unwrap()
    };
    assert!(points("throughput") >= 2, "throughput chart empty");
    assert!(points("dead-letters") >= 2, "dead letters chart empty");
    assert!(
        points("industries") >= INDUSTRIES.len(),
        "industries chart empty"
    );
    assert!(points("at-risk") >= 1, "no tenants at risk listed");
    assert!(dom.contains("class=\"pill ready\""), "not shown ready");

    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    chromium(&[&format!("--screenshot={}", shot.display())]);
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    let bytes_per_pixel = info.line_size / info.width as usize;
    let colors: std::collections::HashSet<&[u8]> = pixels[..info.buffer_size()]
        .chunks(bytes_per_pixel)
        .collect();
    assert!(
        colors.len() >= 20,
        "the screenshot looks blank: {} colours",
        colors.len()
    );
    run.finish();
}
