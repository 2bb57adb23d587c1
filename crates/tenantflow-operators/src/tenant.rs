//! Keyed tenant state: the latest profile of each tenant (the table side of the
//! stream-table join) and its day buckets.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use tenantflow_core::{Company, CompanyProfile};

use crate::key::TenantKey;
use crate::score::{Features, Model};
use crate::window::{Counts, DayWindow, Retention, WindowError};

/// One tenant's state. `X` is whatever the worker keeps beside the profile (for
/// instance the profile pre-encoded for the output format), rebuilt on each update.
#[derive(Debug)]
pub struct Tenant<X> {
    /// Its `companyID`.
    pub(crate) id: TenantKey,
    /// The latest profile.
    pub profile: CompanyProfile,
    /// The model's weight of the profile's industry.
    pub industry_weight: f64,
    /// Jobs per day.
    pub window: DayWindow,
    /// For a profile fetched from the TenantManager: when to fetch it again (epoch
    /// milliseconds). [`NEVER`] for a profile from a companies input, which is kept
    /// current by the input itself.
    pub refresh_at_ms: i64,
    /// What the tenant has done: events, the newest event time, the last score.
    pub activity: Activity,
    /// The worker's extension.
    pub ext: X,
}

/// A tenant's activity, for the tenant state API and the BI aggregates.
#[derive(Debug, Clone, Copy)]
pub struct Activity {
    /// Job events joined with the tenant's profile (one result each).
    pub events: u64,
    /// The newest `creationDate` of those events (epoch milliseconds); `i64::MIN`
    /// before the first.
    pub last_event_ms: i64,
    /// The last result's `churnScore`; NaN when it had none (a remote scorer that
    /// answers with a label only) or before the first.
    last_score: f64,
    /// The last result's `riskOfChurn`: 0 false, 1 true, 2 none yet.
    last_risk: u8,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            events: 0,
            last_event_ms: i64::MIN,
            last_score: f64::NAN,
            last_risk: 2,
        }
    }
}

impl PartialEq for Activity {
    /// Equal as stored: a missing score equals a missing score.
    fn eq(&self, other: &Self) -> bool {
        self.to_parts() == other.to_parts()
    }
}

impl Activity {
    /// Counts a joined event of time `creation_date`.
    pub fn count_event(&mut self, creation_date: i64) {
        self.events += 1;
        self.last_event_ms = self.last_event_ms.max(creation_date);
    }

    /// Records the tenant's latest result's score.
    pub fn record_score(&mut self, score: Option<f64>, risk: bool) {
        self.last_score = score.unwrap_or(f64::NAN);
        self.last_risk = u8::from(risk);
    }

    /// The newest event time, if there was an event.
    pub fn last_event(&self) -> Option<i64> {
        (self.events > 0).then_some(self.last_event_ms)
    }

    /// The last result's `churnScore`, if it had one.
    pub fn churn_score(&self) -> Option<f64> {
        (!self.last_score.is_nan()).then_some(self.last_score)
    }

    /// The last result's `riskOfChurn`, if there was a result.
    pub fn risk_of_churn(&self) -> Option<bool> {
        match self.last_risk {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }

    /// As a snapshot stores it: `(events, last_event_ms, score bits, risk)`.
    pub(crate) fn to_parts(self) -> (u64, i64, u64, u8) {
        (
            self.events,
            self.last_event_ms,
            self.last_score.to_bits(),
            self.last_risk,
        )
    }

    /// From what [`Activity::to_parts`] gave; `None` for a risk byte out of range.
    pub(crate) fn from_parts(
        events: u64,
        last_event_ms: i64,
        score: u64,
        risk: u8,
    ) -> Option<Self> {
        (risk <= 2).then_some(Self {
            events,
            last_event_ms,
            last_score: f64::from_bits(score),
            last_risk: risk,
        })
    }
}

/// [`Tenant::refresh_at_ms`] of a profile that is never fetched again.
pub(crate) const NEVER: i64 = i64::MAX;

/// Where a tenant's profile came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileOrigin {
    /// A companies input, which keeps it current itself: never fetched.
    Input,
    /// The TenantManager: fetched again at `refresh_at_ms` (epoch milliseconds).
    Fetched {
        /// When the profile is to be fetched again.
        refresh_at_ms: i64,
    },
}

/// A job event joined, counted and scored.
#[derive(Debug)]
pub struct Joined<'t, X> {
    /// The tenant's state after the event (the caller records the result's score in
    /// its [`Tenant::activity`]).
    pub tenant: &'t mut Tenant<X>,
    /// `profile.job30` + jobs of the 30 days ending on the event's day.
    pub job30: i64,
    /// `profile.job90` + jobs of the 90 days ending on the event's day.
    pub job90: i64,
    /// The model's probability.
    pub churn_score: f64,
    /// `churn_score >= threshold`.
    pub risk_of_churn: bool,
}

