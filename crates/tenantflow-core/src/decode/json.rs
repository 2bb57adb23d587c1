//! JSON lines: a scanner for the flat objects every producer writes, and `serde_json`
//! for everything else.
//!
//! Why a scanner: a generic `serde_json` parse of a job event costs several times what
//! a scan for the known shape does, and decoding sits on the hot path of every record.
//! The scanner gives up (returns `None`) on anything outside its narrow grammar: string
//! escapes, nested values, a duplicate field, a value of the wrong type, invalid UTF-8
//! or invalid JSON. `serde_json` then decodes the line, or explains why it cannot.

use std::borrow::Cow;

use super::{DecodeError, RawRecord};
use crate::record::JobEvent;
use crate::validate;

/// Parses `line` with `serde_json`, for the lines the scanner gave up on.
pub(super) fn parse_with_serde(line: &[u8]) -> Result<RawRecord<'_>, DecodeError> {
    if let Err(e) = std::str::from_utf8(line) {
        return Err(DecodeError::InvalidUtf8 {
            valid_up_to: e.valid_up_to(),
        });
    }
    // serde would read a top-level array into the record's fields by position: a record
    // is an object, and any other JSON value is refused by name.
    let not_an_object = match line.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => Some("an array"),
        Some(b'"') => Some("a string"),
        Some(b'-' | b'0'..=b'9') => Some("a number"),
        Some(b't' | b'f') => Some("a boolean"),
        Some(b'n') => Some("null"),
        _ => None,
    };
    // Only a line that is valid JSON is named as that value; otherwise serde's syntax
    // error is the better message.
    if let Some(what) = not_an_object
        && serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok()
    {
        return Err(DecodeError::Json(format!(
            "a record must be a JSON object, got {what}"
        )));
    }
    serde_json::from_slice(line).map_err(|e| DecodeError::Json(e.to_string()))
}

