//! The last 15 minutes of a run, sampled once a second, for the dashboard's charts.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use tenantflow_runtime::Metrics;

/// How often a sample is taken.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// Samples kept: 15 minutes.
pub const SAMPLES_KEPT: usize = 900;

/// The run at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// When (epoch milliseconds).
    pub t: i64,
    /// Records read so far.
    pub read: u64,
    /// Results written so far.
    pub results: u64,
    /// Dead letters so far.
    #[serde(rename = "deadLetters")]
    pub dead_letters: u64,
    /// `MillisBehindLatest` per `stream/shard`.
    pub lags: BTreeMap<String, i64>,
}

impl Sample {
    /// The run as `metrics` has it now.
    pub fn take(metrics: &Metrics, t: i64) -> Self {
        let m = metrics.snapshot();
        Self {
            t,
            read: m.lines_read,
            results: m.results,
            dead_letters: m.dead_letters_total(),
            lags: metrics
                .status
                .lags()
                .into_iter()
                .map(|l| (format!("{}/{}", l.stream, l.shard), l.lag.millis_behind))
                .collect(),
        }
    }
}

/// The samples of the last 15 minutes, oldest first.
#[derive(Debug, Default)]
pub struct Series {
    samples: Mutex<VecDeque<Sample>>,
}

impl Series {
    /// Adds a sample, dropping the oldest beyond [`SAMPLES_KEPT`].
    pub fn push(&self, sample: Sample) {
        let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        if samples.len() == SAMPLES_KEPT {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    /// Every sample kept, oldest first.
    pub fn read(&self) -> Vec<Sample> {
        let samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        samples.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_fifteen_minutes() {
        let series = Series::default();
        let metrics = Metrics::default();
        for t in 0..(SAMPLES_KEPT as i64 + 10) {
            series.push(Sample::take(&metrics, t));
        }
        let samples = series.read();
        assert_eq!(samples.len(), SAMPLES_KEPT);
        assert_eq!(samples.first().map(|s| s.t), Some(10));
        assert_eq!(samples.last().map(|s| s.t), Some(SAMPLES_KEPT as i64 + 9));
    }
}
