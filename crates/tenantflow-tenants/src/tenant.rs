//! A tenant as the API reads and writes it, and the checks a new one must pass.

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use tenantflow_core::validate;

/// A tenant: its id and its company profile (DESIGN.md §1). As JSON the id is both
/// `tenantID`, as the original service called it, and `companyID`, as the job's records
/// do, so that clients of either read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    /// The tenant's id (`companyID` in the job's records).
    pub tenant_id: String,
    /// Industry, e.g. `retail`.
    pub industry: String,
    /// Revenue (the original spelling).
    pub revenu: i64,
    /// Employees.
    pub employees: i64,
    /// Jobs of the last 30 days before the stream (the job's baseline).
    pub job30: i64,
    /// Jobs of the last 90 days before the stream.
    pub job90: i64,
    /// Monthly fee.
    pub monthly_fee: f64,
    /// Fees paid so far.
    pub total_fee: f64,
}

/// A tenant as the API writes it.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Tenant)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TenantJson<'a> {
    /// The tenant's id, as the original service named it.
    #[serde(rename = "tenantID")]
    tenant_id: &'a str,
    /// The same id, as the job's records name it.
    #[serde(rename = "companyID")]
    company_id: &'a str,
    industry: &'a str,
    revenu: i64,
    employees: i64,
    job30: i64,
    job90: i64,
    monthly_fee: f64,
    total_fee: f64,
}

impl Serialize for Tenant {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        TenantJson {
            tenant_id: &self.tenant_id,
            company_id: &self.tenant_id,
            industry: &self.industry,
            revenu: self.revenu,
            employees: self.employees,
            job30: self.job30,
            job90: self.job90,
            monthly_fee: self.monthly_fee,
            total_fee: self.total_fee,
        }
        .serialize(serializer)
    }
}

/// What a field missing from a body means.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Absent {
    /// An error: every field is needed (PUT replaces the whole tenant).
    Refused,
    /// Zero, for the counts and fees: the original service created a tenant from
    /// `tenantID, industry, revenu, employees`, its job counts and fees starting at 0.
    CountsAndFeesZero,
}

/// One field that fails its check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field.
    pub field: &'static str,
    /// What it must be.
    pub expected: &'static str,
    /// What it was (`null` when missing), cut short.
    pub got: String,
}

impl Tenant {
    /// Checks a JSON body: every field present, of the right type and range. `id`, when
    /// given, is the id of the URL, which the body may omit. Accepts the aliases the
    /// original system used: `companyID` for `tenantID`, `employee` for `employees`.
    ///
    /// # Errors
    /// Every field that fails, in the order of the fields above.
    pub fn from_json(body: &Value, id: Option<&str>) -> Result<Tenant, Vec<FieldError>> {
        Self::parse(body, id, Absent::Refused)
    }

    /// Checks the body of a new tenant (`POST`): as [`Tenant::from_json`], but the job
    /// counts and fees may be left out (0), as the original service's 4-field creation
    /// `{"tenantID","industry","revenu","employees"}` does.
    ///
    /// # Errors
    /// Every field that fails, in order.
    pub fn from_new_json(body: &Value) -> Result<Tenant, Vec<FieldError>> {
        Self::parse(body, None, Absent::CountsAndFeesZero)
    }

