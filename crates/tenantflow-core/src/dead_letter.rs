//! Dead letters: records the job could not turn into results, with the reason, and
//! the record as it was read, byte for byte, so that it can be fixed and re-driven
//! ([`Redriven`] reads one back).

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize, Serializer};

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
    /// The record's bytes when they are not UTF-8 (`record` is then a lossy copy),
    /// written in base64 as `recordBase64`: the original byte for byte.
    #[serde(
        rename = "recordBase64",
        skip_serializing_if = "Option::is_none",
        serialize_with = "base64_bytes"
    )]
    pub record_bytes: Option<&'a [u8]>,
    /// Set when `record` is only the start of a longer record.
    #[serde(
        rename = "recordTruncatedFrom",
        skip_serializing_if = "Option::is_none"
    )]
    pub record_truncated_from: Option<u64>,
}

fn base64_bytes<S: Serializer>(bytes: &Option<&[u8]>, s: S) -> Result<S::Ok, S::Error> {
    match bytes {
        Some(bytes) => s.serialize_str(&BASE64.encode(bytes)),
        None => s.serialize_none(),
    }
}

impl DeadLetter<'_> {
    /// Appends the dead letter to `out` as one JSON line.
    pub fn write_json_line(&self, out: &mut Vec<u8>) {
        // Serializing a struct of strings and numbers into a Vec cannot fail.
        serde_json::to_writer(&mut *out, self).expect("a dead letter serializes to JSON");
        out.push(b'\n');
    }
}

/// A dead letter read back to be processed again: its record as it was first read.
#[derive(Debug, PartialEq, Eq)]
pub struct Redriven<'a> {
    /// The record's bytes.
    pub record: Cow<'a, [u8]>,
    /// Why it became a dead letter.
    pub reason: String,
}

/// Why a line of a dead-letter file cannot be re-driven.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedriveError {
    /// The line is not a dead letter's JSON object.
    #[error("not a dead letter (a JSON object with `reason` and `record`): {0}")]
    NotADeadLetter(String),
    /// `recordBase64` is not base64.
    #[error("`recordBase64` is not base64: {0}")]
    Base64(String),
    /// The dead letter kept only the start of a record over the size limit.
    #[error(
        "this dead letter keeps only the first {kept} bytes of a record of {len} bytes: \
         read the record again from its source, with a --max-record-bytes that fits it"
    )]
    Truncated {
        /// Bytes kept.
        kept: usize,
        /// The record's length.
        len: u64,
    },
}

#[derive(Deserialize)]
struct Envelope<'a> {
    reason: String,
    #[serde(borrow)]
    record: Cow<'a, str>,
    #[serde(rename = "recordBase64", default)]
    record_base64: Option<String>,
    #[serde(rename = "recordTruncatedFrom", default)]
    record_truncated_from: Option<u64>,
}

impl<'a> Redriven<'a> {
    /// Whether the record is read as JSON (it starts with `{`) or else as CSV: the
    /// rule for stream records, which carry no format either.
    pub fn is_json(&self) -> bool {
        self.record.trim_ascii_start().starts_with(b"{")
    }

    /// Reads one line of a dead-letter file (as [`DeadLetter::write_json_line`] wrote
    /// it, possibly with its `record` edited): the record to process again.
    ///
    /// # Errors
    /// When the line is not a dead letter, or its record cannot be processed again whole.
    pub fn parse(line: &'a [u8]) -> Result<Self, RedriveError> {
        let envelope: Envelope<'a> = serde_json::from_slice(line)
            .map_err(|e| RedriveError::NotADeadLetter(e.to_string()))?;
        let record: Cow<'a, [u8]> = match envelope.record_base64 {
            Some(encoded) => Cow::Owned(
                BASE64
                    .decode(encoded)
                    .map_err(|e| RedriveError::Base64(e.to_string()))?,
            ),
            None => match envelope.record {
                Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
                Cow::Owned(s) => Cow::Owned(s.into_bytes()),
            },
        };
        if let Some(len) = envelope.record_truncated_from {
            return Err(RedriveError::Truncated {
                kept: record.len(),
                len,
            });
        }
        Ok(Self {
            record,
            reason: envelope.reason,
        })
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
            record_bytes: None,
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

    fn written(letter: &DeadLetter<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        letter.write_json_line(&mut out);
        out
    }

    fn letter<'a>(record: &'a str, bytes: Option<&'a [u8]>) -> DeadLetter<'a> {
        DeadLetter {
            reason: DeadLetterReason::UnknownCompany,
            error: "no profile",
            source: "in.csv",
            line: Some(2),
            shard: None,
            sequence: None,
            record,
            record_lossy: bytes.is_some(),
            record_bytes: bytes,
            record_truncated_from: None,
        }
    }

    #[test]
    fn a_dead_letter_gives_back_its_record_byte_for_byte() {
        let cases: [&[u8]; 4] = [
            br#"{ "companyID" : "c\u00e9", "userID":"u", "nbJobs": 1 }  "#,
            b"comp_1,user 2,3,1767225601555\r",
            "caf\u{e9},\u{1F600},\t\"quoted\"".as_bytes(),
            b"\xff\xfe,not utf-8,\x00",
        ];
        for original in cases {
            let text = String::from_utf8_lossy(original);
            let bytes = std::str::from_utf8(original).is_err().then_some(original);
            let line = written(&letter(&text, bytes));
            assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
            let back = Redriven::parse(line.trim_ascii_end()).unwrap();
            assert_eq!(&*back.record, original, "{text}");
            assert_eq!(back.reason, "unknown_company");
        }
    }

    #[test]
    fn what_cannot_be_re_driven_says_why() {
        let mut truncated = letter("comp_1,u", None);
        truncated.reason = DeadLetterReason::RecordTooLarge;
        truncated.record_truncated_from = Some(5_000_000);
        let line = written(&truncated);
        assert_eq!(
            Redriven::parse(&line),
            Err(RedriveError::Truncated {
                kept: 8,
                len: 5_000_000
            })
        );
        for bad in [
            &b"comp_1,u,1"[..],
            br#"{"reason":"malformed"}"#,
            br#"{"reason":"malformed","record":7}"#,
            br#"{"reason":"malformed","record":"x","recordBase64":"%%"}"#,
        ] {
            let error = Redriven::parse(bad).unwrap_err().to_string();
            assert!(
                error.contains("not a dead letter") || error.contains("base64"),
                "{error}"
            );
        }
    }
}
