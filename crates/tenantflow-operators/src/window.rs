//! Per-tenant day buckets and the 30/90-day job counts of DESIGN.md §2.
//!
//! For an event on day `d`, after adding it: `sum30 = Σ days d-29..=d`, `sum90 =
//! Σ days d-89..=d`; days after `d` do not count (a late event sees only its past).
//!
//! State is sparse: only days with jobs are stored, oldest first, so a cold tenant
//! costs a few bytes. The sums at the tenant's newest day are cached, so an event on
//! the newest day (almost every event) costs one add, with no scan.
//!
//! Retention: days are kept while they can still count for an event the window
//! accepts. An event may be at most [`Retention::lateness_days`] days before the
//! tenant's newest day; its window then reaches back 89 days more. An older event is
//! rejected ([`WindowError::TooLate`]), never counted against partial state.

use std::collections::VecDeque;
use std::fmt;

/// The two window lengths, in days.
pub const WINDOW_30: i64 = 30;
/// The longer window, in days.
pub const WINDOW_90: i64 = 90;

/// How late an event may be, in days before its tenant's newest day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    lateness_days: i64,
}

impl Retention {
    /// Events may be up to `lateness_days` days older than their tenant's newest event.
    pub fn new(lateness_days: u32) -> Self {
        Self {
            lateness_days: i64::from(lateness_days),
        }
    }

    /// The allowed lateness in days.
    pub fn lateness_days(self) -> i64 {
        self.lateness_days
    }
}

impl Default for Retention {
    /// 90 days of lateness: any event within the longest window of the newest one.
    fn default() -> Self {
        Self::new(90)
    }
}

/// An event the window cannot count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowError {
    /// The event's day is further behind the tenant's newest day than allowed.
    TooLate {
        /// The event's day.
        day: i64,
        /// The tenant's newest day.
        newest: i64,
        /// The allowed lateness in days.
        lateness_days: i64,
    },
}

impl fmt::Display for WindowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WindowError::TooLate {
                day,
                newest,
                lateness_days,
            } => write!(
                f,
                "event day {day} is {} days before the tenant's newest day {newest}; \
                 at most {lateness_days} allowed",
                newest - day
            ),
        }
    }
}

impl std::error::Error for WindowError {}

/// The counts for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Jobs of the 30 days ending on the event's day, the event included.
    pub sum30: u64,
    /// Jobs of the 90 days ending on the event's day, the event included.
    pub sum90: u64,
}

/// A tenant's day buckets.
#[derive(Debug, Clone, Default)]
pub struct DayWindow {
    /// The newest day with jobs and its jobs, inline: an event on the newest day (most
    /// events) touches no heap memory of the window.
    head: Option<(i32, u64)>,
    /// Older days with jobs, `(day, jobs)`, days strictly increasing. A deque, so that
    /// expiring the oldest day costs O(1), not a shift of every kept day.
    older: VecDeque<(i32, u64)>,
    /// The sums of the windows ending at the newest day.
    newest: Counts,
}

impl DayWindow {
    /// Adds `jobs` on `day` and returns the counts of the windows ending on `day`.
    ///
    /// # Errors
    /// [`WindowError::TooLate`] when `day` is before what `retention` keeps; the
    /// window is then unchanged.
    pub fn add(
        &mut self,
        day: i64,
        jobs: u64,
        retention: Retention,
    ) -> Result<Counts, WindowError> {
        // Every comparison below is on the day as stored, so a day past `i32`'s range
        // is the same day each time it comes (the job refuses such event times anyway).
        let day32 = clamp_day(day);
        let day = i64::from(day32);
        let Some((newest32, newest_jobs)) = self.head else {
            self.head = Some((day32, jobs));
            self.newest = Counts {
                sum30: jobs,
                sum90: jobs,
            };
            return Ok(self.newest);
        };
        let newest = i64::from(newest32);
        if day == newest {
            self.head = Some((newest32, newest_jobs.saturating_add(jobs)));
            self.newest.sum30 = self.newest.sum30.saturating_add(jobs);
            self.newest.sum90 = self.newest.sum90.saturating_add(jobs);
            return Ok(self.newest);
        }
        if day > newest {
            self.older.push_back((newest32, newest_jobs));
            self.head = Some((day32, jobs));
            let keep_from = day - retention.lateness_days - (WINDOW_90 - 1);
            while self
                .older
                .front()
                .is_some_and(|&(d, _)| i64::from(d) < keep_from)
            {
                self.older.pop_front();
            }
            self.newest = self.sums_at(day);
            return Ok(self.newest);
        }
        if newest - day > retention.lateness_days {
            return Err(WindowError::TooLate {
                day,
                newest,
                lateness_days: retention.lateness_days,
            });
        }
        match self.older.binary_search_by_key(&day32, |&(d, _)| d) {
            Ok(i) => self.older[i].1 = self.older[i].1.saturating_add(jobs),
            Err(i) => self.older.insert(i, (day32, jobs)),
        }
        if newest - day < WINDOW_30 {
            self.newest.sum30 = self.newest.sum30.saturating_add(jobs);
        }
        if newest - day < WINDOW_90 {
            self.newest.sum90 = self.newest.sum90.saturating_add(jobs);
        }
        Ok(self.sums_at(day))
    }

    /// The sums of the windows ending on `day`, scanning from the newest day back.
    fn sums_at(&self, day: i64) -> Counts {
        sums_at(self.head.iter().chain(self.older.iter().rev()), day)
    }

    /// The sums of the windows ending on the newest day (zero for an empty window).
    pub fn newest_counts(&self) -> Counts {
        self.newest
    }

