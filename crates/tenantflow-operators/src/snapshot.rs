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
//! (`u8`: 0 false, 1 true, 2 none).
//!
//! Version 4, the one written now, holds the same values in about half the bytes (a
//! million tenants' checkpoint, and the memory it takes while it is written, shrink
//! with it): lengths, counts and integers as LEB128 varints (signed ones zigzagged);
//! per tenant its id and industry (a varint length and UTF-8 bytes), revenu,
//! employees, job30, job90 (signed varints), monthlyFee, totalFee (`f64`), the count of
//! days, the first day (signed varint) and each later one as the gap from the one
//! before (varint), each followed by its jobs (varint); then a flags byte (bit 0: a
//! refresh time follows; bits 1–2: the last risk; bit 3: a last score follows; bit 4:
//! a newest event time follows), events joined (varint), and what the flags announce:
//! the refresh time (signed varint), the newest event time (signed varint), the last
//! score (`f64`).
//!
//! Derived values (window sums, the model's industry weight, the sink's pre-encoded
//! profile) are not stored: they are rebuilt on load. A later release reads every
//! version it knows, and refuses one it does not with a clear error.

use tenantflow_core::CompanyProfile;

use crate::key::TenantKey;
use crate::score::Model;
use crate::tenant::{Activity, NEVER, Tenant, TenantTable};
use crate::window::DayWindow;

