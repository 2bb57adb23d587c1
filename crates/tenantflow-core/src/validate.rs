//! The bounds of every record field: one validation, shared by the job's decoders and
//! the TenantManager, so that the job accepts exactly the profiles the service accepts.
//!
//! | field | accepted |
//! | --- | --- |
//! | `companyID` (`tenantID`) | 1 to 128 bytes, not only spaces, no control characters, no `<` `>`; not `count` or `version` |
//! | `userID` | at most 128 bytes, no control characters, no `<` `>` |
//! | `industry` | 1 to 64 bytes, not only spaces, no control characters, no `<` `>` |
//! | `nbJobs` | an integer from 0 to 1,000,000 |
//! | `revenu`, `employees`, `job30`, `job90` | an integer from 0 to 10^15 |
//! | `monthlyFee`, `totalFee` | a finite number from 0 to 10^15 |
//!
//! The bounds keep every sum of the job far from overflow (10^15 baselines plus 90 days
//! of events of at most 10^6 jobs each) and keep a result line short, whatever the input.
//! Each check returns what the field must be, as words for an error message.

/// Longest `companyID` (and `tenantID`), in bytes.
pub const MAX_ID_BYTES: usize = 128;
/// Longest `userID`, in bytes.
pub const MAX_USER_ID_BYTES: usize = 128;
/// Longest `industry`, in bytes.
pub const MAX_INDUSTRY_BYTES: usize = 64;
/// Most jobs one job event may carry.
pub const MAX_NB_JOBS: u64 = 1_000_000;
/// Largest `revenu`, `employees`, `job30` and `job90`.
pub const MAX_COUNT: i64 = 1_000_000_000_000_000;
/// Largest fee.
pub const MAX_FEE: f64 = 1e15;

/// What a `companyID` must be.
pub const ID_EXPECTED: &str =
    "a non-blank string of at most 128 bytes, without control characters, < or >";
/// Ids that are paths of the TenantManager's API (`/api/v1/tenants/count`): a tenant of
/// that id could be created but never read, changed or looked up.
pub const RESERVED_IDS: [&str; 2] = ["count", "version"];
/// What a reserved id is told.
pub const RESERVED_ID_EXPECTED: &str =
    "an id other than `count` and `version`, which are paths of the TenantManager's API";
/// What a `userID` must be.
pub const USER_ID_EXPECTED: &str =
    "a string of at most 128 bytes, without control characters, < or >";
/// What an `industry` must be.
pub const INDUSTRY_EXPECTED: &str =
    "a non-blank string of at most 64 bytes, without control characters, < or >";
/// What `nbJobs` must be.
pub const NB_JOBS_EXPECTED: &str = "an integer from 0 to 1000000";
/// What `revenu`, `employees`, `job30` and `job90` must be.
pub const COUNT_EXPECTED: &str = "an integer from 0 to 10^15";
/// What a fee must be.
pub const FEE_EXPECTED: &str = "a number from 0 to 10^15";

/// Checks a `companyID` (or `tenantID`).
///
/// # Errors
/// What it must be.
pub fn company_id(s: &str) -> Result<(), &'static str> {
    text(s, MAX_ID_BYTES, false).ok_or(ID_EXPECTED)?;
    if is_reserved(s) {
        return Err(RESERVED_ID_EXPECTED);
    }
    Ok(())
}

/// [`company_id`] for a string already known to hold no control character, `<`, `>`
/// or C1 control (the JSON scanner's strings): the length, blankness and reserved-id
/// checks alone, so the hot path does not look at each byte twice.
pub fn company_id_scanned(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_ID_BYTES && s.bytes().any(|c| c != b' ') && !is_reserved(s)
}

/// One of [`RESERVED_IDS`] (a match on the length first: most ids are neither).
fn is_reserved(s: &str) -> bool {
    match s.len() {
        5 => s == "count",
        7 => s == "version",
        _ => false,
    }
}

/// [`user_id`] for a string already known to hold no control character, `<`, `>` or
/// C1 control: the length check alone.
pub fn user_id_scanned(s: &str) -> bool {
    s.len() <= MAX_USER_ID_BYTES
}

/// Checks a `userID`.
///
/// # Errors
/// What it must be.
pub fn user_id(s: &str) -> Result<(), &'static str> {
    text(s, MAX_USER_ID_BYTES, true).ok_or(USER_ID_EXPECTED)
}

