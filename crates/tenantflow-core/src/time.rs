//! Event-time arithmetic: days, hours, and the civil dates of output partitions.

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;
/// Milliseconds in an hour.
pub const HOUR_MS: i64 = 3_600_000;

/// `floor(epoch_ms / 86_400_000)`, also for times before 1970.
pub fn day_of(epoch_ms: i64) -> i64 {
    epoch_ms.div_euclid(DAY_MS)
}

/// The hour since the epoch, floored.
pub fn hour_of(epoch_ms: i64) -> i64 {
    epoch_ms.div_euclid(HOUR_MS)
}

/// The proleptic Gregorian (year, month, day) of a day since 1970-01-01.
///
/// Howard Hinnant's `civil_from_days`.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The original system's partition name of an event hour: `yyyy-MM-dd--HH`.
pub fn hour_bucket_name(hour: i64) -> String {
    let (y, m, d) = civil_from_days(hour.div_euclid(24));
    format!("{y:04}-{m:02}-{d:02}--{:02}", hour.rem_euclid(24))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_of_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(day_of(1_767_225_600_000)), (2026, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn hour_bucket_names() {
        assert_eq!(
            hour_bucket_name(hour_of(1_767_225_601_555)),
            "2026-01-01--00"
        );
        assert_eq!(
            hour_bucket_name(hour_of(1_767_225_600_000 + 13 * HOUR_MS + 5)),
            "2026-01-01--13"
        );
        assert_eq!(hour_bucket_name(hour_of(-1)), "1969-12-31--23");
    }

    #[test]
    fn days_floor_before_epoch() {
        assert_eq!(day_of(-1), -1);
        assert_eq!(day_of(DAY_MS - 1), 0);
    }
}
