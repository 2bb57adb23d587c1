//! `kinesis://STREAM[?start=…&kind=…&format=…]`: a stream as a job input.
//!
//! - `start`: `trim_horizon` (default), `latest`, or `at_timestamp:<epoch ms | RFC 3339>`.
//! - `format`: how a record's lines are written: `ndjson` (default), `csv` (the original
//!   producers' `company_id,userid,#job_submitted[,timestamp]`), or `auto` (a line that
//!   starts with `{` is JSON, any other CSV).
//! - `consumer`: read with enhanced fan-out as this consumer (registered if needed).
//! - `kind`: the kind of untagged records, `job`, `company` or `auto`; by default
//!   `bigdatajobs` holds job events, `companies` companies, other streams `auto`.

use tenantflow_core::RecordKind;

use crate::consumer::StartPosition;
use crate::error::KinesisError;

/// A parsed `kinesis://` input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KinesisInput {
    /// The stream's name.
    pub stream: String,
    /// Where to start reading.
    pub start: StartPosition,
    /// The kind of untagged records; `None` infers it per record.
    pub kind: Option<RecordKind>,
    /// Enhanced fan-out consumer name, if reading by SubscribeToShard.
    pub consumer: Option<String>,
    /// How records are written.
    pub format: RecordFormat,
}

/// How a stream's records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordFormat {
    /// JSON objects, one per line.
    #[default]
    Ndjson,
    /// Headerless CSV lines.
    Csv,
    /// Per line: JSON if it starts with `{`, else CSV.
    Auto,
}

impl RecordFormat {
    /// Whether `line` is to be read as JSON.
    pub fn is_json(self, line: &[u8]) -> bool {
        match self {
            RecordFormat::Ndjson => true,
            RecordFormat::Csv => false,
            RecordFormat::Auto => line.trim_ascii_start().starts_with(b"{"),
        }
    }
}

impl KinesisInput {
    /// True if `arg` names a Kinesis stream.
    pub fn is_kinesis(arg: &str) -> bool {
        arg.starts_with("kinesis://")
    }

    /// Parses `kinesis://STREAM[?start=…&kind=…&format=…&consumer=…]`.
    ///
    /// # Errors
    /// A malformed URL, stream name, or option, saying what is expected.
    pub fn parse(arg: &str) -> Result<Self, KinesisError> {
        let invalid = |why: String| KinesisError::InvalidUrl(arg.to_owned(), why);
        let rest = arg
            .strip_prefix("kinesis://")
            .ok_or_else(|| invalid("expected kinesis://STREAM".into()))?;
        let (stream, query) = rest.split_once('?').unwrap_or((rest, ""));
        let valid_name = !stream.is_empty()
            && stream.len() <= 128
            && stream
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
        if !valid_name {
            return Err(invalid(format!(
                "stream name `{stream}` must be 1-128 characters of a-z, A-Z, 0-9, `_`, `.`, `-`"
            )));
        }
        let mut input = KinesisInput {
            stream: stream.to_owned(),
            start: StartPosition::TrimHorizon,
            kind: match stream {
                "bigdatajobs" => Some(RecordKind::Job),
                "companies" => Some(RecordKind::Company),
                _ => None,
            },
            consumer: None,
            format: RecordFormat::Ndjson,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "start" => input.start = parse_start(value).map_err(invalid)?,
                "kind" => {
                    input.kind = match value {
                        "job" => Some(RecordKind::Job),
                        "company" => Some(RecordKind::Company),
                        "auto" => None,
                        other => {
                            return Err(invalid(format!(
                                "kind `{other}`: expected job, company or auto"
                            )));
                        }
                    }
                }
                "format" => {
                    input.format = match value {
                        "ndjson" => RecordFormat::Ndjson,
                        "csv" => RecordFormat::Csv,
                        "auto" => RecordFormat::Auto,
                        other => {
                            return Err(invalid(format!(
                                "format `{other}`: expected ndjson, csv or auto"
                            )));
                        }
                    }
                }
                "consumer" => {
                    let valid = !value.is_empty()
                        && value.len() <= 128
                        && value
                            .bytes()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
                    if !valid {
                        return Err(invalid(format!(
                            "consumer name `{value}` must be 1-128 characters of a-z, A-Z, 0-9, `_`, `.`, `-`"
                        )));
                    }
                    input.consumer = Some(value.to_owned());
                }
                other => {
                    return Err(invalid(format!(
                        "unknown option `{other}` (expected start, kind, format or consumer)"
                    )));
                }
            }
        }
        Ok(input)
    }
}

