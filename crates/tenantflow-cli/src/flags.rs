//! Parsers of flag values with their bounds, and the error of flags that do not fit
//! together: every bad flag is refused at start with exit status 2, naming the flag.

use std::time::Duration;

use clap::builder::RangedU64ValueParser;

use crate::config::value::shown_duration;

/// Flags that do not fit together (each alone parsed): `main` exits with status 2, as
/// clap does for a bad value.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A count flag of type `T` accepted from `min` to `max`.
pub fn count<T>(min: u64, max: u64) -> RangedU64ValueParser<T>
where
    T: TryFrom<u64> + Clone + Send + Sync + 'static,
    <T as TryFrom<u64>>::Error: std::error::Error + Send + Sync + 'static,
{
    RangedU64ValueParser::new().range(min..=max)
}

/// A duration flag (`500ms`, `5s`, `1h`, `90d`) accepted from `min` to `max`.
pub fn duration(
    min: Duration,
    max: Duration,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |text: &str| {
        let d = humantime::parse_duration(text)
            .map_err(|e| format!("`{text}`: {e} (e.g. 500ms, 5s, 10m, 1h, 90d)"))?;
        if d < min || d > max {
            return Err(format!(
                "`{text}` is out of range: from {} to {}",
                shown_duration(min),
                shown_duration(max)
            ));
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_range() {
        let parse = duration(Duration::from_millis(1), Duration::from_secs(86_400));
        assert_eq!(parse("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(
            parse("0s").unwrap_err(),
            "`0s` is out of range: from 1ms to 1d"
        );
        assert!(parse("2d").is_err());
        assert!(parse("99999999999d").is_err());
        assert!(parse("soon").is_err());
    }
}
