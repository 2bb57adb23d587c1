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
//! state it was built from. They are encoded as they come, into an upload: memory does
//! not grow with the number of tenants (a Parquet row group at most).

use std::io::Write;
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
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CustomerRow<'a> {
    /// Its `companyID`.
    pub company_id: &'a str,
    /// Its latest profile.
    pub profile: &'a CompanyProfile,
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

/// Appends a row of `customers.csv` (after [`CUSTOMERS_HEADER`] and a newline).
pub fn push_customer_csv(out: &mut Vec<u8>, r: &CustomerRow<'_>) {
    let p = r.profile;
    push_csv_cell(out, r.company_id);
    out.push(b',');
    push_csv_cell(out, &p.industry);
    for v in [p.revenu, p.employees] {
        out.push(b',');
        push_int(out, v);
    }
    for v in [p.monthly_fee, p.total_fee] {
        out.push(b',');
        push_f64(out, v);
    }
    for v in [p.job30, p.job90, r.job30, r.job90] {
        out.push(b',');
        push_int(out, v);
    }
    out.push(b',');
    if let Some(risk) = r.risk_of_churn {
        out.extend_from_slice(if risk { b"true" } else { b"false" });
    }
    out.push(b',');
    if let Some(score) = r.churn_score {
        push_f64(out, score);
    }
    out.push(b',');
    if let Some(ms) = r.last_event_ms {
        push_iso_millis(out, ms);
    }
    out.push(b',');
    push_int(out, r.events);
    out.push(b'\n');
}

/// Appends a tenant's rows of `jobs.csv` (after [`JOBS_HEADER`] and a newline), one per
/// day, written straight from the days (no row objects, no allocation per row).
pub fn push_jobs_csv(out: &mut Vec<u8>, t: TenantDays<'_>) {
    let start = out.len();
    push_csv_cell(out, t.company_id);
    let cell = start..out.len();
    for (i, &(day, jobs)) in t.days.iter().enumerate() {
        if i > 0 {
            out.extend_from_within(cell.clone());
        }
        out.push(b',');
        push_iso_day(out, i64::from(day));
        out.push(b',');
        push_int(out, jobs);
        out.push(b'\n');
    }
    if t.days.is_empty() {
        out.truncate(start);
    }
}

/// Rows per row group of the Parquet aggregates: what the writer holds in memory at
/// once, whatever the number of tenants.
const ROW_GROUP_ROWS: usize = 64 * 1024;

/// The columns of one row group, gathered row by row.
trait Columns: Default {
    fn rows(&self) -> usize;
    fn write(&self, index: usize, column: &mut Column<'_>) -> Result<(), ParquetError>;
}

/// A Parquet file written a row group at a time into `W` (an upload), so that its
/// size is not held in memory.
struct RowGroups<W: Write + Send, C> {
    writer: SerializedFileWriter<W>,
    batch: C,
    rows: u64,
    path: String,
}

impl<W: Write + Send, C: Columns> RowGroups<W, C> {
    fn new(schema: &str, path: &str, out: W) -> Result<Self, SinkError> {
        let error = |source| parquet_error(path, source);
        let schema = Arc::new(parse_message_type(schema).map_err(error)?);
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_created_by(concat!("tenantflow ", env!("CARGO_PKG_VERSION")).into())
            .build();
        Ok(Self {
            writer: SerializedFileWriter::new(out, schema, Arc::new(props)).map_err(error)?,
            batch: C::default(),
            rows: 0,
            path: path.to_owned(),
        })
    }

    /// After rows were added to the batch: writes it as a row group once full.
    fn added(&mut self) -> Result<(), SinkError> {
        if self.batch.rows() >= ROW_GROUP_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        let batch = std::mem::take(&mut self.batch);
        let rows = batch.rows();
        if rows == 0 {
            return Ok(());
        }
        let error = |source| parquet_error(&self.path, source);
        let mut group = self.writer.next_row_group().map_err(error)?;
        let mut index = 0;
        while let Some(mut column) = group.next_column().map_err(error)? {
            batch.write(index, &mut column).map_err(error)?;
            column.close().map_err(error)?;
            index += 1;
        }
        group.close().map_err(error)?;
        self.rows += rows as u64;
        Ok(())
    }

