//! Regression tests of the defects found by trying to break the job as a hostile user
//! would (issue 11): each test reproduces one defect and checks what must happen instead.

use std::path::Path;

use serde_json::Value;

use crate::common::{read_summary, run_summary, sorted_result_lines, summary_path, tenantflow};

const COMPANY_C: &str = r#"{"type":"company","companyID":"c","industry":"retail","revenu":1,"employees":1,"job30":1,"job90":1,"monthlyFee":1,"totalFee":1}"#;

/// 2026-01-01T00:00:01.555Z.
const TS: i64 = 1_767_225_601_555;

fn job_at(user: &str, creation_date: i64) -> String {
    format!(r#"{{"companyID":"c","userID":"{user}","nbJobs":1,"creationDate":{creation_date}}}"#)
}

/// Every dead letter under `out/_rejected`.
fn dead_letters(out: &Path) -> Vec<Value> {
    let mut letters = Vec::new();
    let Ok(dir) = std::fs::read_dir(out.join("_rejected")) else {
        return letters;
    };
    for file in dir {
        for line in std::fs::read_to_string(file.unwrap().path())
            .unwrap()
            .lines()
        {
            letters.push(serde_json::from_str(line).unwrap());
        }
    }
    letters.sort_by_key(|l| l["line"].as_u64());
    letters
}

/// Writes `lines` beside `out` and runs the job on them; its `--summary-json`.
fn run_file(lines: &[String], out: &Path, extra: &[&str]) -> Value {
    let input = out.with_extension("ndjson");
    std::fs::write(&input, lines.join("\n")).unwrap();
    run_summary(&input, out, extra)
}

fn result_values(out: &Path) -> Vec<Value> {
    sorted_result_lines(out)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn bad_event_times_are_dead_letters_and_do_not_poison_the_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o1");
    let lines = [
        COMPANY_C.to_owned(),
        job_at("year9999", 253_402_300_799_000),
        r#"{"companyID":"c","userID":"untimed","nbJobs":1}"#.to_owned(),
        job_at("seconds", TS / 1000),
        job_at("overflow", 185_000_000_000_000_000),
        job_at("good", TS),
        job_at("good", TS + 86_400_000),
        job_at("good", TS + 7 * 86_400_000),
    ];
    run_file(&lines, &out, &[]);
    let results = result_values(&out);
    let mut counts: Vec<(i64, i64)> = results
        .iter()
        .map(|r| (r["job30"].as_i64().unwrap(), r["job90"].as_i64().unwrap()))
        .collect();
    counts.sort();
    assert_eq!(counts, [(2, 2), (3, 3), (4, 4)], "{results:#?}");
    assert!(results.iter().all(|r| r["userID"] == "good"));
    let letters = dead_letters(&out);
    let reasons: Vec<(&str, u64)> = letters
        .iter()
        .map(|l| (l["reason"].as_str().unwrap(), l["line"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        reasons,
        [
            ("event_time_out_of_range", 2),
            ("missing_event_time", 3),
            ("event_time_out_of_range", 4),
            ("event_time_out_of_range", 5),
        ]
    );
    assert!(
        letters[0]["error"]
            .as_str()
            .unwrap()
            .contains("ahead of the wall clock"),
        "{}",
        letters[0]
    );
    assert!(
        letters[2]["error"]
            .as_str()
            .unwrap()
            .contains("before 2000-01-01"),
        "{}",
        letters[2]
    );

    // Partition folders are all four-digit years of sane dates.
    for entry in std::fs::read_dir(&out).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            name.starts_with('_') || name.starts_with("2026-") || name == "aggregates",
            "{name}"
        );
    }
}

#[test]
fn arrival_time_for_untimed_file_records_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let lines = [
        COMPANY_C.to_owned(),
        r#"{"companyID":"c","userID":"untimed","nbJobs":3}"#.to_owned(),
    ];
    let summary = run_file(&lines, &out, &["--missing-event-time", "arrival"]);
    assert_eq!(summary["event_time_from_arrival"], 1, "{summary}");
    let results = result_values(&out);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["job30"], 4);
    assert!(dead_letters(&out).is_empty());

    // A skew of zero refuses an event a minute ahead; the default day takes it.
    let ahead = job_at("ahead", now_ms() + 60_000);
    let strict = dir.path().join("strict");
    run_file(
        &[COMPANY_C.to_owned(), ahead.clone()],
        &strict,
        &["--max-event-time-skew", "0s"],
    );
    assert_eq!(
        dead_letters(&strict)[0]["reason"],
        "event_time_out_of_range"
    );
    let lenient = dir.path().join("lenient");
    run_file(&[COMPANY_C.to_owned(), ahead], &lenient, &[]);
    assert_eq!(result_values(&lenient).len(), 1);
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn json_arrays_are_malformed_not_decoded_by_position() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let lines = [
        COMPANY_C.to_owned(),
        format!(r#"["job","c","u",7,{TS}]"#),
        r#"["company","c",null,null,null,"media",1,2,3,4,5.0,6.0]"#.to_owned(),
        "[]".to_owned(),
        job_at("good", TS),
    ];
    run_file(&lines, &out, &[]);
    let results = result_values(&out);
    assert_eq!(results.len(), 1);
    assert_eq!(
        results[0]["industry"], "retail",
        "the profile was not replaced"
    );
    assert_eq!(results[0]["job30"], 2);
    let letters = dead_letters(&out);
    assert_eq!(letters.len(), 3);
    for letter in &letters {
        assert_eq!(letter["reason"], "malformed");
        assert!(
            letter["error"]
                .as_str()
                .unwrap()
                .contains("a record must be a JSON object, got an array"),
            "{letter}"
        );
    }
}

