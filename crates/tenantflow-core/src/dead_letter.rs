//! Dead letters: records the job could not turn into results, with the reason.

use std::fmt;

use serde::Serialize;

/// Why a record became a dead letter. The string form is the metric label and the
/// `reason` field of the dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterReason {
    /// The record could not be decoded (the error says why).
    Malformed,
    /// The record is longer than the record size limit.
    RecordTooLarge,
    /// A job event of a tenant the job has no profile for.
    UnknownCompany,
    /// A job event older than its tenant's window retention allows.
    TooLate,
    /// A job event whose tenant could not be looked up (retries exhausted, or an
    /// answer that is neither a profile nor "unknown").
    LookupFailed,
    /// A job event joined and counted, whose churn score the remote scorer could not
    /// give (retries exhausted, or an answer that cannot be used).
    ScoringFailed,
    /// A job event whose event time is outside the sane range: before 2000-01-01, or
    /// further ahead of the wall clock than the allowed skew.
    EventTimeOutOfRange,
    /// A job event from a file without `creationDate`, while arrival time is not asked
    /// for (`--missing-event-time arrival`).
    MissingEventTime,
    /// A record of a leased stream whose partition key is not its `companyID`: with
    /// leases, a tenant's records must all be in the shard that owns its state
    /// (`tenantflow repartition` re-keys such a stream).
    NotKeyedByTenant,
}

impl DeadLetterReason {
    /// Every reason, in a stable order (for counters and summaries).
    pub const ALL: [DeadLetterReason; 9] = [
        DeadLetterReason::Malformed,
        DeadLetterReason::RecordTooLarge,
        DeadLetterReason::UnknownCompany,
        DeadLetterReason::TooLate,
        DeadLetterReason::LookupFailed,
        DeadLetterReason::ScoringFailed,
        DeadLetterReason::EventTimeOutOfRange,
        DeadLetterReason::MissingEventTime,
        DeadLetterReason::NotKeyedByTenant,
    ];

    /// The reason as written in dead letters and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::Malformed => "malformed",
            DeadLetterReason::RecordTooLarge => "record_too_large",
            DeadLetterReason::UnknownCompany => "unknown_company",
            DeadLetterReason::TooLate => "too_late",
            DeadLetterReason::LookupFailed => "lookup_failed",
            DeadLetterReason::ScoringFailed => "scoring_failed",
            DeadLetterReason::EventTimeOutOfRange => "event_time_out_of_range",
            DeadLetterReason::MissingEventTime => "missing_event_time",
            DeadLetterReason::NotKeyedByTenant => "not_keyed_by_tenant",
        }
    }

    /// Index in [`DeadLetterReason::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for DeadLetterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A dead letter, borrowed from wherever the record is.
#[derive(Debug, Serialize)]
pub struct DeadLetter<'a> {
    /// Why.
    pub reason: DeadLetterReason,
    /// The error in words.
    pub error: &'a str,
    /// The source of the record: a file path, `-` for stdin, `generator`.
    pub source: &'a str,
    /// 1-based line number in the source, where it has lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// The shard, for a record read from a stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<&'a str>,
    /// The sequence number (and `/index` inside a KPL aggregate), for a stream record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence: Option<&'a str>,
    /// The original record, as text (invalid UTF-8 replaced by U+FFFD, and flagged).
    pub record: &'a str,
    /// Set when `record` is a lossy copy of bytes that were not UTF-8.
    #[serde(rename = "recordLossy", skip_serializing_if = "std::ops::Not::not")]
    pub record_lossy: bool,
    /// Set when `record` is only the start of a longer record.
    #[serde(
        rename = "recordTruncatedFrom",
        skip_serializing_if = "Option::is_none"
    )]
    pub record_truncated_from: Option<u64>,
}

impl DeadLetter<'_> {
    /// Appends the dead letter to `out` as one JSON line.
    pub fn write_json_line(&self, out: &mut Vec<u8>) {
        // Serializing a struct of strings and numbers into a Vec cannot fail.
        serde_json::to_writer(&mut *out, self).expect("a dead letter serializes to JSON");
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_json_line_keeps_the_record_verbatim() {
        let mut out = Vec::new();
        DeadLetter {
            reason: DeadLetterReason::Malformed,
            error: "invalid JSON: EOF",
            source: "in.ndjson",
            line: Some(3),
            shard: None,
            sequence: None,
            record: r#"{"companyID":"#,
            record_lossy: false,
            record_truncated_from: None,
        }
        .write_json_line(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            concat!(
                r#"{"reason":"malformed","error":"invalid JSON: EOF","source":"in.ndjson","#,
                r#""line":3,"record":"{\"companyID\":"}"#,
                "\n"
            )
        );
    }
}