    /// Writes the last row group and the footer; returns `W` and the rows written.
    fn finish(mut self) -> Result<(W, u64), SinkError> {
        self.flush()?;
        let path = self.path;
        let out = self
            .writer
            .into_inner()
            .map_err(|source| parquet_error(&path, source))?;
        Ok((out, self.rows))
    }
}

fn parquet_error(path: &str, source: ParquetError) -> SinkError {
    SinkError::Parquet {
        path: path.to_owned(),
        source,
    }
}

#[derive(Default)]
struct CustomerColumns {
    ids: Vec<ByteArray>,
    industries: Vec<ByteArray>,
    /// revenu, employees, profileJob30, profileJob90, job30, job90, events.
    ints: [Vec<i64>; 7],
    /// monthlyFee, totalFee.
    fees: [Vec<f64>; 2],
    risks: (Vec<bool>, Vec<i16>),
    scores: (Vec<f64>, Vec<i16>),
    last_events: (Vec<i64>, Vec<i16>),
}

impl CustomerColumns {
    fn push(&mut self, r: &CustomerRow<'_>) {
        let p = r.profile;
        self.ids.push(ByteArray::from(r.company_id));
        self.industries.push(ByteArray::from(&*p.industry));
        let events = i64::try_from(r.events).unwrap_or(i64::MAX);
        for (column, v) in self.ints.iter_mut().zip([
            p.revenu,
            p.employees,
            p.job30,
            p.job90,
            r.job30,
            r.job90,
            events,
        ]) {
            column.push(v);
        }
        self.fees[0].push(p.monthly_fee);
        self.fees[1].push(p.total_fee);
        push_optional(&mut self.risks, r.risk_of_churn);
        push_optional(&mut self.scores, r.churn_score);
        push_optional(&mut self.last_events, r.last_event_ms);
    }
}

fn push_optional<T>((values, levels): &mut (Vec<T>, Vec<i16>), value: Option<T>) {
    levels.push(i16::from(value.is_some()));
    values.extend(value);
}

impl Columns for CustomerColumns {
    fn rows(&self) -> usize {
        self.ids.len()
    }

    fn write(&self, index: usize, column: &mut Column<'_>) -> Result<(), ParquetError> {
        let ints = |i: usize| &self.ints[i];
        match index {
            0 => write_all::<ByteArrayType>(column, &self.ids, None),
            1 => write_all::<ByteArrayType>(column, &self.industries, None),
            2 | 3 => write_all::<Int64Type>(column, ints(index - 2), None),
            4 => write_all::<DoubleType>(column, &self.fees[0], None),
            5 => write_all::<DoubleType>(column, &self.fees[1], None),
            6..=9 => write_all::<Int64Type>(column, ints(index - 4), None),
            10 => write_all::<BoolType>(column, &self.risks.0, Some(&self.risks.1)),
            11 => write_all::<DoubleType>(column, &self.scores.0, Some(&self.scores.1)),
            12 => write_all::<Int64Type>(column, &self.last_events.0, Some(&self.last_events.1)),
            13 => write_all::<Int64Type>(column, ints(6), None),
            _ => Err(ParquetError::General(format!("unexpected column {index}"))),
        }
    }
}

#[derive(Default)]
struct JobColumns {
    ids: Vec<ByteArray>,
    days: Vec<i32>,
    jobs: Vec<i64>,
}

impl Columns for JobColumns {
    fn rows(&self) -> usize {
        self.ids.len()
    }

    fn write(&self, index: usize, column: &mut Column<'_>) -> Result<(), ParquetError> {
        match index {
            0 => write_all::<ByteArrayType>(column, &self.ids, None),
            1 => write_all::<Int32Type>(column, &self.days, None),
            2 => write_all::<Int64Type>(column, &self.jobs, None),
            _ => Err(ParquetError::General(format!("unexpected column {index}"))),
        }
    }
}

/// `customers.parquet`, written as rows come.
pub struct CustomersParquet<W: Write + Send>(RowGroups<W, CustomerColumns>);

impl<W: Write + Send> CustomersParquet<W> {
    /// Starts the file `path` (for errors) in `out`.
    ///
    /// # Errors
    /// When the Parquet writer fails.
    pub fn new(path: &str, out: W) -> Result<Self, SinkError> {
        RowGroups::new(CUSTOMERS_SCHEMA, path, out).map(Self)
    }

    /// Adds a row.
    ///
    /// # Errors
    /// When a full row group cannot be written.
    pub fn push(&mut self, row: &CustomerRow<'_>) -> Result<(), SinkError> {
        self.0.batch.push(row);
        self.0.added()
    }

    /// Writes the rest and the footer; returns `out` and the rows written.
    ///
    /// # Errors
    /// When the Parquet writer fails.
    pub fn finish(self) -> Result<(W, u64), SinkError> {
        self.0.finish()
    }
}

/// `jobs.parquet`, written as tenants come.
pub struct JobsParquet<W: Write + Send>(RowGroups<W, JobColumns>);

impl<W: Write + Send> JobsParquet<W> {
    /// Starts the file `path` (for errors) in `out`.
    ///
    /// # Errors
    /// When the Parquet writer fails.
    pub fn new(path: &str, out: W) -> Result<Self, SinkError> {
        RowGroups::new(JOBS_SCHEMA, path, out).map(Self)
    }

    /// Adds a tenant's rows, one per day.
    ///
    /// # Errors
    /// When a full row group cannot be written.
    pub fn push(&mut self, t: TenantDays<'_>) -> Result<(), SinkError> {
        let batch = &mut self.0.batch;
        for &(day, jobs) in t.days {
            batch.ids.push(ByteArray::from(t.company_id));
            batch.days.push(day);
            batch.jobs.push(i64::try_from(jobs).unwrap_or(i64::MAX));
        }
        self.0.added()
    }