    /// The days held with their jobs, oldest first.
    pub fn days(&self) -> Vec<(i32, u64)> {
        self.older.iter().chain(self.head.iter()).copied().collect()
    }

    /// A window holding `days` (oldest first, strictly increasing), as
    /// [`DayWindow::days`] gave them; `None` if they are not in order.
    pub fn from_days(days: Vec<(i32, u64)>) -> Option<Self> {
        if days.windows(2).any(|w| w[0].0 >= w[1].0) {
            return None;
        }
        let mut older = VecDeque::from(days);
        let head = older.pop_back();
        let mut window = Self {
            head,
            older,
            newest: Counts::default(),
        };
        if let Some((day, _)) = head {
            window.newest = window.sums_at(i64::from(day));
        }
        Some(window)
    }

    /// Number of days held (for tests and memory accounting).
    pub fn len(&self) -> usize {
        self.older.len() + usize::from(self.head.is_some())
    }

    /// True when no day is held.
    pub fn is_empty(&self) -> bool {
        self.head.is_none()
    }
}

/// The sums of the windows ending on `day` over `(day, jobs)` given newest first (the
/// scan stops at the first day 90 or more days before `day`).
pub(crate) fn sums_at<'a>(newest_first: impl Iterator<Item = &'a (i32, u64)>, day: i64) -> Counts {
    let mut counts = Counts { sum30: 0, sum90: 0 };
    for &(d, jobs) in newest_first {
        let age = day - i64::from(d);
        if age < 0 {
            continue;
        }
        if age >= WINDOW_90 {
            break;
        }
        counts.sum90 = counts.sum90.saturating_add(jobs);
        if age < WINDOW_30 {
            counts.sum30 = counts.sum30.saturating_add(jobs);
        }
    }
    counts
}

/// Days are stored as `i32` (±5.8 million years around 1970); event times beyond that
/// are clamped, which keeps arithmetic total without a special case.
fn clamp_day(day: i64) -> i32 {
    day.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// The oracle: every day kept, sums by definition.
    #[derive(Default)]
    struct Naive {
        days: BTreeMap<i64, u64>,
    }

    impl Naive {
        fn add(&mut self, day: i64, jobs: u64) -> Counts {
            *self.days.entry(day).or_default() += jobs;
            let sum = |len: i64| self.days.range(day - len + 1..=day).map(|(_, j)| j).sum();
            Counts {
                sum30: sum(WINDOW_30),
                sum90: sum(WINDOW_90),
            }
        }
    }

    /// The project's seeded generator, drawn below `n`.
    struct SplitMix(tenantflow_core::rng::SplitMix64);
    impl SplitMix {
        fn below(&mut self, n: u64) -> u64 {
            self.0.next_u64() % n
        }
    }

    #[test]
    fn matches_naive_recomputation_on_random_late_streams() {
        let retention = Retention::default();
        for seed in 0..200 {
            let mut rng = SplitMix(tenantflow_core::rng::SplitMix64::new(seed));
            let mut window = DayWindow::default();
            let mut naive = Naive::default();
            let mut newest = 1_000i64;
            for _ in 0..500 {
                newest += rng.below(4) as i64 * (rng.below(3) as i64);
                let late = if rng.below(4) == 0 {
                    rng.below(100) as i64
                } else {
                    0
                };
                let day = newest - late;
                let jobs = rng.below(10);
                match window.add(day, jobs, retention) {
                    Ok(counts) => assert_eq!(counts, naive.add(day, jobs), "seed {seed} day {day}"),
                    Err(WindowError::TooLate { .. }) => assert!(late > 90, "seed {seed}"),
                }
            }
            assert!(window.len() <= (90 + 90) as usize);
        }
    }

    #[test]
    fn late_event_does_not_see_later_days() {
        let mut w = DayWindow::default();
        let r = Retention::default();
        assert_eq!(w.add(10, 1, r).unwrap(), Counts { sum30: 1, sum90: 1 });
        assert_eq!(w.add(50, 2, r).unwrap(), Counts { sum30: 2, sum90: 3 });
        assert_eq!(w.add(40, 4, r).unwrap(), Counts { sum30: 4, sum90: 5 });
        assert_eq!(w.add(50, 1, r).unwrap(), Counts { sum30: 7, sum90: 8 });
    }

    #[test]
    fn days_past_the_stored_range_count_as_one_day() {
        let mut w = DayWindow::default();
        let r = Retention::default();
        let far = i64::from(i32::MAX) + 1_000;
        assert_eq!(w.add(far, 5, r).unwrap(), Counts { sum30: 5, sum90: 5 });
        assert_eq!(w.add(far, 1, r).unwrap(), Counts { sum30: 6, sum90: 6 });
        assert_eq!(
            w.add(far + 7, 5, r).unwrap(),
            Counts {
                sum30: 11,
                sum90: 11
            }
        );
    }

    #[test]
    fn too_late_events_are_refused_and_leave_state_alone() {
        let mut w = DayWindow::default();
        let r = Retention::new(5);
        w.add(100, 1, r).unwrap();
        let err = w.add(94, 1, r).unwrap_err();
        assert_eq!(
            err,
            WindowError::TooLate {
                day: 94,
                newest: 100,
                lateness_days: 5
            }
        );
        assert_eq!(w.add(100, 1, r).unwrap(), Counts { sum30: 2, sum90: 2 });
        assert_eq!(w.add(95, 1, r).unwrap(), Counts { sum30: 1, sum90: 1 });
    }
}
