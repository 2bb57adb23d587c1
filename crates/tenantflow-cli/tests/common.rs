//! Helpers: paths of shared fixtures, running the binary, reading results back.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::reference::Figures;

/// `../shared/` beside the repository.
pub fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared")
        .join(rel)
}

/// Runs `tenantflow` with `args`; panics with its output unless it succeeds.
pub fn tenantflow(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_tenantflow"))
        .args(args)
        .output()
        .expect("tenantflow starts");
    succeeded(args, out)
}

/// Static credentials and region for the AWS clients of a run against local servers
/// (nothing leaves loopback): no profile, no instance metadata.
pub fn local_aws(cmd: &mut Command) -> &mut Command {
    cmd.env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
}

/// `out` of `tenantflow ARGS`; panics with its output unless it succeeded.
pub fn succeeded(args: &[&str], out: Output) -> Output {
    assert!(
        out.status.success(),
        "tenantflow {args:?} failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Where a test keeps the `--summary-json` of the run into `out`: beside it.
pub fn summary_path(out: &Path) -> PathBuf {
    out.with_extension("summary.json")
}

/// The `--summary-json` a run wrote to `path`.
pub fn read_summary(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A `tenantflow run` to start: quiet, into an output folder, its summary beside it.
///
/// ```ignore
/// let summary = JobRun::new(&out).input(&w1).args(&["--format", "csv"]).summary();
/// ```
pub struct JobRun {
    out: PathBuf,
    inputs: Vec<PathBuf>,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl JobRun {
    /// A run into `out`.
    pub fn new(out: &Path) -> Self {
        Self {
            out: out.to_path_buf(),
            inputs: Vec::new(),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Reads `input` (repeatable; without any, the generator).
    pub fn input(mut self, input: &Path) -> Self {
        self.inputs.push(input.to_path_buf());
        self
    }

    /// More flags.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    /// An environment variable of the run.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Where the run writes its `--summary-json`.
    pub fn summary_path(&self) -> PathBuf {
        summary_path(&self.out)
    }

    /// The command, not yet started (to kill it, or to read its output).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tenantflow"));
        cmd.args(["run", "--quiet", "--output"]).arg(&self.out);
        for input in &self.inputs {
            cmd.arg("--input").arg(input);
        }
        cmd.arg("--summary-json")
            .arg(self.summary_path())
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd
    }

    /// Runs it, panicking with its output unless it succeeds; its summary.
    pub fn summary(&self) -> serde_json::Value {
        let out = self.command().output().expect("tenantflow starts");
        let shown = format!("run into {}: {:?}", self.out.display(), self.args);
        succeeded(&[shown.as_str()], out);
        read_summary(&self.summary_path())
    }
}

/// `tenantflow run --quiet --input INPUT --output OUT EXTRA`, panicking unless it
/// succeeds; its `--summary-json`.
pub fn run_summary(input: &Path, out: &Path, extra: &[&str]) -> serde_json::Value {
    JobRun::new(out).input(input).args(extra).summary()
}

/// Files under `dir`, at any depth, whose name `matches`.
pub fn files_where(dir: &Path, matches: &dyn Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_where(&path, matches));
        } else if matches(&entry.file_name().to_string_lossy()) {
            found.push(path);
        }
    }
    found
}

/// Writes a W1 file with the shared generator.
pub fn gen_w1(dir: &Path, events: u64, companies: u64, seed: u64) -> PathBuf {
    let path = dir.join(format!("w1-{events}-{companies}-{seed}.ndjson"));
    let status = Command::new("python3")
        .arg(shared("bench/gen_workload.py"))
        .args(["--events", &events.to_string()])
        .args(["--companies", &companies.to_string()])
        .args(["--seed", &seed.to_string()])
        .arg("--out")
        .arg(&path)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("python3 runs gen_workload.py");
    assert!(status.success());
    path
}

/// Every result file under `dir` (names and folders not starting with `_` or `.`, and
/// not the BI aggregates' folder).
pub fn result_files(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(['_', '.']) || (d == dir && name == "aggregates") {
                continue;
            }
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                assert!(name.ends_with(extension), "unexpected file {name}");
                out.push(entry.path());
            }
        }
    }
    out.sort();
    out
}

/// The five figures of `check_output.py`, as it prints them for `dir`.
pub fn check_output_figures(dir: &Path) -> Figures {
    let out = Command::new("python3")
        .arg(shared("bench/check_output.py"))
        .arg(dir)
        .output()
        .expect("python3 runs check_output.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Figures::parse(&String::from_utf8_lossy(&out.stdout))
}

/// Runs `check_output.py DIR --expect FILE` with `want` and asserts it says MATCH.
pub fn assert_check_output_matches(dir: &Path, want: &Figures) {
    let expect = dir.with_extension("expected.txt");
    std::fs::write(&expect, want.to_check_output_text()).unwrap();
    let out = Command::new("python3")
        .arg(shared("bench/check_output.py"))
        .arg(dir)
        .arg("--expect")
        .arg(&expect)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "check_output.py disagrees with the reference:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every result line under `dir`, sorted: equal sets mean equal results record by record.
pub fn sorted_result_lines(dir: &Path) -> Vec<String> {
    let mut lines: Vec<String> = result_files(dir, ".ndjson")
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    lines.sort();
    lines
}

/// The results under `got` equal those under `want`: the five figures of
/// `check_output.py`, and every line (sorted), with the first difference shown.
pub fn assert_same_results(got: &Path, want: &Path, what: &str) {
    check_output_figures(got).assert_matches(&check_output_figures(want), what);
    let (g, w) = (sorted_result_lines(got), sorted_result_lines(want));
    assert_eq!(g.len(), w.len(), "{what}: number of results");
    if let Some(i) = (0..g.len()).find(|&i| g[i] != w[i]) {
        panic!("{what}: results differ:\n got  {}\n want {}", g[i], w[i]);
    }
}

/// A `tenantflow` server child (`tenant-manager`, `scorer`) on a free loopback port,
/// stopped on drop.
pub struct Server {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Server {
    /// Starts `tenantflow ARGS --listen 127.0.0.1:PORT` and waits until its stderr says
    /// `ready` (it says so once it listens).
    pub fn start(args: &[&str], ready: &str) -> Self {
        use std::io::BufRead;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_tenantflow"))
            .args(args)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = std::io::BufReader::new(stderr).lines();
        let mut said = Vec::new();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains(ready) => break,
                Some(Ok(line)) => said.push(line),
                _ => panic!("tenantflow {args:?} did not start: {said:?}"),
            }
        }
        // Keep reading (and dropping) what it says, so that it never blocks on stderr.
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A seeded hash of `x` (the first SplitMix64 output seeded with it): the tests' faults
/// and workloads are drawn from it.
pub fn splitmix(x: u64) -> u64 {
    tenantflow_core::rng::SplitMix64::new(x).next_u64()
}

/// One HTTP/1.1 request to a loopback server at `addr` (`HOST:PORT`) on a connection of
/// its own: the status and the body. A body goes as `application/json` unless `headers`
/// name a content type; a server that answers before it has read the body (a 413) is
/// heard all the same.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(b) = body {
        if !headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        {
            head.push_str("content-type: application/json\r\n");
        }
        head.push_str(&format!("content-length: {}\r\n", b.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let _ = stream.write_all(body.unwrap_or("").as_bytes());
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    let status = answer[9..12].parse().unwrap();
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}
