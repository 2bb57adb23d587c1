//! tenantflow in place of the original Flink job, against the original deployment's
//! endpoints (loopback stand-ins, [`crate::stand_ins`]): its API Gateway route with an API
//! key or IAM (SigV4), its SageMaker linear-learner endpoint through a contract file, and
//! its TenantManager's answers; and tenantflow's own TenantManager's OpenAPI document.

use std::path::Path;

use serde_json::Value;
use tenantflow_operators::score::Model;

use crate::common::{JobRun, gen_w1, local_aws, result_files, shared, sorted_result_lines};
use crate::stand_ins::{Gateway, LinearLearner, OriginalTenantManager, RouteAuth};

/// Every result line under `dir` with `churnScore` taken out, sorted; and how many had
/// a score.
fn results_without_score(dir: &Path) -> (Vec<String>, usize) {
    let mut scored = 0;
    let mut lines: Vec<String> = sorted_result_lines(dir)
        .iter()
        .map(|line| {
            let mut value: Value = serde_json::from_str(line).unwrap();
            let object = value.as_object_mut().unwrap();
            match object.remove("churnScore") {
                Some(Value::Null) => {}
                Some(_) => scored += 1,
                None => panic!("no churnScore field: {line}"),
            }
            value.to_string()
        })
        .collect();
    lines.sort();
    (lines, scored)
}

/// The labels of `got` are those of `want`, event for event, and `got` has no scores.
fn assert_same_labels_without_scores(got: &Path, want: &Path) {
    let (got, scored) = results_without_score(got);
    let (want, _) = results_without_score(want);
    assert_eq!(scored, 0, "the route gives no score");
    assert_eq!(got.len(), want.len(), "number of results");
    assert!(!got.is_empty());
    if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
        panic!("results differ:\n got  {}\n want {}", got[i], want[i]);
    }
}

fn run_with_aws(run: JobRun) -> (Value, String) {
    let mut command = run.command();
    let out = local_aws(&mut command).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    (
        serde_json::from_slice(&std::fs::read(run.summary_path()).unwrap()).unwrap(),
        text,
    )
}

#[test]
#[cfg_attr(not(have_shared), ignore = "needs ../shared/ beside the repository")]
fn the_original_route_with_its_api_key_gives_the_embedded_labels_on_w1() {
    let dir = tempfile::tempdir().unwrap();
    let model_path = shared("bench/model.json");
    let model = model_path.to_str().unwrap();
    let w1 = gen_w1(dir.path(), 6_000, 200, 13);
    let key = "route-key-7f3a9c";
    // The first attempt of every request fails as the Lambda throwing does (502): retried.
    let gateway = Gateway::start(
        Model::load(&model_path).unwrap(),
        RouteAuth::ApiKey(key.into()),
        true,
    );

    let embedded = dir.path().join("embedded");
    JobRun::new(&embedded)
        .input(&w1)
        .args(&["--model", model])
        .summary();

    let routed = dir.path().join("routed");
    let (summary, text) = run_with_aws(
        JobRun::new(&routed)
            .input(&w1)
            .args(&["--scorer", &gateway.route, "--score-max-in-flight", "16"])
            .args(&["--score-auth", "api-key", "--score-api-key", key]),
    );
    assert_eq!(summary["dead_letters"], 0, "{summary}");
    assert_same_labels_without_scores(&routed, &embedded);
    assert!(gateway.answers.count(502) > 0);
    assert_eq!(gateway.answers.count(403), 0);
    assert!(!text.contains(key), "the key shows: {text}");
    assert!(!summary.to_string().contains(key));

    // Without the key, the route refuses every request (403, not retried): every event
    // is a dead letter that says so.
    let refused = dir.path().join("refused");
    let (summary, _) = run_with_aws(
        JobRun::new(&refused)
            .input(&w1)
            .args(&["--scorer", &gateway.route]),
    );
    assert_eq!(summary["results"], 0, "{summary}");
    assert_eq!(
        summary["dead_letters_by_reason"]["scoring_failed"], summary["dead_letters"],
        "{summary}"
    );
    assert!(gateway.answers.count(403) > 0);
}

