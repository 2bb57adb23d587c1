//! Training data: the original CSV layout, read with line numbers in errors; and data
//! made by the original generator's rules.

use std::fmt::Write;

use tenantflow_core::rng::SplitMix64;

use crate::Example;

/// Why training data cannot be read.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{source_name}:{line}: {message}")]
pub struct DataError {
    /// The file.
    pub source_name: String,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// The original header.
pub const HEADER: &str =
    "Company,Industry,Revenue,Employees,#job30,#job90,MonthlyCharge,TotalCharge,Churn";

/// Reads the original layout (header first; CRLF or LF; blank lines skipped).
///
/// # Errors
/// A missing or different header, a row without 9 cells, a cell that is not a number,
/// a label other than 0 or 1; the line is named.
pub fn parse_csv(text: &str, source_name: &str) -> Result<Vec<Example>, DataError> {
    let error = |line: usize, message: String| DataError {
        source_name: source_name.to_owned(),
        line,
        message,
    };
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, header)) if header.trim() == HEADER => {}
        Some((_, header)) => {
            return Err(error(
                1,
                format!("expected the header `{HEADER}`, got `{}`", header.trim()),
            ));
        }
        None => return Err(error(1, "empty file".into())),
    }
    let mut out = Vec::new();
    for (i, line) in lines {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if cells.len() != 9 {
            return Err(error(
                i + 1,
                format!("expected 9 cells, got {}", cells.len()),
            ));
        }
        let mut x = [0.0; 6];
        for (k, slot) in x.iter_mut().enumerate() {
            let cell = cells[2 + k];
            *slot = cell
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| {
                    error(
                        i + 1,
                        format!(
                            "{}: expected a number, got `{cell}`",
                            HEADER.split(',').nth(2 + k).unwrap_or("?")
                        ),
                    )
                })?;
        }
        let churn = match cells[8] {
            "1" => true,
            "0" => false,
            other => {
                return Err(error(
                    i + 1,
                    format!("Churn: expected 0 or 1, got `{other}`"),
                ));
            }
        };
        if cells[1].is_empty() {
            return Err(error(i + 1, "Industry is empty".into()));
        }
        out.push(Example {
            industry: cells[1].to_owned(),
            x,
            churn,
        });
    }
    Ok(out)
}

/// The industries of the original generator.
pub const INDUSTRIES: [&str; 9] = [
    "gov",
    "health",
    "retail",
    "travel",
    "energy",
    "IT",
    "finance",
    "consulting",
    "service",
];

/// The original generator's label: churn for retail, consulting and IT, or few jobs.
pub fn original_rule(industry: &str, job30: f64, job90: f64) -> bool {
    matches!(industry, "retail" | "consulting" | "IT") || job30 < 5.0 || job90 < 20.0
}

/// `n` companies by the original generator's rules, as CSV of the original layout:
/// revenue 10..=99,990 in steps of 10, employees revenue / 2..=4, job30 3..=9, job90
/// 10..=99, monthly fee 100..=1199, total fee between the monthly fee and 12 times it,
/// industry uniform among [`INDUSTRIES`], churn by [`original_rule`].
pub fn generate(n: usize, seed: u64) -> String {
    let mut rng = SplitMix64::new(seed);
    let mut out = String::with_capacity(64 + n * 48);
    out.push_str(HEADER);
    out.push('\n');
    for i in 0..n {
        let industry = INDUSTRIES[(rng.next_u64() % INDUSTRIES.len() as u64) as usize];
        let revenue = rng.range(1, 9999) * 10;
        let employees = revenue / rng.range(2, 4);
        let job30 = rng.range(3, 9);
        let job90 = rng.range(10, 99);
        let monthly = rng.range(100, 1199);
        let total = rng.range(monthly, 12 * monthly);
        let churn = original_rule(industry, job30 as f64, job90 as f64);
        let _ = writeln!(
            out,
            "comp_{i},{industry},{revenue},{employees},{job30},{job90},{monthly},{total},{}",
            u8::from(churn)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_crlf_and_names_bad_lines() {
        let text = format!("{HEADER}\r\ncomp_0,travel,9270,4635,3,56,446,1476,1\r\n\r\n");
        let rows = parse_csv(&text, "x.csv").unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].x, [9270.0, 4635.0, 3.0, 56.0, 446.0, 1476.0]);
        assert!(rows[0].churn);
        let bad = format!("{HEADER}\ncomp_0,travel,lots,4635,3,56,446,1476,1\n");
        let e = parse_csv(&bad, "x.csv").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("Revenue"), "{e}");
        assert!(parse_csv("a,b\n", "x.csv").is_err());
        let label = format!("{HEADER}\ncomp_0,travel,1,1,3,56,446,1476,yes\n");
        assert!(
            parse_csv(&label, "x.csv")
                .unwrap_err()
                .message
                .contains("Churn")
        );
    }

    #[test]
    fn generated_data_follows_the_original_rules() {
        let rows = parse_csv(&generate(2000, 7), "gen").unwrap();
        assert_eq!(rows.len(), 2000);
        for r in &rows {
            let [rev, emp, j30, j90, m, t] = r.x;
            assert!((10.0..=99_990.0).contains(&rev) && rev % 10.0 == 0.0);
            assert!(emp >= (rev / 4.0).floor() && emp <= rev / 2.0);
            assert!((3.0..=9.0).contains(&j30) && (10.0..=99.0).contains(&j90));
            assert!((100.0..=1199.0).contains(&m) && t >= m && t <= 12.0 * m);
            assert_eq!(r.churn, original_rule(&r.industry, j30, j90));
        }
        assert_eq!(generate(50, 1), generate(50, 1));
    }
}
