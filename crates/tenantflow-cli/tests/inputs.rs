//! Input kinds (stdin, gzip, folders), the embedded default run, and output folder
//! protection.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::{check_output_figures, gen_w1, shared, tenantflow};
use crate::reference::{Figures, RefModel, run_ndjson};

#[test]
#[cfg_attr(not(have_shared), ignore = "needs ../shared/ beside the repository")]
fn stdin_gzip_and_folder_inputs_give_the_same_results_as_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = gen_w1(dir.path(), 20_000, 300, 9);
    let want = Figures::of(&run_ndjson(
        &input,
        &RefModel::load(&shared("bench/model.json")),
    ));
    let model = shared("bench/model.json");
    let model = model.to_str().unwrap();

    // stdin
    let out = dir.path().join("stdin");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tenantflow"))
        .args([
            "run",
            "--input",
            "-",
            "--quiet",
            "--model",
            model,
            "--output",
            out.to_str().unwrap(),
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&std::fs::read(&input).unwrap())
        .unwrap();
    assert!(child.wait().unwrap().success());
    check_output_figures(&out).assert_matches(&want, "stdin");

    // A folder of two parts, read in name order, the first gzip-compressed.
    let text = std::fs::read_to_string(&input).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (first, second) = lines.split_at(lines.len() / 2);
    let folder = dir.path().join("parts");
    std::fs::create_dir(&folder).unwrap();
    let mut gz = flate2_writer(&folder.join("part-1.ndjson.gz"));
    gz.write_all((first.join("\n") + "\n").as_bytes()).unwrap();
    gz.finish().unwrap();
    std::fs::write(folder.join("part-2.ndjson"), second.join("\n")).unwrap();
    let out = dir.path().join("folder");
    tenantflow(&[
        "run",
        "--input",
        folder.to_str().unwrap(),
        "--quiet",
        "--model",
        model,
        "--output",
        out.to_str().unwrap(),
    ]);
    check_output_figures(&out).assert_matches(&want, "folder");
}

fn flate2_writer(path: &std::path::Path) -> GzFile {
    GzFile::new(path)
}

/// A minimal gzip writer via the system's `gzip`, so the tests need no extra crate.
struct GzFile {
    child: std::process::Child,
}

impl GzFile {
    fn new(path: &std::path::Path) -> Self {
        let file = std::fs::File::create(path).unwrap();
        let child = Command::new("gzip")
            .arg("-c")
            .stdin(Stdio::piped())
            .stdout(file)
            .spawn()
            .unwrap();
        Self { child }
    }

    fn finish(mut self) -> std::io::Result<()> {
        drop(self.child.stdin.take());
        assert!(self.child.wait()?.success());
        Ok(())
    }
}

impl Write for GzFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.child.stdin.as_mut().unwrap().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.child.stdin.as_mut().unwrap().flush()
    }
}

#[test]
#[cfg_attr(not(have_shared), ignore = "needs ../shared/ beside the repository")]
fn no_flags_runs_the_generator_into_tenantflow_out_and_protects_it() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tenantflow"))
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let first = run(&["run"]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let summary = String::from_utf8_lossy(&first.stdout);
    assert!(summary.contains("from generator"), "{summary}");
    assert!(summary.contains("-> ./tenantflow-out"), "{summary}");
    let figures = check_output_figures(&dir.path().join("tenantflow-out"));
    assert!(figures.lines > 990_000, "{figures:?}");

    // Another job into the same output: its checkpoint is not this job's.
    let second = run(&["run", "--generate", "1000"]);
    assert!(!second.status.success());
    let error = String::from_utf8_lossy(&second.stderr);
    assert!(
        error.contains("different job") && error.contains("--from-scratch"),
        "{error}"
    );
    // Starting over still protects the results.
    let second = run(&["run", "--generate", "1000", "--from-scratch"]);
    assert!(!second.status.success());
    let error = String::from_utf8_lossy(&second.stderr);
    assert!(
        error.contains("already holds results") && error.contains("--overwrite"),
        "{error}"
    );

    let third = run(&["run", "--generate", "1000", "--overwrite", "--quiet"]);
    assert!(third.status.success());
    assert!(third.stdout.is_empty());
    assert!(check_output_figures(&dir.path().join("tenantflow-out")).lines < 1000);
}

#[test]
fn bad_flags_fail_with_the_flag_named() {
    let out = Command::new(env!("CARGO_BIN_EXE_tenantflow"))
        .args(["run", "--format", "xml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--format"));
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tenantflow"))
        .args(["run", "--model", "/no/such/model.json", "--output"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/model.json"));
}