/// What became of a job event.
#[derive(Debug)]
pub enum JobOutcome<'t, X> {
    /// Joined with a profile: one result.
    Joined(Joined<'t, X>),
    /// No profile for the tenant.
    UnknownCompany,
    /// Too late for the tenant's window.
    TooLate(WindowError),
}

/// The state of all tenants a worker owns.
///
/// Tenants are boxed and carry their keys (inline when short): a hash table keeps up
/// to twice as many slots as entries (and briefly both tables while it grows), so
/// slots of a pointer, 8 bytes, instead of a key and a pointer (24 bytes and the key's
/// own allocation) or the whole tenant, keep a million tenants small; and a lookup
/// follows one pointer, to the tenant, whose key it compares there.
pub struct TenantTable<X> {
    tenants: HashTable<Box<Tenant<X>>>,
    hasher: foldhash::fast::RandomState,
    retention: Retention,
}

impl<X> std::fmt::Debug for TenantTable<X> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantTable")
            .field("tenants", &self.tenants.len())
            .field("retention", &self.retention)
            .finish()
    }
}

impl<X> TenantTable<X> {
    /// An empty table whose windows keep what `retention` needs.
    pub fn new(retention: Retention) -> Self {
        Self {
            tenants: HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
            retention,
        }
    }

    fn hash(&self, company_id: &str) -> u64 {
        self.hasher.hash_one(company_id.as_bytes())
    }

    fn find(&self, company_id: &str) -> Option<&Tenant<X>> {
        let hash = self.hash(company_id);
        self.tenants
            .find(hash, |t| t.id.as_bytes() == company_id.as_bytes())
            .map(|t| &**t)
    }

    fn find_mut(&mut self, company_id: &str) -> Option<&mut Tenant<X>> {
        let hash = self.hash(company_id);
        self.tenants
            .find_mut(hash, |t| t.id.as_bytes() == company_id.as_bytes())
            .map(|t| &mut **t)
    }

    /// Number of tenants with a profile.
    pub fn len(&self) -> usize {
        self.tenants.len()
    }

    /// True when no tenant has a profile.
    pub fn is_empty(&self) -> bool {
        self.tenants.is_empty()
    }

    /// The state of a tenant, if it has a profile.
    pub fn get(&self, company_id: &str) -> Option<&Tenant<X>> {
        self.find(company_id)
    }

    /// The state of a tenant, mutable, if it has a profile.
    pub fn get_mut(&mut self, company_id: &str) -> Option<&mut Tenant<X>> {
        self.find_mut(company_id)
    }

    /// Every tenant, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tenant<X>)> {
        self.tenants.iter().map(|t| (t.id.as_str(), &**t))
    }

    /// Every tenant's state, mutable, in no particular order.
    pub fn tenants_mut(&mut self) -> impl Iterator<Item = &mut Tenant<X>> {
        self.tenants.iter_mut().map(|t| &mut **t)
    }

    /// Adds a tenant, replacing one of the same id.
    pub(crate) fn insert(&mut self, tenant: Tenant<X>) {
        let hash = self.hash(tenant.id.as_str());
        let hasher = &self.hasher;
        match self.tenants.entry(
            hash,
            |t| t.id == tenant.id,
            |t| hasher.hash_one(t.id.as_bytes()),
        ) {
            hashbrown::hash_table::Entry::Occupied(mut old) => **old.get_mut() = tenant,
            hashbrown::hash_table::Entry::Vacant(slot) => {
                slot.insert(Box::new(tenant));
            }
        }
    }

    /// Makes `company` the tenant's latest profile, keeping its windows.
    /// `ext` builds the worker's extension from the new profile.
    pub fn upsert(
        &mut self,
        company: &Company<'_>,
        model: &Model,
        ext: impl FnOnce(&CompanyProfile) -> X,
    ) {
        let profile = company.profile.to_profile();
        self.set_profile(&company.company_id, profile, NEVER, model, ext);
    }

    /// Makes `profile`, fetched from the TenantManager, the tenant's latest profile,
    /// to be fetched again at `refresh_at_ms`; keeps its windows.
    pub fn set_profile(
        &mut self,
        company_id: &str,
        profile: CompanyProfile,
        refresh_at_ms: i64,
        model: &Model,
        ext: impl FnOnce(&CompanyProfile) -> X,
    ) {
        let industry_weight = model.industry_weight(&profile.industry);
        let ext = ext(&profile);
        match self.find_mut(company_id) {
            Some(tenant) => {
                tenant.profile = profile;
                tenant.industry_weight = industry_weight;
                tenant.ext = ext;
                tenant.refresh_at_ms = refresh_at_ms;
            }
            None => self.insert(Tenant {
                id: TenantKey::new(company_id),
                profile,
                industry_weight,
                window: DayWindow::default(),
                refresh_at_ms,
                activity: Activity::default(),
                ext,
            }),
        }
    }

    /// Where the tenant's profile came from; `None` without a profile.
    pub fn origin(&self, company_id: &str) -> Option<ProfileOrigin> {
        self.find(company_id).map(|t| match t.refresh_at_ms {
            NEVER => ProfileOrigin::Input,
            refresh_at_ms => ProfileOrigin::Fetched { refresh_at_ms },
        })
    }

    /// Postpones the next fetch of a fetched profile (after a failed refresh).
    pub fn postpone_refresh(&mut self, company_id: &str, refresh_at_ms: i64) {
        if let Some(tenant) = self.find_mut(company_id)
            && tenant.refresh_at_ms != NEVER
        {
            tenant.refresh_at_ms = refresh_at_ms;
        }
    }

    /// Forgets a tenant, windows included (the TenantManager no longer knows it).
    pub fn remove(&mut self, company_id: &str) {
        let hash = self.hash(company_id);
        if let Ok(entry) = self
            .tenants
            .find_entry(hash, |t| t.id.as_bytes() == company_id.as_bytes())
        {
            entry.remove();
        }
    }

    /// Counts a job event into its tenant's window, then scores the tenant.
    pub fn process_job(
        &mut self,
        company_id: &str,
        nb_jobs: u64,
        creation_date: i64,
        model: &Model,
    ) -> JobOutcome<'_, X> {
        let retention = self.retention;
        let Some(tenant) = self.find_mut(company_id) else {
            return JobOutcome::UnknownCompany;
        };
        let day = tenantflow_core::time::day_of(creation_date);
        let counts = match tenant.window.add(day, nb_jobs, retention) {
            Ok(counts) => counts,
            Err(e) => return JobOutcome::TooLate(e),
        };
        tenant.activity.count_event(creation_date);
        let p = &tenant.profile;
        let (job30, job90) = with_baseline(p, counts);
        let features = features(p, job30, job90);
        let churn_score = model.score(&features, &p.industry, tenant.industry_weight);
        let risk_of_churn = model.is_risk(churn_score);
        JobOutcome::Joined(Joined {
            tenant,
            job30,
            job90,
            churn_score,
            risk_of_churn,
        })
    }
}

