//! The fields of any input record before validation, and the one validation of them.

use std::borrow::Cow;

use serde::Deserialize;

use super::{DecodeError, DefaultKind, truncated};
use crate::record::{Company, JobEvent, ProfileFields, Record};
use crate::validate;

/// Every field any record may carry, under its canonical name and its aliases.
/// Unknown fields are ignored. Filled by the fast scanner or by `serde_json`.
#[derive(Debug, Default, Deserialize)]
pub struct RawRecord<'a> {
    /// The `type` tag of mixed inputs.
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<Cow<'a, str>>,
    /// `companyID`, alias `company_id`.
    #[serde(rename = "companyID", alias = "company_id")]
    #[serde(borrow, default)]
    pub company_id: Option<Cow<'a, str>>,
    /// `tenantID`, the TenantManager's name of the id: alone, or beside `companyID`
    /// with the same value (the TenantManager writes both).
    #[serde(rename = "tenantID", borrow, default)]
    pub tenant_id: Option<Cow<'a, str>>,
    /// `userID`, alias `userid`, `user_id`.
    #[serde(
        rename = "userID",
        alias = "userid",
        alias = "user_id",
        borrow,
        default
    )]
    pub user_id: Option<Cow<'a, str>>,
    /// `nbJobs`, alias `nb_job_submitted`, `#job_submitted`, `jobSubmitted`.
    #[serde(
        rename = "nbJobs",
        alias = "nb_job_submitted",
        alias = "#job_submitted"
    )]
    #[serde(alias = "jobSubmitted", default, deserialize_with = "integer")]
    pub nb_jobs: Option<i64>,
    /// `creationDate`, alias `ts`, `timestamp`: epoch milliseconds.
    #[serde(
        rename = "creationDate",
        alias = "ts",
        alias = "timestamp",
        default,
        deserialize_with = "integer"
    )]
    pub creation_date: Option<i64>,
    /// `industry`.
    #[serde(borrow, default)]
    pub industry: Option<Cow<'a, str>>,
    /// `revenu` (the original spelling).
    #[serde(default, deserialize_with = "integer")]
    pub revenu: Option<i64>,
    /// `employees`, alias `employee`.
    #[serde(alias = "employee", default, deserialize_with = "integer")]
    pub employees: Option<i64>,
    /// `job30`.
    #[serde(default, deserialize_with = "integer")]
    pub job30: Option<i64>,
    /// `job90`.
    #[serde(default, deserialize_with = "integer")]
    pub job90: Option<i64>,
    /// `monthlyFee`.
    #[serde(rename = "monthlyFee", default)]
    pub monthly_fee: Option<f64>,
    /// `totalFee`.
    #[serde(rename = "totalFee", default)]
    pub total_fee: Option<f64>,
    /// `riskOfChurn`, accepted and ignored on input: the job computes it.
    #[serde(rename = "riskOfChurn", default)]
    pub risk_of_churn: Option<bool>,
}

/// An integer field (or null), whose errors say "integer": serde alone reports a
/// 20-digit integer as "floating point `1e20`".
fn integer<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Option<i64>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an integer")
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            i64::try_from(v)
                .map(Some)
                .map_err(|_| E::custom(format!("integer {v} is out of range")))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            if v.is_finite() && v.fract() == 0.0 {
                Err(E::custom(format!("integer {v:.0} is out of range")))
            } else {
                Err(E::custom(format!("expected an integer, got {v}")))
            }
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: serde::Deserializer<'de>>(
            self,
            deserializer: D,
        ) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_any(self)
        }
    }
    deserializer.deserialize_option(Visitor)
}

impl<'a> RawRecord<'a> {
    /// Validates the fields into a record of the tagged, or else the default, kind.
    ///
    /// # Errors
    /// What is missing or out of range, naming the field.
    pub fn into_record(self, default_kind: DefaultKind) -> Result<Record<'a>, DecodeError> {
        let is_company = match self.kind.as_deref() {
            Some("job") => false,
            Some("company") => true,
            Some(other) => return Err(DecodeError::UnknownType(truncated(other, 64).into())),
            None => match default_kind {
                DefaultKind::Job => false,
                DefaultKind::Company => true,
                DefaultKind::Infer => self.industry.is_some(),
            },
        };
        if is_company {
            self.into_company().map(Record::Company)
        } else {
            self.into_job().map(Record::Job)
        }
    }

    fn into_job(self) -> Result<JobEvent<'a>, DecodeError> {
        const KIND: &str = "job";
        let company_id = required_id(self.company_id, self.tenant_id, KIND)?;
        let user_id = required(self.user_id, "userID", KIND)?;
        checked_text(&user_id, "userID", validate::user_id)?;
        let nb_jobs = required(self.nb_jobs, "nbJobs", KIND)?;
        let nb_jobs = validate::nb_jobs(nb_jobs).map_err(|e| invalid("nbJobs", e, nb_jobs))?;
        Ok(JobEvent {
            company_id,
            user_id,
            nb_jobs,
            creation_date: self.creation_date,
            raw: None,
        })
    }

    fn into_company(self) -> Result<Company<'a>, DecodeError> {
        const KIND: &str = "company";
        let company_id = required_id(self.company_id, self.tenant_id, KIND)?;
        let industry = required(self.industry, "industry", KIND)?;
        checked_text(&industry, "industry", validate::industry)?;
        let profile = ProfileFields {
            industry,
            revenu: count(required(self.revenu, "revenu", KIND)?, "revenu")?,
            employees: count(required(self.employees, "employees", KIND)?, "employees")?,
            job30: count(required(self.job30, "job30", KIND)?, "job30")?,
            job90: count(required(self.job90, "job90", KIND)?, "job90")?,
            monthly_fee: fee(
                required(self.monthly_fee, "monthlyFee", KIND)?,
                "monthlyFee",
            )?,
            total_fee: fee(required(self.total_fee, "totalFee", KIND)?, "totalFee")?,
        };
        Ok(Company {
            company_id,
            profile,
        })
    }
}

fn required<T>(
    value: Option<T>,
    field: &'static str,
    kind: &'static str,
) -> Result<T, DecodeError> {
    value.ok_or(DecodeError::MissingField { field, kind })
}

fn required_id<'a>(
    company_id: Option<Cow<'a, str>>,
    tenant_id: Option<Cow<'a, str>>,
    kind: &'static str,
) -> Result<Cow<'a, str>, DecodeError> {
    let value = match (company_id, tenant_id) {
        (Some(a), Some(b)) if a != b => {
            return Err(invalid(
                "companyID",
                "the same id as tenantID",
                format!("{a} (tenantID {b})"),
            ));
        }
        (Some(a), _) => Some(a),
        (None, b) => b,
    };
    let id = required(value, "companyID", kind)?;
    checked_text(&id, "companyID", validate::company_id)?;
    Ok(id)
}

fn invalid(field: &'static str, expected: &'static str, got: impl ToString) -> DecodeError {
    DecodeError::Invalid {
        field,
        expected,
        got: truncated(&got.to_string(), 64).into_owned(),
    }
}

fn checked_text(
    value: &str,
    field: &'static str,
    check: fn(&str) -> Result<(), &'static str>,
) -> Result<(), DecodeError> {
    check(value).map_err(|e| invalid(field, e, format!("{value:?}")))
}

fn count(value: i64, field: &'static str) -> Result<i64, DecodeError> {
    validate::count(value).map_err(|e| invalid(field, e, value))
}

fn fee(value: f64, field: &'static str) -> Result<f64, DecodeError> {
    validate::fee(value).map_err(|e| invalid(field, e, value))
}
