//! The BI aggregates: the files the original system's dashboard (QuickSight over S3)
//! was to read, as CSV with a header row and, for Parquet outputs, as Parquet too.
//!
//! - `customers`: one row per tenant: `companyID, industry, revenu, employees,
//!   monthlyFee, totalFee, profileJob30, profileJob90` (the profile), `job30, job90`
//!   (as of the tenant's newest day, baseline included), `riskOfChurn, churnScore`
//!   (of its last result; empty before the first, or without a score),
//!   `lastEventTime` (ISO 8601 UTC, its newest event) and `events`.
//! - `jobs`: jobs per tenant per day, `companyID, day, jobs`, for the days the tenant's
//!   window holds (the 90-day window and the allowed lateness).
//!
//! Rows come sorted by `companyID` (then day), so that a file is a function of the
//! state it was built from.

use std::sync::Arc;

use parquet::basic::Compression;
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int32Type, Int64Type};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use tenantflow_core::CompanyProfile;

use crate::SinkError;
use crate::encoding::csv::push_csv_cell;
use crate::encoding::{push_f64, push_int};

/// The header of `customers.csv`.
pub const CUSTOMERS_HEADER: &str = "companyID,industry,revenu,employees,monthlyFee,totalFee,profileJob30,profileJob90,job30,job90,riskOfChurn,churnScore,lastEventTime,events";
/// The header of `jobs.csv`.
pub const JOBS_HEADER: &str = "companyID,day,jobs";

const CUSTOMERS_SCHEMA: &str = "
message customer {
  required binary companyID (STRING);
  required binary industry (STRING);
  required int64 revenu;
  required int64 employees;
  required double monthlyFee;
  required double totalFee;
  required int64 profileJob30;
  required int64 profileJob90;
  required int64 job30;
  required int64 job90;
  optional boolean riskOfChurn;
  optional double churnScore;
  optional int64 lastEventTime (TIMESTAMP(MILLIS,true));
  required int64 events;
}";

const JOBS_SCHEMA: &str = "
message jobs {
  required binary companyID (STRING);
  required int32 day (DATE);
  required int64 jobs;
}";

/// One tenant's row of `customers`.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerRow {
    /// Its `companyID`.
    pub company_id: String,
    /// Its latest profile.
    pub profile: CompanyProfile,
    /// `job30` as of its newest day.
    pub job30: i64,
    /// `job90` as of its newest day.
    pub job90: i64,
    /// Its last result's `riskOfChurn`.
    pub risk_of_churn: Option<bool>,
    /// Its last result's `churnScore`.
    pub churn_score: Option<f64>,
    /// Its newest event (epoch milliseconds).
    pub last_event_ms: Option<i64>,
    /// Its job events.
    pub events: u64,
}

/// One tenant's days with jobs, for `jobs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantDays<'a> {
    /// The tenant.
    pub company_id: &'a str,
    /// `(day, jobs)`, days since 1970-01-01 (UTC), oldest first.
    pub days: &'a [(i32, u64)],
}

/// `customers.csv`.
pub fn customers_csv(rows: &[CustomerRow]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + rows.len() * 120);
    out.extend_from_slice(CUSTOMERS_HEADER.as_bytes());
    out.push(b'\n');
    for r in rows {
        let p = &r.profile;
        push_csv_cell(&mut out, &r.company_id);
        out.push(b',');
        push_csv_cell(&mut out, &p.industry);
        for v in [p.revenu, p.employees] {
            out.push(b',');
            push_int(&mut out, v);
        }
        for v in [p.monthly_fee, p.total_fee] {
            out.push(b',');
            push_f64(&mut out, v);
        }
        for v in [p.job30, p.job90, r.job30, r.job90] {
            out.push(b',');
            push_int(&mut out, v);
        }
        out.push(b',');
        if let Some(risk) = r.risk_of_churn {
            out.extend_from_slice(if risk { b"true" } else { b"false" });
        }
        out.push(b',');
        if let Some(score) = r.churn_score {
            push_f64(&mut out, score);
        }
        out.push(b',');
        if let Some(ms) = r.last_event_ms {
            out.extend_from_slice(iso_millis(ms).as_bytes());
        }
        out.push(b',');
        push_int(&mut out, r.events);
        out.push(b'\n');
    }
    out
}

