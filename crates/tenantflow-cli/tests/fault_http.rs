//! One HTTP fault proxy for the tests: in front of a real server (a scorer, a
//! TenantManager), each request is forwarded, delayed, answered with an error status,
//! reset, or left unanswered, as the test's plan decides from the request and how often
//! the same body came before. Connections are kept alive, as the job's client keeps
//! them.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request, as the plan sees it.
pub struct Request<'a> {
    pub body: &'a [u8],
    /// A hash of the request line and body: the same request retried has the same one.
    pub hash: u64,
    /// 1 for the first time this request came, 2 for its first retry, …
    pub attempt: u64,
}

/// What the proxy does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Forward it and pass the answer back.
    Forward,
    /// Answer with this status (and `retry-after: 0` for 429 and 503).
    Status(u16),
    /// Close the connection without an answer.
    Reset,
    /// Keep the connection open without an answer this long, then close it.
    Silence(Duration),
}

/// A plan's decision: wait `delay`, then do `then`.
#[derive(Debug, Clone, Copy)]
pub struct Action {
    pub delay: Duration,
    pub then: Then,
}

/// What the proxy saw.
#[derive(Default)]
pub struct Stats {
    pub in_flight: AtomicUsize,
    pub most_in_flight: AtomicUsize,
    pub requests: AtomicUsize,
    /// Faults injected, by kind: the status code (`"500"`), `"reset"`, `"silence"`.
    faults: Mutex<HashMap<String, usize>>,
    attempts: Mutex<HashMap<u64, u64>>,
}

impl Stats {
    /// Faults of `kind` injected so far.
    pub fn faults(&self, kind: &str) -> usize {
        self.faults.lock().unwrap().get(kind).copied().unwrap_or(0)
    }

    fn count(&self, kind: String) {
        *self.faults.lock().unwrap().entry(kind).or_default() += 1;
    }
}

/// A running proxy; it serves until the test process ends.
pub struct Proxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    pub stats: Arc<Stats>,
}

/// Starts a proxy in front of `upstream` (`host:port`) that does what `plan` decides.
pub fn start(
    upstream: String,
    plan: impl Fn(&Request<'_>) -> Action + Send + Sync + 'static,
) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stats = Arc::new(Stats::default());
    let shared = Arc::clone(&stats);
    let plan = Arc::new(plan);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (stats, plan, upstream) =
                (Arc::clone(&shared), Arc::clone(&plan), upstream.clone());
            std::thread::spawn(move || serve(stream, &upstream, &stats, &*plan));
        }
    });
    Proxy { url, stats }
}

/// FNV-1a of `parts`.
pub fn hash(parts: &[&[u8]]) -> u64 {
    parts
        .iter()
        .flat_map(|p| p.iter())
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

fn serve(
    mut stream: TcpStream,
    upstream: &str,
    stats: &Stats,
    plan: &(dyn Fn(&Request<'_>) -> Action + Send + Sync),
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end().to_owned();
        let mut headers = Vec::new();
        let mut length = 0;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                } else if !name.eq_ignore_ascii_case("connection") {
                    headers.push(header.trim_end().to_owned());
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        stats.requests.fetch_add(1, Ordering::SeqCst);
        let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        stats.most_in_flight.fetch_max(now, Ordering::SeqCst);
        let hash = hash(&[line.as_bytes(), &body]);
        let attempt = {
            let mut attempts = stats.attempts.lock().unwrap();
            let n = attempts.entry(hash).or_default();
            *n += 1;
            *n
        };
        let action = plan(&Request {
            body: &body,
            hash,
            attempt,
        });
        std::thread::sleep(action.delay);
        let answer = match action.then {
            Then::Forward => Some(forward(upstream, &line, &headers, &body)),
            Then::Status(code) => {
                stats.count(code.to_string());
                let retry = if matches!(code, 429 | 503) {
                    "retry-after: 0\r\n"
                } else {
                    ""
                };
                Some(
                    format!("HTTP/1.1 {code} Fault\r\n{retry}content-length: 5\r\n\r\nfault")
                        .into_bytes(),
                )
            }
            Then::Reset | Then::Silence(_) => None,
        };
        stats.in_flight.fetch_sub(1, Ordering::SeqCst);
        match (answer, action.then) {
            (Some(bytes), _) => {
                let _ = stream.write_all(&bytes);
                let _ = stream.flush();
            }
            (None, Then::Silence(d)) => {
                stats.count("silence".into());
                std::thread::sleep(d);
                return;
            }
            (None, _) => {
                stats.count("reset".into());
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

/// Sends the request to `upstream` on a connection of its own and returns the whole
/// answer, made to keep the client's connection open.
fn forward(upstream: &str, line: &str, headers: &[String], body: &[u8]) -> Vec<u8> {
    let mut server = TcpStream::connect(upstream).unwrap();
    let mut head = format!("{line}\r\n");
    for header in headers {
        if !header.to_ascii_lowercase().starts_with("host:") {
            head.push_str(header);
            head.push_str("\r\n");
        }
    }
    head.push_str(&format!(
        "host: {upstream}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    server.write_all(head.as_bytes()).unwrap();
    server.write_all(body).unwrap();
    let mut answer = Vec::new();
    server.read_to_end(&mut answer).unwrap();
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let body = &answer[split + 4..];
    let mut out = String::new();
    // The answer to a HEAD has no body, but its content-length is the object's: kept.
    let is_head = line.starts_with("HEAD ");
    for (i, header) in head.split("\r\n").enumerate() {
        let lower = header.to_ascii_lowercase();
        if is_head && lower.starts_with("content-length:") {
            out.push_str(header);
            out.push_str("\r\n");
            continue;
        }
        if i > 0
            && (lower.starts_with("content-length:")
                || lower.starts_with("connection:")
                || lower.starts_with("transfer-encoding:"))
        {
            continue;
        }
        out.push_str(header);
        out.push_str("\r\n");
    }
    if is_head {
        out.push_str("\r\n");
    } else {
        out.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    }
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}