    fn parse(body: &Value, id: Option<&str>, absent: Absent) -> Result<Tenant, Vec<FieldError>> {
        let Some(object) = body.as_object() else {
            return Err(vec![FieldError {
                field: "(body)",
                expected: "a JSON object",
                got: shown(body),
            }]);
        };
        let mut errors: Vec<FieldError> = [
            &["tenantID", "companyID"][..],
            &["employees", "employee"][..],
        ]
        .iter()
        .filter_map(|names| conflicting_alias(object, names))
        .collect();
        let tenant_id = match (field(object, &["tenantID", "companyID"]), id) {
            (None, Some(id)) => valid_id(&Value::String(id.into()), &mut errors),
            (Some(v), _) => valid_id(v, &mut errors),
            (None, None) => {
                errors.push(missing("tenantID", "a non-empty string"));
                String::new()
            }
        };
        let industry = match field(object, &["industry"]) {
            Some(Value::String(s)) if validate::industry(s).is_ok() => s.clone(),
            other => {
                errors.push(wrong("industry", validate::INDUSTRY_EXPECTED, other));
                String::new()
            }
        };
        let mut count = |name: &'static str, aliases: &[&str]| -> i64 {
            let value = field(object, aliases);
            match value.and_then(Value::as_i64).map(validate::count) {
                Some(Ok(n)) => n,
                _ => {
                    errors.push(wrong(name, validate::COUNT_EXPECTED, value));
                    0
                }
            }
        };
        let revenu = count("revenu", &["revenu"]);
        let employees = count("employees", &["employees", "employee"]);
        let zero_if_absent =
            |name: &str| absent == Absent::CountsAndFeesZero && field(object, &[name]).is_none();
        let mut counted = |name: &'static str| {
            if zero_if_absent(name) {
                0
            } else {
                count(name, &[name])
            }
        };
        let job30 = counted("job30");
        let job90 = counted("job90");
        let mut fee = |name: &'static str| -> f64 {
            let value = field(object, &[name]);
            match value.and_then(Value::as_f64).map(validate::fee) {
                Some(Ok(x)) => x,
                _ => {
                    errors.push(wrong(name, validate::FEE_EXPECTED, value));
                    0.0
                }
            }
        };
        let mut fee_or_zero = |name: &'static str| {
            if zero_if_absent(name) { 0.0 } else { fee(name) }
        };
        let monthly_fee = fee_or_zero("monthlyFee");
        let total_fee = fee_or_zero("totalFee");
        if errors.is_empty() {
            Ok(Tenant {
                tenant_id,
                industry,
                revenu,
                employees,
                job30,
                job90,
                monthly_fee,
                total_fee,
            })
        } else {
            Err(errors)
        }
    }

    /// The record of the companies stream (the job's input): the job's field names,
    /// tagged as a company.
    pub fn to_stream_record(&self, deleted: bool) -> String {
        let mut value = serde_json::json!({
            "type": "company",
            "companyID": self.tenant_id,
            "industry": self.industry,
            "revenu": self.revenu,
            "employees": self.employees,
            "job30": self.job30,
            "job90": self.job90,
            "monthlyFee": self.monthly_fee,
            "totalFee": self.total_fee,
        });
        if deleted {
            value["deleted"] = Value::Bool(true);
        }
        value.to_string()
    }
}

fn field<'a>(object: &'a Map<String, Value>, names: &[&str]) -> Option<&'a Value> {
    names
        .iter()
        .find_map(|n| object.get(*n))
        .filter(|v| !v.is_null())
}

