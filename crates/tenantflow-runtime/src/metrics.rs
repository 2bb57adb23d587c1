//! Counters of a run, shared by the stages and read by progress displays.
//!
//! Stages count locally and publish per batch, so the atomics are touched a few
//! thousand times a second, not once per record.

use std::sync::atomic::{AtomicU64, Ordering};

use tenantflow_core::DeadLetterReason;

/// Live counters of a run.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Lines read from the inputs (empty ones included).
    pub lines_read: AtomicU64,
    /// Empty or blank lines, skipped.
    pub empty_lines: AtomicU64,
    /// CSV header lines, skipped.
    pub header_lines: AtomicU64,
    /// Dead letters read again (an input of format `dead-letters`): their records are
    /// counted as any record from there on.
    pub redriven: AtomicU64,
    /// Job events decoded.
    pub job_events: AtomicU64,
    /// Company records decoded.
    pub company_records: AtomicU64,
    /// Job events without `creationDate`, given their arrival time.
    pub event_time_from_arrival: AtomicU64,
    /// Results written.
    pub results: AtomicU64,
    /// Results with `riskOfChurn` true.
    pub churn_flags: AtomicU64,
    /// Dead letters by reason, indexed by [`DeadLetterReason::index`].
    pub dead_letters: [AtomicU64; DeadLetterReason::ALL.len()],
    /// Tenant lookups answered (a profile, "unknown", or a failure for good).
    pub lookups: AtomicU64,
    /// Profiles the lookups brought into state (first fetches and refreshes).
    pub tenants_fetched: AtomicU64,
    /// Records of tenants another shard owns, skipped (a stream read in full, such as
    /// `companies`, by a job that holds leases: that shard's job applies them).
    pub other_shard_records: AtomicU64,
    /// Everything else the run shows its operators: phase, sources, shards,
    /// checkpoints, workers, remote calls, tenant state.
    pub status: crate::status::JobStatus,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// See [`Metrics::lines_read`].
    pub lines_read: u64,
    /// See [`Metrics::empty_lines`].
    pub empty_lines: u64,
    /// See [`Metrics::header_lines`].
    pub header_lines: u64,
    /// See [`Metrics::redriven`].
    pub redriven: u64,
    /// See [`Metrics::job_events`].
    pub job_events: u64,
    /// See [`Metrics::company_records`].
    pub company_records: u64,
    /// See [`Metrics::event_time_from_arrival`].
    pub event_time_from_arrival: u64,
    /// See [`Metrics::results`].
    pub results: u64,
    /// See [`Metrics::churn_flags`].
    pub churn_flags: u64,
    /// See [`Metrics::dead_letters`].
    pub dead_letters: [u64; DeadLetterReason::ALL.len()],
    /// See [`Metrics::lookups`].
    pub lookups: u64,
    /// See [`Metrics::tenants_fetched`].
    pub tenants_fetched: u64,
    /// See [`Metrics::other_shard_records`].
    pub other_shard_records: u64,
}

impl MetricsSnapshot {
    /// All dead letters.
    pub fn dead_letters_total(&self) -> u64 {
        self.dead_letters.iter().sum()
    }
}

impl Metrics {
    /// Reads every counter.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            lines_read: get(&self.lines_read),
            empty_lines: get(&self.empty_lines),
            header_lines: get(&self.header_lines),
            redriven: get(&self.redriven),
            job_events: get(&self.job_events),
            company_records: get(&self.company_records),
            event_time_from_arrival: get(&self.event_time_from_arrival),
            results: get(&self.results),
            churn_flags: get(&self.churn_flags),
            dead_letters: std::array::from_fn(|i| get(&self.dead_letters[i])),
            lookups: get(&self.lookups),
            tenants_fetched: get(&self.tenants_fetched),
            other_shard_records: get(&self.other_shard_records),
        }
    }

    /// Adds a stage's local counts and zeroes them.
    pub(crate) fn publish(&self, local: &mut MetricsSnapshot) {
        let add = |c: &AtomicU64, v: &mut u64| {
            if *v != 0 {
                c.fetch_add(*v, Ordering::Relaxed);
                *v = 0;
            }
        };
        add(&self.lines_read, &mut local.lines_read);
        add(&self.empty_lines, &mut local.empty_lines);
        add(&self.header_lines, &mut local.header_lines);
        add(&self.redriven, &mut local.redriven);
        add(&self.job_events, &mut local.job_events);
        add(&self.company_records, &mut local.company_records);
        add(
            &self.event_time_from_arrival,
            &mut local.event_time_from_arrival,
        );
        add(&self.results, &mut local.results);
        add(&self.churn_flags, &mut local.churn_flags);
        for (c, v) in self.dead_letters.iter().zip(local.dead_letters.iter_mut()) {
            add(c, v);
        }
        add(&self.lookups, &mut local.lookups);
        add(&self.tenants_fetched, &mut local.tenants_fetched);
        add(&self.other_shard_records, &mut local.other_shard_records);
    }
}
