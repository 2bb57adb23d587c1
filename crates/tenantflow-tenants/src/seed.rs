//! `--seed FILE`: tenants from the original CSV layout
//! (`Company,Industry,Revenue,Employees,#job30,#job90,MonthlyCharge,TotalCharge[,Churn]`,
//! header optional, CRLF or LF) or NDJSON (tenant or company objects; lines tagged
//! `"type":"job"` are skipped, so a W1 file seeds its companies).

use std::path::Path;

use serde_json::{Value, json};

use crate::db::{Db, DbError};
use crate::tenant::Tenant;

/// Why seeding failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeedError {
    /// The file cannot be read.
    #[error("reading {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A line is not a tenant.
    #[error("{path}:{line}: {message}")]
    Line {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Tenants written per transaction.
const SEED_BATCH: usize = 1000;

/// What seeding did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Seeded {
    /// Tenants written (created or replaced).
    pub tenants: u64,
    /// Lines skipped: headers, blank lines, job events.
    pub skipped: u64,
}

/// Loads every tenant of `path` (a later line of the same id replaces an earlier one),
/// a thousand per transaction, once every line has been checked.
///
/// # Errors
/// An unreadable file, a line that is not a tenant (then nothing is loaded), or a
/// database failure (seeding again is harmless: it replaces).
pub async fn seed(db: &Db, path: &Path) -> Result<Seeded, SeedError> {
    let shown = path.display().to_string();
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|source| SeedError::Read {
            path: shown.clone(),
            source,
        })?;
    let mut seeded = Seeded::default();
    let mut tenants = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        let bad = |message: String| SeedError::Line {
            path: shown.clone(),
            line: i + 1,
            message,
        };
        let value = if line.starts_with('{') {
            let value: Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
            if value.get("type").and_then(Value::as_str) == Some("job") {
                seeded.skipped += 1;
                continue;
            }
            value
        } else if line.is_empty() || line.starts_with("Company,") {
            seeded.skipped += 1;
            continue;
        } else {
            csv_row(line).map_err(bad)?
        };
        let tenant = Tenant::from_json(&value, None).map_err(|errors| {
            bad(errors
                .iter()
                .map(|e| format!("{}: expected {}, got {}", e.field, e.expected, e.got))
                .collect::<Vec<_>>()
                .join("; "))
        })?;
        tenants.push(tenant);
    }
    for batch in tenants.chunks(SEED_BATCH) {
        db.put_many(batch).await?;
        seeded.tenants += batch.len() as u64;
        if seeded.tenants % 100_000 == 0 {
            tracing::info!(tenants = seeded.tenants, "Seeding…");
        }
    }
    Ok(seeded)
}

/// A CSV row of the original layout as a tenant object.
fn csv_row(line: &str) -> Result<Value, String> {
    let cells: Vec<&str> = line.split(',').map(str::trim).collect();
    if !(8..=9).contains(&cells.len()) {
        return Err(format!(
            "expected 8 or 9 comma-separated cells (Company,Industry,Revenue,Employees,#job30,#job90,MonthlyCharge,TotalCharge[,Churn]), got {}",
            cells.len()
        ));
    }
    let int = |i: usize, name: &str| {
        cells[i]
            .parse::<i64>()
            .map_err(|_| format!("{name}: expected an integer, got `{}`", cells[i]))
    };
    let float = |i: usize, name: &str| {
        cells[i]
            .parse::<f64>()
            .map_err(|_| format!("{name}: expected a number, got `{}`", cells[i]))
    };
    Ok(json!({
        "tenantID": cells[0],
        "industry": cells[1],
        "revenu": int(2, "Revenue")?,
        "employees": int(3, "Employees")?,
        "job30": int(4, "#job30")?,
        "job90": int(5, "#job90")?,
        "monthlyFee": float(6, "MonthlyCharge")?,
        "totalFee": float(7, "TotalCharge")?,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_the_original_csv_row() {
        let v = csv_row("comp_0,travel,9270,4635,3,56,446,1476,1").unwrap();
        assert_eq!(v["tenantID"], "comp_0");
        assert_eq!(v["totalFee"], 1476.0);
        assert!(csv_row("comp_0,travel,x,4635,3,56,446,1476").is_err());
        assert!(csv_row("a,b").is_err());
    }
}
