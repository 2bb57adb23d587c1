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
    /// Distinct tenants in the file (a later line of an id replaces an earlier one).
    pub tenants: u64,
    /// Tenants created.
    pub created: u64,
    /// Tenants that existed and were replaced (with `overwrite`).
    pub replaced: u64,
    /// Tenants that existed and were kept as they were (without `overwrite`).
    pub kept: u64,
    /// Lines skipped: headers, blank lines, job events.
    pub skipped: u64,
}

/// Loads every tenant of `path` (a later line of the same id replaces an earlier one),
/// a thousand per transaction, once every line has been checked. A tenant that exists
/// already is kept as it is, unless `overwrite`: seeding at every start must not undo
/// what was changed through the API.
///
/// # Errors
/// An unreadable file, a line that is not a tenant (then nothing is loaded), or a
/// database failure (seeding again is harmless).
pub async fn seed(db: &Db, path: &Path, overwrite: bool) -> Result<Seeded, SeedError> {
    let shown = path.display().to_string();
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|source| SeedError::Read {
            path: shown.clone(),
            source,
        })?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let mut seeded = Seeded::default();
    let mut tenants = Vec::new();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let bad = |message: String| SeedError::Line {
            path: shown.clone(),
            line: i + 1,
            message,
        };
        let line = std::str::from_utf8(line)
            .map_err(|e| bad(format!("invalid UTF-8 at byte {}", e.valid_up_to())))?
            .trim();
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
    // The last line of each id wins, in the order of first appearance.
    let mut position = std::collections::HashMap::new();
    let mut unique: Vec<Tenant> = Vec::with_capacity(tenants.len());
    for tenant in tenants {
        match position.get(&tenant.tenant_id) {
            Some(&i) => unique[i] = tenant,
            None => {
                position.insert(tenant.tenant_id.clone(), unique.len());
                unique.push(tenant);
            }
        }
    }
    seeded.tenants = unique.len() as u64;
    let mut done = 0u64;
    for batch in unique.chunks(SEED_BATCH) {
        let (created, replaced) = db.seed_many(batch, overwrite).await?;
        seeded.created += created;
        seeded.replaced += replaced;
        seeded.kept += batch.len() as u64 - created - replaced;
        done += batch.len() as u64;
        if done.is_multiple_of(100_000) {
            tracing::info!(tenants = done, of = seeded.tenants, "Seeding…");
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