#[test]
fn absurd_values_are_refused_with_the_services_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let company = |field: &str, value: &str| {
        let mut v: serde_json::Map<String, Value> = serde_json::from_str(COMPANY_C).unwrap();
        v.insert(field.into(), serde_json::from_str(value).unwrap());
        Value::Object(v).to_string()
    };
    let bad = [
        (
            format!(
                r#"{{"companyID":"c","userID":"u","nbJobs":9223372036854775807,"creationDate":{TS}}}"#
            ),
            "nbJobs",
        ),
        (company("revenu", "-1"), "revenu"),
        (company("employees", "-5"), "employees"),
        (company("monthlyFee", "-0.5"), "monthlyFee"),
        (company("totalFee", "1e300"), "totalFee"),
        (company("industry", r#""""#), "industry"),
        (company("industry", r#""re\u0000tail""#), "industry"),
        (
            company("industry", r#""<script>alert(1)</script>""#),
            "industry",
        ),
        (
            company("industry", &format!("\"{}\"", "x".repeat(500_000))),
            "industry",
        ),
        (
            company("companyID", &format!("\"{}\"", "c".repeat(129))),
            "companyID",
        ),
        (company("job30", "1000000000000000001"), "job30"),
    ];
    let mut lines = vec![COMPANY_C.to_owned()];
    lines.extend(bad.iter().map(|(line, _)| line.clone()));
    lines.push(job_at("good", TS));
    lines.push(job_at("good", TS));
    run_file(&lines, &out, &[]);
    let results = result_values(&out);
    let counts: Vec<i64> = results
        .iter()
        .map(|r| r["job30"].as_i64().unwrap())
        .collect();
    assert_eq!(counts.len(), 2);
    assert!(counts.contains(&2) && counts.contains(&3), "{counts:?}");
    assert!(
        results
            .iter()
            .all(|r| r["industry"] == "retail" && r["revenu"] == 1)
    );
    let letters = dead_letters(&out);
    assert_eq!(letters.len(), bad.len(), "{letters:#?}");
    for (letter, (_, field)) in letters.iter().zip(&bad) {
        assert_eq!(letter["reason"], "malformed", "{letter}");
        let error = letter["error"].as_str().unwrap();
        assert!(
            error.contains(&format!("field `{field}` must be")),
            "{error}"
        );
        assert!(error.len() < 300, "the error quotes a short value: {error}");
    }
}

fn tenantflow_fails(args: &[&str]) -> std::process::Output {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tenantflow"))
        .args(args)
        .output()
        .expect("tenantflow starts");
    assert!(!out.status.success(), "tenantflow {args:?} succeeded");
    out
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn starting_over_deletes_only_what_tenantflow_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, [COMPANY_C.to_owned(), job_at("u", TS)].join("\n")).unwrap();
    let v = dir.path().join("v");
    std::fs::create_dir_all(v.join("sub")).unwrap();
    std::fs::write(v.join("notes.txt"), "x").unwrap();
    std::fs::write(v.join("sub/d.csv"), "y").unwrap();
    let out = dir.path().join("o");
    let base = [
        "run",
        "-q",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--checkpoints",
        v.to_str().unwrap(),
        "--checkpoint-interval",
        "off",
    ];
    tenantflow(&base);
    tenantflow(&[&base[..], &["--overwrite"]].concat());
    tenantflow(&[&base[..], &["--from-scratch", "--overwrite"]].concat());
    assert_eq!(std::fs::read_to_string(v.join("notes.txt")).unwrap(), "x");
    assert_eq!(std::fs::read_to_string(v.join("sub/d.csv")).unwrap(), "y");
    assert_eq!(result_values(&out).len(), 1);

    // Checkpoints in the output's folder: --from-scratch --overwrite replaces results,
    // and keeps the user's files.
    let shared = dir.path().join("shared");
    let shared_base = [
        "run",
        "-q",
        "--input",
        input.to_str().unwrap(),
        "--output",
        shared.to_str().unwrap(),
        "--checkpoints",
        shared.to_str().unwrap(),
    ];
    tenantflow(&shared_base);
    std::fs::write(shared.join("mine.txt"), "m").unwrap();
    tenantflow(&[&shared_base[..], &["--from-scratch", "--overwrite"]].concat());
    assert_eq!(
        std::fs::read_to_string(shared.join("mine.txt")).unwrap(),
        "m"
    );
    let parts: Vec<String> = listing(&shared)
        .into_iter()
        .map(|(path, _)| path)
        .filter(|path| path.contains("/part-"))
        .collect();
    assert_eq!(parts.len(), 1, "{parts:?}");
    assert_eq!(
        std::fs::read_to_string(&parts[0]).unwrap().lines().count(),
        1
    );

    // Checkpoints that hold an input, or lie in an input folder, are refused.
    for checkpoints in [dir.path(), &dir.path().join("inputs/_checkpoints")] {
        let folder_input = dir.path().join("inputs");
        std::fs::create_dir_all(&folder_input).unwrap();
        std::fs::copy(&input, folder_input.join("a.ndjson")).unwrap();
        let failed = tenantflow_fails(&[
            "run",
            "--input",
            folder_input.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--output",
            dir.path().join("o2").to_str().unwrap(),
            "--checkpoints",
            checkpoints.to_str().unwrap(),
        ]);
        assert!(
            stderr(&failed).contains("overlaps the input"),
            "{}",
            stderr(&failed)
        );
    }
    assert!(input.exists());
}

#[test]
fn a_refused_from_scratch_leaves_the_run_resumable() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, [COMPANY_C.to_owned(), job_at("u", TS)].join("\n")).unwrap();
    let out = dir.path().join("o");
    let base = [
        "run",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ];
    tenantflow(&base);
    let checkpoints_before = std::fs::read_dir(out.join("_checkpoints")).unwrap().count();
    let refused = tenantflow_fails(&[&base[..], &["--from-scratch"]].concat());
    assert!(
        stderr(&refused).contains("--overwrite"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(
        std::fs::read_dir(out.join("_checkpoints")).unwrap().count(),
        checkpoints_before
    );
    let summary = summary_path(&out);
    tenantflow(&[&base[..], &["--summary-json", summary.to_str().unwrap()]].concat());
    let resumed = read_summary(&summary);
    assert!(resumed["checkpoints"]["resumed_from"].is_u64(), "{resumed}");
    assert_eq!(result_values(&out).len(), 1);
}

#[test]
fn a_second_job_on_one_output_refuses_and_touches_nothing() {
    use std::io::{BufRead, Write};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    // The first job reads stdin, so it holds the output until its stdin closes.
    let mut first = std::process::Command::new(env!("CARGO_BIN_EXE_tenantflow"))
        .args([
            "run",
            "-q",
            "--input",
            "-",
            "--output",
            out.to_str().unwrap(),
        ])
        .env("TENANTFLOW_LOG", "info")
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = first.stdin.take().unwrap();
    writeln!(stdin, "{COMPANY_C}\n{}", job_at("first", TS)).unwrap();
    let mut said = std::io::BufReader::new(first.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    loop {
        let line = said.next().expect("the first job starts").unwrap();
        if line.contains("Starting run.") {
            break;
        }
        seen.push(line);
        assert!(seen.len() < 100, "{seen:?}");
    }
    let drain = std::thread::spawn(move || said.for_each(drop));

    let input = dir.path().join("in.ndjson");
    std::fs::write(
        &input,
        [COMPANY_C.to_owned(), job_at("second", TS)].join("\n"),
    )
    .unwrap();
    let before = listing(&out);
    for extra in [
        &[][..],
        &["--overwrite"],
        &["--from-scratch", "--overwrite"],
    ] {
        let second = tenantflow_fails(
            &[
                &[
                    "run",
                    "--input",
                    input.to_str().unwrap(),
                    "--output",
                    out.to_str().unwrap(),
                ][..],
                extra,
            ]
            .concat(),
        );
        let message = stderr(&second);
        assert!(
            message.contains("in use by another tenantflow job"),
            "{message}"
        );
        assert!(
            message.contains(&format!("pid {}", first.id())),
            "{message}"
        );
        assert_eq!(listing(&out), before);
    }

    drop(stdin);
    assert!(first.wait().unwrap().success());
    drain.join().unwrap();
    let results = result_values(&out);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["userID"], "first");
    // Free again once the first job ended.
    tenantflow(&[
        "run",
        "-q",
        "--input",
        input.to_str().unwrap(),
        "--output",
        dir.path().join("o").to_str().unwrap(),
        "--overwrite",
    ]);
}

/// Every file under `dir` with its size, sorted (hidden in-progress files aside).
fn listing(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else if !entry.file_name().to_string_lossy().starts_with('.') {
                let size = entry.metadata().unwrap().len();
                out.push((entry.path().display().to_string(), size));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn bad_flag_values_exit_2_naming_the_flag_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let out = out.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["run", "--workers", "5000"], "--workers"),
        (&["run", "--workers", "0"], "--workers"),
        (&["run", "--max-open-files", "0"], "--max-open-files"),
        (&["run", "--companies", "0"], "--companies"),
        (&["run", "--score-attempts", "0"], "--score-attempts"),
        (&["run", "--score-batch", "50001"], "--score-batch"),
        (&["run", "--lookup-attempts", "0"], "--lookup-attempts"),
        (
            &["run", "--lookup-max-in-flight", "0"],
            "--lookup-max-in-flight",
        ),
        (
            &["run", "--allowed-lateness", "99999999999d"],
            "--allowed-lateness",
        ),
        (&["run", "--lookup-timeout", "0s"], "--lookup-timeout"),
        (&["run", "--score-timeout", "0s"], "--score-timeout"),
        (&["run", "--max-file-size", "0"], "--max-file-size"),
        (&["run", "--max-record-size", "2GiB"], "--max-record-size"),
        (&["run", "--max-file-age", "0s"], "--max-file-age"),
        (&["run", "--output", ""], "--output"),
        (
            &["run", "--output", out, "--checkpoints", ""],
            "--checkpoints",
        ),
        (&["run", "--generate=-1"], "--generate"),
        (
            &["run", "--sagemaker-endpoint-url", "notaurl"],
            "--sagemaker-endpoint-url",
        ),
        (
            &[
                "produce",
                "--stream",
                "s",
                "--generate",
                "1",
                "--companies",
                "0",
            ],
            "--companies",
        ),
        (
            &[
                "train",
                "--generate",
                "100",
                "--out",
                "m.json",
                "--test-fraction",
                "1",
            ],
            "--test-fraction",
        ),
        (
            &[
                "run",
                "--output",
                out,
                "--scorer",
                "http://127.0.0.1:9/invocations",
                "--model",
                "m.json",
            ],
            "--model",
        ),
    ];
    for (args, flag) in cases {
        let failed = tenantflow_fails(args);
        let message = stderr(&failed);
        assert_eq!(failed.status.code(), Some(2), "{args:?}: {message}");
        assert!(
            message.contains(flag),
            "{args:?} should name {flag}: {message}"
        );
        assert!(!message.contains("panicked"), "{args:?}: {message}");
    }
    assert!(!Path::new(out).exists(), "a refused run wrote nothing");
}

#[test]
fn logs_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, COMPANY_C).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tenantflow"))
        .args(["run", "-q", "--input", input.to_str().unwrap(), "--output"])
        .arg(dir.path().join("o"))
        .env("TENANTFLOW_LOG", "info")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = stderr(&out);
    assert!(text.contains("Starting run."), "{text}");
    assert!(!text.contains('\u{1b}'), "{text:?}");
}

