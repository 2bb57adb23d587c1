//! Results as Parquet: typed columns, Snappy, dictionary-encoded strings.
//!
//! Rows are buffered column by column and written as a row group every
//! [`ROW_GROUP_ROWS`] rows, at each checkpoint and at close. The encoded bytes gather in
//! memory; the file sink takes them ([`ParquetPart::take_bytes`]) after each row group
//! and uploads them. Strings go to one arena per row group, and the Parquet values are
//! slices of it: no allocation per row.
//!
//! A file outlives checkpoints, as row files do: a Parquet footer describes every row
//! group, so [`ParquetPart`] keeps the row groups' metadata itself and writes the
//! footer when the file finishes. Each row group is encoded by a writer of its own and
//! its metadata moved to where its bytes go in the file; at a checkpoint the buffered
//! rows become a row group and the metadata of all of them is recorded
//! ([`ParquetPart::checkpoint`]), so that a restarted job goes on with the same file
//! ([`ParquetPart::restore`]) and a file holds what `--max-file-size` and
//! `--max-file-age` say, not what a checkpoint interval does.

use std::sync::Arc;

use bytes::Bytes;
use parquet::basic::Compression;
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::errors::ParquetError;
use parquet::file::metadata::{
    FileMetaData, ParquetMetaData, ParquetMetaDataReader, ParquetMetaDataWriter, RowGroupMetaData,
};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterPropertiesPtr};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::{SchemaDescriptor, Type, TypePtr};
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

/// Every Parquet file starts and ends with these bytes.
const MAGIC: &[u8; 4] = b"PAR1";

/// One Parquet file being written.
pub struct ParquetPart {
    schema: TypePtr,
    props: WriterPropertiesPtr,
    columns: Columns,
    /// Rows written or buffered.
    rows: u64,
    with_model_version: bool,
    /// The row groups written, with their offsets in the file.
    row_groups: Vec<RowGroupMetaData>,
    /// Bytes of the file so far, taken or not.
    written: u64,
    /// Bytes not yet taken by the sink.
    pending: Vec<u8>,
}

impl ParquetPart {
    /// Starts a Parquet file, with the `modelVersion` column if `with_model_version`.
    pub fn new(with_model_version: bool) -> Self {
        Self {
            schema: Arc::new(schema(with_model_version)),
            props: Arc::new(
                WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .set_created_by(concat!("tenantflow ", env!("CARGO_PKG_VERSION")).into())
                    // Statistics per column chunk, in the footer; no page index (it
                    // would sit between the row groups and the footer, with offsets of
                    // its own).
                    .set_statistics_enabled(EnabledStatistics::Chunk)
                    .set_offset_index_disabled(true)
                    .build(),
            ),
            columns: Columns::default(),
            rows: 0,
            with_model_version,
            row_groups: Vec::new(),
            written: MAGIC.len() as u64,
            pending: MAGIC.to_vec(),
        }
    }

    /// Goes on with a file a checkpoint recorded: `len` bytes written so far, the row
    /// groups `recorded` ([`ParquetPart::checkpoint`]'s bytes) describes.
    ///
    /// # Errors
    /// When `recorded` is not such a record, or does not match `len`.
    pub fn restore(
        path: &str,
        with_model_version: bool,
        len: u64,
        recorded: &[u8],
    ) -> Result<Self, SinkError> {
        let mut part = Self::new(with_model_version);
        let metadata = ParquetMetaDataReader::decode_metadata(recorded)
            .map_err(|source| parquet_error(path, source))?;
        if metadata.file_metadata().schema_descr().root_schema() != part.schema.as_ref() {
            return Err(parquet_error(
                path,
                ParquetError::General("the recorded row groups have another schema".into()),
            ));
        }
        part.row_groups = metadata.row_groups().to_vec();
        let end = part
            .row_groups
            .last()
            .and_then(|g| Some(g.file_offset()? + g.compressed_size()))
            .unwrap_or(MAGIC.len() as i64);
        if u64::try_from(end).ok() != Some(len) {
            return Err(parquet_error(
                path,
                ParquetError::General(format!(
                    "the recorded row groups end at byte {end}, the file has {len}"
                )),
            ));
        }
        part.rows = part.row_groups.iter().map(|g| g.num_rows() as u64).sum();
        part.written = len;
        part.pending.clear();
        Ok(part)
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
        self.written + self.columns.len() as u64 * 40
    }

