//! Tenant state to bytes and back, for checkpoints.
//!
//! Format, version 1 (little-endian): the magic `TFSTATE\0`, a `u32` version, a `u64`
//! tenant count, then per tenant: its id and industry (each a `u32` length and UTF-8
//! bytes), revenu, employees, job30, job90 (`i64`), monthlyFee, totalFee (`f64`), a
//! `u32` count of days with jobs, and each day oldest first as (`i32` day, `u64`
//! jobs). Version 2 adds, after the days, an `i64`: when a profile fetched from the
//! TenantManager is to be fetched again (`i64::MAX`: never). Version 3 adds, after
//! that, the tenant's activity: events joined (`u64`), the newest event time (`i64`,
//! `i64::MIN` before the first), the last score (`f64`, NaN: none) and the last risk
//! (`u8`: 0 false, 1 true, 2 none). Derived values (window sums, the model's industry weight, the sink's
//! pre-encoded profile) are not stored: they are rebuilt on load. A later release
//! reads every version it knows, and refuses one it does not with a clear error.

use tenantflow_core::CompanyProfile;

use crate::key::TenantKey;
use crate::score::Model;
use crate::tenant::{Activity, NEVER, Tenant, TenantTable};
use crate::window::DayWindow;

const MAGIC: &[u8; 8] = b"TFSTATE\0";
/// The version this release writes.
pub const VERSION: u32 = 3;
/// The oldest version this release reads.
pub const OLDEST_VERSION: u32 = 1;

/// Why a snapshot cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnapshotError {
    /// Not a tenant state snapshot.
    #[error("not a tenantflow state snapshot (bad magic)")]
    BadMagic,
    /// Written by a release this one cannot read.
    #[error(
        "state snapshot version {0} is not supported (this release reads versions {OLDEST_VERSION} to {VERSION})"
    )]
    Version(u32),
    /// Cut short or corrupt.
    #[error("state snapshot is truncated or corrupt at byte {0}")]
    Corrupt(usize),
}

impl<X> TenantTable<X> {
    /// Every tenant's state as bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.len() * 96);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(self.len() as u64).to_le_bytes());
        for (id, tenant) in self.iter() {
            put_str(&mut out, id);
            let p = &tenant.profile;
            put_str(&mut out, &p.industry);
            for v in [p.revenu, p.employees, p.job30, p.job90] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            for v in [p.monthly_fee, p.total_fee] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            let days = tenant.window.days();
            out.extend_from_slice(&(days.len() as u32).to_le_bytes());
            for (day, jobs) in days {
                out.extend_from_slice(&day.to_le_bytes());
                out.extend_from_slice(&jobs.to_le_bytes());
            }
            out.extend_from_slice(&tenant.refresh_at_ms.to_le_bytes());
            let (events, last_event_ms, score, risk) = tenant.activity.to_parts();
            out.extend_from_slice(&events.to_le_bytes());
            out.extend_from_slice(&last_event_ms.to_le_bytes());
            out.extend_from_slice(&score.to_le_bytes());
            out.push(risk);
        }
        out
    }

    /// Adds the tenants of a snapshot; `ext` builds the worker's extension of each
    /// profile.
    ///
    /// # Errors
    /// A snapshot of another format or version, or a corrupt one.
    pub fn restore(
        &mut self,
        bytes: &[u8],
        model: &Model,
        ext: impl FnMut(&str, &CompanyProfile) -> X,
    ) -> Result<usize, SnapshotError> {
        self.restore_some(bytes, model, |_| true, ext)
    }

    /// Adds the tenants of a snapshot that `keep` accepts (by `companyID`): a child
    /// shard takes its parents' tenants whose hash key its range holds. Returns how
    /// many tenants the snapshot had.
    ///
    /// # Errors
    /// As [`TenantTable::restore`].
    pub fn restore_some(
        &mut self,
        bytes: &[u8],
        model: &Model,
        mut keep: impl FnMut(&str) -> bool,
        mut ext: impl FnMut(&str, &CompanyProfile) -> X,
    ) -> Result<usize, SnapshotError> {
        read_snapshot(bytes, |t| {
            if !keep(t.id) {
                return Ok(());
            }
            let window = DayWindow::from_days(t.days).ok_or(SnapshotError::Corrupt(t.at))?;
            let ext = ext(t.id, &t.profile);
            let tenant = Tenant {
                id: TenantKey::new(t.id),
                industry_weight: model.industry_weight(&t.profile.industry),
                profile: t.profile,
                window,
                refresh_at_ms: t.refresh_at_ms,
                activity: t.activity,
                ext,
            };
            self.insert(tenant);
            Ok(())
        })
    }
}