fn parse_start(value: &str) -> Result<StartPosition, String> {
    match value {
        "trim_horizon" => Ok(StartPosition::TrimHorizon),
        "latest" => Ok(StartPosition::Latest),
        _ => {
            let time = value.strip_prefix("at_timestamp:").ok_or_else(|| {
                format!("start `{value}`: expected trim_horizon, latest or at_timestamp:<time>")
            })?;
            if let Ok(ms) = time.parse::<i64>() {
                return Ok(StartPosition::AtTimestamp(ms));
            }
            aws_sdk_kinesis::primitives::DateTime::from_str(
                time,
                aws_sdk_kinesis::primitives::DateTimeFormat::DateTime,
            )
            .ok()
            .and_then(|t| t.to_millis().ok())
            .map(StartPosition::AtTimestamp)
            .ok_or_else(|| format!("`{time}` is neither epoch milliseconds nor an RFC 3339 time"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_kinds_and_start_positions() {
        let i = KinesisInput::parse("kinesis://bigdatajobs").unwrap();
        assert_eq!(
            (i.stream.as_str(), i.kind, &i.start),
            (
                "bigdatajobs",
                Some(RecordKind::Job),
                &StartPosition::TrimHorizon
            )
        );
        assert_eq!(
            KinesisInput::parse("kinesis://companies").unwrap().kind,
            Some(RecordKind::Company)
        );
        assert_eq!(
            KinesisInput::parse("kinesis://w1?consumer=tf-1")
                .unwrap()
                .consumer
                .as_deref(),
            Some("tf-1")
        );
        let i = KinesisInput::parse("kinesis://w1?start=latest&kind=auto").unwrap();
        assert_eq!((i.kind, i.start), (None, StartPosition::Latest));
        assert_eq!(i.format, RecordFormat::Ndjson);
        let i = KinesisInput::parse("kinesis://bigdatajobs?format=auto").unwrap();
        assert_eq!(i.format, RecordFormat::Auto);
        assert!(i.format.is_json(b" {\"companyID\":1}"));
        assert!(!i.format.is_json(b"comp_4,user_1,3"));
        assert!(
            !KinesisInput::parse("kinesis://b?format=csv")
                .unwrap()
                .format
                .is_json(b"{")
        );
        let i =
            KinesisInput::parse("kinesis://w1?start=at_timestamp:2026-01-01T00:00:00Z").unwrap();
        assert_eq!(i.start, StartPosition::AtTimestamp(1_767_225_600_000));
        assert_eq!(
            KinesisInput::parse("kinesis://w1?start=at_timestamp:5")
                .unwrap()
                .start,
            StartPosition::AtTimestamp(5)
        );
    }

    #[test]
    fn bad_urls_say_what_is_expected() {
        for (url, words) in [
            ("kinesis://", "stream name"),
            ("kinesis://a b", "stream name"),
            ("kinesis://s?start=yesterday", "trim_horizon, latest"),
            ("kinesis://s?kind=invoice", "job, company or auto"),
            ("kinesis://s?format=xml", "ndjson, csv or auto"),
            ("kinesis://s?shards=2", "unknown option"),
        ] {
            let e = KinesisInput::parse(url).unwrap_err().to_string();
            assert!(e.contains(words), "{url}: {e}");
        }
    }
}
