//! Parsers of flag values with their bounds, and the error of flags that do not fit
//! together: every bad flag is refused at start with exit status 2, naming the flag.

use std::time::Duration;

use clap::builder::RangedU64ValueParser;

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
                shown(min),
                shown(max)
            ));
        }
        Ok(d)
    }
}

/// A bound as a person writes it: whole days as `90d`, else as humantime does.
fn shown(d: Duration) -> String {
    if d >= days(1) && d.as_secs().is_multiple_of(86_400) && d.subsec_nanos() == 0 {
        format!("{}d", d.as_secs() / 86_400)
    } else if d.is_zero() {
        "0s".into()
    } else {
        humantime::format_duration(d).to_string()
    }
}

/// A flag that must not be empty (a path or URL).
pub fn non_empty(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("must not be empty".into());
    }
    Ok(text.to_owned())
}

/// An `http://` or `https://` URL with a host.
pub fn http_url(text: &str) -> Result<String, String> {
    let rest = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"))
        .ok_or_else(|| format!("`{text}` is not an http:// or https:// URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || rest.contains(char::is_whitespace) {
        return Err(format!("`{text}` is not a URL with a host"));
    }
    Ok(text.to_owned())
}

/// A size: bytes, or with a unit `KiB`, `MiB`, `GiB` (also `K`, `KB`, …).
pub fn size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: usize = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size (e.g. 1048576, 512KiB, 1MiB)"))?;
    let scale = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "KB" => 1 << 10,
        "MiB" | "M" | "MB" => 1 << 20,
        "GiB" | "G" | "GB" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit `{other}` (use B, KiB, MiB or GiB)"
            ));
        }
    };
    match n.checked_mul(scale) {
        Some(0) | None => Err(format!(
            "`{text}` must be between 1 byte and the address space"
        )),
        Some(size) => Ok(size),
    }
}

/// A size accepted from `min` to `max` bytes.
pub fn size_in(
    min: usize,
    max: usize,
) -> impl Fn(&str) -> Result<usize, String> + Clone + Send + Sync + 'static {
    move |text: &str| {
        let n = size(text)?;
        if n < min || n > max {
            return Err(format!(
                "`{text}` is out of range: from {min} to {max} bytes"
            ));
        }
        Ok(n)
    }
}

/// `d` days.
pub const fn days(d: u64) -> Duration {
    Duration::from_secs(d * 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_with_units() {
        assert_eq!(size("1024"), Ok(1024));
        assert_eq!(size("1MiB"), Ok(1 << 20));
        assert_eq!(size("512 KiB"), Ok(512 << 10));
        assert!(size("0").is_err());
        assert!(size("1 TB").is_err());
        assert!(size("lots").is_err());
        assert_eq!(size_in(1, 1 << 30)("1GiB"), Ok(1 << 30));
        assert!(size_in(1, 1 << 30)("2GiB").is_err());
    }

    #[test]
    fn http_urls() {
        assert!(http_url("http://127.0.0.1:8081").is_ok());
        assert!(http_url("https://runtime.sagemaker.eu-west-1.amazonaws.com/").is_ok());
        assert!(http_url("notaurl").is_err());
        assert!(http_url("http://").is_err());
        assert!(http_url("http://a b").is_err());
    }

    #[test]
    fn durations_in_range() {
        let parse = duration(Duration::from_millis(1), days(1));
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
