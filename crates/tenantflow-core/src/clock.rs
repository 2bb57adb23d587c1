//! The wall clock, read in one place: event-time bounds, arrival times, file ages,
//! checkpoint times and lock heartbeats all take it from here.

/// The wall clock in epoch milliseconds (0 before 1970, `i64::MAX` past its range).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_clock_is_past_2020() {
        assert!(super::now_ms() > 1_577_836_800_000);
    }
}
