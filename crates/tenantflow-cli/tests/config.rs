//! The configuration file: its layers (defaults < file < variables < flags), the example
//! file, `config check`, and the exit statuses: 2 for a configuration error, 1 for a run
//! error.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::{JobRun, read_summary, sorted_result_lines};

/// `tenantflow ARGS` with `vars` set (and every other `TENANTFLOW_*` variable unset).
fn tenantflow_with(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tenantflow"));
    for (name, _) in std::env::vars() {
        if name.starts_with("TENANTFLOW_") {
            command.env_remove(name);
        }
    }
    command.args(args).envs(vars.iter().copied());
    command.output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A run of 2,000 generated events into `out` with `args` and `vars` (and no other
/// `TENANTFLOW_*` variable); its summary.
fn generated_run(out: &Path, args: &[&str], vars: &[(&str, &str)]) -> serde_json::Value {
    let mut run = JobRun::new(out)
        .args(&["--generate", "2000", "--companies", "50"])
        .args(args);
    for (name, value) in vars {
        run = run.env(name, value);
    }
    let mut command = run.command();
    for (name, _) in std::env::vars() {
        if name.starts_with("TENANTFLOW_") && !vars.iter().any(|(v, _)| *v == name) {
            command.env_remove(name);
        }
    }
    let ran = command.output().unwrap();
    assert!(ran.status.success(), "{args:?}: {}", stderr(&ran));
    read_summary(&run.summary_path())
}

#[test]
fn each_layer_overrides_the_one_before() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tenantflow.toml");
    std::fs::write(
        &file,
        "[output]\nformat = \"csv\"\ncompression = \"gzip\"\n[sources.generator]\nseed = 7\n",
    )
    .unwrap();
    let config = file.to_str().unwrap();
    // The file over the defaults.
    let s = generated_run(&dir.path().join("file"), &["--config", config], &[]);
    assert_eq!(s["format"], "csv.gz");
    // A variable over the file.
    let s = generated_run(
        &dir.path().join("var"),
        &["--config", config],
        &[("TENANTFLOW_FORMAT", "parquet")],
    );
    assert_eq!(s["format"], "parquet");
    // A flag over the variable; the file's other keys still hold.
    let s = generated_run(
        &dir.path().join("flag"),
        &["--config", config, "--format", "ndjson"],
        &[("TENANTFLOW_FORMAT", "parquet")],
    );
    assert_eq!(s["format"], "ndjson.gz");
    // The file's seed is the generator's: the same results as the flag gives.
    let by_flag = dir.path().join("seed-flag");
    generated_run(&by_flag, &["--seed", "7", "--format", "ndjson"], &[]);
    let by_file = dir.path().join("seed-file");
    std::fs::write(&file, "[sources.generator]\nseed = 7\n").unwrap();
    generated_run(&by_file, &["--config", config], &[]);
    let lines = sorted_result_lines(&by_file);
    assert!(!lines.is_empty());
    assert_eq!(lines, sorted_result_lines(&by_flag));
    // The variable naming the file is a layer like the flag.
    let s = generated_run(
        &dir.path().join("config-var"),
        &[],
        &[("TENANTFLOW_CONFIG", config)],
    );
    assert_eq!(s["format"], "ndjson");
}

#[test]
fn the_example_file_runs_as_the_defaults_do() {
    let dir = tempfile::tempdir().unwrap();
    for command in ["run", "tenant-manager", "scorer"] {
        let out = tenantflow_with(&["config", "example", command], &[]);
        assert!(out.status.success(), "{command}: {}", stderr(&out));
        let text = String::from_utf8(out.stdout).unwrap();
        let file = dir.path().join(format!("{command}.toml"));
        std::fs::write(&file, &text).unwrap();
        let checked = tenantflow_with(
            &["config", "check", file.to_str().unwrap(), "--for", command],
            &[],
        );
        assert!(checked.status.success(), "{command}: {}", stderr(&checked));
    }
    let with_file = dir.path().join("with-file");
    generated_run(
        &with_file,
        &["--config", dir.path().join("run.toml").to_str().unwrap()],
        &[],
    );
    let without = dir.path().join("without");
    generated_run(&without, &[], &[]);
    assert_eq!(
        sorted_result_lines(&with_file),
        sorted_result_lines(&without)
    );
}

#[test]
fn check_prints_the_effective_configuration_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tm.toml");
    std::fs::write(
        &file,
        "api_key = \"hunter2\"\ndatabase = \"postgres://tm:hunter3@db:5432/tenants\"\n",
    )
    .unwrap();
    let out = tenantflow_with(
        &[
            "config",
            "check",
            file.to_str().unwrap(),
            "--for",
            "tenant-manager",
        ],
        &[("TENANTFLOW_TM_LISTEN", "127.0.0.1:9999")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = String::from_utf8(out.stdout).unwrap();
    assert!(!shown.contains("hunter"), "{shown}");
    assert!(shown.contains("api_key = \"***\""), "{shown}");
    assert!(
        shown.contains("postgres://tm:***@db:5432/tenants"),
        "{shown}"
    );
    assert!(shown.contains("listen = \"127.0.0.1:9999\""), "{shown}");

    let run = dir.path().join("run.toml");
    std::fs::write(
        &run,
        "[lookup]\ntenant_manager = \"http://tm:secret@127.0.0.1:8080\"\n",
    )
    .unwrap();
    let out = tenantflow_with(
        &["config", "check", run.to_str().unwrap()],
        &[("TENANTFLOW_SCORE_BATCH", "7")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = String::from_utf8(out.stdout).unwrap();
    assert!(!shown.contains("secret"), "{shown}");
    assert!(shown.contains("batch = 7"), "{shown}");
    assert!(shown.contains("interval = \"1m\""), "{shown}");
}

#[test]
fn configuration_errors_exit_2_and_run_errors_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    let cases: [(&str, &[&str], &str); 6] = [
        (
            "[lookup]\nmax_in_flight = 0\n",
            &[],
            ":2:17: `lookup.max_in_flight`: 0 is out of range: expected 1..=4096",
        ),
        (
            "[sources]\nimputs = [\"a\"]\n",
            &[],
            "`sources.imputs`: unknown field `imputs`, expected one of `inputs`",
        ),
        (
            "[output]\nformat = \"xml\"\n",
            &[],
            "`output.format`: unknown variant `xml`, expected one of `ndjson`, `csv`, `parquet`",
        ),
        ("[checkpoints\n", &[], "bad.toml:1:"),
        (
            "[scoring]\nscorer = \"http://127.0.0.1:9/invocations\"\nmodel = \"m.json\"\n",
            &[],
            "--model is the embedded scorer's (`scoring.model`)",
        ),
        ("", &["--workers", "0"], "--workers"),
    ];
    for (text, extra, expected) in cases {
        std::fs::write(&file, text).unwrap();
        let args = [
            &[
                "run",
                "--quiet",
                "--generate",
                "10",
                "--output",
                out,
                "--config",
                file.to_str().unwrap(),
            ][..],
            extra,
        ]
        .concat();
        let failed = tenantflow_with(&args, &[]);
        let message = stderr(&failed);
        assert_eq!(failed.status.code(), Some(2), "{text}: {message}");
        assert!(message.contains(expected), "{text}: {message}");
        assert!(!message.contains("panicked"), "{message}");
        // `config check` refuses it the same way (but for flags it does not take).
        if extra.is_empty() && !expected.contains("embedded scorer") {
            let checked = tenantflow_with(&["config", "check", file.to_str().unwrap()], &[]);
            assert_eq!(checked.status.code(), Some(2), "{}", stderr(&checked));
            assert!(stderr(&checked).contains(expected), "{}", stderr(&checked));
        }
    }
    assert!(!Path::new(out).exists(), "a refused run wrote nothing");
    // A missing file is a configuration error too.
    let missing = tenantflow_with(&["run", "--config", "/nonexistent/tenantflow.toml"], &[]);
    assert_eq!(missing.status.code(), Some(2), "{}", stderr(&missing));
    assert!(stderr(&missing).contains("/nonexistent/tenantflow.toml"));
    // A bad variable names its flag and variable.
    let bad_var = tenantflow_with(
        &["run", "--generate", "10", "--output", out],
        &[("TENANTFLOW_SCORE_BATCH", "60000")],
    );
    assert_eq!(bad_var.status.code(), Some(2), "{}", stderr(&bad_var));
    assert!(
        stderr(&bad_var).contains("1..=50000"),
        "{}",
        stderr(&bad_var)
    );
    // The services' files too.
    std::fs::write(&file, "max_in_flight = 5000\n").unwrap();
    let scorer = tenantflow_with(
        &[
            "scorer",
            "--model",
            "m.json",
            "--config",
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(scorer.status.code(), Some(2), "{}", stderr(&scorer));
    assert!(stderr(&scorer).contains("`max_in_flight`: 5000 is out of range"));
    let no_model = tenantflow_with(&["scorer"], &[]);
    assert_eq!(no_model.status.code(), Some(2), "{}", stderr(&no_model));
    assert!(stderr(&no_model).contains("a model is required"));
    std::fs::write(&file, "listen = \"nowhere\"\n").unwrap();
    let tm = tenantflow_with(&["tenant-manager", "--config", file.to_str().unwrap()], &[]);
    assert_eq!(tm.status.code(), Some(2), "{}", stderr(&tm));
    assert!(stderr(&tm).contains("`listen`"), "{}", stderr(&tm));
    let tm = tenantflow_with(&["tenant-manager", "--seed-overwrite"], &[]);
    assert_eq!(tm.status.code(), Some(2), "{}", stderr(&tm));

    // A run error is 1: an input that does not exist.
    let failed = tenantflow_with(
        &[
            "run",
            "--quiet",
            "--input",
            "/nonexistent/in.ndjson",
            "--output",
            out,
        ],
        &[],
    );
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
}

/// With a lease table, what cannot be shared among workers is refused at start, with
/// the reason (exit 2), before anything is written or called.
#[test]
fn leases_refuse_what_workers_cannot_share() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    let slow_renewal = dir.path().join("cluster.toml");
    std::fs::write(
        &slow_renewal,
        "[cluster]\nlease_timeout = \"10s\"\nlease_renew_interval = \"5s\"\n",
    )
    .unwrap();
    let file = dir.path().join("in.ndjson");
    std::fs::write(&file, "").unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &["--generate", "10"],
            "leases share a Kinesis stream's shards: give it as the first --input kinesis://STREAM",
        ),
        (
            &[
                "--input",
                "kinesis://jobs",
                "--input",
                file.to_str().unwrap(),
            ],
            "file inputs and the generator cannot be shared among workers",
        ),
        (
            &["--input", "kinesis://jobs", "--exit-when-idle", "5s"],
            "--exit-when-idle is for a job without leases",
        ),
        (
            &["--input", "kinesis://jobs", "--overwrite"],
            "--overwrite and --from-scratch would delete other workers' results",
        ),
        (
            &[
                "--input",
                "kinesis://jobs",
                "--config",
                slow_renewal.to_str().unwrap(),
            ],
            "`cluster.lease_renew_interval` is 5s, more than a third of `cluster.lease_timeout` (10s)",
        ),
    ];
    for (extra, expected) in cases {
        let args = [
            &["run", "--quiet", "--lease-table", "leases", "--output", out][..],
            extra,
        ]
        .concat();
        let failed = tenantflow_with(&args, &[]);
        let message = stderr(&failed);
        assert_eq!(failed.status.code(), Some(2), "{extra:?}: {message}");
        assert!(message.contains(expected), "{extra:?}: {message}");
    }
    assert!(!Path::new(out).join("_checkpoints").exists());
}
