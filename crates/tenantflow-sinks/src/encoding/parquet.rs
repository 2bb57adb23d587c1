//! Results as Parquet: typed columns, Snappy, dictionary-encoded strings.
//!
//! Rows are buffered column by column and written as a row group every
//! [`ROW_GROUP_ROWS`] rows and at close. The encoded bytes gather in memory; the file
//! sink takes them ([`ParquetPart::take_bytes`]) after each row group and uploads them.
//! Strings go to one arena per row group, and the
//! Parquet values are slices of it: no allocation per row.

use std::sync::Arc;

use bytes::Bytes;
use parquet::basic::Compression;
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::Type;
use tenantflow_core::ResultRow;

use crate::SinkError;

/// The schema of result files (with `modelVersion` last when results carry it).
pub const SCHEMA: &str = "
message result {
  required binary companyID (STRING);
  required binary industry (STRING);
  required int64 revenu;
  required int64 employees;
  required int64 job30;
  required int64 job90;
  required double monthlyFee;
  required double totalFee;
  required boolean riskOfChurn;
  optional double churnScore;
  required binary userID (STRING);
  required int64 nbJobs;
  required int64 creationDate (TIMESTAMP(MILLIS,true));
}";

/// Rows per row group: about 8 MB uncompressed, a size Athena and DuckDB read well.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

#[derive(Default)]
struct Columns {
    strings: Vec<u8>,
    company_id: Vec<(usize, usize)>,
    industry: Vec<(usize, usize)>,
    user_id: Vec<(usize, usize)>,
    revenu: Vec<i64>,
    employees: Vec<i64>,
    job30: Vec<i64>,
    job90: Vec<i64>,
    monthly_fee: Vec<f64>,
    total_fee: Vec<f64>,
    risk_of_churn: Vec<bool>,
    /// The scores present, with one definition level per row (0: null).
    churn_score: Vec<f64>,
    churn_score_defined: Vec<i16>,
    nb_jobs: Vec<i64>,
    creation_date: Vec<i64>,
    model_version: Vec<(usize, usize)>,
}

impl Columns {
    fn push_str(&mut self, s: &str) -> (usize, usize) {
        let start = self.strings.len();
        self.strings.extend_from_slice(s.as_bytes());
        (start, self.strings.len())
    }

    fn push(&mut self, row: &ResultRow<'_>) {
        let span = self.push_str(row.company_id);
        self.company_id.push(span);
        let span = self.push_str(&row.profile.industry);
        self.industry.push(span);
        let span = self.push_str(row.user_id);
        self.user_id.push(span);
        self.revenu.push(row.profile.revenu);
        self.employees.push(row.profile.employees);
        self.job30.push(row.job30);
        self.job90.push(row.job90);
        self.monthly_fee.push(row.profile.monthly_fee);
        self.total_fee.push(row.profile.total_fee);
        self.risk_of_churn.push(row.risk_of_churn);
        if let Some(score) = row.churn_score {
            self.churn_score.push(score);
        }
        self.churn_score_defined
            .push(i16::from(row.churn_score.is_some()));
        self.nb_jobs
            .push(i64::try_from(row.nb_jobs).unwrap_or(i64::MAX));
        self.creation_date.push(row.creation_date);
        if let Some(version) = row.model_version {
            let span = self.push_str(version);
            self.model_version.push(span);
        }
    }

    fn len(&self) -> usize {
        self.revenu.len()
    }

    fn clear(&mut self) {
        self.strings.clear();
        self.company_id.clear();
        self.industry.clear();
        self.user_id.clear();
        self.revenu.clear();
        self.employees.clear();
        self.job30.clear();
        self.job90.clear();
        self.monthly_fee.clear();
        self.total_fee.clear();
        self.risk_of_churn.clear();
        self.churn_score.clear();
        self.churn_score_defined.clear();
        self.nb_jobs.clear();
        self.creation_date.clear();
        self.model_version.clear();
    }
}

/// One Parquet file being written.
pub struct ParquetPart {
    writer: SerializedFileWriter<Vec<u8>>,
    columns: Columns,
    rows: u64,
    with_model_version: bool,
}

impl ParquetPart {
    /// Starts a Parquet file, with the `modelVersion` column if `with_model_version`;
    /// `path` names it in errors.
    ///
    /// # Errors
    /// When the header cannot be written.
    pub fn new(path: &str, with_model_version: bool) -> Result<Self, SinkError> {
        let schema = Arc::new(schema(with_model_version));
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_created_by(concat!("tenantflow ", env!("CARGO_PKG_VERSION")).into())
            .build();
        let writer = SerializedFileWriter::new(Vec::new(), schema, Arc::new(props))
            .map_err(|source| parquet_error(path, source))?;
        Ok(Self {
            writer,
            columns: Columns::default(),
            rows: 0,
            with_model_version,
        })
    }

