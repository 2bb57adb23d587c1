//! The bad-input corpus (`tests/corpus/bad_input.json`) at every entry point: records
//! in files (NDJSON and CSV), KPL aggregates from Kinesis, TenantManager and scorer
//! requests, configuration files. Each case must get exactly its answer: a dead letter
//! with its reason and error, a 4xx with its error, exit 2 with its message; no panic,
//! and the good records' results unchanged by the bad ones around them.

use std::path::Path;

use base64::Engine as _;
use md5::{Digest, Md5};
use serde_json::Value;

use crate::common::{JobRun, Server, http, sorted_result_lines};
use crate::scoring::{builtin_model, start_scorer};

const TS: i64 = 1_767_225_601_555;

fn corpus() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/bad_input.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn cases<'a>(corpus: &'a Value, section: &str) -> &'a Vec<Value> {
    corpus[section].as_array().unwrap()
}

fn text<'a>(case: &'a Value, field: &str) -> &'a str {
    case[field].as_str().unwrap_or_default()
}

#[test]
fn the_corpus_has_sixty_cases_or_more_with_distinct_names() {
    let corpus = corpus();
    let mut names = Vec::new();
    for section in [
        "records",
        "tenant_manager",
        "scorer",
        "configuration",
        "kpl_aggregates",
    ] {
        for case in cases(&corpus, section) {
            names.push(format!("{section}: {}", text(case, "name")));
        }
    }
    let count = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), count, "duplicate case names");
    assert!(count >= 60, "{count} cases");
}

fn record_bytes(case: &Value) -> Vec<u8> {
    match case["record_base64"].as_str() {
        Some(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap(),
        None => text(case, "record").as_bytes().to_vec(),
    }
}

/// Every record case, between good records, in one NDJSON and one CSV file (plus one
/// generated record over the size limit): one dead letter per case, at its line, with
/// its reason and error; the good records' results those of the good records alone.
#[test]
fn each_bad_record_is_one_dead_letter_with_its_reason_and_good_results_are_unchanged() {
    let corpus = corpus();
    let dir = tempfile::tempdir().unwrap();
    let company = r#"{"type":"company","companyID":"c1","industry":"retail","revenu":1000,"employees":10,"job30":1,"job90":2,"monthlyFee":5.5,"totalFee":10}"#;
    let good_json = |i: i64| {
        format!(
            r#"{{"type":"job","companyID":"c1","userID":"g{i}","nbJobs":1,"creationDate":{}}}"#,
            TS + i
        )
    };
    let good_csv = |i: i64| format!("c1,h{i},2,{}", TS + 500 + i);
    let mut json_lines: Vec<Vec<u8>> = vec![company.into()];
    let mut csv_lines: Vec<Vec<u8>> = Vec::new();
    let mut good_json_lines: Vec<Vec<u8>> = vec![company.into()];
    let mut good_csv_lines: Vec<Vec<u8>> = Vec::new();
    // (file, line, case)
    let mut expected: Vec<(&str, usize, &Value)> = Vec::new();
    for (i, case) in cases(&corpus, "records").iter().enumerate() {
        let i = i as i64;
        let (lines, good, file, good_line) = if text(case, "format") == "csv" {
            (&mut csv_lines, &mut good_csv_lines, "in.csv", good_csv(i))
        } else {
            (
                &mut json_lines,
                &mut good_json_lines,
                "in.ndjson",
                good_json(i),
            )
        };
        lines.push(good_line.clone().into());
        good.push(good_line.into());
        lines.push(record_bytes(case));
        expected.push((file, lines.len(), case));
    }
    let too_large = format!(
        r#"{{"type":"job","companyID":"c1","userID":"{}","nbJobs":1}}"#,
        "x".repeat(2 << 20)
    );
    json_lines.push(too_large.into());
    let too_large_line = json_lines.len();
    let write = |name: &str, lines: &[Vec<u8>]| {
        let path = dir.path().join(name);
        std::fs::write(&path, lines.join(&b'\n')).unwrap();
        path
    };
    let mixed = dir.path().join("mixed");
    let summary = JobRun::new(&mixed)
        .input(&write("in.ndjson", &json_lines))
        .input(&write("in.csv", &csv_lines))
        .summary();
    let good = dir.path().join("good");
    JobRun::new(&good)
        .input(&write("good.ndjson", &good_json_lines))
        .input(&write("good.csv", &good_csv_lines))
        .summary();
    assert_eq!(sorted_result_lines(&mixed), sorted_result_lines(&good));
    assert_eq!(
        summary["results"].as_u64(),
        Some((good_json_lines.len() - 1 + good_csv_lines.len()) as u64)
    );

    let mut letters: Vec<Value> = Vec::new();
    for file in std::fs::read_dir(mixed.join("_rejected")).unwrap() {
        let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
        letters.extend(text.lines().map(|l| serde_json::from_str(l).unwrap()));
    }
    assert_eq!(
        letters.len(),
        expected.len() + 1,
        "one dead letter per case"
    );
    let find = |file: &str, line: usize| {
        letters
            .iter()
            .find(|l| l["source"].as_str().unwrap().ends_with(file) && l["line"] == line as u64)
            .unwrap_or_else(|| panic!("no dead letter for {file}:{line}"))
    };
    for (file, line, case) in &expected {
        let letter = find(file, *line);
        let name = text(case, "name");
        assert_eq!(letter["reason"], case["reason"], "{name}: {letter}");
        let error = letter["error"].as_str().unwrap();
        assert!(
            error.contains(text(case, "error")),
            "{name}: the error is {error:?}, not one that says {:?}",
            text(case, "error")
        );
        // Words, not layout: no run of spaces outside the quoted value.
        let words = error.split(", got ").next().unwrap_or(error);
        assert!(!words.contains("  "), "{name}: {error:?}");
        // The record as it was read.
        let kept = match letter["recordBase64"].as_str() {
            Some(b) => base64::engine::general_purpose::STANDARD.decode(b).unwrap(),
            None => letter["record"].as_str().unwrap().as_bytes().to_vec(),
        };
        assert_eq!(kept, record_bytes(case), "{name}");
    }
    let letter = find("in.ndjson", too_large_line);
    assert_eq!(letter["reason"], "record_too_large");
}

/// Sends each case to the server at `addr` and checks its status and error; with an API
/// key, each request carries it (or the case's own) and no answer may show it.
fn assert_answers(addr: &str, cases: &[Value], key: Option<&str>) {
    for case in cases {
        let name = text(case, "name");
        let body = match case["body_repeat"].as_array() {
            Some(r) => Some(
                r[0].as_str()
                    .unwrap()
                    .repeat(r[1].as_u64().unwrap() as usize),
            ),
            None => case["body"].as_str().map(str::to_owned),
        };
        let mut headers = Vec::new();
        if let Some(key) = key {
            headers.push(("x-api-key", case["api_key"].as_str().unwrap_or(key)));
        }
        if let Some(ct) = case["content_type"].as_str() {
            headers.push(("content-type", ct));
        }
        let (status, answer) = http(
            addr,
            text(case, "method"),
            text(case, "path"),
            &headers,
            body.as_deref(),
        );
        assert_eq!(
            u64::from(status),
            case["status"].as_u64().unwrap(),
            "{name}: {answer}"
        );
        assert!(answer.contains(text(case, "error")), "{name}: {answer}");
        if let Some(key) = key {
            assert!(!answer.contains(key), "{name}: the key shows");
        }
    }
}

/// Every TenantManager case answered with its status and error, the service up after.
#[test]
fn bad_tenant_manager_requests_get_their_4xx_and_the_service_stays_up() {
    let corpus = corpus();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("tenants.db").display());
    let key = "corpus-key-1234";
    let manager = Server::start(
        &["tenant-manager", "--database", &db, "--api-key", key],
        "tenant-manager: ready",
    );
    let addr = manager.url.trim_start_matches("http://");
    assert_answers(addr, cases(&corpus, "tenant_manager"), Some(key));
    assert_eq!(http(addr, "GET", "/healthz", &[], None).0, 200);
}

