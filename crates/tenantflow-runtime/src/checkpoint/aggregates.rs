//! The BI aggregates of a checkpoint: built by the coordinator from the state snapshots
//! the workers handed it (so they are exactly the checkpoint's state, and cost the
//! workers nothing), staged in the checkpoint store, and committed with the
//! checkpoint's files. A file is replaced whole by a copy or a single PUT: a reader
//! sees the previous version or the new one, never a part; and a crash between the
//! manifest and the commit is finished by the recovery, like any pending file.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tenantflow_operators::snapshot::{SnapshotError, read_snapshot};
use tenantflow_sinks::aggregates::{
    CustomerRow, TenantDays, customers_csv, customers_parquet, jobs_csv, jobs_parquet,
};
use tenantflow_sinks::upload::{PendingBody, PendingFile, Staging};

use crate::checkpoint::manifest::ManifestError;
use crate::error::RunError;

/// The folder of the aggregates under the output.
pub const FOLDER: &str = "aggregates";

/// When the aggregates are rewritten, and in which formats.
#[derive(Debug)]
pub(crate) struct Aggregates {
    interval: Duration,
    /// Also as Parquet (when results are).
    parquet: bool,
    /// When they were last written by this process.
    last: Option<Instant>,
    /// Their folder under the output: [`FOLDER`], or a shard's under it.
    folder: String,
}

impl Aggregates {
    pub(crate) fn new(interval: Duration, parquet: bool) -> Self {
        Self {
            interval,
            parquet,
            last: None,
            folder: FOLDER.to_owned(),
        }
    }

    /// A shard's aggregates, when one job per shard writes the output:
    /// `aggregates/shard=ID/` (a query engine reading `aggregates/` sees them all).
    pub(crate) fn of_shard(mut self, shard_id: &str) -> Self {
        self.folder = format!("{FOLDER}/shard={shard_id}");
        self
    }

    /// Whether a checkpoint now should rewrite them: the final one always, the first
    /// one of a process (so a restarted job refreshes them at once), then one per
    /// interval.
    pub(crate) fn due(&self, final_checkpoint: bool) -> bool {
        final_checkpoint || self.last.is_none_or(|at| at.elapsed() >= self.interval)
    }

    /// Builds the files from the workers' state snapshots, stages them for checkpoint
    /// `n`, and returns them as pending files of that checkpoint.
    pub(crate) fn stage(
        &mut self,
        n: u64,
        states: &[&[u8]],
        staging: &Staging,
    ) -> Result<Vec<PendingFile>, RunError> {
        let started = Instant::now();
        let (customers, days) = collect(states).map_err(|e| {
            RunError::Checkpoint(ManifestError::Aggregates(format!(
                "reading a state snapshot: {e}"
            )))
        })?;
        let jobs: Vec<TenantDays<'_>> = customers
            .iter()
            .zip(&days)
            .map(|(c, days)| TenantDays {
                company_id: &c.company_id,
                days,
            })
            .collect();
        let day_rows: usize = days.iter().map(Vec::len).sum();
        let mut files = vec![
            ("customers.csv", customers_csv(&customers), customers.len()),
            ("jobs.csv", jobs_csv(&jobs), day_rows),
        ];
        if self.parquet {
            let parquet = |e: tenantflow_sinks::SinkError| {
                RunError::Checkpoint(ManifestError::Aggregates(e.to_string()))
            };
            files.push((
                "customers.parquet",
                customers_parquet(&customers).map_err(parquet)?,
                customers.len(),
            ));
            files.push((
                "jobs.parquet",
                jobs_parquet(&jobs).map_err(parquet)?,
                day_rows,
            ));
        }
        let mut pending = Vec::with_capacity(files.len());
        for (name, bytes, rows) in files {
            let path = format!("{}/{name}", self.folder);
            // A name of its own per checkpoint: a later checkpoint's staging never
            // overwrites what an earlier manifest lists.
            let staged = staging.staged(&format!("{FOLDER}-{n}/{name}"));
            let len = bytes.len() as u64;
            staging
                .location
                .store
                .put(&staged, Bytes::from(bytes))
                .map_err(|e| RunError::Checkpoint(e.into()))?;
            pending.push(PendingFile {
                path,
                body: PendingBody::Staged(staged),
                len,
                rows: rows as u64,
            });
        }
        self.last = Some(Instant::now());
        tracing::debug!(
            checkpoint = n,
            tenants = customers.len(),
            days = day_rows,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Aggregates staged."
        );
        Ok(pending)
    }
}