    /// Buffers a row, writing a row group when enough have gathered.
    ///
    /// # Errors
    /// When a row group cannot be written.
    pub fn push(&mut self, row: &ResultRow<'_>, path: &str) -> Result<(), SinkError> {
        if row.model_version.is_some() != self.with_model_version {
            return Err(parquet_error(
                path,
                ParquetError::General(
                    "a result with or without a model version in a file of the other kind".into(),
                ),
            ));
        }
        self.columns.push(row);
        self.rows += 1;
        if self.columns.len() >= ROW_GROUP_ROWS {
            self.flush_row_group()
                .map_err(|source| parquet_error(path, source))?;
        }
        Ok(())
    }

    /// Rows written or buffered.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// An estimate of the file's size so far, for rolling.
    pub fn estimated_bytes(&self) -> u64 {
        self.writer.bytes_written() as u64 + self.columns.len() as u64 * 40
    }

    /// The bytes encoded since the last call.
    pub fn take_bytes(&mut self) -> Vec<u8> {
        // The writer counts its offsets itself: emptying its buffer does not move them.
        std::mem::take(self.writer.inner_mut())
    }

    /// Writes the buffered rows and the footer; returns the bytes not yet taken.
    ///
    /// # Errors
    /// When the file cannot be completed.
    pub fn finish(mut self, path: &str) -> Result<Vec<u8>, SinkError> {
        self.flush_row_group()
            .map_err(|source| parquet_error(path, source))?;
        self.writer
            .into_inner()
            .map_err(|source| parquet_error(path, source))
    }

    fn flush_row_group(&mut self) -> Result<(), ParquetError> {
        if self.columns.len() == 0 {
            return Ok(());
        }
        let c = &mut self.columns;
        let arena = Bytes::from(std::mem::take(&mut c.strings));
        let strings = |spans: &[(usize, usize)]| -> Vec<ByteArray> {
            spans
                .iter()
                .map(|&(a, b)| ByteArray::from(arena.slice(a..b)))
                .collect()
        };
        let mut group = self.writer.next_row_group()?;
        let mut index = 0;
        while let Some(mut column) = group.next_column()? {
            match index {
                0 => column.typed::<ByteArrayType>().write_batch(
                    &strings(&c.company_id),
                    None,
                    None,
                )?,
                1 => column.typed::<ByteArrayType>().write_batch(
                    &strings(&c.industry),
                    None,
                    None,
                )?,
                2 => column
                    .typed::<Int64Type>()
                    .write_batch(&c.revenu, None, None)?,
                3 => column
                    .typed::<Int64Type>()
                    .write_batch(&c.employees, None, None)?,
                4 => column
                    .typed::<Int64Type>()
                    .write_batch(&c.job30, None, None)?,
                5 => column
                    .typed::<Int64Type>()
                    .write_batch(&c.job90, None, None)?,
                6 => column
                    .typed::<DoubleType>()
                    .write_batch(&c.monthly_fee, None, None)?,
                7 => column
                    .typed::<DoubleType>()
                    .write_batch(&c.total_fee, None, None)?,
                8 => column
                    .typed::<BoolType>()
                    .write_batch(&c.risk_of_churn, None, None)?,
                9 => column.typed::<DoubleType>().write_batch(
                    &c.churn_score,
                    Some(&c.churn_score_defined),
                    None,
                )?,
                10 => {
                    column
                        .typed::<ByteArrayType>()
                        .write_batch(&strings(&c.user_id), None, None)?
                }
                11 => column
                    .typed::<Int64Type>()
                    .write_batch(&c.nb_jobs, None, None)?,
                12 => column
                    .typed::<Int64Type>()
                    .write_batch(&c.creation_date, None, None)?,
                13 => column.typed::<ByteArrayType>().write_batch(
                    &strings(&c.model_version),
                    None,
                    None,
                )?,
                _ => return Err(ParquetError::General(format!("unexpected column {index}"))),
            };
            column.close()?;
            index += 1;
        }
        group.close()?;
        c.clear();
        Ok(())
    }
}

/// The parsed result schema, with `modelVersion` if `with_model_version`.
pub fn schema(with_model_version: bool) -> Type {
    if with_model_version {
        let text = SCHEMA.replace('}', "  required binary modelVersion (STRING);\n}");
        parse_message_type(&text).expect("the result schema parses")
    } else {
        parse_message_type(SCHEMA).expect("the result schema parses")
    }
}

fn parquet_error(path: &str, source: ParquetError) -> SinkError {
    SinkError::Parquet {
        path: path.to_owned(),
        source,
    }
}
