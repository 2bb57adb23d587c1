//! The BI aggregates of a checkpoint: built by the coordinator from the state snapshots
//! the workers handed it (so they are exactly the checkpoint's state, and cost the
//! workers nothing), staged in the checkpoint store, and committed with the
//! checkpoint's files. A file is replaced whole by a copy or a single PUT: a reader
//! sees the previous version or the new one, never a part; and a crash between the
//! manifest and the commit is finished by the recovery, like any pending file.

use std::time::{Duration, Instant};

use tenantflow_operators::snapshot::{SnapshotError, SnapshotReader, SnapshotTenant};
use tenantflow_sinks::aggregates::{
    CUSTOMERS_HEADER, CustomerRow, CustomersParquet, JOBS_HEADER, JobsParquet, TenantDays,
    push_customer_csv, push_jobs_csv,
};
use tenantflow_sinks::upload::{PendingBody, PendingFile, StagedWriter, Staging};

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
    /// `n`, and returns them as pending files of that checkpoint. The tenants are
    /// sorted by an index into the snapshots (an id borrowed from them and a position,
    /// 32 bytes a tenant), and each row is encoded as it is read and uploaded part by
    /// part: the files are never whole in memory.
    pub(crate) fn stage(
        &mut self,
        n: u64,
        states: &[&[u8]],
        staging: &Staging,
    ) -> Result<Vec<PendingFile>, RunError> {
        let started = Instant::now();
        let readers = states
            .iter()
            .map(|state| SnapshotReader::new(state))
            .collect::<Result<Vec<_>, _>>()
            .map_err(snapshot_error)?;
        let index = sorted_index(&readers).map_err(snapshot_error)?;
        let mut files = Files::new(n, self.parquet, staging)?;
        for &(_, worker, at) in &index {
            let t = readers[worker as usize]
                .tenant_at(at)
                .map_err(snapshot_error)?;
            files.push(&t)?;
        }
        let tenants = index.len();
        drop(index);
        let mut pending = Vec::new();
        for (name, staged, len, rows) in files.finish()? {
            pending.push(PendingFile {
                path: format!("{}/{name}", self.folder),
                body: PendingBody::Staged(staged),
                len,
                rows,
            });
        }
        self.last = Some(Instant::now());
        tracing::debug!(
            checkpoint = n,
            tenants,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Aggregates staged."
        );
        Ok(pending)
    }
}

fn snapshot_error(e: SnapshotError) -> RunError {
    RunError::Checkpoint(ManifestError::Aggregates(format!(
        "reading a state snapshot: {e}"
    )))
}

fn sink_error(e: impl std::fmt::Display) -> RunError {
    RunError::Checkpoint(ManifestError::Aggregates(e.to_string()))
}

/// Every tenant of every snapshot as `(id, snapshot, position)`, sorted by id.
fn sorted_index<'a>(
    readers: &[SnapshotReader<'a>],
) -> Result<Vec<(&'a str, u32, usize)>, SnapshotError> {
    let mut index = Vec::new();
    for (worker, reader) in (0_u32..).zip(readers) {
        let mut tenants = reader.clone();
        loop {
            let at = tenants.position();
            match tenants.next() {
                Some(tenant) => index.push((tenant?.id, worker, at)),
                None => break,
            }
        }
    }
    index.sort_unstable_by(|a, b| a.0.cmp(b.0));
    Ok(index)
}

