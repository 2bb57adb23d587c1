//! The feature contract of a scoring request: one row is
//! `industry,revenu,employees,job30,job90,monthlyFee,totalFee` (the original training
//! layout's order, without the company and the label), as CSV or as JSON objects with
//! those names (`employee` is accepted for `employees`, `revenue` for `revenu`).

use serde::Serialize;
use serde_json::Value;
use tenantflow_operators::contract::split_csv;
use tenantflow_operators::score::Features;

pub use tenantflow_operators::contract::COLUMNS;

/// One row to score.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Industry.
    pub industry: String,
    /// The numeric features.
    pub features: Features,
}

/// What is wrong with a row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("row {row}, field {field}: {message}")]
pub struct RowError {
    /// 1-based row.
    pub row: usize,
    /// The field.
    pub field: String,
    /// What was expected and what came.
    pub message: String,
}

fn number(row: usize, field: &str, text: &str) -> Result<f64, RowError> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| RowError {
            row,
            field: field.into(),
            message: format!("expected a number, got `{}`", text.trim()),
        })
}

fn features(values: [f64; 6]) -> Features {
    Features {
        revenu: values[0],
        employees: values[1],
        job30: values[2],
        job90: values[3],
        monthly_fee: values[4],
        total_fee: values[5],
    }
}

/// Rows of a `text/csv` body: one per non-empty line, no header, an industry quoted
/// when it holds a comma, a quote or a line break.
///
/// # Errors
/// The first bad row, named with its field.
pub fn parse_csv(body: &str) -> Result<Vec<Row>, RowError> {
    let table = split_csv(body).map_err(|(row, message)| RowError {
        row,
        field: "(row)".into(),
        message,
    })?;
    let mut rows = Vec::with_capacity(table.len());
    for (i, cells) in table.iter().enumerate() {
        let row = i + 1;
        if cells.len() != COLUMNS.len() {
            return Err(RowError {
                row,
                field: "(row)".into(),
                message: format!(
                    "expected {} cells ({}), got {}",
                    COLUMNS.len(),
                    COLUMNS.join(","),
                    cells.len()
                ),
            });
        }
        // Kept as sent (not trimmed): the embedded model scores the same industry.
        let industry = &cells[0];
        if industry.trim().is_empty() {
            return Err(RowError {
                row,
                field: "industry".into(),
                message: "expected a non-empty industry".into(),
            });
        }
        let mut values = [0.0; 6];
        for (k, value) in values.iter_mut().enumerate() {
            *value = number(row, COLUMNS[k + 1], &cells[k + 1])?;
        }
        rows.push(Row {
            industry: industry.clone().into_owned(),
            features: features(values),
        });
    }
    Ok(rows)
}

/// One row from a JSON object (row number `row` in messages).
///
/// # Errors
/// A missing or mistyped field.
pub fn from_object(value: &Value, row: usize) -> Result<Row, RowError> {
    let field = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| value.get(*n))
            .filter(|v| !v.is_null())
    };
    let industry = match field(&["industry"]) {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        other => {
            return Err(RowError {
                row,
                field: "industry".into(),
                message: format!("expected a non-empty string, got {}", shown(other)),
            });
        }
    };
    let aliases: [&[&str]; 6] = [
        &["revenu", "revenue"],
        &["employees", "employee"],
        &["job30"],
        &["job90"],
        &["monthlyFee"],
        &["totalFee"],
    ];
    let mut values = [0.0; 6];
    for (k, names) in aliases.iter().enumerate() {
        let got = field(names);
        values[k] = got
            .and_then(Value::as_f64)
            .filter(|v| v.is_finite())
            .ok_or_else(|| RowError {
                row,
                field: names[0].into(),
                message: format!("expected a number, got {}", shown(got)),
            })?;
    }
    Ok(Row {
        industry,
        features: features(values),
    })
}

/// Rows of an `application/json` body: `{"instances":[…]}`, an array of objects, or one
/// object.
///
/// # Errors
/// A body of another shape, or a bad row.
pub fn parse_json(body: &Value) -> Result<Vec<Row>, RowError> {
    let items: Vec<&Value> = match body {
        Value::Object(o) if o.contains_key("instances") => match &o["instances"] {
            Value::Array(a) => a.iter().collect(),
            other => {
                return Err(RowError {
                    row: 0,
                    field: "instances".into(),
                    message: format!("expected an array, got {}", shown(Some(other))),
                });
            }
        },
        Value::Array(a) => a.iter().collect(),
        Value::Object(_) => vec![body],
        other => {
            return Err(RowError {
                row: 0,
                field: "(body)".into(),
                message: format!("expected an object or an array, got {}", shown(Some(other))),
            });
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, v)| from_object(v, i + 1))
        .collect()
}

fn shown(value: Option<&Value>) -> String {
    match value {
        None => "nothing".into(),
        Some(v) => tenantflow_core::truncated(&v.to_string(), 40).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn csv_rows_in_the_documented_order_and_errors_name_row_and_field() {
        let rows = parse_csv("retail,29080,14540,4,13,461,1172\n\nIT,1,2,3,4,5.5,6\n").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].industry, "retail");
        assert_eq!(rows[0].features.employees, 14540.0);
        assert_eq!(rows[1].features.monthly_fee, 5.5);
        let e = parse_csv("retail,1,2,3,4,5,6\nIT,1,x,3,4,5,6\n").unwrap_err();
        assert_eq!((e.row, e.field.as_str()), (2, "employees"));
        let e = parse_csv("retail,1,2,3\n").unwrap_err();
        assert_eq!(e.field, "(row)");
        let quoted = parse_csv("\"a, \"\"b\"\"\",1,2,3,4,5,6\r\n").unwrap();
        assert_eq!(quoted[0].industry, "a, \"b\"");
        let e = parse_csv("retail,1,2,3,4,5,6\n\"open,1,2,3,4,5,6\n").unwrap_err();
        assert_eq!((e.row, e.field.as_str()), (2, "(row)"));
    }

    #[test]
    fn json_in_every_accepted_shape() {
        let one = json!({"companyID":"comp_4","industry":"retail","revenu":99420,"employee":4635,
            "job30":10,"job90":100,"monthlyFee":400,"totalFee":1200});
        assert_eq!(parse_json(&one).unwrap().len(), 1);
        assert_eq!(parse_json(&json!([one, one])).unwrap().len(), 2);
        assert_eq!(
            parse_json(&json!({"instances":[one]})).unwrap()[0]
                .features
                .employees,
            4635.0
        );
        let e = parse_json(&json!({"instances":[one, {"industry":"IT"}]})).unwrap_err();
        assert_eq!((e.row, e.field.as_str()), (2, "revenu"));
    }
}