#[test]
fn a_changed_input_is_refused_at_resume_and_a_grown_one_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    let lines = |user: &str, n: usize| -> String {
        let mut text = format!("{COMPANY_C}\n");
        for i in 0..n {
            text.push_str(&job_at(user, TS + i as i64));
            text.push('\n');
        }
        text
    };
    let original = lines("a", 300_000);
    std::fs::write(&input, &original).unwrap();
    let out = dir.path().join("o");
    let args = [
        "run",
        "-q",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--checkpoint-interval",
        "100ms",
    ];
    // Crash right after the first checkpoint, part way through the file.
    let crashed = std::process::Command::new(env!("CARGO_BIN_EXE_tenantflow"))
        .args(args)
        .env("TENANTFLOW_FAULT", "after-manifest:1")
        .output()
        .unwrap();
    assert!(!crashed.status.success(), "{}", stderr(&crashed));
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(out.join("_checkpoints/manifest-000000000001.json")).unwrap(),
    )
    .unwrap();
    let offset = manifest["files"]["offset"].as_u64().unwrap();
    assert!(offset > 0 && offset < original.len() as u64, "{manifest}");

    // A longer, different file in its place: refused, not resumed mid-line.
    std::fs::write(&input, lines("b", 400_000)).unwrap();
    let refused = tenantflow_fails(&args);
    assert!(
        stderr(&refused).contains("changed since the checkpoint"),
        "{}",
        stderr(&refused)
    );

    // The same file grown at its end: resumed, the new lines read too.
    let mut grown = original.clone();
    grown.push_str(&job_at("a", TS));
    grown.push('\n');
    std::fs::write(&input, &grown).unwrap();
    tenantflow(&args);
    let results = sorted_result_lines(&out);
    assert_eq!(results.len(), 300_001);
    assert!(results.iter().all(|r| r.contains(r#""userID":"a""#)));
}

#[test]
fn a_byte_order_mark_is_skipped_and_only_a_first_csv_line_is_a_header() {
    let dir = tempfile::tempdir().unwrap();
    let ndjson = dir.path().join("bom.ndjson");
    std::fs::write(
        &ndjson,
        format!("\u{feff}{COMPANY_C}\n{}\n", job_at("u", TS)),
    )
    .unwrap();
    let out = dir.path().join("o1");
    run_summary(&ndjson, &out, &[]);
    assert_eq!(result_values(&out).len(), 1);
    assert!(dead_letters(&out).is_empty());

    let csv = dir.path().join("bom.csv");
    std::fs::write(
        &csv,
        format!(
            "\u{feff}company_id,industry,revenu,employees,job30,job90,monthlyFee,totalFee\n\
             c,retail,1,1,1,1,1,1\n\
             c,u,1,{TS}\n\
             company,retail,x\n\
             c,u,+5,{TS}\n"
        ),
    )
    .unwrap();
    let out = dir.path().join("o2");
    let summary = run_summary(&csv, &out, &[]);
    assert_eq!(summary["skipped"]["csv_header_lines"], 1, "{summary}");
    assert_eq!(result_values(&out).len(), 1);
    let letters = dead_letters(&out);
    let lines: Vec<u64> = letters
        .iter()
        .map(|l| l["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [4, 5], "{letters:#?}");
    assert!(letters[1]["error"].as_str().unwrap().contains("`+5`"));
}

#[test]
fn stdin_is_not_resumed_and_a_finished_file_run_says_nothing_is_left() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let text = format!("{COMPANY_C}\n{}\n", job_at("u", TS));
    let stdin_run = || {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tenantflow"))
            .args([
                "run",
                "-q",
                "--input",
                "-",
                "--output",
                out.to_str().unwrap(),
            ])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // The second run may refuse before reading: a closed pipe is fine then.
        let _ = stdin.write_all(text.as_bytes());
        drop(stdin);
        child.wait_with_output().unwrap()
    };
    assert!(stdin_run().status.success());
    let again = stdin_run();
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("stdin cannot be resumed"),
        "{}",
        stderr(&again)
    );
    assert_eq!(result_values(&out).len(), 1);

    let file = dir.path().join("f.ndjson");
    std::fs::write(&file, &text).unwrap();
    let out2 = dir.path().join("o2");
    let args = [
        "run",
        "-q",
        "--input",
        file.to_str().unwrap(),
        "--output",
        out2.to_str().unwrap(),
    ];
    tenantflow(&args);
    let second = tenantflow(&args);
    assert!(
        stderr(&second).contains("Nothing left to read"),
        "{}",
        stderr(&second)
    );
    assert_eq!(result_values(&out2).len(), 1);
}

#[test]
fn sagemaker_without_credentials_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tenantflow"))
        .args([
            "run",
            "--generate",
            "10",
            "--scorer",
            "sagemaker://churn",
            "--output",
        ])
        .arg(dir.path().join("out"))
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
        .env_remove("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        .env_remove("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        .env("AWS_CONFIG_FILE", dir.path().join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("no AWS credentials"), "{text}");
    assert!(!dir.path().join("out").join("2026-01-01--00").exists());
}

#[test]
fn produce_to_an_unreachable_server_shows_retries_and_gives_up() {
    // A port nothing listens on (bound, then closed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tenantflow"))
        .args([
            "produce",
            "-q",
            "--stream",
            "bigdatajobs",
            "--generate",
            "10",
        ])
        .args(["--give-up-after", "1s"])
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("retrying"), "{text}");
    assert!(text.contains("gave up after"), "{text}");
}