/// The aggregates files of one checkpoint, being written.
struct Files {
    customers: StagedWriter,
    jobs: StagedWriter,
    parquet: Option<(CustomersParquet<StagedWriter>, JobsParquet<StagedWriter>)>,
    /// `(name, staged object)` of each file, in the order [`Files::finish`] gives them.
    names: Vec<(&'static str, String)>,
    tenants: u64,
    day_rows: u64,
}

impl Files {
    fn new(n: u64, parquet: bool, staging: &Staging) -> Result<Self, RunError> {
        let store = &staging.location.store;
        let mut names = Vec::new();
        let mut staged = |name: &'static str| {
            // A name of its own per checkpoint: a later checkpoint's staging never
            // overwrites what an earlier manifest lists.
            let path = staging.staged(&format!("{FOLDER}-{n}/{name}"));
            names.push((name, path.clone()));
            StagedWriter::new(store, path)
        };
        let mut customers = staged("customers.csv");
        let mut jobs = staged("jobs.csv");
        for (file, header) in [(&mut customers, CUSTOMERS_HEADER), (&mut jobs, JOBS_HEADER)] {
            file.buffer().extend_from_slice(header.as_bytes());
            file.buffer().push(b'\n');
        }
        let parquet = if parquet {
            let customers =
                CustomersParquet::new("aggregates/customers.parquet", staged("customers.parquet"))
                    .map_err(sink_error)?;
            let jobs = JobsParquet::new("aggregates/jobs.parquet", staged("jobs.parquet"))
                .map_err(sink_error)?;
            Some((customers, jobs))
        } else {
            None
        };
        Ok(Self {
            customers,
            jobs,
            parquet,
            names,
            tenants: 0,
            day_rows: 0,
        })
    }

    /// Adds a tenant's rows (tenants come sorted by id).
    fn push(&mut self, t: &SnapshotTenant<'_>) -> Result<(), RunError> {
        let (job30, job90) = t.counts_at_newest_day();
        let row = CustomerRow {
            company_id: t.id,
            profile: &t.profile,
            job30,
            job90,
            risk_of_churn: t.activity.risk_of_churn(),
            churn_score: t.activity.churn_score(),
            last_event_ms: t.activity.last_event(),
            events: t.activity.events,
        };
        let days = TenantDays {
            company_id: t.id,
            days: &t.days,
        };
        push_customer_csv(self.customers.buffer(), &row);
        self.customers.wrote().map_err(sink_error)?;
        push_jobs_csv(self.jobs.buffer(), days);
        self.jobs.wrote().map_err(sink_error)?;
        if let Some((customers, jobs)) = &mut self.parquet {
            customers.push(&row).map_err(sink_error)?;
            jobs.push(days).map_err(sink_error)?;
        }
        self.tenants += 1;
        self.day_rows += t.days.len() as u64;
        Ok(())
    }

    /// Completes the staged objects: `(name, staged object, bytes, rows)` of each.
    fn finish(self) -> Result<Vec<(&'static str, String, u64, u64)>, RunError> {
        let mut sizes = vec![
            (self.customers.finish().map_err(sink_error)?, self.tenants),
            (self.jobs.finish().map_err(sink_error)?, self.day_rows),
        ];
        if let Some((customers, jobs)) = self.parquet {
            for (file, rows) in [
                customers.finish().map_err(sink_error)?,
                jobs.finish().map_err(sink_error)?,
            ] {
                sizes.push((file.finish().map_err(sink_error)?, rows));
            }
        }
        Ok(self
            .names
            .into_iter()
            .zip(sizes)
            .map(|((name, staged), (len, rows))| (name, staged, len, rows))
            .collect())
    }
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
        // Parts of 16 bytes: every file is uploaded in parts.
        let store: Arc<dyn Store> = Arc::new(MemoryStore::with_part_size(16));
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
        assert_eq!(store.list_uploads("").unwrap(), Some(Vec::new()));
        let PendingBody::Staged(parquet) = &pending[2].body else {
            panic!("staged");
        };
        let bytes = store.get(parquet).unwrap().unwrap();
        assert_eq!(pending[2].len, bytes.len() as u64);
        let reader = parquet::file::reader::SerializedFileReader::new(bytes).unwrap();
        use parquet::file::reader::FileReader as _;
        assert_eq!(reader.metadata().file_metadata().num_rows(), 3);
    }
}
