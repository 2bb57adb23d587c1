//! The feature contract between the job, the model files and the scorer: one row to
//! score is `industry,revenu,employees,job30,job90,monthlyFee,totalFee`, the original
//! training layout's order without the company and the label.
//!
//! As CSV (the `text/csv` body of a scoring request) a row is one line, its industry
//! quoted RFC 4180 style when it holds a comma, a quote or a line break, its numbers as
//! Rust prints them (shortest form that reads back exactly).

use std::borrow::Cow;

use serde::Deserialize;

use crate::score::Features;

/// The columns of a row, in order.
pub const COLUMNS: [&str; 7] = [
    "industry",
    "revenu",
    "employees",
    "job30",
    "job90",
    "monthlyFee",
    "totalFee",
];

/// What a model file says of its inputs (`contract` in files `tenantflow train`
/// writes): the columns in order, and the industries it was trained on.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Contract {
    /// The columns, which must be [`COLUMNS`].
    pub columns: Vec<String>,
    /// The industries seen in training; another industry is scored as unknown.
    #[serde(default)]
    pub industries: Vec<String>,
}

impl Contract {
    /// Checks that the contract is the one the job speaks.
    ///
    /// # Errors
    /// Other columns, or another order, named.
    pub fn check(&self) -> Result<(), String> {
        if self.columns.iter().map(String::as_str).ne(COLUMNS) {
            return Err(format!(
                "the model expects columns [{}]; tenantflow sends [{}]",
                self.columns.join(","),
                COLUMNS.join(",")
            ));
        }
        if let Some(bad) = self.industries.iter().find(|i| i.trim().is_empty()) {
            return Err(format!("contract industry `{bad}` is empty"));
        }
        Ok(())
    }
}

/// Appends one row, with its line break, to a CSV body.
pub fn write_csv_row(out: &mut String, industry: &str, features: &Features) {
    let mut number = ryu::Buffer::new();
    if industry.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&industry.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(industry);
    }
    for value in [
        features.revenu,
        features.employees,
        features.job30,
        features.job90,
        features.monthly_fee,
        features.total_fee,
    ] {
        out.push(',');
        // Shortest form that reads back exactly (`NaN` and `inf` for the non-finite).
        out.push_str(number.format(value));
    }
    out.push('\n');
}

/// Splits a CSV body into rows of cells: a row ends at a line break (LF or CRLF)
/// outside quotes, a quoted cell is unquoted (`""` inside is one `"`), blank lines are
/// skipped. Cells of a body without quotes are borrowed from it.
///
/// # Errors
/// The 1-based row of a quote that is never closed, or of text after a closing quote.
pub fn split_csv(body: &str) -> Result<Vec<Vec<Cow<'_, str>>>, (usize, String)> {
    if !body.contains('"') {
        return Ok(body
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| line.split(',').map(Cow::Borrowed).collect())
            .collect());
    }
    let rows = split_quoted(body)?;
    Ok(rows
        .into_iter()
        .map(|row| row.into_iter().map(Cow::Owned).collect())
        .collect())
}

fn split_quoted(body: &str) -> Result<Vec<Vec<String>>, (usize, String)> {
    let mut rows = Vec::new();
    let mut row: Vec<String> = Vec::new();
    let mut cell = String::new();
    let mut chars = body.chars().peekable();
    // A cell that was quoted: only a comma or a line break may follow its closing quote.
    let mut closed = false;
    let mut blank = true;
    let end_row = |rows: &mut Vec<Vec<String>>, row: &mut Vec<String>, cell: &mut String| {
        row.push(std::mem::take(cell));
        rows.push(std::mem::take(row));
    };
    while let Some(c) = chars.next() {
        match c {
            '"' if cell.is_empty() && !closed => {
                blank = false;
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            cell.push('"');
                        }
                        Some('"') => break,
                        Some(c) => cell.push(c),
                        None => return Err((rows.len() + 1, "a quoted cell is not closed".into())),
                    }
                }
                closed = true;
            }
            ',' => {
                blank = false;
                row.push(std::mem::take(&mut cell));
                closed = false;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                if !blank {
                    end_row(&mut rows, &mut row, &mut cell);
                }
                cell.clear();
                closed = false;
                blank = true;
            }
            c if closed => {
                return Err((rows.len() + 1, format!("text after a closing quote: `{c}`")));
            }
            c => {
                if !c.is_whitespace() {
                    blank = false;
                }
                cell.push(c);
            }
        }
    }
    if !blank {
        end_row(&mut rows, &mut row, &mut cell);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn features() -> Features {
        Features {
            revenu: 29080.0,
            employees: 14540.0,
            job30: 4.0,
            job90: 13.0,
            monthly_fee: 461.5,
            total_fee: 0.1 + 0.2,
        }
    }

    #[test]
    fn rows_read_back_exactly_whatever_the_industry() {
        for industry in ["retail", "a,b", "say \"hi\"", "x\"", "line\nbreak"] {
            let mut out = String::new();
            write_csv_row(&mut out, industry, &features());
            let body = format!("{out}\r\n\n{out}");
            let rows = split_csv(&body).unwrap();
            assert_eq!(rows.len(), 2, "{out}");
            let cells = &rows[0];
            assert_eq!(cells.len(), COLUMNS.len(), "{out}");
            assert_eq!(cells[0], industry);
            let total: f64 = cells[6].parse().unwrap();
            assert_eq!(total, 0.1 + 0.2);
        }
        let mut out = String::new();
        write_csv_row(&mut out, "retail", &features());
        assert_eq!(
            out,
            "retail,29080.0,14540.0,4.0,13.0,461.5,0.30000000000000004\n"
        );
    }

    #[test]
    fn bad_quoting_is_an_error() {
        assert_eq!(split_csv("a,1\n\"retail,1,2").unwrap_err().0, 2);
        assert!(split_csv("\"retail\"x,1,2").is_err());
        assert_eq!(split_csv(",\n  \n").unwrap(), [["", ""]]);
    }

    #[test]
    fn the_features_are_the_columns_after_the_industry() {
        let names: Vec<String> = crate::score::Feature::ALL
            .iter()
            .map(|f| {
                serde_json::to_value(f)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(names, COLUMNS[1..]);
    }

    #[test]
    fn a_contract_must_name_the_columns_in_order() {
        let ok = Contract {
            columns: COLUMNS.iter().map(|c| c.to_string()).collect(),
            industries: vec!["retail".into()],
        };
        assert!(ok.check().is_ok());
        let mut swapped = ok.clone();
        swapped.columns.swap(1, 2);
        let e = swapped.check().unwrap_err();
        assert!(e.contains("industry,employees,revenu"), "{e}");
    }
}
