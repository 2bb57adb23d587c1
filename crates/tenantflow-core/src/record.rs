//! The records of DESIGN.md §1: job events, companies, and results.

use std::borrow::Cow;

/// The two kinds of input record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// A job event (stream `bigdatajobs`).
    Job,
    /// A company profile (stream `companies`).
    Company,
}

impl RecordKind {
    /// The value of the `type` tag for this kind.
    pub fn tag(self) -> &'static str {
        match self {
            RecordKind::Job => "job",
            RecordKind::Company => "company",
        }
    }
}

/// A job event: a tenant's user submitted `nb_jobs` jobs at `creation_date`.
#[derive(Debug, Clone, PartialEq)]
pub struct JobEvent<'a> {
    /// The tenant, never empty.
    pub company_id: Cow<'a, str>,
    /// The user who submitted the jobs.
    pub user_id: Cow<'a, str>,
    /// How many jobs were submitted.
    pub nb_jobs: u64,
    /// Event time in epoch milliseconds; `None` when the record carried none (the source
    /// then uses the arrival time).
    pub creation_date: Option<i64>,
    /// The record as it was read (a line of a file or of a stream record), once the
    /// job has it: a dead letter gives it back byte for byte, so that it can be fixed
    /// and re-driven. Decoders leave it `None`; the router sets it.
    pub raw: Option<Cow<'a, str>>,
}

/// A company profile as carried by the `companies` stream or the TenantManager.
#[derive(Debug, Clone, PartialEq)]
pub struct Company<'a> {
    /// The tenant, never empty.
    pub company_id: Cow<'a, str>,
    /// The profile without the id.
    pub profile: ProfileFields<'a>,
}

/// The fields of a company profile, borrowed from the input where possible.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileFields<'a> {
    /// Industry, e.g. `retail`; unknown industries are valid.
    pub industry: Cow<'a, str>,
    /// Revenue (the original spelling `revenu` is kept on the wire).
    pub revenu: i64,
    /// Number of employees.
    pub employees: i64,
    /// Baseline of jobs in the last 30 days, kept by the TenantManager.
    pub job30: i64,
    /// Baseline of jobs in the last 90 days, kept by the TenantManager.
    pub job90: i64,
    /// Monthly fee.
    pub monthly_fee: f64,
    /// Total fee paid so far.
    pub total_fee: f64,
}

impl ProfileFields<'_> {
    /// An owned copy, to keep in state.
    pub fn to_profile(&self) -> CompanyProfile {
        CompanyProfile {
            industry: self.industry.as_ref().into(),
            revenu: self.revenu,
            employees: self.employees,
            job30: self.job30,
            job90: self.job90,
            monthly_fee: self.monthly_fee,
            total_fee: self.total_fee,
        }
    }
}

/// An owned company profile, as held in keyed state (and in a checkpoint's waiting
/// work, as JSON with these field names).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CompanyProfile {
    /// Industry, e.g. `retail` (one allocation per name, shared).
    pub industry: crate::Industry,
    /// Revenue.
    pub revenu: i64,
    /// Number of employees.
    pub employees: i64,
    /// Baseline of jobs in the last 30 days.
    pub job30: i64,
    /// Baseline of jobs in the last 90 days.
    pub job90: i64,
    /// Monthly fee.
    pub monthly_fee: f64,
    /// Total fee.
    pub total_fee: f64,
}

/// A decoded input record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record<'a> {
    /// A job event.
    Job(JobEvent<'a>),
    /// A company profile.
    Company(Company<'a>),
}

impl Record<'_> {
    /// The tenant the record belongs to.
    pub fn company_id(&self) -> &str {
        match self {
            Record::Job(job) => &job.company_id,
            Record::Company(company) => &company.company_id,
        }
    }

    /// A copy that borrows nothing (to keep a record past its batch).
    pub fn to_owned_record(&self) -> Record<'static> {
        let own = |s: &Cow<'_, str>| Cow::Owned(s.to_string());
        match self {
            Record::Job(job) => Record::Job(JobEvent {
                company_id: own(&job.company_id),
                user_id: own(&job.user_id),
                nb_jobs: job.nb_jobs,
                creation_date: job.creation_date,
                raw: job.raw.as_ref().map(own),
            }),
            Record::Company(company) => Record::Company(Company {
                company_id: own(&company.company_id),
                profile: ProfileFields {
                    industry: own(&company.profile.industry),
                    ..company.profile
                },
            }),
        }
    }

    /// The kind of the record.
    pub fn kind(&self) -> RecordKind {
        match self {
            Record::Job(_) => RecordKind::Job,
            Record::Company(_) => RecordKind::Company,
        }
    }
}

/// One result: a job event joined with its tenant's profile, counted and scored.
///
/// Its fields, in output order: `companyID, industry, revenu, employees, job30, job90,
/// monthlyFee, totalFee, riskOfChurn, churnScore, userID, nbJobs, creationDate`.
#[derive(Debug, Clone, Copy)]
pub struct ResultRow<'a> {
    /// The tenant.
    pub company_id: &'a str,
    /// The tenant's profile as it stood when the event was processed.
    pub profile: &'a CompanyProfile,
    /// `profile.job30` plus the jobs of the 30 days ending on the event's day.
    pub job30: i64,
    /// `profile.job90` plus the jobs of the 90 days ending on the event's day.
    pub job90: i64,
    /// `churn_score >= threshold`.
    pub risk_of_churn: bool,
    /// The model's churn probability; `None` when the scorer gave a label alone (the
    /// original `/assessChurn` route answers `{"churn":bool}`).
    pub churn_score: Option<f64>,
    /// The user of the job event.
    pub user_id: &'a str,
    /// Jobs in the event.
    pub nb_jobs: u64,
    /// Event time, epoch milliseconds.
    pub creation_date: i64,
    /// The version of the model that scored the result, when results carry it (the
    /// `modelVersion` field, last).
    pub model_version: Option<&'a str>,
}

/// The result fields in output order, as named on the wire.
pub const RESULT_FIELDS: [&str; 13] = [
    "companyID",
    "industry",
    "revenu",
    "employees",
    "job30",
    "job90",
    "monthlyFee",
    "totalFee",
    "riskOfChurn",
    "churnScore",
    "userID",
    "nbJobs",
    "creationDate",
];