/// The exact shape producers write for job events, fields in canonical order:
/// `{"type":"job","companyID":"…","userID":"…","nbJobs":N,"creationDate":N}` (the tag
/// optional). Returns the event without going through [`RawRecord`]; `None` on any
/// other shape. `tag_required` refuses the untagged form (when untagged records are
/// companies).
pub(super) fn scan_canonical_job(line: &[u8], tag_required: bool) -> Option<JobEvent<'_>> {
    const TAGGED: &[u8] = br#"{"type":"job","companyID":""#;
    const UNTAGGED: &[u8] = br#"{"companyID":""#;
    let rest = if let Some(rest) = line.strip_prefix(TAGGED) {
        rest
    } else if tag_required {
        return None;
    } else {
        line.strip_prefix(UNTAGGED)?
    };
    let (company_id, rest) = plain_string(rest)?;
    let rest = rest.strip_prefix(br#","userID":""#)?;
    let (user_id, rest) = plain_string(rest)?;
    let rest = rest.strip_prefix(br#","nbJobs":"#)?;
    let (nb_jobs, rest) = plain_int(rest)?;
    let rest = rest.strip_prefix(br#","creationDate":"#)?;
    let (creation_date, rest) = plain_int(rest)?;
    // Anything out of bounds goes the general way, which says what is wrong. The strings
    // hold no control character, `<` or `>` (`plain_string`), so the cheaper checks do.
    if rest != b"}"
        || !validate::company_id_scanned(company_id)
        || !validate::user_id_scanned(user_id)
    {
        return None;
    }
    Some(JobEvent {
        company_id: Cow::Borrowed(company_id),
        user_id: Cow::Borrowed(user_id),
        nb_jobs: validate::nb_jobs(nb_jobs).ok()?,
        creation_date: Some(creation_date),
        raw: None,
    })
}

const ORDINARY: u8 = 0;
const CLOSING_QUOTE: u8 = 1;
const GIVE_UP: u8 = 2;

/// What each byte is to [`plain_string`]: one table look-up per byte on the hot path.
const STRING_STOP: [u8; 256] = {
    let mut table = [ORDINARY; 256];
    let mut c = 0;
    while c < 0x20 {
        table[c] = GIVE_UP;
        c += 1;
    }
    table[b'"' as usize] = CLOSING_QUOTE;
    table[b'\\' as usize] = GIVE_UP;
    table[0x7f] = GIVE_UP;
    table[b'<' as usize] = GIVE_UP;
    table[b'>' as usize] = GIVE_UP;
    table[0xc2] = GIVE_UP;
    table
};

/// The body of a string up to its closing quote, if it has no escape, no control
/// character (C0, DEL, or a C1 one, whose UTF-8 starts with 0xC2: any 0xC2 gives up),
/// no `<` or `>` (which no record field may hold) and is UTF-8; and what follows the
/// quote.
fn plain_string(b: &[u8]) -> Option<(&str, &[u8])> {
    let mut i = 0;
    loop {
        match STRING_STOP[usize::from(*b.get(i)?)] {
            ORDINARY => i += 1,
            CLOSING_QUOTE => break,
            _ => return None,
        }
    }
    let body = std::str::from_utf8(&b[..i]).ok()?;
    Some((body, &b[i + 1..]))
}

/// An integer in JSON's grammar of at most 18 digits, and what follows it.
fn plain_int(b: &[u8]) -> Option<(i64, &[u8])> {
    let (negative, digits) = match b.first()? {
        b'-' => (true, &b[1..]),
        _ => (false, b),
    };
    let len = digits.iter().take_while(|c| c.is_ascii_digit()).count();
    if len == 0 || len > 18 || (len > 1 && digits[0] == b'0') {
        return None;
    }
    let n = digits[..len]
        .iter()
        .fold(0i64, |n, &d| n * 10 + i64::from(d - b'0'));
    Some((if negative { -n } else { n }, &digits[len..]))
}

/// Scans a flat JSON object of strings without escapes, integers, floats, booleans and
/// nulls. `None` when the line is anything else.
pub(super) fn scan_flat_object(line: &[u8]) -> Option<RawRecord<'_>> {
    let mut s = Scanner { b: line, i: 0 };
    let mut raw = RawRecord::default();
    s.skip_ws();
    s.eat(b'{')?;
    s.skip_ws();
    if s.peek() == Some(b'}') {
        s.i += 1;
    } else {
        loop {
            let key = s.string()?;
            s.skip_ws();
            s.eat(b':')?;
            s.skip_ws();
            s.field(key, &mut raw)?;
            s.skip_ws();
            match s.next()? {
                b',' => s.skip_ws(),
                b'}' => break,
                _ => return None,
            }
        }
    }
    s.skip_ws();
    (s.i == line.len()).then_some(raw)
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

enum Value<'a> {
    Str(&'a str),
    Int(i64),
    Float(&'a str),
    Bool(bool),
    Null,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\r' | b'\n') = self.peek() {
            self.i += 1;
        }
    }

    /// A string without escapes or control characters, as `&str`.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let (body, rest) = plain_string(&self.b[self.i..])?;
        self.i = self.b.len() - rest.len();
        Some(body)
    }

    fn value(&mut self) -> Option<Value<'a>> {
        match self.peek()? {
            b'"' => self.string().map(Value::Str),
            b't' => self.literal(b"true", Value::Bool(true)),
            b'f' => self.literal(b"false", Value::Bool(false)),
            b'n' => self.literal(b"null", Value::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8], value: Value<'a>) -> Option<Value<'a>> {
        let end = self.i + word.len();
        (self.b.get(self.i..end)? == word).then(|| {
            self.i = end;
            value
        })
    }

    /// A number in JSON's grammar: integers up to 18 digits as `Int`, the rest as the
    /// text of a float.
    fn number(&mut self) -> Option<Value<'a>> {
        let start = self.i;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.i += 1;
        }
        let int_start = self.i;
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        let int_end = self.i;
        let mut is_float = false;
        if self.peek() == Some(b'.') {
            self.i += 1;
            self.one_or_more_digits()?;
            is_float = true;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            self.one_or_more_digits()?;
            is_float = true;
        }
        if is_float {
            return std::str::from_utf8(&self.b[start..self.i])
                .ok()
                .map(Value::Float);
        }
        let digits = &self.b[int_start..int_end];
        if digits.len() > 18 {
            return None;
        }
        let magnitude = digits
            .iter()
            .fold(0i64, |n, &d| n * 10 + i64::from(d - b'0'));
        Some(Value::Int(if negative { -magnitude } else { magnitude }))
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
    }

    fn one_or_more_digits(&mut self) -> Option<()> {
        let start = self.i;
        self.digits();
        (self.i > start).then_some(())
    }

    /// Reads the value of `key` into its slot of `raw`; `None` on a type the slot does
    /// not take or on a field seen twice (serde then reports it).
    fn field(&mut self, key: &str, raw: &mut RawRecord<'a>) -> Option<()> {
        let value = self.value()?;
        match key {
            "type" => set_str(&mut raw.kind, value),
            "companyID" | "company_id" => set_str(&mut raw.company_id, value),
            "tenantID" => set_str(&mut raw.tenant_id, value),
            "userID" | "userid" | "user_id" => set_str(&mut raw.user_id, value),
            "nbJobs" | "nb_job_submitted" | "#job_submitted" | "jobSubmitted" => {
                set_int(&mut raw.nb_jobs, value)
            }
            "creationDate" | "ts" | "timestamp" => set_int(&mut raw.creation_date, value),
            "industry" => set_str(&mut raw.industry, value),
            "revenu" => set_int(&mut raw.revenu, value),
            "employees" | "employee" => set_int(&mut raw.employees, value),
            "job30" => set_int(&mut raw.job30, value),
            "job90" => set_int(&mut raw.job90, value),
            "monthlyFee" => set_float(&mut raw.monthly_fee, value),
            "totalFee" => set_float(&mut raw.total_fee, value),
            "riskOfChurn" => match value {
                Value::Bool(b) if raw.risk_of_churn.is_none() => {
                    raw.risk_of_churn = Some(b);
                    Some(())
                }
                Value::Null => Some(()),
                _ => None,
            },
            _ => Some(()),
        }
    }
}