/// One tenant as a snapshot holds it.
#[derive(Debug)]
pub struct SnapshotTenant<'a> {
    /// Its `companyID`.
    pub id: &'a str,
    /// Its latest profile.
    pub profile: CompanyProfile,
    /// Its days with jobs, `(day, jobs)`, oldest first.
    pub days: Vec<(i32, u64)>,
    /// When a fetched profile is fetched again (`i64::MAX`: never).
    pub refresh_at_ms: i64,
    /// Its activity (the default for snapshots before version 3).
    pub activity: Activity,
    /// Where in the snapshot it ends, for errors.
    at: usize,
}

impl SnapshotTenant<'_> {
    /// `(job30, job90)` as of the tenant's newest day, as
    /// [`Tenant::counts_at_newest_day`] gives them.
    pub fn counts_at_newest_day(&self) -> (i64, i64) {
        let counts = self
            .days
            .last()
            .map_or_else(Default::default, |&(newest, _)| {
                crate::window::sums_at(self.days.iter().rev(), i64::from(newest))
            });
        crate::tenant::with_baseline(&self.profile, counts)
    }
}

/// Reads a snapshot without a model, giving each tenant to `each` in the snapshot's
/// order; returns how many there were.
///
/// # Errors
/// A snapshot of another format or version, a corrupt one, or `each`'s error.
pub fn read_snapshot(
    bytes: &[u8],
    mut each: impl FnMut(SnapshotTenant<'_>) -> Result<(), SnapshotError>,
) -> Result<usize, SnapshotError> {
    let mut tenants = SnapshotReader::new(bytes)?;
    let count = tenants.remaining;
    for tenant in tenants.by_ref() {
        each(tenant?)?;
    }
    tenants.check_end()?;
    Ok(count as usize)
}

/// The tenants of a snapshot, one at a time, borrowing their ids from its bytes; each
/// can be read again later by where it starts ([`SnapshotReader::tenant_at`]). The
/// checkpoint coordinator builds the BI aggregates this way, off the workers' threads,
/// sorting the tenants of every worker by id without copying them.
#[derive(Debug, Clone)]
pub struct SnapshotReader<'a> {
    r: Reader<'a>,
    version: u32,
    remaining: u64,
}

impl<'a> SnapshotReader<'a> {
    /// Checks the header.
    ///
    /// # Errors
    /// A snapshot of another format or version, or one cut short.
    pub fn new(bytes: &'a [u8]) -> Result<Self, SnapshotError> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(8)? != MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        let version = r.u32()?;
        if !(OLDEST_VERSION..=VERSION).contains(&version) {
            return Err(SnapshotError::Version(version));
        }
        let remaining = r.u64()?;
        Ok(Self {
            r,
            version,
            remaining,
        })
    }

    /// Where the next tenant starts.
    pub fn position(&self) -> usize {
        self.r.at
    }

    /// The tenant starting at `at`, a [`SnapshotReader::position`] this reader gave.
    ///
    /// # Errors
    /// When the bytes there are not a tenant.
    pub fn tenant_at(&self, at: usize) -> Result<SnapshotTenant<'a>, SnapshotError> {
        Reader {
            bytes: self.r.bytes,
            at,
        }
        .tenant(self.version)
    }

    /// After the last tenant: an error if bytes are left over.
    fn check_end(&self) -> Result<(), SnapshotError> {
        if self.r.at == self.r.bytes.len() {
            Ok(())
        } else {
            Err(SnapshotError::Corrupt(self.r.at))
        }
    }
}

