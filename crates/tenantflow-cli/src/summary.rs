//! The run's summary as JSON (`--summary-json FILE`): the figures of the text summary,
//! under the same names, for scripts and tests to read instead of English text.

use serde_json::{Value, json};

use tenantflow_core::DeadLetterReason;
use tenantflow_runtime::RunSummary;

/// The summary of `s` as one JSON object.
pub fn to_json(s: &RunSummary, inputs: &str, output: &str, format: &str, model: &str) -> Value {
    let m = &s.metrics;
    let secs = s.elapsed.as_secs_f64().max(1e-9);
    let dead_letters: serde_json::Map<String, Value> = DeadLetterReason::ALL
        .iter()
        .map(|r| (r.as_str().to_owned(), json!(m.dead_letters[r.index()])))
        .collect();
    let calls = |c: Option<(u64, u64, u64)>| {
        c.map(|(requests, retried, failed)| {
            json!({"requests": requests, "retried": retried, "failed_for_good": failed})
        })
    };
    json!({
        "inputs": inputs,
        "records_read": m.lines_read,
        "wall_seconds": s.elapsed.as_secs_f64(),
        "records_per_second": m.lines_read as f64 / secs,
        "workers": s.workers,
        "job_events": m.job_events,
        "company_records": m.company_records,
        "tenants_in_state": s.tenants,
        "results": m.results,
        "output": output,
        "format": format,
        "files": s.files.files,
        "bytes": s.files.bytes,
        "to_stream": s.output_stream.as_ref().map(|w| json!({
            "records": w.records,
            "requests": w.requests,
            "retried": w.retries,
            "throttled": w.throttles,
        })),
        "tenant_lookups": s.lookup_calls.map(|_| json!({
            "lookups": m.lookups,
            "profiles_fetched": m.tenants_fetched,
            "calls": calls(s.lookup_calls),
        })),
        "scoring_requests": calls(s.score_calls),
        "churn_flags_set": m.churn_flags,
        "model": model,
        "dead_letters": m.dead_letters_total(),
        "dead_letters_by_reason": dead_letters,
        "checkpoints": {
            "taken": s.checkpoints.checkpoints,
            "last": s.checkpoints.last,
            "files_committed": s.checkpoints.committed,
            "longest_seconds": s.checkpoints.longest.as_secs_f64(),
            "resumed_from": s.resumed_from,
        },
        "skipped": {
            "empty_lines": m.empty_lines,
            "csv_header_lines": m.header_lines,
        },
        "event_time_from_arrival": m.event_time_from_arrival,
        "redriven": m.redriven,
        "stopped_by_signal": s.stopped_by_signal,
    })
}