/// Every scorer case answered with its status and error, the scorer up after.
#[test]
fn bad_scoring_requests_get_their_4xx_and_the_scorer_stays_up() {
    let corpus = corpus();
    let scorer = start_scorer(&builtin_model());
    let addr = scorer.url.trim_start_matches("http://");
    assert_answers(addr, cases(&corpus, "scorer"), None);
    assert_eq!(http(addr, "GET", "/ping", &[], None).0, 200);
}

/// Every configuration case refused at start: exit 2 for a file that does not
/// validate, 1 for a setting that cannot be used (a model file missing, a database of
/// another kind), its message, no panic.
#[test]
fn bad_configuration_files_are_refused_at_start_with_their_message() {
    let corpus = corpus();
    let dir = tempfile::tempdir().unwrap();
    for case in cases(&corpus, "configuration") {
        let name = text(case, "name");
        let file = dir.path().join("c.toml");
        std::fs::write(&file, text(case, "toml")).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tenantflow"))
            .arg(text(case, "command"))
            .arg("--config")
            .arg(&file)
            .current_dir(dir.path())
            .env_remove("TENANTFLOW_API_KEY")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let exit = case["exit"].as_i64().unwrap() as i32;
        assert_eq!(out.status.code(), Some(exit), "{name}: {stderr}");
        assert!(stderr.contains(text(case, "error")), "{name}: {stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    }
}

/// Every KPL case, framed as the KPL frames an aggregate (magic, protobuf, MD5), is
/// refused by the decoder with its error (the consumer then delivers the record as it
/// is, and it becomes a dead letter `malformed`).
#[test]
fn bad_kpl_aggregates_are_refused_with_their_error() {
    let corpus = corpus();
    for case in cases(&corpus, "kpl_aggregates") {
        let name = text(case, "name");
        let hex = text(case, "message_hex");
        let message: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let mut data = vec![0xf3, 0x89, 0x9a, 0xc2];
        data.extend_from_slice(&message);
        data.extend_from_slice(&Md5::digest(&message));
        match tenantflow_kinesis::kpl::deaggregate(&data) {
            Some(Err(e)) => assert!(e.to_string().contains(text(case, "error")), "{name}: {e}"),
            Some(Ok(records)) => panic!("{name}: decoded {} records", records.len()),
            None => panic!("{name}: not taken for an aggregate"),
        }
    }
}