#[test]
fn sigv4_requests_pass_an_iam_route_and_wrong_credentials_do_not() {
    let dir = tempfile::tempdir().unwrap();
    // `local_aws` gives the runs these credentials and region.
    let gateway = Gateway::start(
        Model::builtin(),
        RouteAuth::SigV4 {
            access_key: "test".into(),
            secret_key: "test".into(),
            region: "us-east-1".into(),
        },
        false,
    );
    let generated = ["--generate", "1500", "--companies", "40", "--seed", "5"];
    let embedded = dir.path().join("embedded");
    JobRun::new(&embedded).args(&generated).summary();

    let signed = dir.path().join("signed");
    let (summary, _) = run_with_aws(
        JobRun::new(&signed)
            .args(&generated)
            .args(&["--scorer", &gateway.route, "--score-auth", "sigv4"])
            .args(&["--score-max-in-flight", "16"]),
    );
    assert_eq!(summary["dead_letters"], 0, "{summary}");
    assert_same_labels_without_scores(&signed, &embedded);
    assert_eq!(gateway.answers.count(403), 0);

    // A route whose IAM user has another secret: the signature does not match (403,
    // not retried), and every event is a dead letter.
    let other = Gateway::start(
        Model::builtin(),
        RouteAuth::SigV4 {
            access_key: "test".into(),
            secret_key: "another-secret".into(),
            region: "us-east-1".into(),
        },
        false,
    );
    let wrong = dir.path().join("wrong");
    let (summary, _) = run_with_aws(JobRun::new(&wrong).args(&generated).args(&[
        "--scorer",
        &other.route,
        "--score-auth",
        "sigv4",
    ]));
    assert_eq!(summary["results"], 0, "{summary}");
    assert_eq!(
        summary["dead_letters_by_reason"]["scoring_failed"], summary["dead_letters"],
        "{summary}"
    );
    assert_eq!(
        other.answers.count(403),
        other
            .answers
            .requests
            .load(std::sync::atomic::Ordering::SeqCst)
    );
}

#[test]
fn a_linear_learner_endpoint_with_one_hot_rows_scores_as_the_embedded_model() {
    let dir = tempfile::tempdir().unwrap();
    let industries = crate::stand_ins::linear_learner_industries();
    let contract = dir.path().join("contract.toml");
    crate::stand_ins::write_linear_learner_contract(&contract, &industries);
    let endpoint = LinearLearner::start("churn-ll", Model::builtin(), industries);

    let generated = ["--generate", "20000", "--companies", "300", "--seed", "9"];
    let embedded = dir.path().join("embedded");
    JobRun::new(&embedded).args(&generated).summary();
    let remote = dir.path().join("remote");
    let (summary, _) = run_with_aws(
        JobRun::new(&remote)
            .args(&generated)
            .args(&["--scorer", "sagemaker://churn-ll"])
            .args(&["--sagemaker-endpoint-url", &endpoint.url])
            .args(&["--score-contract", contract.to_str().unwrap()]),
    );
    assert_eq!(summary["dead_letters"], 0, "{summary}");
    assert_eq!(
        endpoint.rows.load(std::sync::atomic::Ordering::SeqCst) as u64,
        summary["results"].as_u64().unwrap()
    );
    let (got, scored) = results_without_score(&remote);
    assert_eq!(scored, got.len());
    assert_eq!(sorted_result_lines(&remote), sorted_result_lines(&embedded));
}

#[test]
fn the_lookup_reads_the_original_tenant_managers_answers() {
    let dir = tempfile::tempdir().unwrap();
    // The Quarkus entity: `tenantID`, Integer counts, Double fees, and `riskOfChurn`.
    let entity = serde_json::json!({"tenantID": "comp_a", "industry": "travel", "revenu": 99420,
        "employees": 4635, "job30": 10, "job90": 100, "monthlyFee": 400.0, "totalFee": 1200.0,
        "riskOfChurn": false});
    let key = "tm-key-5d1e";
    let manager = OriginalTenantManager::start(vec![("comp_a".into(), entity)], key);
    let input = dir.path().join("jobs.ndjson");
    let mut lines = String::new();
    for (i, company) in ["comp_a", "comp_z", "comp_a", "comp_z", "comp_a"]
        .iter()
        .enumerate()
    {
        lines.push_str(&format!(
            "{{\"companyID\":\"{company}\",\"userID\":\"u{i}\",\"nbJobs\":2,\"creationDate\":{}}}\n",
            1_767_225_600_000_i64 + i as i64 * 60_000
        ));
    }
    std::fs::write(&input, lines).unwrap();

    let out = dir.path().join("out");
    let summary = JobRun::new(&out)
        .input(&input)
        .args(&["--tenant-manager", &manager.url])
        .args(&["--lookup-auth", "api-key", "--lookup-api-key", key])
        .summary();
    assert_eq!(summary["results"], 3, "{summary}");
    // The original's 204 for an unknown tenant is an unknown tenant, not a failure.
    assert_eq!(
        summary["dead_letters_by_reason"]["unknown_company"], 2,
        "{summary}"
    );
    let results = sorted_result_lines(&out);
    for line in &results {
        let result: Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            (
                &result["companyID"],
                &result["industry"],
                &result["revenu"],
                &result["totalFee"]
            ),
            (
                &Value::from("comp_a"),
                &Value::from("travel"),
                &Value::from(99420),
                &Value::from(1200.0)
            ),
            "{line}"
        );
    }
    // The third event of comp_a counts the baseline and its 3 events' jobs.
    assert!(
        results.iter().any(|l| l.contains("\"job30\":16")),
        "{results:?}"
    );
    assert_eq!(manager.refused.load(std::sync::atomic::Ordering::SeqCst), 0);

    // Without the key, the lookups are refused (401, not retried): dead letters that
    // say so, no results.
    let refused = dir.path().join("refused");
    let summary = JobRun::new(&refused)
        .input(&input)
        .args(&["--tenant-manager", &manager.url])
        .summary();
    assert_eq!(summary["results"], 0, "{summary}");
    assert_eq!(
        summary["dead_letters_by_reason"]["lookup_failed"], 5,
        "{summary}"
    );
    assert!(manager.refused.load(std::sync::atomic::Ordering::SeqCst) > 0);
}