/// A field given under two of its names with different values: which one is meant
/// cannot be told, so it is refused.
fn conflicting_alias(object: &Map<String, Value>, names: &[&'static str]) -> Option<FieldError> {
    let given: Vec<(&str, &Value)> = names
        .iter()
        .filter_map(|n| object.get(*n).filter(|v| !v.is_null()).map(|v| (*n, v)))
        .collect();
    let (first, value) = *given.first()?;
    let (other, differs) = given.iter().find(|(_, v)| *v != value)?;
    Some(FieldError {
        field: names[0],
        expected: "one value: the field is given under two names with different values",
        got: format!("{first} = {}, {other} = {}", shown(value), shown(differs)),
    })
}

fn valid_id(value: &Value, errors: &mut Vec<FieldError>) -> String {
    let expected = match value {
        Value::String(s) => match validate::company_id(s) {
            Ok(()) => return s.clone(),
            Err(expected) => expected,
        },
        _ => validate::ID_EXPECTED,
    };
    errors.push(wrong("tenantID", expected, Some(value)));
    String::new()
}

fn missing(field: &'static str, expected: &'static str) -> FieldError {
    FieldError {
        field,
        expected,
        got: "null".into(),
    }
}

fn wrong(field: &'static str, expected: &'static str, got: Option<&Value>) -> FieldError {
    FieldError {
        field,
        expected,
        got: got.map_or_else(|| "null".into(), shown),
    }
}

fn shown(value: &Value) -> String {
    tenantflow_core::truncated(&value.to_string(), 60).into_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_the_original_json_with_its_aliases() {
        let body = json!({"companyID":"comp_4","revenu":99420,"industry":"retail","employee":4635,
            "job30":10,"job90":100,"monthlyFee":400,"totalFee":1200,"riskOfChurn":false});
        let t = Tenant::from_json(&body, None).unwrap();
        assert_eq!(t.tenant_id, "comp_4");
        assert_eq!(t.employees, 4635);
        assert_eq!(t.monthly_fee, 400.0);
        let out = serde_json::to_value(&t).unwrap();
        assert_eq!(out["tenantID"], "comp_4");
        assert_eq!(out["companyID"], "comp_4");
        assert_eq!(out["monthlyFee"], 400.0);
    }

    #[test]
    fn a_new_tenant_may_be_the_original_four_fields() {
        let body = json!({"tenantID":"comp_9","industry":"IT","revenu":100,"employees":5});
        let t = Tenant::from_new_json(&body).unwrap();
        assert_eq!(
            (t.job30, t.job90, t.monthly_fee, t.total_fee),
            (0, 0, 0.0, 0.0)
        );
        // A replacement needs every field; a given field is checked either way.
        assert!(Tenant::from_json(&body, Some("comp_9")).is_err());
        let bad =
            json!({"tenantID":"comp_9","industry":"IT","revenu":100,"employees":5,"job30":-1});
        let fields: Vec<_> = Tenant::from_new_json(&bad)
            .unwrap_err()
            .iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["job30"]);
        assert!(Tenant::from_new_json(&json!({"tenantID":"x","industry":"IT"})).is_err());
    }

    #[test]
    fn names_every_bad_field() {
        let body = json!({"tenantID":"","industry":"retail","revenu":-1,"employees":"many",
            "job30":1.5,"monthlyFee":10});
        let errors = Tenant::from_json(&body, None).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "tenantID",
                "revenu",
                "employees",
                "job30",
                "job90",
                "totalFee"
            ]
        );
        assert_eq!(errors[2].got, "\"many\"");
        assert_eq!(errors[4].got, "null");
        assert!(Tenant::from_json(&json!([1]), None).is_err());
    }

    #[test]
    fn the_job_accepts_exactly_what_the_service_accepts() {
        use tenantflow_core::decode::{Decoder, DefaultKind};
        let base = json!({"tenantID":"c","industry":"retail","revenu":1,"employees":1,
            "job30":1,"job90":1,"monthlyFee":1.0,"totalFee":1.0});
        let cases = [
            ("revenu", json!(-1)),
            ("revenu", json!(1_000_000_000_000_000_i64)),
            ("revenu", json!(1_000_000_000_000_001_i64)),
            ("employees", json!(0)),
            ("job90", json!(-3)),
            ("monthlyFee", json!(-0.01)),
            ("totalFee", json!(1e16)),
            ("industry", json!("")),
            ("industry", json!(" ")),
            ("industry", json!("re\u{0}tail")),
            ("industry", json!("<script>")),
            ("industry", json!("x".repeat(64))),
            ("industry", json!("x".repeat(65))),
            ("tenantID", json!("t".repeat(128))),
            ("tenantID", json!("t".repeat(129))),
            ("tenantID", json!("a\u{85}b")),
            ("tenantID", json!("count")),
            ("tenantID", json!("version")),
        ];
        let decoder = Decoder::new(DefaultKind::Company);
        for (field, value) in cases {
            let mut body = base.clone();
            body[field] = value.clone();
            let service = Tenant::from_json(&body, None).is_ok();
            let line = body.to_string();
            let job = decoder.decode_json(line.as_bytes()).is_ok();
            assert_eq!(service, job, "{field} = {value}");
        }
    }

    #[test]
    fn aliases_with_different_values_are_refused() {
        let body = json!({"tenantID":"a","companyID":"b","industry":"IT","revenu":1,
            "employees":1,"employee":2,"job30":1,"job90":1,"monthlyFee":1.0,"totalFee":1.0});
        let errors = Tenant::from_json(&body, None).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["tenantID", "employees"]);
        let same = json!({"tenantID":"a","companyID":"a","industry":"IT","revenu":1,
            "employees":1,"employee":1,"job30":1,"job90":1,"monthlyFee":1.0,"totalFee":1.0});
        assert!(Tenant::from_json(&same, None).is_ok());
    }

    #[test]
    fn the_url_id_fills_a_missing_body_id() {
        let body = json!({"industry":"IT","revenu":1,"employees":1,"job30":1,"job90":1,
            "monthlyFee":1.0,"totalFee":1.0});
        assert_eq!(Tenant::from_json(&body, Some("x")).unwrap().tenant_id, "x");
    }
}