// A null leaves the slot empty, as serde's `Option` does; a second value for the same
// slot goes to serde, which reports the duplicate.

fn set_str<'a>(slot: &mut Option<Cow<'a, str>>, value: Value<'a>) -> Option<()> {
    match value {
        Value::Str(s) if slot.is_none() => *slot = Some(Cow::Borrowed(s)),
        Value::Null => {}
        _ => return None,
    }
    Some(())
}

fn set_int(slot: &mut Option<i64>, value: Value<'_>) -> Option<()> {
    match value {
        Value::Int(n) if slot.is_none() => *slot = Some(n),
        Value::Null => {}
        _ => return None,
    }
    Some(())
}

fn set_float(slot: &mut Option<f64>, value: Value<'_>) -> Option<()> {
    match value {
        Value::Int(n) if slot.is_none() => *slot = Some(n as f64),
        Value::Float(text) if slot.is_none() => *slot = Some(text.parse().ok()?),
        Value::Null => {}
        _ => return None,
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Decoder, DefaultKind};
    use crate::record::Record;

    fn both(line: &str) -> (Option<Record<'_>>, Result<Record<'_>, DecodeError>) {
        let fast = scan_flat_object(line.as_bytes()).map(|raw| {
            raw.into_record(DefaultKind::Infer)
                .expect("scanned record is valid")
        });
        let slow =
            parse_with_serde(line.as_bytes()).and_then(|raw| raw.into_record(DefaultKind::Infer));
        (fast, slow)
    }

    #[test]
    fn scanner_and_serde_agree_on_canonical_records() {
        for line in [
            r#"{"type":"job","companyID":"c-00042","userID":"u-01234","nbJobs":3,"creationDate":1767225601555}"#,
            r#"{"type":"company","companyID":"c-1","industry":"retail","revenu":1234567,"employees":250,"job30":12,"job90":40,"monthlyFee":450.00,"totalFee":9800.25}"#,
            r##" { "company_id" : "comp_4", "userid":"user_1", "#job_submitted": 1 } "##,
            r#"{"companyID":"comp_4","revenu":99420,"industry":"retail","employee":4635,"job30":10,"job90":100,"monthlyFee":400,"totalFee":1.2e3,"riskOfChurn":false}"#,
            r#"{"tenantID":"t","user_id":"u","jobSubmitted":0,"ts":-5,"extra":null,"more":true}"#,
            // The TenantManager's answer: the id under both names.
            r#"{"tenantID":"c-1","companyID":"c-1","industry":"IT","revenu":1,"employees":2,"job30":0,"job90":0,"monthlyFee":0.0,"totalFee":0.0}"#,
        ] {
            let (fast, slow) = both(line);
            assert_eq!(
                fast.expect("scanner takes it"),
                slow.expect("serde takes it"),
                "{line}"
            );
        }
    }

    #[test]
    fn two_different_ids_are_refused_by_both_paths() {
        let line = r#"{"tenantID":"a","companyID":"b","userID":"u","nbJobs":1}"#;
        let (fast, slow) = both_results(line);
        for result in [fast, slow] {
            let error = result.unwrap_err().to_string();
            assert!(error.contains("the same id as tenantID"), "{error}");
        }
    }

    fn both_results(
        line: &str,
    ) -> (
        Result<Record<'_>, DecodeError>,
        Result<Record<'_>, DecodeError>,
    ) {
        let fast = scan_flat_object(line.as_bytes())
            .expect("the scanner reads it")
            .into_record(DefaultKind::Infer);
        let slow =
            parse_with_serde(line.as_bytes()).and_then(|raw| raw.into_record(DefaultKind::Infer));
        (fast, slow)
    }

    #[test]
    fn scanner_gives_up_on_what_it_does_not_handle() {
        for line in [
            r#"{"companyID":"a\"b","userID":"u","nbJobs":1}"#,
            r#"{"companyID":"a","userID":"u","nbJobs":1,"nested":{"x":1}}"#,
            r#"{"companyID":"a","companyID":"b","userID":"u","nbJobs":1}"#,
            r#"{"companyID":"a","userID":"u","nbJobs":1.5}"#,
            r#"{"companyID":"a","userID":"u","nbJobs":01}"#,
            r#"{"companyID":"a","userID":"u","nbJobs":1234567890123456789}"#,
            r#"{"companyID":"a","userID":"u","nbJobs":1} x"#,
            r#"{"companyID":"a","userID":"u","nbJobs":1"#,
            r#"[1,2]"#,
            "",
        ] {
            assert!(scan_flat_object(line.as_bytes()).is_none(), "{line}");
        }
    }

    #[test]
    fn canonical_job_scanner_agrees_with_the_general_path_or_declines() {
        // (line, whether the canonical scanner takes it)
        let cases = [
            (
                r#"{"type":"job","companyID":"c-00042","userID":"u-01234","nbJobs":3,"creationDate":1767225601555}"#,
                true,
            ),
            (
                r#"{"companyID":"c","userID":"","nbJobs":0,"creationDate":-5}"#,
                true,
            ),
            (
                r#"{"type":"job","companyID":"é","userID":"u","nbJobs":1000000,"creationDate":0}"#,
                true,
            ),
            (
                r#"{"type":"job","companyID":"","userID":"u","nbJobs":1,"creationDate":0}"#,
                false,
            ),
            (
                r#"{"type":"job","companyID":"c","userID":"u","nbJobs":-1,"creationDate":0}"#,
                false,
            ),
            (
                r#"{"type":"job","companyID":"c","userID":"u","nbJobs":01,"creationDate":0}"#,
                false,
            ),
            (
                r#"{"type":"job","companyID":"c","userID":"u","nbJobs":1000001,"creationDate":0}"#,
                false,
            ),
            (
                r#"{"type":"job","companyID":"<c>","userID":"u","nbJobs":1,"creationDate":0}"#,
                false,
            ),
            (
                r#"{"type":"job","companyID":"c","userID":"u","nbJobs":1,"creationDate":0} "#,
                false,
            ),
            (
                r#"{"type":"job","companyID":"c\u0041","userID":"u","nbJobs":1,"creationDate":0}"#,
                false,
            ),
            (
                r#"{"type":"job","companyID":"c","userID":"u","nbJobs":1.0,"creationDate":0}"#,
                false,
            ),
            (
                r#"{"type":"job","companyID":"c","userID":"u","nbJobs":1}"#,
                false,
            ),
        ];
        for (line, fast) in cases {
            let general = scan_flat_object(line.as_bytes())
                .map_or_else(|| parse_with_serde(line.as_bytes()), Ok)
                .and_then(|raw| raw.into_record(DefaultKind::Infer));
            match scan_canonical_job(line.as_bytes(), false) {
                Some(job) => {
                    assert!(fast, "took {line}");
                    assert_eq!(Ok(Record::Job(job)), general, "{line}");
                }
                None => assert!(!fast, "declined {line}"),
            }
        }
        assert!(scan_canonical_job(cases[1].0.as_bytes(), true).is_none());
        assert!(scan_canonical_job(cases[0].0.as_bytes(), true).is_some());
    }

    #[test]
    fn only_objects_are_records() {
        let decoder = Decoder::new(DefaultKind::Infer);
        for (line, what) in [
            (r#"["job","comp_4","u",7,1767225601555]"#, "an array"),
            (
                r#" ["company","comp_4",null,null,null,"media",1,2,3,4,5.0,6.0]"#,
                "an array",
            ),
            ("[]", "an array"),
            (r#""comp_4""#, "a string"),
            ("17", "a number"),
            ("true", "a boolean"),
            ("null", "null"),
        ] {
            let err = decoder.decode_json(line.as_bytes()).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("invalid JSON: a record must be a JSON object, got {what}"),
                "{line}"
            );
        }
        // Not valid JSON at all: serde's own message, not a guess at the value.
        let err = decoder.decode_json(b"[1, 2").unwrap_err();
        assert!(!err.to_string().contains("got an array"), "{err}");
    }

    #[test]
    fn integers_out_of_range_are_called_integers() {
        let decoder = Decoder::new(DefaultKind::Infer);
        let err = decoder
            .decode_json(br#"{"companyID":"c","userID":"u","nbJobs":100000000000000000000,"creationDate":1}"#)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("integer 100000000000000000000 is out of range"),
            "{err}"
        );
        let err = decoder
            .decode_json(br#"{"companyID":"c","userID":"u","nbJobs":1.5}"#)
            .unwrap_err();
        assert!(
            err.to_string().contains("expected an integer, got 1.5"),
            "{err}"
        );
        let err = decoder
            .decode_json(br#"{"companyID":"c","userID":"u","nbJobs":"three"}"#)
            .unwrap_err();
        assert!(err.to_string().contains("invalid type"), "{err}");
        // Null stays "absent".
        let err = decoder
            .decode_json(br#"{"companyID":"c","userID":"u","nbJobs":null}"#)
            .unwrap_err();
        assert!(err.to_string().contains("missing field `nbJobs`"), "{err}");
    }

    #[test]
    fn escaped_strings_decode_through_serde() {
        let decoder = Decoder::new(DefaultKind::Infer);
        let record = decoder
            .decode_json(br#"{"companyID":"comp\u005f4","userID":"u\"1","nbJobs":2}"#)
            .unwrap();
        let Record::Job(job) = record else {
            panic!("not a job")
        };
        assert_eq!(job.company_id, "comp_4");
        assert_eq!(job.user_id, "u\"1");
    }
}