/// `GET path` of the loopback server at `base` (`http://HOST:PORT`): status and body.
fn get(base: &str, path: &str) -> (u16, String) {
    crate::common::http(
        base.strip_prefix("http://").unwrap(),
        "GET",
        path,
        &[],
        None,
    )
}

/// The TenantManager's OpenAPI document is valid OpenAPI (checked by
/// `openapi-spec-validator`, from PyPI, which `scripts/test.sh` installs and names in
/// `$TENANTFLOW_TEST_PYTHON`) and lists every route, the original's included.
#[test]
#[cfg_attr(
    not(feature = "openapi-validation-tests"),
    ignore = "needs openapi-spec-validator (scripts/test.sh installs it)"
)]
fn the_tenant_managers_openapi_document_is_valid_and_lists_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("tenants.db").display());
    let server = crate::common::Server::start(
        &["tenant-manager", "--database", &db],
        "tenant-manager: ready",
    );
    let (status, document) = get(&server.url, "/openapi.json");
    assert_eq!(status, 200, "{document}");
    assert_eq!(get(&server.url, "/q/openapi").1, document);
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &document).unwrap();
    let python = std::env::var("TENANTFLOW_TEST_PYTHON")
        .expect("TENANTFLOW_TEST_PYTHON is set by scripts/test.sh");
    let out = std::process::Command::new(python)
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openapi-spec-validator refused the document:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let document: Value = serde_json::from_str(&document).unwrap();
    let paths = document["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/api/v1/tenants", &["get", "post"][..]),
        ("/api/v1/tenants/count", &["get"]),
        ("/api/v1/tenants/{tenantID}", &["get", "put", "delete"]),
        ("/q/health/live", &["get"]),
        ("/q/health/ready", &["get"]),
        ("/openapi.json", &["get"]),
    ] {
        for method in methods {
            assert!(
                paths.get(path).and_then(|p| p.get(method)).is_some(),
                "{method} {path} is not in the document"
            );
        }
    }
}

/// `--partition-time processing` puts results in the folder of the hour they are
/// written, as the original job's bucket assigner did; `event` (the default) in their
/// event's.
#[test]
fn processing_time_gives_the_original_jobs_folders() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.ndjson");
    std::fs::write(
        &input,
        concat!(
            "{\"type\":\"company\",\"companyID\":\"c1\",\"industry\":\"gov\",\"revenu\":1,\"employees\":1,\"job30\":0,\"job90\":0,\"monthlyFee\":1.0,\"totalFee\":1.0}\n",
            "{\"companyID\":\"c1\",\"userID\":\"u\",\"nbJobs\":1,\"creationDate\":1609459200000}\n",
            "{\"companyID\":\"c1\",\"userID\":\"u\",\"nbJobs\":1,\"creationDate\":1609462800000}\n",
        ),
    )
    .unwrap();
    let folders = |out: &Path| -> std::collections::BTreeSet<String> {
        result_files(out, ".ndjson")
            .iter()
            .map(|f| {
                f.parent()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
    };
    let by_event = dir.path().join("event");
    JobRun::new(&by_event).input(&input).summary();
    assert_eq!(
        folders(&by_event).into_iter().collect::<Vec<_>>(),
        ["2021-01-01--00", "2021-01-01--01"]
    );
    let hour = |ms: u128| {
        tenantflow_sinks::file::Partitioning::Hourly.folder(i64::try_from(ms / 3_600_000).unwrap())
    };
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    };
    let before = hour(now());
    let by_processing = dir.path().join("processing");
    JobRun::new(&by_processing)
        .input(&input)
        .args(&["--partition-time", "processing"])
        .summary();
    let after = hour(now());
    let got = folders(&by_processing);
    assert!(
        !got.is_empty() && got.iter().all(|f| *f == before || *f == after),
        "{got:?}, written between {before} and {after}"
    );
}