const MAGIC: &[u8; 8] = b"TFSTATE\0";
/// The version this release writes.
pub const VERSION: u32 = 4;
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
        let mut out = Vec::with_capacity(24 + self.len() * 80);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(self.len() as u64).to_le_bytes());
        for (id, tenant) in self.iter() {
            put_tenant(&mut out, id, tenant);
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

/// One tenant, as version 4 stores it.
fn put_tenant<X>(out: &mut Vec<u8>, id: &str, tenant: &Tenant<X>) {
    put_bytes(out, id.as_bytes());
    let p = &tenant.profile;
    put_bytes(out, p.industry.as_bytes());
    for v in [p.revenu, p.employees, p.job30, p.job90] {
        put_signed(out, v);
    }
    for v in [p.monthly_fee, p.total_fee] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let days = tenant.window.days();
    put_varint(out, days.len() as u64);
    let mut previous = None;
    for (day, jobs) in days {
        match previous {
            None => put_signed(out, i64::from(day)),
            Some(before) => put_varint(out, (i64::from(day) - before) as u64),
        }
        put_varint(out, jobs);
        previous = Some(i64::from(day));
    }
    let (events, last_event_ms, score, risk) = tenant.activity.to_parts();
    let refresh = (tenant.refresh_at_ms != NEVER).then_some(tenant.refresh_at_ms);
    let score = (!f64::from_bits(score).is_nan()).then_some(score);
    let last_event = (last_event_ms != i64::MIN).then_some(last_event_ms);
    out.push(
        u8::from(refresh.is_some())
            | (risk & 0b11) << 1
            | u8::from(score.is_some()) << 3
            | u8::from(last_event.is_some()) << 4,
    );
    put_varint(out, events);
    if let Some(at) = refresh {
        put_signed(out, at);
    }
    if let Some(at) = last_event {
        put_signed(out, at);
    }
    if let Some(score) = score {
        out.extend_from_slice(&score.to_le_bytes());
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// LEB128: seven bits a byte, the high bit set on every byte but the last.
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Zigzag (0, -1, 1, -2, … as 0, 1, 2, 3, …), then LEB128.
fn put_signed(out: &mut Vec<u8>, v: i64) {
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
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

    fn varint(&mut self) -> Result<u64, SnapshotError> {
        let at = self.at;
        let mut v = 0_u64;
        for shift in (0..64).step_by(7) {
            let [byte] = self.array()?;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                // The tenth byte may hold only the top bit.
                return if shift == 63 && byte > 1 {
                    Err(SnapshotError::Corrupt(at))
                } else {
                    Ok(v)
                };
            }
        }
        Err(SnapshotError::Corrupt(at))
    }

    fn signed(&mut self) -> Result<i64, SnapshotError> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn varint_str(&mut self) -> Result<&'a str, SnapshotError> {
        let at = self.at;
        let len = usize::try_from(self.varint()?).map_err(|_| SnapshotError::Corrupt(at))?;
        let at = self.at;
        std::str::from_utf8(self.take(len)?).map_err(|_| SnapshotError::Corrupt(at))
    }

    /// One tenant, as a snapshot of `version` stores it.
    fn tenant(&mut self, version: u32) -> Result<SnapshotTenant<'a>, SnapshotError> {
        if version >= 4 {
            return self.compact_tenant();
        }
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

    /// One tenant, as version 4 stores it.
    fn compact_tenant(&mut self) -> Result<SnapshotTenant<'a>, SnapshotError> {
        let id = self.varint_str()?;
        let industry = self.varint_str()?;
        let profile = CompanyProfile {
            industry: industry.into(),
            revenu: self.signed()?,
            employees: self.signed()?,
            job30: self.signed()?,
            job90: self.signed()?,
            monthly_fee: f64::from_bits(self.u64()?),
            total_fee: f64::from_bits(self.u64()?),
        };
        let at = self.at;
        let count = self.varint()?;
        // Every day takes two bytes at least: a count past what is left is corrupt.
        if count > (self.bytes.len() - self.at) as u64 / 2 {
            return Err(SnapshotError::Corrupt(at));
        }
        let mut days = Vec::with_capacity(count as usize);
        let mut day = 0_i64;
        for i in 0..count {
            let at = self.at;
            day = if i == 0 {
                self.signed()?
            } else {
                day.checked_add_unsigned(self.varint()?)
                    .ok_or(SnapshotError::Corrupt(at))?
            };
            let day32 = i32::try_from(day).map_err(|_| SnapshotError::Corrupt(at))?;
            days.push((day32, self.varint()?));
        }
        let at = self.at;
        let [flags] = self.array()?;
        let events = self.varint()?;
        let refresh_at_ms = if flags & 1 != 0 {
            self.signed()?
        } else {
            NEVER
        };
        let last_event_ms = if flags & 1 << 4 != 0 {
            self.signed()?
        } else {
            i64::MIN
        };
        let score = if flags & 1 << 3 != 0 {
            self.u64()?
        } else {
            f64::NAN.to_bits()
        };
        let activity = Activity::from_parts(events, last_event_ms, score, flags >> 1 & 0b11)
            .filter(|_| flags >> 5 == 0)
            .ok_or(SnapshotError::Corrupt(at))?;
        Ok(SnapshotTenant {
            id,
            profile,
            days,
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
    fn put_str(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }

    /// A table as version 3 (the last fixed-width one) stored it.
    fn snapshot_v3<X>(table: &TenantTable<X>) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(table.len() as u64).to_le_bytes());
        for (id, tenant) in table.iter() {
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

    /// Every value a tenant holds, as a snapshot reads it back.
    fn tenants(bytes: &[u8]) -> Vec<String> {
        let mut seen = Vec::new();
        read_snapshot(bytes, |t| {
            seen.push(format!("{t:?}").replace(&format!("at: {}", t.at), ""));
            Ok(())
        })
        .unwrap();
        seen
    }

    #[test]
    fn version_4_holds_what_version_3_held_in_half_the_bytes() {
        let model = Model::builtin();
        let mut table: TenantTable<()> = TenantTable::new(Retention::default());
        let extremes = [i64::MIN, -1, 0, 1, 63, 64, 8_191, 8_192, i64::MAX];
        for (i, v) in extremes.into_iter().enumerate() {
            let profile = CompanyProfile {
                industry: ["retail", "media", ""][i % 3].into(),
                revenu: v,
                employees: v.wrapping_neg(),
                job30: i as i64,
                job90: v / 3,
                monthly_fee: f64::from(i as u32) * 0.1,
                total_fee: -1.5,
            };
            let refresh = if i % 2 == 0 { NEVER } else { v };
            table.set_profile(&format!("c{i}"), profile, refresh, &model, |_| ());
        }
        for i in 0..300_i64 {
            let id = format!("c{}", i % 7);
            let jobs = if i == 5 {
                u64::MAX / 2
            } else {
                1 + i as u64 % 4
            };
            if let JobOutcome::Joined(j) =
                table.process_job(&id, jobs, i * DAY / 3 - 40 * DAY, &model)
                && i % 5 == 0
            {
                j.tenant.activity.record_score(None, true);
            }
        }
        let (v3, v4) = (snapshot_v3(&table), table.snapshot());
        assert_eq!(tenants(&v3), tenants(&v4));
        assert!(
            v4.len() * 2 < v3.len() + 200,
            "{} against {}",
            v4.len(),
            v3.len()
        );
        let mut restored: TenantTable<()> = TenantTable::new(Retention::default());
        restored.restore(&v4, &model, |_, _| ()).unwrap();
        let sorted = |bytes: &[u8]| {
            let mut t = tenants(bytes);
            t.sort();
            t
        };
        assert_eq!(sorted(&restored.snapshot()), sorted(&v4));
        // Cut anywhere, it is an error, never a panic or a shorter table.
        for end in 20..v4.len() {
            assert!(
                read_snapshot(&v4[..end], |_| Ok(())).is_err(),
                "cut at {end}"
            );
        }
    }

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
        let mut next = MAGIC.to_vec();
        next.extend_from_slice(&(VERSION + 1).to_le_bytes());
        assert_eq!(
            table.restore(&next, &model, |_, _| ()),
            Err(SnapshotError::Version(VERSION + 1))
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