impl<'a> Iterator for SnapshotReader<'a> {
    type Item = Result<SnapshotTenant<'a>, SnapshotError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let tenant = self.r.tenant(self.version);
        if tenant.is_err() {
            // Nothing after a corrupt tenant can be trusted.
            self.remaining = 0;
        } else if self.remaining == 0
            && let Err(e) = self.check_end()
        {
            return Some(Err(e));
        }
        Some(tenant)
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

#[derive(Debug, Clone)]
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(SnapshotError::Corrupt(self.at))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let at = self.at;
        self.take(N)?
            .try_into()
            .map_err(|_| SnapshotError::Corrupt(at))
    }

    fn u32(&mut self) -> Result<u32, SnapshotError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, SnapshotError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, SnapshotError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn str(&mut self) -> Result<&'a str, SnapshotError> {
        let len = self.u32()? as usize;
        let at = self.at;
        std::str::from_utf8(self.take(len)?).map_err(|_| SnapshotError::Corrupt(at))
    }

    /// One tenant, as a snapshot of `version` stores it.
    fn tenant(&mut self, version: u32) -> Result<SnapshotTenant<'a>, SnapshotError> {
        let id = self.str()?;
        let industry = self.str()?;
        let profile = CompanyProfile {
            industry: industry.into(),
            revenu: self.i64()?,
            employees: self.i64()?,
            job30: self.i64()?,
            job90: self.i64()?,
            monthly_fee: f64::from_bits(self.u64()?),
            total_fee: f64::from_bits(self.u64()?),
        };
        let days = self.u32()?;
        let mut window = Vec::with_capacity(days.min(1024) as usize);
        for _ in 0..days {
            let day = i32::from_le_bytes(self.array()?);
            window.push((day, self.u64()?));
        }
        let refresh_at_ms = if version >= 2 { self.i64()? } else { NEVER };
        let activity = if version >= 3 {
            let events = self.u64()?;
            let last_event_ms = self.i64()?;
            let score = self.u64()?;
            let at = self.at;
            let [risk] = self.array()?;
            Activity::from_parts(events, last_event_ms, score, risk)
                .ok_or(SnapshotError::Corrupt(at))?
        } else {
            Activity::default()
        };
        Ok(SnapshotTenant {
            id,
            profile,
            days: window,
            refresh_at_ms,
            activity,
            at: self.at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::JobOutcome;
    use crate::tenant::ProfileOrigin;
    use crate::window::Retention;
    use tenantflow_core::Record;
    use tenantflow_core::decode::{Decoder, DefaultKind};

    const DAY: i64 = 86_400_000;

    #[test]
    fn a_restored_table_gives_the_same_results() {
        let model = Model::builtin();
        let mut table: TenantTable<()> = TenantTable::new(Retention::default());
        let decoder = Decoder::new(DefaultKind::Company);
        for i in 0..20 {
            let line = format!(
                r#"{{"companyID":"c{i}","industry":"retail","revenu":{},"employees":5,"job30":{i},"job90":9,"monthlyFee":1.5,"totalFee":2.5}}"#,
                1000 + i
            );
            let Record::Company(company) = decoder.decode_json(line.as_bytes()).unwrap() else {
                panic!("a company");
            };
            table.upsert(&company, &model, |_| ());
        }
        for i in 0..200_i64 {
            let _ = table.process_job(
                &format!("c{}", i % 20),
                1 + i as u64 % 3,
                i * DAY / 7,
                &model,
            );
        }
        if let Some(t) = table.tenants_mut().next() {
            t.activity.record_score(Some(0.25), false);
        }
        let bytes = table.snapshot();
        let mut restored: TenantTable<()> = TenantTable::new(Retention::default());
        assert_eq!(restored.restore(&bytes, &model, |_, _| ()).unwrap(), 20);
        assert_eq!(restored.snapshot().len(), bytes.len());
        // The activity and the counts as of each tenant's newest day survive, and the
        // model-free reader sees the same.
        let mut seen = 0;
        read_snapshot(&bytes, |t| {
            let live = table.get(t.id).unwrap();
            assert_eq!(restored.get(t.id).unwrap().activity, live.activity);
            assert_eq!(live.activity.events, 10, "{}", t.id);
            assert_eq!(t.counts_at_newest_day(), live.counts_at_newest_day());
            seen += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, 20);
        assert_eq!(
            table
                .iter()
                .filter(|(_, t)| t.activity.churn_score().is_some())
                .count(),
            1
        );
        for i in 0..100_i64 {
            let id = format!("c{}", i % 20);
            let t = 30 * DAY + i * DAY / 3;
            let (JobOutcome::Joined(a), JobOutcome::Joined(b)) = (
                table.process_job(&id, 2, t, &model),
                restored.process_job(&id, 2, t, &model),
            ) else {
                panic!("joined");
            };
            assert_eq!(a.job30, b.job30);
            assert_eq!(a.job90, b.job90);
            assert_eq!(a.churn_score.to_bits(), b.churn_score.to_bits());
        }
    }

    /// A version 1 snapshot (before fetched profiles) still loads: its tenants are
    /// never refreshed. A fetched profile's refresh time survives a round trip.
    #[test]
    fn reads_version_1_and_keeps_refresh_times() {
        let model = Model::builtin();
        let profile = CompanyProfile {
            industry: "IT".into(),
            revenu: 10,
            employees: 3,
            job30: 4,
            job90: 20,
            monthly_fee: 100.0,
            total_fee: 300.0,
        };
        let mut v1 = MAGIC.to_vec();
        v1.extend_from_slice(&1u32.to_le_bytes());
        v1.extend_from_slice(&1u64.to_le_bytes());
        put_str(&mut v1, "c1");
        put_str(&mut v1, "IT");
        for v in [10i64, 3, 4, 20] {
            v1.extend_from_slice(&v.to_le_bytes());
        }
        for v in [100.0f64, 300.0] {
            v1.extend_from_slice(&v.to_le_bytes());
        }
        v1.extend_from_slice(&1u32.to_le_bytes());
        v1.extend_from_slice(&7i32.to_le_bytes());
        v1.extend_from_slice(&2u64.to_le_bytes());
        let mut table: TenantTable<()> = TenantTable::new(Retention::default());
        assert_eq!(table.restore(&v1, &model, |_, _| ()), Ok(1));
        assert_eq!(table.get("c1").unwrap().profile, profile);
        assert_eq!(table.origin("c1"), Some(ProfileOrigin::Input));

        table.set_profile("c2", profile, 12_345, &model, |_| ());
        let mut restored: TenantTable<()> = TenantTable::new(Retention::default());
        restored
            .restore(&table.snapshot(), &model, |_, _| ())
            .unwrap();
        assert_eq!(
            restored.origin("c2"),
            Some(ProfileOrigin::Fetched {
                refresh_at_ms: 12_345
            })
        );
        assert_eq!(restored.origin("c1"), Some(ProfileOrigin::Input));
    }

    #[test]
    fn bad_snapshots_are_errors() {
        let model = Model::builtin();
        let mut table: TenantTable<()> = TenantTable::new(Retention::default());
        assert_eq!(
            table.restore(b"nope", &model, |_, _| ()),
            Err(SnapshotError::Corrupt(0))
        );
        assert_eq!(
            table.restore(b"NOTSTATE\x01\0\0\0", &model, |_, _| ()),
            Err(SnapshotError::BadMagic)
        );
        let mut v4 = MAGIC.to_vec();
        v4.extend_from_slice(&4u32.to_le_bytes());
        assert_eq!(
            table.restore(&v4, &model, |_, _| ()),
            Err(SnapshotError::Version(4))
        );
        let good = TenantTable::<()>::new(Retention::default()).snapshot();
        assert!(
            table
                .restore(&good[..good.len() - 1], &model, |_, _| ())
                .is_err()
        );
    }

    #[test]
    fn a_reader_reads_a_tenant_again_by_its_position() {
        let model = Model::builtin();
        let mut table: TenantTable<()> = TenantTable::new(Retention::default());
        let decoder = Decoder::new(DefaultKind::Company);
        for id in ["a", "bb", "ccc"] {
            let line = format!(
                r#"{{"companyID":"{id}","industry":"i-{id}","revenu":1,"employees":2,"job30":3,"job90":4,"monthlyFee":1.5,"totalFee":2.5}}"#
            );
            let Record::Company(company) = decoder.decode_json(line.as_bytes()).unwrap() else {
                panic!("a company");
            };
            table.upsert(&company, &model, |_| ());
            let _ = table.process_job(id, id.len() as u64, 3 * DAY, &model);
        }
        let bytes = table.snapshot();
        let reader = SnapshotReader::new(&bytes).unwrap();
        let mut tenants = reader.clone();
        let mut seen = Vec::new();
        loop {
            let at = tenants.position();
            let Some(tenant) = tenants.next() else { break };
            seen.push((tenant.unwrap().id, at));
        }
        assert_eq!(seen.len(), 3);
        for (id, at) in seen.into_iter().rev() {
            let tenant = reader.tenant_at(at).unwrap();
            assert_eq!(tenant.id, id);
            assert_eq!(&*tenant.profile.industry, format!("i-{id}"));
            assert_eq!(tenant.days, [(3, id.len() as u64)]);
        }
        let mut longer = bytes.clone();
        longer.push(0);
        let last = SnapshotReader::new(&longer).unwrap().last().unwrap();
        assert_eq!(last.unwrap_err(), SnapshotError::Corrupt(bytes.len()));
    }
}