impl<X> Tenant<X> {
    /// Its `companyID`.
    pub fn id(&self) -> &str {
        self.id.as_str()
    }

    /// `(job30, job90)` as of the tenant's newest day: the profile's baseline plus the
    /// jobs of the windows ending on that day.
    pub fn counts_at_newest_day(&self) -> (i64, i64) {
        with_baseline(&self.profile, self.window.newest_counts())
    }
}

/// `(job30, job90)`: the profile's baselines plus the window's `counts`.
pub(crate) fn with_baseline(p: &CompanyProfile, counts: Counts) -> (i64, i64) {
    (
        p.job30.saturating_add(saturating_i64(counts.sum30)),
        p.job90.saturating_add(saturating_i64(counts.sum90)),
    )
}

/// The scored features of a profile with its counts.
pub fn features(p: &CompanyProfile, job30: i64, job90: i64) -> Features {
    Features {
        revenu: p.revenu as f64,
        employees: p.employees as f64,
        job30: job30 as f64,
        job90: job90 as f64,
        monthly_fee: p.monthly_fee,
        total_fee: p.total_fee,
    }
}

impl<X> Joined<'_, X> {
    /// The scored features (what a remote scorer is sent).
    pub fn features(&self) -> Features {
        features(&self.tenant.profile, self.job30, self.job90)
    }
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;
    use tenantflow_core::record::ProfileFields;

    fn company(id: &str, job30: i64) -> Company<'_> {
        Company {
            company_id: Cow::Borrowed(id),
            profile: ProfileFields {
                industry: Cow::Borrowed("retail"),
                revenu: 29080,
                employees: 14540,
                job30,
                job90: 13,
                monthly_fee: 461.0,
                total_fee: 1172.0,
            },
        }
    }

    #[test]
    fn joins_latest_profile_and_keeps_windows_across_updates() {
        let model = Model::builtin();
        let mut table = TenantTable::new(Retention::default());
        assert!(matches!(
            table.process_job("comp_4", 1, 0, &model),
            JobOutcome::UnknownCompany
        ));
        table.upsert(&company("comp_4", 4), &model, |_| ());
        let JobOutcome::Joined(j) = table.process_job("comp_4", 1, 0, &model) else {
            panic!()
        };
        assert_eq!((j.job30, j.job90), (5, 14));
        table.upsert(&company("comp_4", 100), &model, |_| ());
        let JobOutcome::Joined(j) = table.process_job("comp_4", 2, 0, &model) else {
            panic!()
        };
        assert_eq!((j.job30, j.job90), (103, 16));
        assert_eq!(j.tenant.profile.job30, 100);
        assert_eq!(table.len(), 1);
    }
}
