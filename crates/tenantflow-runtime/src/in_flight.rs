//! What a worker's async stages hold at a checkpoint barrier: records waiting for a
//! lookup, and rows waiting for a score. A barrier does not wait for them (a slow
//! remote service must not hold a checkpoint up, as Flink's async operator does not):
//! they go into the checkpoint beside the tenant state, and a run that resumes from it
//! issues them again before it reads anything new.
//!
//! A row waiting for a score has been applied to the tenant state of the checkpoint
//! (its counts are in the windows), so it is kept whole, ready to be scored and
//! written. A record waiting for a lookup has not been applied: it is kept as it was
//! read, to be processed again.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use tenantflow_core::batch::Position;
use tenantflow_core::record::{Company, JobEvent, ProfileFields};
use tenantflow_core::{CompanyProfile, Record};

/// A worker's waiting work at a barrier, in the order it came.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct InFlight {
    /// Rows applied to state and waiting for a score: open or sent, in the order they
    /// were added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) scoring: Vec<ScoringRow>,
    /// Records waiting for a lookup (or behind one), in arrival order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) lookups: Vec<WaitingRecord>,
}

impl InFlight {
    pub(crate) fn is_empty(&self) -> bool {
        self.scoring.is_empty() && self.lookups.is_empty()
    }

    /// As stored in a checkpoint.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// Read back from a checkpoint.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// Where a record was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct At {
    pub(crate) source: u32,
    pub(crate) line: u64,
}

impl From<Position> for At {
    fn from(p: Position) -> Self {
        Self {
            source: p.source,
            line: p.line,
        }
    }
}

impl From<At> for Position {
    fn from(at: At) -> Self {
        Position {
            source: at.source,
            line: at.line,
        }
    }
}

/// A joined and counted job event waiting for its score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ScoringRow {
    pub(crate) company_id: Box<str>,
    /// The profile as it stood when the event was processed.
    pub(crate) profile: CompanyProfile,
    pub(crate) job30: i64,
    pub(crate) job90: i64,
    pub(crate) user_id: Box<str>,
    pub(crate) nb_jobs: u64,
    pub(crate) creation_date: i64,
    pub(crate) at: At,
    /// The event as it was read (absent in older checkpoints, and for generated events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) raw: Option<Box<str>>,
}

/// A record waiting for its tenant's lookup, as it was read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum WaitingRecord {
    Job {
        company_id: Box<str>,
        user_id: Box<str>,
        nb_jobs: u64,
        creation_date: Option<i64>,
        at: At,
        /// The event as it was read (absent in older checkpoints, and for generated events).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        raw: Option<Box<str>>,
    },
    Company {
        company_id: Box<str>,
        profile: CompanyProfile,
        at: At,
    },
}

impl WaitingRecord {
    pub(crate) fn new(record: &Record<'_>, position: Position) -> Self {
        let at = At::from(position);
        match record {
            Record::Job(job) => Self::Job {
                company_id: job.company_id.as_ref().into(),
                user_id: job.user_id.as_ref().into(),
                nb_jobs: job.nb_jobs,
                creation_date: job.creation_date,
                at,
                raw: job.raw.as_deref().map(Into::into),
            },
            Record::Company(company) => Self::Company {
                company_id: company.company_id.as_ref().into(),
                profile: company.profile.to_profile(),
                at,
            },
        }
    }

    /// The record and where it was read.
    pub(crate) fn into_record(self) -> (Record<'static>, Position) {
        match self {
            Self::Job {
                company_id,
                user_id,
                nb_jobs,
                creation_date,
                at,
                raw,
            } => (
                Record::Job(JobEvent {
                    company_id: Cow::Owned(company_id.into()),
                    user_id: Cow::Owned(user_id.into()),
                    nb_jobs,
                    creation_date,
                    raw: raw.map(String::from).map(Cow::Owned),
                }),
                at.into(),
            ),
            Self::Company {
                company_id,
                profile,
                at,
            } => (
                Record::Company(Company {
                    company_id: Cow::Owned(company_id.into()),
                    profile: ProfileFields {
                        industry: Cow::Owned(profile.industry.into()),
                        revenu: profile.revenu,
                        employees: profile.employees,
                        job30: profile.job30,
                        job90: profile.job90,
                        monthly_fee: profile.monthly_fee,
                        total_fee: profile.total_fee,
                    },
                }),
                at.into(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn profile() -> CompanyProfile {
        CompanyProfile {
            industry: "retail".into(),
            revenu: 29_080,
            employees: 14_540,
            job30: 4,
            job90: 13,
            monthly_fee: 461.1,
            total_fee: 0.1 + 0.2,
        }
    }

    #[test]
    fn waiting_work_survives_a_checkpoint_exactly() {
        let in_flight = InFlight {
            scoring: vec![ScoringRow {
                company_id: "c-1".into(),
                profile: profile(),
                job30: 5,
                job90: 14,
                user_id: "u\"1".into(),
                nb_jobs: 3,
                creation_date: 1_700_000_000_000,
                at: At { source: 1, line: 7 },
                raw: Some(r#"c-1,u"1,3,1700000000000"#.into()),
            }],
            lookups: vec![
                WaitingRecord::Job {
                    company_id: "c-2".into(),
                    user_id: "u2".into(),
                    nb_jobs: 1,
                    creation_date: None,
                    at: At { source: 0, line: 9 },
                    raw: Some(r#"{ "companyID": "c-2", "userID": "u2", "nbJobs": 1 }"#.into()),
                },
                WaitingRecord::Job {
                    company_id: "c-3".into(),
                    user_id: "u3".into(),
                    nb_jobs: 2,
                    creation_date: Some(5),
                    at: At { source: 2, line: 1 },
                    raw: None,
                },
                WaitingRecord::Company {
                    company_id: "c-2".into(),
                    profile: profile(),
                    at: At {
                        source: 0,
                        line: 10,
                    },
                },
            ],
        };
        let back = InFlight::decode(&in_flight.encode().unwrap()).unwrap();
        assert_eq!(back, in_flight);
        assert!(InFlight::decode(b"{}").unwrap().is_empty());
        assert!(InFlight::decode(b"[1]").is_err());
    }

    #[test]
    fn a_waiting_record_is_the_record_it_was() {
        let record = Record::Company(Company {
            company_id: Cow::Borrowed("c-9"),
            profile: ProfileFields {
                industry: Cow::Borrowed("IT"),
                revenu: 1,
                employees: 2,
                job30: 3,
                job90: 4,
                monthly_fee: 5.5,
                total_fee: 6.25,
            },
        });
        let position = Position {
            source: 2,
            line: 41,
        };
        let (back, at) = WaitingRecord::new(&record, position).into_record();
        assert_eq!(back, record);
        assert_eq!(at, position);
    }
}