/// `jobs.csv`: a row per tenant and day, written straight from the days (no row
/// objects, no allocation per row).
pub fn jobs_csv(tenants: &[TenantDays<'_>]) -> Vec<u8> {
    let rows: usize = tenants.iter().map(|t| t.days.len()).sum();
    let mut out = Vec::with_capacity(32 + rows * 28);
    out.extend_from_slice(JOBS_HEADER.as_bytes());
    out.push(b'\n');
    let mut cell = Vec::new();
    for t in tenants {
        cell.clear();
        push_csv_cell(&mut cell, t.company_id);
        for &(day, jobs) in t.days {
            out.extend_from_slice(&cell);
            out.push(b',');
            push_iso_day(&mut out, i64::from(day));
            out.push(b',');
            push_int(&mut out, jobs);
            out.push(b'\n');
        }
    }
    out
}

/// `customers.parquet`.
///
/// # Errors
/// When the Parquet writer fails.
pub fn customers_parquet(rows: &[CustomerRow]) -> Result<Vec<u8>, SinkError> {
    let path = "aggregates/customers.parquet";
    write_parquet(CUSTOMERS_SCHEMA, path, |index, column| {
        let strings = |f: fn(&CustomerRow) -> &str| -> Vec<ByteArray> {
            rows.iter().map(|r| ByteArray::from(f(r))).collect()
        };
        let ints = |f: fn(&CustomerRow) -> i64| -> Vec<i64> { rows.iter().map(f).collect() };
        let floats = |f: fn(&CustomerRow) -> f64| -> Vec<f64> { rows.iter().map(f).collect() };
        match index {
            0 => write_all::<ByteArrayType>(column, &strings(|r| &r.company_id), None),
            1 => write_all::<ByteArrayType>(column, &strings(|r| &r.profile.industry), None),
            2 => write_all::<Int64Type>(column, &ints(|r| r.profile.revenu), None),
            3 => write_all::<Int64Type>(column, &ints(|r| r.profile.employees), None),
            4 => write_all::<DoubleType>(column, &floats(|r| r.profile.monthly_fee), None),
            5 => write_all::<DoubleType>(column, &floats(|r| r.profile.total_fee), None),
            6 => write_all::<Int64Type>(column, &ints(|r| r.profile.job30), None),
            7 => write_all::<Int64Type>(column, &ints(|r| r.profile.job90), None),
            8 => write_all::<Int64Type>(column, &ints(|r| r.job30), None),
            9 => write_all::<Int64Type>(column, &ints(|r| r.job90), None),
            10 => {
                let (values, levels) = optional(rows, |r| r.risk_of_churn);
                write_all::<BoolType>(column, &values, Some(&levels))
            }
            11 => {
                let (values, levels) = optional(rows, |r| r.churn_score);
                write_all::<DoubleType>(column, &values, Some(&levels))
            }
            12 => {
                let (values, levels) = optional(rows, |r| r.last_event_ms);
                write_all::<Int64Type>(column, &values, Some(&levels))
            }
            13 => {
                let events: Vec<i64> = rows
                    .iter()
                    .map(|r| i64::try_from(r.events).unwrap_or(i64::MAX))
                    .collect();
                write_all::<Int64Type>(column, &events, None)
            }
            _ => Err(ParquetError::General(format!("unexpected column {index}"))),
        }
    })
}

/// `jobs.parquet`.
///
/// # Errors
/// When the Parquet writer fails.
pub fn jobs_parquet(tenants: &[TenantDays<'_>]) -> Result<Vec<u8>, SinkError> {
    let rows = || {
        tenants
            .iter()
            .flat_map(|t| t.days.iter().map(move |d| (t.company_id, d)))
    };
    write_parquet(
        JOBS_SCHEMA,
        "aggregates/jobs.parquet",
        |index, column| match index {
            0 => {
                let ids: Vec<ByteArray> = rows().map(|(id, _)| ByteArray::from(id)).collect();
                write_all::<ByteArrayType>(column, &ids, None)
            }
            1 => {
                let days: Vec<i32> = rows().map(|(_, d)| d.0).collect();
                write_all::<Int32Type>(column, &days, None)
            }
            2 => {
                let jobs: Vec<i64> = rows()
                    .map(|(_, d)| i64::try_from(d.1).unwrap_or(i64::MAX))
                    .collect();
                write_all::<Int64Type>(column, &jobs, None)
            }
            _ => Err(ParquetError::General(format!("unexpected column {index}"))),
        },
    )
}

/// The present values of an optional column and a definition level per row.
fn optional<T: Copy>(
    rows: &[CustomerRow],
    f: impl Fn(&CustomerRow) -> Option<T>,
) -> (Vec<T>, Vec<i16>) {
    let mut values = Vec::with_capacity(rows.len());
    let levels = rows
        .iter()
        .map(|r| match f(r) {
            Some(v) => {
                values.push(v);
                1
            }
            None => 0,
        })
        .collect();
    (values, levels)
}

type Column<'a> = parquet::file::writer::SerializedColumnWriter<'a>;

fn write_all<T: parquet::data_type::DataType>(
    column: &mut Column<'_>,
    values: &[T::T],
    levels: Option<&[i16]>,
) -> Result<(), ParquetError> {
    column.typed::<T>().write_batch(values, levels, None)?;
    Ok(())
}

/// One row group holding every row: the files are rewritten whole, and small next to
/// the results.
fn write_parquet(
    schema: &str,
    path: &str,
    mut column: impl FnMut(usize, &mut Column<'_>) -> Result<(), ParquetError>,
) -> Result<Vec<u8>, SinkError> {
    let error = |source| SinkError::Parquet {
        path: path.to_owned(),
        source,
    };
    let schema = Arc::new(parse_message_type(schema).map_err(error)?);
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_created_by(concat!("tenantflow ", env!("CARGO_PKG_VERSION")).into())
        .build();
    let mut writer =
        SerializedFileWriter::new(Vec::new(), schema, Arc::new(props)).map_err(error)?;
    let mut group = writer.next_row_group().map_err(error)?;
    let mut index = 0;
    while let Some(mut c) = group.next_column().map_err(error)? {
        column(index, &mut c).map_err(error)?;
        c.close().map_err(error)?;
        index += 1;
    }
    group.close().map_err(error)?;
    writer.into_inner().map_err(error)
}

/// `2026-01-29T19:01:08.951Z`.
fn iso_millis(ms: i64) -> String {
    let day = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (h, m, s, milli) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    let mut date = Vec::with_capacity(10);
    push_iso_day(&mut date, day);
    format!(
        "{}T{h:02}:{m:02}:{s:02}.{milli:03}Z",
        String::from_utf8_lossy(&date)
    )
}

/// Appends `2026-01-29` (a year outside 0..=9999 as it comes).
fn push_iso_day(out: &mut Vec<u8>, day: i64) {
    let (y, m, d) = tenantflow_core::time::civil_from_days(day);
    if (0..=9999).contains(&y) {
        let y = y as u32;
        out.extend_from_slice(&[
            b'0' + (y / 1000) as u8,
            b'0' + (y / 100 % 10) as u8,
            b'0' + (y / 10 % 10) as u8,
            b'0' + (y % 10) as u8,
        ]);
    } else {
        push_int(out, y);
    }
    out.extend_from_slice(&[
        b'-',
        b'0' + (m / 10) as u8,
        b'0' + (m % 10) as u8,
        b'-',
        b'0' + (d / 10) as u8,
        b'0' + (d % 10) as u8,
    ]);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn row(id: &str, score: Option<f64>) -> CustomerRow {
        CustomerRow {
            company_id: id.into(),
            profile: CompanyProfile {
                industry: "retail, food".into(),
                revenu: 10,
                employees: 3,
                job30: 4,
                job90: 20,
                monthly_fee: 1.5,
                total_fee: 300.0,
            },
            job30: 6,
            job90: 25,
            risk_of_churn: score.map(|s| s >= 0.5),
            churn_score: score,
            last_event_ms: score.map(|_| 1_769_713_268_951),
            events: u64::from(score.is_some()) * 3,
        }
    }

    #[test]
    fn customers_csv_has_a_header_and_empty_cells_for_what_is_unknown() {
        let csv =
            String::from_utf8(customers_csv(&[row("c1", Some(0.75)), row("c2", None)])).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], CUSTOMERS_HEADER);
        assert_eq!(
            lines[1],
            "c1,\"retail, food\",10,3,1.5,300.0,4,20,6,25,true,0.75,2026-01-29T19:01:08.951Z,3"
        );
        assert_eq!(
            lines[2],
            "c2,\"retail, food\",10,3,1.5,300.0,4,20,6,25,,,,0"
        );
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn jobs_csv_names_days() {
        let csv = String::from_utf8(jobs_csv(&[
            TenantDays {
                company_id: "c1",
                days: &[(20_482, 7), (20_483, 1)],
            },
            TenantDays {
                company_id: "c,2",
                days: &[(-1, 2)],
            },
        ]))
        .unwrap();
        assert_eq!(
            csv,
            "companyID,day,jobs\nc1,2026-01-29,7\nc1,2026-01-30,1\n\"c,2\",1969-12-31,2\n"
        );
    }

    #[test]
    fn parquet_files_are_complete() {
        let bytes = customers_parquet(&[row("c1", Some(0.75)), row("c2", None)]).unwrap();
        assert_eq!(&bytes[..4], b"PAR1");
        assert_eq!(&bytes[bytes.len() - 4..], b"PAR1");
        let reader =
            parquet::file::reader::SerializedFileReader::new(bytes::Bytes::from(bytes)).unwrap();
        use parquet::file::reader::FileReader;
        assert_eq!(reader.metadata().file_metadata().num_rows(), 2);
        let jobs = jobs_parquet(&[TenantDays {
            company_id: "c1",
            days: &[(1, 2), (2, 5)],
        }])
        .unwrap();
        let reader =
            parquet::file::reader::SerializedFileReader::new(bytes::Bytes::from(jobs)).unwrap();
        assert_eq!(reader.metadata().file_metadata().num_rows(), 2);
    }
}
