//! The value types of configuration keys and flags, each with its bounds in its type:
//! counts, durations (`30s`), sizes (`64MiB`), URLs and the enums written as words.
//! A file key and its flag parse through the same type, so a bound is written once.

use std::fmt;
use std::num::{NonZeroU32, NonZeroUsize};
use std::str::FromStr;
use std::time::Duration;

use serde::de::{DeserializeOwned, IntoDeserializer};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A count from `MIN` to `MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count<const MIN: u64, const MAX: u64>(u64);

impl<const MIN: u64, const MAX: u64> Count<MIN, MAX> {
    /// `n`, which must be within the bounds (for defaults; a test checks them all).
    pub const fn new(n: u64) -> Self {
        assert!(n >= MIN && n <= MAX, "a default out of its bounds");
        Self(n)
    }

    pub const fn get(self) -> u64 {
        self.0
    }

    pub fn as_u32(self) -> u32 {
        const { assert!(MAX <= u32::MAX as u64) };
        self.0 as u32
    }

    pub fn as_usize(self) -> usize {
        const { assert!(MAX <= u32::MAX as u64) };
        self.0 as usize
    }

    /// At least one by its type: no clamping downstream.
    pub fn non_zero_usize(self) -> NonZeroUsize {
        const { assert!(MIN >= 1 && MAX <= u32::MAX as u64) };
        NonZeroUsize::MIN.saturating_add(self.0 as usize - 1)
    }

    /// At least one by its type.
    pub fn non_zero_u32(self) -> NonZeroU32 {
        const { assert!(MIN >= 1 && MAX <= u32::MAX as u64) };
        NonZeroU32::MIN.saturating_add(self.0 as u32 - 1)
    }

    fn checked(n: u64) -> Result<Self, String> {
        if n < MIN || n > MAX {
            return Err(format!("{n} is out of range: expected {MIN}..={MAX}"));
        }
        Ok(Self(n))
    }
}

impl<const MIN: u64, const MAX: u64> FromStr for Count<MIN, MAX> {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let n = text
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("`{text}` is not a whole number: expected {MIN}..={MAX}"))?;
        Self::checked(n)
    }
}

impl<const MIN: u64, const MAX: u64> fmt::Display for Count<MIN, MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<const MIN: u64, const MAX: u64> Serialize for Count<MIN, MAX> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de, const MIN: u64, const MAX: u64> Deserialize<'de> for Count<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u64::deserialize(d)?;
        Self::checked(n).map_err(serde::de::Error::custom)
    }
}

/// A duration from `MIN_MS` to `MAX_MS` milliseconds, written `500ms`, `30s`, `15m`,
/// `1h`, `90d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span<const MIN_MS: u64, const MAX_MS: u64>(Duration);

impl<const MIN_MS: u64, const MAX_MS: u64> Span<MIN_MS, MAX_MS> {
    /// `d`, which must be within the bounds (for defaults).
    pub const fn new(d: Duration) -> Self {
        let ms = d.as_millis();
        assert!(
            ms >= MIN_MS as u128 && ms <= MAX_MS as u128,
            "a default out of its bounds"
        );
        Self(d)
    }

    pub const fn get(self) -> Duration {
        self.0
    }
}

impl<const MIN_MS: u64, const MAX_MS: u64> FromStr for Span<MIN_MS, MAX_MS> {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let d = humantime::parse_duration(text.trim())
            .map_err(|e| format!("`{text}`: {e} (e.g. 500ms, 5s, 10m, 1h, 90d)"))?;
        let (min, max) = (Duration::from_millis(MIN_MS), Duration::from_millis(MAX_MS));
        if d < min || d > max {
            return Err(format!(
                "`{text}` is out of range: from {} to {}",
                shown_duration(min),
                shown_duration(max)
            ));
        }
        Ok(Self(d))
    }
}

impl<const MIN_MS: u64, const MAX_MS: u64> fmt::Display for Span<MIN_MS, MAX_MS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&shown_duration(self.0))
    }
}

/// A duration in its largest whole unit: `90d`, `1h`, `15m`, `5s`, `10ms`.
pub fn shown_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let units: [(u128, &str); 5] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
        (1, "ms"),
    ];
    for (scale, unit) in units {
        if ms.is_multiple_of(scale) {
            return format!("{}{unit}", ms / scale);
        }
    }
    humantime::format_duration(d).to_string()
}

