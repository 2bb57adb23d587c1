//! Repeated warnings, let through at most once per period: a failure that hits every
//! tenant must not write a log line per tenant.

/// Lets one warning of a kind through per period, and counts the ones held back.
#[derive(Debug, Clone)]
pub struct WarnLimiter {
    period_ms: i64,
    next_ms: i64,
    held: u64,
}

impl WarnLimiter {
    /// A limiter of one warning per `period_ms`.
    pub const fn new(period_ms: i64) -> Self {
        Self {
            period_ms,
            next_ms: i64::MIN,
            held: 0,
        }
    }

    /// At `now_ms`: `Some(n)` to log this warning, `n` more like it having been held back
    /// since the last one logged; `None` to hold it back.
    pub fn allow(&mut self, now_ms: i64) -> Option<u64> {
        if now_ms < self.next_ms {
            self.held += 1;
            return None;
        }
        self.next_ms = now_ms.saturating_add(self.period_ms);
        Some(std::mem::take(&mut self.held))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_per_period_with_the_count_held_back() {
        let mut limiter = WarnLimiter::new(10_000);
        assert_eq!(limiter.allow(0), Some(0));
        assert_eq!(limiter.allow(1), None);
        assert_eq!(limiter.allow(9_999), None);
        assert_eq!(limiter.allow(10_000), Some(2));
        assert_eq!(limiter.allow(10_001), None);
        assert_eq!(limiter.allow(30_000), Some(1));
    }
}