    /// The bytes encoded since the last call.
    pub fn take_bytes(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }

    /// At a checkpoint: writes the buffered rows as a row group (take its bytes with
    /// [`ParquetPart::take_bytes`]) and returns the record of every row group so far,
    /// for [`ParquetPart::restore`]: a Parquet footer without the file around it.
    ///
    /// # Errors
    /// When the row group or the record cannot be written.
    pub fn checkpoint(&mut self, path: &str) -> Result<Vec<u8>, SinkError> {
        let error = |source| parquet_error(path, source);
        self.flush_row_group().map_err(error)?;
        let mut record = Vec::new();
        ParquetMetaDataWriter::new(&mut record, &self.metadata())
            .finish()
            .map_err(error)?;
        // The footer ends with its length and the magic; the record is the metadata.
        record.truncate(record.len().saturating_sub(8));
        Ok(record)
    }

    /// Writes the buffered rows and the footer; returns the bytes not yet taken.
    ///
    /// # Errors
    /// When the file cannot be completed.
    pub fn finish(mut self, path: &str) -> Result<Vec<u8>, SinkError> {
        let error = |source| parquet_error(path, source);
        self.flush_row_group().map_err(error)?;
        let metadata = self.metadata();
        ParquetMetaDataWriter::new(&mut self.pending, &metadata)
            .finish()
            .map_err(error)?;
        Ok(self.pending)
    }

    /// The file's metadata: the schema and every row group written.
    fn metadata(&self) -> ParquetMetaData {
        let rows: i64 = self.row_groups.iter().map(RowGroupMetaData::num_rows).sum();
        let file = FileMetaData::new(
            self.props.writer_version().as_num(),
            rows,
            self.props.created_by().to_owned().into(),
            None,
            Arc::new(SchemaDescriptor::new(Arc::clone(&self.schema))),
            None,
        );
        ParquetMetaData::new(file, self.row_groups.clone())
    }

    /// Encodes the buffered rows as a row group with a writer of its own, appends its
    /// bytes to the file's and its metadata, moved to where those bytes go.
    fn flush_row_group(&mut self) -> Result<(), ParquetError> {
        if self.columns.len() == 0 {
            return Ok(());
        }
        let mut writer = SerializedFileWriter::new(
            Vec::new(),
            Arc::clone(&self.schema),
            Arc::clone(&self.props),
        )?;
        write_row_group(&mut writer, &mut self.columns)?;
        let group = writer
            .flushed_row_groups()
            .first()
            .cloned()
            .ok_or_else(|| ParquetError::General("the row group was not written".into()))?;
        let encoded = std::mem::take(writer.inner_mut());
        let body = encoded.get(MAGIC.len()..).unwrap_or_default();
        // Offsets in the writer's own file, which starts with the magic; here the bytes
        // go at `written`.
        let shift = i64::try_from(self.written).unwrap_or(i64::MAX) - MAGIC.len() as i64;
        self.row_groups.push(moved(group, shift)?);
        self.pending.extend_from_slice(body);
        self.written += body.len() as u64;
        Ok(())
    }
}