/// A tenant's days with jobs, `(day, jobs)`, oldest first.
type Days = Vec<(i32, u64)>;

/// Every tenant of `states` as a customers row with its days, sorted by `companyID`.
fn collect(states: &[&[u8]]) -> Result<(Vec<CustomerRow>, Vec<Days>), SnapshotError> {
    let mut tenants: Vec<(CustomerRow, Days)> = Vec::new();
    for state in states {
        read_snapshot(state, |t| {
            let (job30, job90) = t.counts_at_newest_day();
            tenants.push((
                CustomerRow {
                    company_id: t.id.to_owned(),
                    job30,
                    job90,
                    risk_of_churn: t.activity.risk_of_churn(),
                    churn_score: t.activity.churn_score(),
                    last_event_ms: t.activity.last_event(),
                    events: t.activity.events,
                    profile: t.profile,
                },
                t.days,
            ));
            Ok(())
        })?;
    }
    tenants.sort_unstable_by(|a, b| a.0.company_id.cmp(&b.0.company_id));
    Ok(tenants.into_iter().unzip())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::borrow::Cow;
    use std::sync::Arc;

    use tenantflow_core::record::{Company, ProfileFields};
    use tenantflow_operators::score::Model;
    use tenantflow_operators::tenant::{JobOutcome, TenantTable};
    use tenantflow_operators::window::Retention;
    use tenantflow_sinks::store::{MemoryStore, Store};
    use tenantflow_sinks::upload::Location;

    use super::*;

    fn table(ids: &[&str]) -> TenantTable<()> {
        let model = Model::builtin();
        let mut table = TenantTable::new(Retention::default());
        for id in ids {
            table.upsert(
                &Company {
                    company_id: Cow::Borrowed(id),
                    profile: ProfileFields {
                        industry: Cow::Borrowed("retail"),
                        revenu: 5,
                        employees: 2,
                        job30: 1,
                        job90: 2,
                        monthly_fee: 3.0,
                        total_fee: 4.0,
                    },
                },
                &model,
                |_| (),
            );
        }
        let JobOutcome::Joined(j) = table.process_job(ids[0], 4, 86_400_000, &model) else {
            panic!("joined");
        };
        j.tenant.activity.record_score(Some(0.5), true);
        table
    }

    #[test]
    fn stages_sorted_files_for_every_worker_and_only_when_due() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let staging = Staging {
            location: Location::root(Arc::clone(&store)).child("_checkpoints"),
        };
        let (a, b) = (table(&["c2", "c9"]).snapshot(), table(&["c1"]).snapshot());
        let mut aggregates = Aggregates::new(Duration::from_secs(3600), true);
        assert!(aggregates.due(false), "the first checkpoint of a process");
        let pending = aggregates.stage(7, &[&a, &b], &staging).unwrap();
        assert!(!aggregates.due(false));
        assert!(aggregates.due(true));
        let paths: Vec<&str> = pending.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "aggregates/customers.csv",
                "aggregates/jobs.csv",
                "aggregates/customers.parquet",
                "aggregates/jobs.parquet"
            ]
        );
        let PendingBody::Staged(staged) = &pending[0].body else {
            panic!("staged");
        };
        assert!(staged.contains("aggregates-7/"), "{staged}");
        let csv = store.get(staged).unwrap().unwrap();
        let ids: Vec<&str> = std::str::from_utf8(&csv)
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap())
            .collect();
        assert_eq!(ids, ["c1", "c2", "c9"]);
        assert_eq!(pending[0].rows, 3);
        let PendingBody::Staged(jobs) = &pending[1].body else {
            panic!("staged");
        };
        assert_eq!(
            store.get(jobs).unwrap().unwrap().as_ref(),
            b"companyID,day,jobs\nc1,1970-01-02,4\nc2,1970-01-02,4\n"
        );
    }
}
