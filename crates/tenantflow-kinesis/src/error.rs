//! Errors of Kinesis calls, classified once: what is retried, and how.

use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};

/// How a failed call is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// The shard or account is over its limits: back off exponentially, with jitter.
    Throttled,
    /// A shard iterator expired: get a new one from the last position read.
    ExpiredIterator,
    /// A passing fault (connection, timeout, 5xx): retry with back-off.
    Transient,
    /// Retrying will not help.
    Never,
}

/// A failed Kinesis call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KinesisError {
    /// The service or the connection failed.
    #[error("{op} on stream {stream}: {code}: {message}")]
    Call {
        /// The API operation.
        op: &'static str,
        /// The stream.
        stream: String,
        /// The service's error code, or the kind of failure.
        code: String,
        /// The service's message.
        message: String,
        /// How to handle it.
        retry: Retry,
    },
    /// Waiting for a stream to become active (or go away) timed out.
    #[error("stream {stream} did not become {state} within {seconds} s")]
    Timeout {
        /// The stream.
        stream: String,
        /// The state waited for.
        state: &'static str,
        /// How long we waited.
        seconds: u64,
    },
    /// A record Kinesis would refuse.
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// Writes kept failing without progress.
    #[error(
        "writing to stream {stream}: gave up after {attempts} attempts in {seconds} s with no record acknowledged; last error: {last}"
    )]
    GaveUp {
        /// The stream.
        stream: String,
        /// Attempts made.
        attempts: u32,
        /// Seconds since the first of them.
        seconds: u64,
        /// The last failure, in words.
        last: String,
    },
    /// A stream name or URL is invalid.
    #[error("invalid Kinesis input `{0}`: {1}")]
    InvalidUrl(String, String),
}

impl KinesisError {
    /// How to handle this error.
    pub fn retry(&self) -> Retry {
        match self {
            KinesisError::Call { retry, .. } => *retry,
            _ => Retry::Never,
        }
    }

    /// The service's error code, if any.
    pub fn code(&self) -> Option<&str> {
        match self {
            KinesisError::Call { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Classifies an SDK error of operation `op` on `stream`.
    pub fn from_sdk<E, R>(op: &'static str, stream: &str, error: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let (code, retry) = match &error {
            SdkError::ServiceError(_) => {
                let code = error.code().unwrap_or("Unknown").to_owned();
                let retry = classify(&code);
                (code, retry)
            }
            SdkError::TimeoutError(_) => ("Timeout".to_owned(), Retry::Transient),
            SdkError::DispatchFailure(_) => ("DispatchFailure".to_owned(), Retry::Transient),
            SdkError::ResponseError(_) => ("ResponseError".to_owned(), Retry::Transient),
            SdkError::ConstructionFailure(_) => ("ConstructionFailure".to_owned(), Retry::Never),
            _ => ("Unknown".to_owned(), Retry::Transient),
        };
        let message = error
            .message()
            .map(str::to_owned)
            .unwrap_or_else(|| error_chain(&error));
        KinesisError::Call {
            op,
            stream: stream.to_owned(),
            code,
            message,
            retry,
        }
    }
}

/// Retry class of a service error code.
pub fn classify(code: &str) -> Retry {
    match code {
        "ProvisionedThroughputExceededException"
        | "LimitExceededException"
        | "ThrottlingException" => Retry::Throttled,
        "ExpiredIteratorException" => Retry::ExpiredIterator,
        "InternalFailure"
        | "InternalFailureException"
        | "ServiceUnavailable"
        | "ServiceUnavailableException" => Retry::Transient,
        _ => Retry::Never,
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttles_and_expiry_are_told_apart_from_fatal_errors() {
        assert_eq!(
            classify("ProvisionedThroughputExceededException"),
            Retry::Throttled
        );
        assert_eq!(classify("LimitExceededException"), Retry::Throttled);
        assert_eq!(classify("ExpiredIteratorException"), Retry::ExpiredIterator);
        assert_eq!(classify("ResourceNotFoundException"), Retry::Never);
        assert_eq!(classify("InvalidArgumentException"), Retry::Never);
    }
}