/// `group` with every offset in it moved by `shift` bytes.
fn moved(group: RowGroupMetaData, shift: i64) -> Result<RowGroupMetaData, ParquetError> {
    let at = |offset: Option<i64>| offset.map(|o| o + shift);
    let file_offset = group.file_offset();
    let mut builder = group.into_builder();
    let columns = builder
        .take_columns()
        .into_iter()
        .map(|c| {
            let data = c.data_page_offset() + shift;
            let dictionary = at(c.dictionary_page_offset());
            let index = at(c.index_page_offset());
            let bloom = at(c.bloom_filter_offset());
            c.into_builder()
                .set_data_page_offset(data)
                .set_dictionary_page_offset(dictionary)
                .set_index_page_offset(index)
                .set_bloom_filter_offset(bloom)
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut builder = builder.set_column_metadata(columns);
    if let Some(offset) = file_offset {
        builder = builder.set_file_offset(offset + shift);
    }
    builder.build()
}

/// Writes `c`'s rows as the next row group of `writer`, and empties `c`.
fn write_row_group(
    writer: &mut SerializedFileWriter<Vec<u8>>,
    c: &mut Columns,
) -> Result<(), ParquetError> {
    let arena = Bytes::from(std::mem::take(&mut c.strings));
    let strings = |spans: &[(usize, usize)]| -> Vec<ByteArray> {
        spans
            .iter()
            .map(|&(a, b)| ByteArray::from(arena.slice(a..b)))
            .collect()
    };
    let mut group = writer.next_row_group()?;
    let mut index = 0;
    while let Some(mut column) = group.next_column()? {
        match index {
            0 => {
                column
                    .typed::<ByteArrayType>()
                    .write_batch(&strings(&c.company_id), None, None)?
            }
            1 => column
                .typed::<ByteArrayType>()
                .write_batch(&strings(&c.industry), None, None)?,
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
            10 => column
                .typed::<ByteArrayType>()
                .write_batch(&strings(&c.user_id), None, None)?,
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::RowAccessor;
    use tenantflow_core::CompanyProfile;

    use super::*;

    fn row<'a>(p: &'a CompanyProfile, user: &'a str, t: i64) -> ResultRow<'a> {
        ResultRow {
            company_id: "c1",
            profile: p,
            job30: 3,
            job90: 9,
            risk_of_churn: false,
            churn_score: Some(0.25),
            user_id: user,
            nb_jobs: 2,
            creation_date: t,
            model_version: None,
        }
    }

    #[test]
    fn a_file_goes_on_from_its_recorded_row_groups() {
        let p = CompanyProfile {
            industry: "retail".into(),
            revenu: 1,
            employees: 2,
            job30: 3,
            job90: 4,
            monthly_fee: 5.5,
            total_fee: 6.5,
        };
        let mut part = ParquetPart::new(false);
        for t in 0..3 {
            part.push(&row(&p, "u", t), "f").unwrap();
        }
        let mut file = part.take_bytes();
        let record = part.checkpoint("f").unwrap();
        file.extend(part.take_bytes());
        let len = file.len() as u64;
        drop(part);

        assert!(ParquetPart::restore("f", false, len + 1, &record).is_err());
        assert!(ParquetPart::restore("f", true, len, &record).is_err());
        assert!(ParquetPart::restore("f", false, len, b"junk").is_err());
        let mut part = ParquetPart::restore("f", false, len, &record).unwrap();
        assert_eq!(part.rows(), 3);
        for t in 3..5 {
            part.push(&row(&p, "v", t), "f").unwrap();
        }
        file.extend(part.finish("f").unwrap());
        let reader = SerializedFileReader::new(bytes::Bytes::from(file)).unwrap();
        assert_eq!(reader.metadata().num_row_groups(), 2);
        assert_eq!(reader.metadata().file_metadata().num_rows(), 5);
        let rows: Vec<(String, i64)> = reader
            .get_row_iter(None)
            .unwrap()
            .map(|r| {
                let r = r.unwrap();
                (
                    r.get_string(10).unwrap().clone(),
                    r.get_timestamp_millis(12).unwrap(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [("u", 0), ("u", 1), ("u", 2), ("v", 3), ("v", 4)].map(|(u, t)| (u.to_owned(), t))
        );
    }
}