/// Checks an `industry`.
///
/// # Errors
/// What it must be.
pub fn industry(s: &str) -> Result<(), &'static str> {
    text(s, MAX_INDUSTRY_BYTES, false).ok_or(INDUSTRY_EXPECTED)
}

/// Checks `nbJobs`.
///
/// # Errors
/// What it must be.
pub fn nb_jobs(n: i64) -> Result<u64, &'static str> {
    u64::try_from(n)
        .ok()
        .filter(|&n| n <= MAX_NB_JOBS)
        .ok_or(NB_JOBS_EXPECTED)
}

/// Checks `revenu`, `employees`, `job30` or `job90`.
///
/// # Errors
/// What it must be.
pub fn count(n: i64) -> Result<i64, &'static str> {
    if (0..=MAX_COUNT).contains(&n) {
        Ok(n)
    } else {
        Err(COUNT_EXPECTED)
    }
}

/// Checks `monthlyFee` or `totalFee`.
///
/// # Errors
/// What it must be.
pub fn fee(x: f64) -> Result<f64, &'static str> {
    if (0.0..=MAX_FEE).contains(&x) {
        Ok(x)
    } else {
        Err(FEE_EXPECTED)
    }
}

/// At most `max` bytes, blank (only spaces) only if `blank_ok`, and no control character
/// (C0, DEL, C1), `<` or `>`. One pass over the bytes: it runs for every record.
fn text(s: &str, max: usize, blank_ok: bool) -> Option<()> {
    let b = s.as_bytes();
    if b.len() > max {
        return None;
    }
    let mut blank = true;
    for (i, &c) in b.iter().enumerate() {
        match c {
            0x00..=0x1f | 0x7f | b'<' | b'>' => return None,
            b' ' => {}
            // U+0080..=U+009F, the C1 controls, are 0xC2 0x80..=0x9F in UTF-8.
            0xc2 if matches!(b.get(i + 1), Some(0x80..=0x9f)) => return None,
            _ => blank = false,
        }
    }
    (blank_ok || !blank).then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_fields() {
        assert!(company_id("comp_4").is_ok());
        assert!(company_id("é-ü").is_ok());
        assert_eq!(company_id(""), Err(ID_EXPECTED));
        assert!(company_id("  ").is_err());
        assert!(company_id(&"x".repeat(129)).is_err());
        assert!(company_id(&"x".repeat(128)).is_ok());
        assert!(company_id("a\0b").is_err());
        assert!(company_id("a\u{7f}").is_err());
        assert!(company_id("a\u{85}").is_err());
        assert!(company_id("a\u{9f}b").is_err());
        assert!(company_id("\u{a0}").is_ok(), "U+00A0 is no control");
        assert!(company_id("é\u{2028}").is_ok());
        assert!(company_id("<script>").is_err());
        assert_eq!(company_id("count"), Err(RESERVED_ID_EXPECTED));
        assert_eq!(company_id("version"), Err(RESERVED_ID_EXPECTED));
        assert!(company_id("counts").is_ok());
        assert!(RESERVED_IDS.iter().all(|id| is_reserved(id)));
        assert!(user_id("").is_ok());
        assert!(user_id("u\n").is_err());
        assert!(industry("retail").is_ok());
        assert!(industry("").is_err());
        assert!(industry(&"r".repeat(65)).is_err());
        assert!(industry("<b>IT</b>").is_err());
    }

    #[test]
    fn scanned_checks_agree_with_the_full_ones_on_clean_strings() {
        let long = "x".repeat(129);
        for s in [
            "comp_4", "", " ", "count", "version", "counts", &long, "é", "a b",
        ] {
            assert_eq!(company_id_scanned(s), company_id(s).is_ok(), "{s:?}");
            assert_eq!(user_id_scanned(s), user_id(s).is_ok(), "{s:?}");
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(nb_jobs(0), Ok(0));
        assert_eq!(nb_jobs(1_000_000), Ok(1_000_000));
        assert!(nb_jobs(1_000_001).is_err());
        assert!(nb_jobs(-1).is_err());
        assert!(nb_jobs(i64::MAX).is_err());
        assert_eq!(count(MAX_COUNT), Ok(MAX_COUNT));
        assert!(count(MAX_COUNT + 1).is_err());
        assert!(count(-1).is_err());
        assert_eq!(fee(0.0), Ok(0.0));
        assert!(fee(-0.5).is_err());
        assert!(fee(f64::NAN).is_err());
        assert!(fee(f64::INFINITY).is_err());
        assert!(fee(2e15).is_err());
    }
}