/// A size from `MIN` to `MAX` bytes, written `1048576`, `512KiB`, `64MiB`, `1GiB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size<const MIN: u64, const MAX: u64>(u64);

impl<const MIN: u64, const MAX: u64> Size<MIN, MAX> {
    /// `n` bytes, which must be within the bounds (for defaults).
    pub const fn new(n: u64) -> Self {
        assert!(n >= MIN && n <= MAX, "a default out of its bounds");
        Self(n)
    }

    pub const fn bytes(self) -> u64 {
        self.0
    }

    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

impl<const MIN: u64, const MAX: u64> FromStr for Size<MIN, MAX> {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let n = parse_size(text)?;
        if n < MIN || n > MAX {
            return Err(format!(
                "`{text}` is out of range: from {} to {}",
                shown_size(MIN),
                shown_size(MAX)
            ));
        }
        Ok(Self(n))
    }
}

impl<const MIN: u64, const MAX: u64> fmt::Display for Size<MIN, MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&shown_size(self.0))
    }
}

/// Bytes, or with a unit `KiB`, `MiB`, `GiB` (also `K`, `KB`, …).
fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size (e.g. 1048576, 512KiB, 1MiB)"))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "KB" => 1 << 10,
        "MiB" | "M" | "MB" => 1 << 20,
        "GiB" | "G" | "GB" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit `{other}` in `{text}` (use B, KiB, MiB or GiB)"
            ));
        }
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// A size in its largest whole binary unit: `1MiB`, `128MiB`, `64`.
pub fn shown_size(n: u64) -> String {
    let units: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (scale, unit) in units {
        if n >= scale && n.is_multiple_of(scale) {
            return format!("{}{unit}", n / scale);
        }
    }
    n.to_string()
}

/// A checkpoint interval of at least 100ms, or `off`: only at the end of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval(Option<Duration>);

impl Interval {
    pub const fn every(d: Duration) -> Self {
        assert!(d.as_millis() >= 100, "a default out of its bounds");
        Self(Some(d))
    }

    pub const fn get(self) -> Option<Duration> {
        self.0
    }
}

impl FromStr for Interval {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.trim() == "off" {
            return Ok(Self(None));
        }
        let d = humantime::parse_duration(text.trim())
            .map_err(|e| format!("`{text}`: {e} (e.g. 10s, 1m, off)"))?;
        if d < Duration::from_millis(100) {
            return Err(format!("`{text}` is too short: at least 100ms"));
        }
        Ok(Self(Some(d)))
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("off"),
            Some(d) => f.write_str(&shown_duration(d)),
        }
    }
}

/// Text that must not be empty (a path or a URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonEmpty(String);

impl NonEmpty {
    /// A constant text, which must not be empty (for defaults).
    pub fn fixed(text: &'static str) -> Self {
        assert!(!text.trim().is_empty(), "an empty default");
        Self(text.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for NonEmpty {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Err("must not be empty".into());
        }
        Ok(Self(text.to_owned()))
    }
}

impl fmt::Display for NonEmpty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An `http://` or `https://` URL with a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl(String);

impl HttpUrl {
    pub fn into_string(self) -> String {
        self.0
    }
}

impl FromStr for HttpUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let rest = text
            .strip_prefix("http://")
            .or_else(|| text.strip_prefix("https://"))
            .ok_or_else(|| format!("`{text}` is not an http:// or https:// URL"))?;
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        if host.is_empty() || rest.contains(char::is_whitespace) {
            return Err(format!("`{text}` is not a URL with a host"));
        }
        Ok(Self(text.to_owned()))
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An address to listen on, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen(Option<std::net::SocketAddr>);

impl Listen {
    pub const fn at(addr: std::net::SocketAddr) -> Self {
        Self(Some(addr))
    }

    pub const fn get(self) -> Option<std::net::SocketAddr> {
        self.0
    }
}

impl FromStr for Listen {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text == "off" {
            return Ok(Self(None));
        }
        text.parse().map(|a| Self(Some(a))).map_err(|_| {
            format!(
                "`{text}` is not an address to listen on (e.g. 127.0.0.1:9464, 0.0.0.0:9464, off)"
            )
        })
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("off"),
            Some(a) => write!(f, "{a}"),
        }
    }
}

