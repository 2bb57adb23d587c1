//! Raw bytes to typed [`Record`]s.
//!
//! One [`Decoder`] per input, told which kind an untagged record is ([`DefaultKind`]).
//! JSON lines go through a scanner for the exact shape of canonical job events, then a
//! scanner for flat objects, both borrowing their strings from the input ([`json`]); anything the scanner does not handle (escapes, nesting, odd
//! numbers, invalid input) falls back to `serde_json`, which also words the errors. Both
//! fill the same [`RawRecord`], validated by one function, so both paths accept exactly
//! the same records.

mod csv;
mod json;
mod raw;

use std::borrow::Cow;

use thiserror::Error;

pub use raw::RawRecord;

use crate::record::Record;

/// Which kind an untagged record is. A `type` tag always overrides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DefaultKind {
    /// A record with an `industry` field is a company, any other a job event.
    #[default]
    #[serde(rename = "auto")]
    Infer,
    /// Untagged records are job events.
    Job,
    /// Untagged records are companies.
    Company,
}

/// Why a line could not be decoded. Display gives a sentence fit for a dead letter.
#[derive(Debug, Error, PartialEq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The line is not UTF-8.
    #[error("invalid UTF-8 at byte {valid_up_to}")]
    InvalidUtf8 {
        /// Bytes before the first invalid sequence.
        valid_up_to: usize,
    },
    /// The line is not a JSON object of the expected shape.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// A required field is absent (or null).
    #[error("missing field `{field}` in a {kind} record")]
    MissingField {
        /// Canonical field name.
        field: &'static str,
        /// `job` or `company`.
        kind: &'static str,
    },
    /// A field outside its bounds (see [`crate::validate`]).
    #[error("field `{field}` must be {expected}, got {got}")]
    Invalid {
        /// Canonical field name.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
        /// What it was, cut short.
        got: String,
    },
    /// The `type` tag names no known kind.
    #[error("unknown type tag `{0}` (expected `job` or `company`)")]
    UnknownType(String),
    /// A CSV line that fits neither layout.
    #[error("CSV: {0}")]
    Csv(String),
}

/// Decodes lines of one input. Cheap to create and to copy.
#[derive(Debug, Clone, Copy, Default)]
pub struct Decoder {
    default_kind: DefaultKind,
}

impl Decoder {
    /// A decoder that gives untagged records the kind `default_kind`.
    pub fn new(default_kind: DefaultKind) -> Self {
        Self { default_kind }
    }

    /// Decodes one JSON line (without its newline).
    ///
    /// # Errors
    /// A [`DecodeError`] saying what is wrong with the line.
    pub fn decode_json<'a>(&self, line: &'a [u8]) -> Result<Record<'a>, DecodeError> {
        let tag_required = self.default_kind == DefaultKind::Company;
        if let Some(job) = json::scan_canonical_job(line, tag_required) {
            return Ok(Record::Job(job));
        }
        let raw = match json::scan_flat_object(line) {
            Some(raw) => raw,
            None => json::parse_with_serde(line)?,
        };
        raw.into_record(self.default_kind)
    }

    /// Decodes one CSV line (without its newline). Returns `Ok(None)` for a header line,
    /// which only the first line of an input (`first_line`) can be.
    ///
    /// Layouts, told apart by the number of columns: job events
    /// `company_id,userid,#job_submitted[,timestamp]` and companies
    /// `company_id,industry,revenu,employees,job30,job90,monthlyFee,totalFee[,churn]`.
    ///
    /// # Errors
    /// A [`DecodeError`] saying what is wrong with the line.
    pub fn decode_csv<'a>(
        &self,
        line: &'a [u8],
        first_line: bool,
    ) -> Result<Option<Record<'a>>, DecodeError> {
        csv::decode_line(line, first_line)
    }
}

fn utf8(bytes: &[u8]) -> Result<&str, DecodeError> {
    std::str::from_utf8(bytes).map_err(|e| DecodeError::InvalidUtf8 {
        valid_up_to: e.valid_up_to(),
    })
}

/// `s` cut to at most `max` bytes at a character boundary, with `…` when cut: a value
/// quoted in an error message.
pub fn truncated(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max {
        return Cow::Borrowed(s);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &s[..end]))
}
