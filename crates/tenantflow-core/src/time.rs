//! Event-time arithmetic: days, hours, and the civil dates of output partitions.

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;
/// Milliseconds in an hour.
pub const HOUR_MS: i64 = 3_600_000;

/// 2000-01-01T00:00:00Z in epoch milliseconds: no event of the platform is older, so an
/// older event time is a producer's bug (seconds for milliseconds, a zero), not history.
pub const MIN_EVENT_TIME_MS: i64 = 946_684_800_000;

/// The default of [`EventTimeBounds::max_future_skew_ms`]: one day.
pub const DEFAULT_MAX_FUTURE_SKEW_MS: i64 = DAY_MS;

/// The event times a job accepts: from [`MIN_EVENT_TIME_MS`] up to the wall clock plus a
/// skew. An event outside them would move its tenant's newest day to a nonsense date and
/// make every later valid event of the tenant too late, so it is refused instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTimeBounds {
    /// How far ahead of the wall clock an event time may be, in milliseconds.
    pub max_future_skew_ms: i64,
}

impl Default for EventTimeBounds {
    fn default() -> Self {
        Self {
            max_future_skew_ms: DEFAULT_MAX_FUTURE_SKEW_MS,
        }
    }
}

/// An event time outside [`EventTimeBounds`]. Display gives a sentence for a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventTimeError {
    /// Before [`MIN_EVENT_TIME_MS`].
    BeforeMin {
        /// The event time.
        event_ms: i64,
    },
    /// Further ahead of the wall clock than allowed.
    TooFarAhead {
        /// The event time.
        event_ms: i64,
        /// The latest accepted event time when it was checked.
        max_ms: i64,
    },
}

impl std::fmt::Display for EventTimeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            EventTimeError::BeforeMin { event_ms } => write!(
                f,
                "event time {event_ms} ms is before 2000-01-01 ({MIN_EVENT_TIME_MS} ms): not epoch milliseconds?"
            ),
            EventTimeError::TooFarAhead { event_ms, max_ms } => write!(
                f,
                "event time {event_ms} ms is ahead of the wall clock by more than the allowed skew (latest accepted {max_ms} ms)"
            ),
        }
    }
}

impl std::error::Error for EventTimeError {}

impl EventTimeBounds {
    /// The latest accepted event time when the wall clock reads `now_ms`.
    pub fn max_ms(&self, now_ms: i64) -> i64 {
        now_ms.saturating_add(self.max_future_skew_ms)
    }

    /// Checks `event_ms` against the bounds, `max_ms` being [`EventTimeBounds::max_ms`].
    ///
    /// # Errors
    /// Which bound the event time is outside of.
    pub fn check(event_ms: i64, max_ms: i64) -> Result<(), EventTimeError> {
        if event_ms < MIN_EVENT_TIME_MS {
            Err(EventTimeError::BeforeMin { event_ms })
        } else if event_ms > max_ms {
            Err(EventTimeError::TooFarAhead { event_ms, max_ms })
        } else {
            Ok(())
        }
    }
}

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
    fn event_time_bounds() {
        let bounds = EventTimeBounds::default();
        let now = 1_767_225_600_000;
        let max = bounds.max_ms(now);
        assert_eq!(max, now + DAY_MS);
        assert!(EventTimeBounds::check(MIN_EVENT_TIME_MS, max).is_ok());
        assert!(EventTimeBounds::check(max, max).is_ok());
        assert_eq!(
            EventTimeBounds::check(MIN_EVENT_TIME_MS - 1, max),
            Err(EventTimeError::BeforeMin {
                event_ms: MIN_EVENT_TIME_MS - 1
            })
        );
        assert!(EventTimeBounds::check(253_402_300_799_000, max).is_err());
        assert!(EventTimeBounds::check(i64::MAX, bounds.max_ms(i64::MAX)).is_ok());
        assert!(EventTimeBounds::check(i64::MIN, max).is_err());
        let err = EventTimeBounds::check(max + 1, max).unwrap_err();
        assert!(err.to_string().contains("ahead of the wall clock"), "{err}");
    }

    #[test]
    fn days_floor_before_epoch() {
        assert_eq!(day_of(-1), -1);
        assert_eq!(day_of(DAY_MS - 1), 0);
    }
}