/// Serde for the text types above: written as their `Display`, read through `FromStr`,
/// whose message says what was expected.
macro_rules! serde_as_text {
    ($($ty:ty),* $(,)?) => {$(
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

serde_as_text!(Interval, Listen, NonEmpty, HttpUrl);

macro_rules! serde_as_text_bounded {
    ($($ty:ident),*) => {$(
        impl<const A: u64, const B: u64> Serialize for $ty<A, B> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de, const A: u64, const B: u64> Deserialize<'de> for $ty<A, B> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

serde_as_text_bounded!(Span, Size);

/// A flag's value parser for an enum the configuration file writes as a word (its serde
/// name): one spelling for both, and the message lists the words.
pub fn word<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    T::deserialize(IntoDeserializer::<serde::de::value::Error>::into_deserializer(text))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_keep_their_bounds() {
        type C = Count<1, 10>;
        assert_eq!("3".parse::<C>(), Ok(C::new(3)));
        assert_eq!(
            "0".parse::<C>(),
            Err("0 is out of range: expected 1..=10".into())
        );
        assert!("11".parse::<C>().is_err());
        assert!("x".parse::<C>().is_err());
        assert_eq!(C::new(1).non_zero_usize().get(), 1);
        assert_eq!(C::new(10).non_zero_u32().get(), 10);
    }

    #[test]
    fn durations_are_written_in_their_largest_unit() {
        type S = Span<0, { 3650 * 86_400_000 }>;
        for (text, shown) in [
            ("90d", "90d"),
            ("60s", "1m"),
            ("1h", "1h"),
            ("10ms", "10ms"),
            ("1500ms", "1500ms"),
            ("0s", "0s"),
        ] {
            assert_eq!(text.parse::<S>().unwrap().to_string(), shown);
            assert_eq!(shown.parse::<S>(), text.parse::<S>());
        }
        assert!("3651d".parse::<S>().is_err());
        assert!("soon".parse::<S>().is_err());
        assert!("5ms".parse::<Span<10, 1000>>().is_err());
    }

    #[test]
    fn sizes_with_units() {
        type B = Size<1, { 1 << 40 }>;
        assert_eq!("1024".parse::<B>().unwrap().bytes(), 1024);
        assert_eq!("1MiB".parse::<B>().unwrap().bytes(), 1 << 20);
        assert_eq!("512 KiB".parse::<B>().unwrap().bytes(), 512 << 10);
        assert_eq!(B::new(128 << 20).to_string(), "128MiB");
        assert_eq!(B::new(1000).to_string(), "1000");
        assert!("0".parse::<B>().is_err());
        assert!("1 TB".parse::<B>().is_err());
        assert!("1025GiB".parse::<B>().is_err());
        assert_eq!(
            "1GiB".parse::<Size<1, { 1 << 30 }>>().unwrap().bytes(),
            1 << 30
        );
        assert!("2GiB".parse::<Size<1, { 1 << 30 }>>().is_err());
        assert!("lots".parse::<B>().is_err());
    }

    #[test]
    fn intervals_and_urls() {
        assert_eq!("off".parse::<Interval>(), Ok(Interval(None)));
        assert_eq!("60s".parse::<Interval>().unwrap().to_string(), "1m");
        assert!("10ms".parse::<Interval>().is_err());
        assert!("http://127.0.0.1:8081".parse::<HttpUrl>().is_ok());
        assert!(
            "https://runtime.sagemaker.eu-west-1.amazonaws.com/"
                .parse::<HttpUrl>()
                .is_ok()
        );
        assert!("notaurl".parse::<HttpUrl>().is_err());
        assert!("http://".parse::<HttpUrl>().is_err());
        assert!("http://a b".parse::<HttpUrl>().is_err());
        assert!("ftp://x".parse::<HttpUrl>().is_err());
        assert!("http:///x".parse::<HttpUrl>().is_err());
        assert!(" ".parse::<NonEmpty>().is_err());
    }

    #[test]
    fn words_are_serde_names() {
        use tenantflow_sinks::encoding::Format;
        assert_eq!(word::<Format>("csv"), Ok(Format::Csv));
        let error = word::<Format>("xml").unwrap_err();
        assert!(
            error.contains("`ndjson`") && error.contains("xml"),
            "{error}"
        );
        assert_eq!(serde_json::to_value(Format::Parquet).unwrap(), "parquet");
    }
}