    /// Writes the rest and the footer; returns `out` and the rows written.
    ///
    /// # Errors
    /// When the Parquet writer fails.
    pub fn finish(self) -> Result<(W, u64), SinkError> {
        self.0.finish()
    }
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

/// Appends `2026-01-29T19:01:08.951Z`.
fn push_iso_millis(out: &mut Vec<u8>, ms: i64) {
    let in_day = ms.rem_euclid(86_400_000);
    push_iso_day(out, ms.div_euclid(86_400_000));
    for (sep, value, digits) in [
        (b'T', in_day / 3_600_000, 2),
        (b':', in_day / 60_000 % 60, 2),
        (b':', in_day / 1000 % 60, 2),
        (b'.', in_day % 1000, 3),
    ] {
        out.push(sep);
        for place in (0..digits).rev() {
            out.push(b'0' + (value / 10_i64.pow(place) % 10) as u8);
        }
    }
    out.push(b'Z');
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
    use parquet::file::reader::{FileReader, SerializedFileReader};

    use super::*;

    fn profile() -> CompanyProfile {
        CompanyProfile {
            industry: "retail, food".into(),
            revenu: 10,
            employees: 3,
            job30: 4,
            job90: 20,
            monthly_fee: 1.5,
            total_fee: 300.0,
        }
    }

    fn row<'a>(id: &'a str, profile: &'a CompanyProfile, score: Option<f64>) -> CustomerRow<'a> {
        CustomerRow {
            company_id: id,
            profile,
            job30: 6,
            job90: 25,
            risk_of_churn: score.map(|s| s >= 0.5),
            churn_score: score,
            last_event_ms: score.map(|_| 1_769_713_268_951),
            events: u64::from(score.is_some()) * 3,
        }
    }

    #[test]
    fn customer_rows_have_empty_cells_for_what_is_unknown() {
        let p = profile();
        let mut csv = Vec::new();
        push_customer_csv(&mut csv, &row("c1", &p, Some(0.75)));
        push_customer_csv(&mut csv, &row("c2", &p, None));
        assert_eq!(
            String::from_utf8(csv).unwrap(),
            "c1,\"retail, food\",10,3,1.5,300.0,4,20,6,25,true,0.75,2026-01-29T19:01:08.951Z,3\n\
             c2,\"retail, food\",10,3,1.5,300.0,4,20,6,25,,,,0\n"
        );
        assert_eq!(CUSTOMERS_HEADER.split(',').count(), 14);
    }

    #[test]
    fn job_rows_name_days() {
        let mut csv = Vec::new();
        for t in [
            TenantDays {
                company_id: "c1",
                days: &[(20_482, 7), (20_483, 1)],
            },
            TenantDays {
                company_id: "none",
                days: &[],
            },
            TenantDays {
                company_id: "c,2",
                days: &[(-1, 2)],
            },
        ] {
            push_jobs_csv(&mut csv, t);
        }
        assert_eq!(
            String::from_utf8(csv).unwrap(),
            "c1,2026-01-29,7\nc1,2026-01-30,1\n\"c,2\",1969-12-31,2\n"
        );
    }

    #[test]
    fn parquet_files_are_complete_across_row_groups() {
        let p = profile();
        let ids: Vec<String> = (0..ROW_GROUP_ROWS + 10).map(|i| format!("c{i}")).collect();
        let mut customers = CustomersParquet::new("customers.parquet", Vec::new()).unwrap();
        for (i, id) in ids.iter().enumerate() {
            let score = (i % 3 > 0).then_some(0.25);
            customers.push(&row(id, &p, score)).unwrap();
        }
        let (bytes, rows) = customers.finish().unwrap();
        assert_eq!(rows, ids.len() as u64);
        let reader = SerializedFileReader::new(bytes::Bytes::from(bytes)).unwrap();
        assert_eq!(
            reader.metadata().file_metadata().num_rows(),
            ids.len() as i64
        );
        assert_eq!(reader.metadata().num_row_groups(), 2);
        let last = reader.get_row_iter(None).unwrap().last().unwrap().unwrap();
        assert_eq!(
            last.to_string(),
            format!(
                "{{companyID: \"c{}\", industry: \"retail, food\", revenu: 10, employees: 3, \
                 monthlyFee: 1.5, totalFee: 300.0, profileJob30: 4, profileJob90: 20, job30: 6, \
                 job90: 25, riskOfChurn: false, churnScore: 0.25, \
                 lastEventTime: 2026-01-29 19:01:08.951 +00:00, events: 3}}",
                ids.len() - 1
            )
        );

        let mut jobs = JobsParquet::new("jobs.parquet", Vec::new()).unwrap();
        jobs.push(TenantDays {
            company_id: "c1",
            days: &[(1, 2), (2, 5)],
        })
        .unwrap();
        let (bytes, rows) = jobs.finish().unwrap();
        assert_eq!(rows, 2);
        let reader = SerializedFileReader::new(bytes::Bytes::from(bytes)).unwrap();
        assert_eq!(reader.metadata().file_metadata().num_rows(), 2);
    }
}
