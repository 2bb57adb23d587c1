//! An HTTP proxy on loopback in front of the Kinesis server that injects the faults the
//! service produces under load, deterministically:
//! - GetRecords: every 3rd call answered `ProvisionedThroughputExceededException`, every
//!   7th `ExpiredIteratorException` (the iterator is not used, so nothing is lost).
//! - PutRecords: every 4th request refused whole as throttled; in every 5th, every other
//!   record is taken out before forwarding and reported failed as throttled, the way the
//!   service reports a partial failure (those records really were not stored).
#![cfg(feature = "kinesis-integration-tests")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

/// Faults injected so far.
#[derive(Default)]
pub struct Injected {
    pub get_throttled: AtomicU64,
    pub get_expired: AtomicU64,
    pub put_throttled: AtomicU64,
    pub put_partial: AtomicU64,
    get_calls: AtomicU64,
    put_calls: AtomicU64,
}

/// Starts the proxy in front of `upstream` (`host:port`); returns its URL and counters.
/// It serves until the test process ends.
pub fn start(upstream: String) -> (String, Arc<Injected>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let injected = Arc::new(Injected::default());
    let counters = Arc::clone(&injected);
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let upstream = upstream.clone();
            let counters = Arc::clone(&counters);
            std::thread::spawn(move || {
                let _ = serve(client, &upstream, &counters);
            });
        }
    });
    (url, injected)
}

struct Message {
    head: Vec<String>,
    body: Vec<u8>,
}

fn read_message(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<Message>> {
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let line = line.trim_end().to_owned();
        if line.is_empty() {
            break;
        }
        head.push(line);
    }
    let length = head
        .iter()
        .find_map(|h| {
            let (name, value) = h.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Some(Message { head, body }))
}

fn write_message(out: &mut TcpStream, head: &[String], body: &[u8]) -> std::io::Result<()> {
    let mut text = String::new();
    for line in head {
        if line.to_ascii_lowercase().starts_with("content-length:") {
            continue;
        }
        text.push_str(line);
        text.push_str("\r\n");
    }
    text.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    out.write_all(text.as_bytes())?;
    out.write_all(body)?;
    out.flush()
}

fn error_response(out: &mut TcpStream, kind: &str) -> std::io::Result<()> {
    let body = format!(r#"{{"__type":"{kind}","message":"injected by the test proxy"}}"#);
    let head = vec![
        "HTTP/1.1 400 Bad Request".to_owned(),
        "Content-Type: application/x-amz-json-1.1".to_owned(),
        "x-amzn-RequestId: injected".to_owned(),
    ];
    write_message(out, &head, body.as_bytes())
}

fn serve(client: TcpStream, upstream: &str, n: &Injected) -> std::io::Result<()> {
    let mut to_client = client.try_clone()?;
    let mut from_client = BufReader::new(client);
    let server = TcpStream::connect(upstream)?;
    let mut to_server = server.try_clone()?;
    let mut from_server = BufReader::new(server);
    while let Some(request) = read_message(&mut from_client)? {
        let target = request
            .head
            .iter()
            .find_map(|h| {
                h.strip_prefix("x-amz-target:")
                    .or_else(|| h.strip_prefix("X-Amz-Target:"))
            })
            .map(|t| t.trim().to_owned())
            .unwrap_or_default();
        let mut body = request.body.clone();
        let mut dropped: Vec<usize> = Vec::new();
        if target.ends_with(".GetRecords") {
            let call = n.get_calls.fetch_add(1, Ordering::Relaxed) + 1;
            if call.is_multiple_of(7) {
                n.get_expired.fetch_add(1, Ordering::Relaxed);
                error_response(&mut to_client, "ExpiredIteratorException")?;
                continue;
            }
            if call.is_multiple_of(3) {
                n.get_throttled.fetch_add(1, Ordering::Relaxed);
                error_response(&mut to_client, "ProvisionedThroughputExceededException")?;
                continue;
            }
        } else if target.ends_with(".PutRecords") {
            let call = n.put_calls.fetch_add(1, Ordering::Relaxed) + 1;
            if call.is_multiple_of(4) {
                n.put_throttled.fetch_add(1, Ordering::Relaxed);
                error_response(&mut to_client, "ProvisionedThroughputExceededException")?;
                continue;
            }
            if call.is_multiple_of(5) {
                let mut json: Value = serde_json::from_slice(&body).unwrap();
                let records = json["Records"].as_array_mut().unwrap();
                if records.len() > 1 {
                    let mut kept = Vec::new();
                    for (i, r) in records.drain(..).enumerate() {
                        if i % 2 == 1 {
                            dropped.push(i)
                        } else {
                            kept.push(r)
                        }
                    }
                    *records = kept;
                    n.put_partial.fetch_add(1, Ordering::Relaxed);
                    body = serde_json::to_vec(&json).unwrap();
                }
            }
        }
        write_message(&mut to_server, &request.head, &body)?;
        let Some(response) = read_message(&mut from_server)? else {
            return Ok(());
        };
        if dropped.is_empty() {
            write_message(&mut to_client, &response.head, &response.body)?;
            continue;
        }
        // Put the refused records back into the answer, at their places, as failed.
        let mut json: Value = serde_json::from_slice(&response.body).unwrap();
        let stored: Vec<Value> = json["Records"].as_array().unwrap().clone();
        let total = stored.len() + dropped.len();
        let mut stored = stored.into_iter();
        let mut merged = Vec::with_capacity(total);
        for i in 0..total {
            if dropped.contains(&i) {
                merged.push(serde_json::json!({
                    "ErrorCode": "ProvisionedThroughputExceededException",
                    "ErrorMessage": "injected by the test proxy"
                }));
            } else {
                merged.push(stored.next().unwrap());
            }
        }
        let failed = json["FailedRecordCount"].as_u64().unwrap_or(0) + dropped.len() as u64;
        json["Records"] = Value::Array(merged);
        json["FailedRecordCount"] = failed.into();
        write_message(
            &mut to_client,
            &response.head,
            &serde_json::to_vec(&json).unwrap(),
        )?;
    }
    Ok(())
}
