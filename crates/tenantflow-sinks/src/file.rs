//! A worker's results as files in the output store, partitioned by event hour (or,
//! if asked, by the hour they are written in).
//!
//! Each worker writes its own files, so no two threads share a file and no lock is
//! taken. A file is an upload ([`crate::upload::FileUpload`]) that a reader cannot see
//! until the checkpoint that recorded it as pending is durable and the file is
//! committed. Names are deterministic: worker and a per-worker sequence number, which
//! the checkpoint records, so a restarted job writes the same names again.
//!
//! A worker keeps several partitions open at once (late events reach back into the
//! previous hour; a stream's shards are replayed at different points in time); past
//! [`FileSinkConfig::max_open_files`] the least recently written one is finished. A file is also finished when it reaches
//! [`FileSinkConfig::max_file_bytes`], and at the first checkpoint after it is
//! [`FileSinkConfig::max_file_age`] old. Otherwise files stay open across checkpoints:
//! their size does not depend on the checkpoint interval. A Parquet file's buffered rows
//! become a row group at each checkpoint, which records the metadata of its row groups
//! beside the file's upload, so that a restarted job writes the footer of the same file
//! when it finishes (see [`crate::encoding::parquet`] and `docs/ARCHITECTURE.md`).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use tenantflow_core::ResultRow;
use tenantflow_core::clock::now_ms;
use tenantflow_core::time::{civil_from_days, hour_of};

use crate::SinkError;
use crate::encoding::parquet::ParquetPart;
use crate::encoding::{Format, ProfileFragments};
use crate::finisher::Finisher;
use crate::store::StoreError;
use crate::upload::{FileUpload, Location, PendingFile, Staging, UploadState};

/// Uncompressed bytes gathered before they go through gzip.
const GZIP_BUFFER: usize = 256 * 1024;

/// How event hours map to folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Partitioning {
    /// `yyyy-MM-dd--HH/`, the original system's layout.
    #[default]
    Hourly,
    /// Hive style, `dt=YYYY-MM-DD/hour=HH/`.
    Hive,
}

impl Partitioning {
    /// The folder, relative to the output folder, of an event hour.
    pub fn folder(self, hour: i64) -> String {
        let (y, m, d) = civil_from_days(hour.div_euclid(24));
        let h = hour.rem_euclid(24);
        match self {
            Partitioning::Hourly => format!("{y:04}-{m:02}-{d:02}--{h:02}"),
            Partitioning::Hive => format!("dt={y:04}-{m:02}-{d:02}/hour={h:02}"),
        }
    }
}

/// Which time decides a result's hour folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartitionTime {
    /// The event's `creationDate`: a replay writes the same folders.
    #[default]
    Event,
    /// The wall clock when the result is written, as the original job's Flink
    /// `DateTimeBucketAssigner` did: folders follow when results were made, not when
    /// jobs were submitted.
    Processing,
}

/// Compression of row files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// None.
    #[default]
    None,
    /// gzip; a file is a series of gzip members, one per checkpoint it stayed open
    /// across, which every gzip reader reads as one stream.
    Gzip,
}

/// A file is finished once it holds this many bytes, by default.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 128 << 20;
/// A file is finished at the first checkpoint after it is this old, by default.
pub const DEFAULT_MAX_FILE_AGE: Duration = Duration::from_secs(15 * 60);
/// Partitions a worker keeps open at once, by default.
pub const DEFAULT_MAX_OPEN_FILES: std::num::NonZeroUsize = match std::num::NonZeroUsize::new(32) {
    Some(n) => n,
    None => panic!("zero"),
};

/// Where and how a worker writes its results.
#[derive(Debug, Clone)]
pub struct FileSinkConfig {
    /// The output folder.
    pub output: Location,
    /// The checkpoint store's folder: upload markers, staged tails.
    pub staging: Staging,
    /// The encoding.
    pub format: Format,
    /// Compression of row formats (Parquet compresses its columns itself).
    pub compression: Compression,
    /// Folder layout.
    pub partitioning: Partitioning,
    /// Which time picks a result's hour folder.
    pub partition_time: PartitionTime,
    /// A file is finished once it holds this many bytes.
    pub max_file_bytes: u64,
    /// A file is finished at the first checkpoint after it is this old.
    pub max_file_age: Duration,
    /// Partitions a worker keeps open at once.
    pub max_open_files: std::num::NonZeroUsize,
    /// Results carry the version of the model that scored them (`modelVersion`).
    pub model_version_field: bool,
    /// A tag in every file name (a shard id, when several jobs write one output):
    /// `part-TAG-wNN-…` instead of `part-wNN-…`.
    pub name_tag: Option<String>,
    /// Every file is finished at every checkpoint, none left open across one (a shard
    /// job: its next owner never writes into a file an earlier owner had open).
    pub finish_at_checkpoint: bool,
}

impl FileSinkConfig {
    /// The sink's defaults (those of `tenantflow run`'s configuration): NDJSON, hourly
    /// folders, 128 MiB files, finished after 15 minutes, 32 open partitions.
    pub fn new(output: Location, staging: Staging) -> Self {
        Self {
            output,
            staging,
            format: Format::Ndjson,
            compression: Compression::None,
            partitioning: Partitioning::Hourly,
            partition_time: PartitionTime::Event,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            max_file_age: DEFAULT_MAX_FILE_AGE,
            max_open_files: DEFAULT_MAX_OPEN_FILES,
            model_version_field: false,
            name_tag: None,
            finish_at_checkpoint: false,
        }
    }

    /// The extension of result files, compression included.
    pub fn extension(&self) -> String {
        self.encoding().to_string()
    }

    /// The format and compression of result files.
    pub fn encoding(&self) -> ResultEncoding {
        ResultEncoding::new(self.format, self.compression)
    }
}

/// The format and compression of result files, as checkpoints record them: written as
/// the file extension (`ndjson`, `csv.gz`, `parquet`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultEncoding {
    format: Format,
    compression: Compression,
}

impl ResultEncoding {
    /// `format` with `compression`; Parquet compresses its columns itself, so its files
    /// take none.
    pub fn new(format: Format, compression: Compression) -> Self {
        let compression = match format {
            Format::Parquet => Compression::None,
            Format::Ndjson | Format::Csv => compression,
        };
        Self {
            format,
            compression,
        }
    }
}

impl std::fmt::Display for ResultEncoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.format.extension())?;
        match self.compression {
            Compression::None => Ok(()),
            Compression::Gzip => f.write_str(".gz"),
        }
    }
}

impl std::str::FromStr for ResultEncoding {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (format, compression) = match text.strip_suffix(".gz") {
            Some(format) => (format, Compression::Gzip),
            None => (text, Compression::None),
        };
        let format = match format {
            "ndjson" => Format::Ndjson,
            "csv" => Format::Csv,
            "parquet" => Format::Parquet,
            _ => return Err(format!("`{text}` is not a result file extension")),
        };
        if format == Format::Parquet && compression == Compression::Gzip {
            return Err(format!("`{text}`: Parquet files are not gzipped"));
        }
        Ok(Self::new(format, compression))
    }
}

impl serde::Serialize for ResultEncoding {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ResultEncoding {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What a sink wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileStats {
    /// Files finished.
    pub files: u64,
    /// Rows written.
    pub rows: u64,
    /// Bytes of finished files.
    pub bytes: u64,
}

impl FileStats {
    /// Adds a finished file.
    pub fn add(&mut self, file: &PendingFile) {
        self.files += 1;
        self.rows += file.rows;
        self.bytes += file.len;
    }
}

/// A worker's open files as a checkpoint records them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkState {
    /// The last file sequence number used.
    pub seq: u64,
    /// Files open across the checkpoint, with their event hour.
    pub open: Vec<(i64, UploadState)>,
    /// For each open Parquet file (by path), the object in the checkpoint store that
    /// records its row groups' metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub row_groups: BTreeMap<String, String>,
}

enum Body {
    Rows {
        /// gzip: the current member, and rows encoded but not yet compressed.
        gzip: Option<(GzEncoder<Vec<u8>>, Vec<u8>, u64)>,
    },
    Parquet(Box<ParquetPart>),
}

struct OpenPart {
    hour: i64,
    last_use: u64,
    file: FileUpload,
    body: Body,
}

impl OpenPart {
    fn size(&self) -> u64 {
        match &self.body {
            Body::Rows { gzip: None } => self.file.len(),
            // Text compresses about 5:1; close enough to roll by.
            Body::Rows {
                gzip: Some((_, raw, _)),
            } => self.file.len() + raw.len() as u64 / 5,
            Body::Parquet(part) => part.estimated_bytes(),
        }
    }

    /// Compresses what is gathered; with `end_member`, closes the gzip member.
    fn flush_gzip(&mut self, end_member: bool) -> Result<(), SinkError> {
        let Body::Rows { gzip } = &mut self.body else {
            return Ok(());
        };
        let Some((encoder, raw, rows)) = gzip else {
            return Ok(());
        };
        let path = self.file.path();
        let compress = |source| SinkError::Compress {
            path: path.to_owned(),
            source,
        };
        encoder.write_all(raw).map_err(compress)?;
        raw.clear();
        if end_member {
            encoder.try_finish().map_err(compress)?;
        }
        let compressed = std::mem::take(encoder.get_mut());
        let rows = std::mem::take(rows);
        self.file.write(&compressed, rows)?;
        if end_member {
            *gzip = None;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<PendingFile, SinkError> {
        self.flush_gzip(true)?;
        if let Body::Parquet(part) = self.body {
            let tail = part.finish(self.file.path())?;
            self.file.write(&tail, 0)?;
        }
        Ok(self.file.finish()?)
    }
}

/// One worker's hour-partitioned result files.
pub struct PartitionedFileSink {
    config: FileSinkConfig,
    prefix: String,
    seq: u64,
    clock: u64,
    open: Vec<OpenPart>,
    last: usize,
    stats: FileStats,
    pending: Vec<PendingFile>,
    finisher: Finisher,
}

impl PartitionedFileSink {
    /// A sink for worker `worker`.
    pub fn new(config: FileSinkConfig, worker: usize) -> Self {
        let prefix = match &config.name_tag {
            Some(tag) => format!("part-{tag}-w{worker:02}"),
            None => format!("part-w{worker:02}"),
        };
        Self {
            config,
            prefix,
            seq: 0,
            clock: 0,
            open: Vec::new(),
            last: usize::MAX,
            stats: FileStats::default(),
            pending: Vec::new(),
            finisher: Finisher::new(&format!("tenantflow-w{worker:02}")),
        }
    }

    /// A sink for worker `worker` that goes on from a checkpoint's state.
    ///
    /// # Errors
    /// When an open file cannot be restored.
    pub fn restore(
        config: FileSinkConfig,
        worker: usize,
        state: &SinkState,
    ) -> Result<Self, SinkError> {
        let mut sink = Self::new(config, worker);
        sink.seq = state.seq;
        for (hour, upload) in &state.open {
            let file =
                FileUpload::restore(&sink.config.output.store, &sink.config.staging, upload)?;
            let body = match sink.config.format {
                Format::Parquet => Body::Parquet(Box::new(sink.restore_parquet(&file, state)?)),
                Format::Ndjson | Format::Csv => Body::Rows { gzip: None },
            };
            sink.open.push(OpenPart {
                hour: *hour,
                last_use: 0,
                file,
                body,
            });
        }
        Ok(sink)
    }

    /// An open Parquet file's writer, from the row groups its checkpoint recorded.
    fn restore_parquet(
        &self,
        file: &FileUpload,
        state: &SinkState,
    ) -> Result<ParquetPart, SinkError> {
        let missing = |message: &str| StoreError::State {
            op: "restoring",
            location: file.path().to_owned(),
            message: message.to_owned(),
        };
        let object = state.row_groups.get(file.path()).ok_or_else(|| {
            missing("the checkpoint records no row groups for this open Parquet file")
        })?;
        let recorded = self
            .config
            .staging
            .location
            .store
            .get(object)?
            .ok_or_else(|| {
                missing("the record of this open Parquet file's row groups is missing")
            })?;
        ParquetPart::restore(
            file.path(),
            self.config.model_version_field,
            file.len(),
            &recorded,
        )
    }

    /// Files open now.
    pub fn open_files(&self) -> usize {
        self.open.len()
    }

    /// The sink's encoding.
    pub fn format(&self) -> Format {
        self.config.format
    }

    /// True if results carry their model's version.
    pub fn model_version_field(&self) -> bool {
        self.config.model_version_field
    }

    /// Writes one result into its hour's file (the event's hour, or the wall clock's
    /// with [`PartitionTime::Processing`]).
    ///
    /// # Errors
    /// When a file cannot be started, written or finished.
    pub fn write(
        &mut self,
        row: &ResultRow<'_>,
        fragments: &ProfileFragments,
    ) -> Result<(), SinkError> {
        let hour = match self.config.partition_time {
            PartitionTime::Event => hour_of(row.creation_date),
            PartitionTime::Processing => hour_of(now_ms()),
        };
        let i = match self.open.get(self.last) {
            Some(part) if part.hour == hour => self.last,
            _ => self.find_or_open(hour)?,
        };
        self.last = i;
        self.clock += 1;
        let format = self.config.format;
        let compression = self.config.compression;
        let part = &mut self.open[i];
        part.last_use = self.clock;
        match &mut part.body {
            Body::Rows { gzip: None } if compression == Compression::None => {
                format.encode_row(part.file.buffer(), row, fragments);
                part.file.wrote(1)?;
            }
            Body::Rows { gzip } => {
                let (_, raw, rows) = gzip.get_or_insert_with(|| {
                    (
                        GzEncoder::new(Vec::new(), flate2::Compression::fast()),
                        Vec::with_capacity(GZIP_BUFFER + 4096),
                        0,
                    )
                });
                format.encode_row(raw, row, fragments);
                *rows += 1;
                if raw.len() >= GZIP_BUFFER {
                    part.flush_gzip(false)?;
                }
            }
            Body::Parquet(p) => {
                p.push(row, part.file.path())?;
                let bytes = p.take_bytes();
                part.file.write(&bytes, 1)?;
            }
        }
        if part.size() >= self.config.max_file_bytes {
            self.finish(i)?;
        }
        Ok(())
    }

    /// At a checkpoint: finishes the files past their age (or every file, with
    /// `finish_at_checkpoint`), makes the others durable (a Parquet file's buffered rows
    /// become a row group, and its row groups' metadata is recorded), and hands over the
    /// files finished since the last checkpoint. `tails` is the checkpoint's folder for
    /// staged tails.
    ///
    /// # Errors
    /// When a file cannot be finished or its tail staged.
    pub fn checkpoint(
        &mut self,
        tails: &Location,
        now_ms: i64,
    ) -> Result<(SinkState, Vec<PendingFile>), SinkError> {
        let max_age = i64::try_from(self.config.max_file_age.as_millis()).unwrap_or(i64::MAX);
        let mut i = 0;
        while i < self.open.len() {
            let part = &self.open[i];
            let too_old = now_ms.saturating_sub(part.file.opened_ms()) >= max_age;
            if too_old || self.config.finish_at_checkpoint {
                self.finish(i)?;
            } else {
                i += 1;
            }
        }
        let mut open = Vec::with_capacity(self.open.len());
        let mut row_groups = BTreeMap::new();
        for part in &mut self.open {
            part.flush_gzip(true)?;
            if let Body::Parquet(parquet) = &mut part.body {
                let recorded = parquet.checkpoint(part.file.path())?;
                let bytes = parquet.take_bytes();
                part.file.write(&bytes, 0)?;
                let object = tails.path(&format!("{}.row-groups", part.file.path()));
                tails.store.put(&object, recorded.into())?;
                row_groups.insert(part.file.path().to_owned(), object);
            }
            let tail = tails.path(part.file.path());
            open.push((part.hour, part.file.persist(&tail)?));
        }
        let state = SinkState {
            seq: self.seq,
            open,
            row_groups,
        };
        self.drain()?;
        Ok((state, std::mem::take(&mut self.pending)))
    }

    /// Finishes every open file; returns what the sink wrote and the files waiting for
    /// the final checkpoint.
    ///
    /// # Errors
    /// When a file cannot be finished.
    pub fn close(&mut self) -> Result<(FileStats, Vec<PendingFile>), SinkError> {
        while !self.open.is_empty() {
            self.finish(self.open.len() - 1)?;
        }
        self.drain()?;
        Ok((self.stats, std::mem::take(&mut self.pending)))
    }

    /// The last file sequence number used.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// What the sink has finished so far (files being finished in the background not
    /// yet counted).
    pub fn stats(&self) -> FileStats {
        self.stats
    }

    fn find_or_open(&mut self, hour: i64) -> Result<usize, SinkError> {
        if let Some(i) = self.open.iter().position(|p| p.hour == hour) {
            return Ok(i);
        }
        if self.open.len() >= self.config.max_open_files.get() {
            let lru = (0..self.open.len())
                .min_by_key(|&i| self.open[i].last_use)
                .unwrap_or(0);
            self.finish(lru)?;
        }
        self.seq += 1;
        let name = format!(
            "{}-{:06}.{}",
            self.prefix,
            self.seq,
            self.config.extension()
        );
        let folder = self.config.partitioning.folder(hour);
        let path = self.config.output.path(&format!("{folder}/{name}"));
        let file = FileUpload::begin(
            &self.config.output.store,
            &self.config.staging,
            path,
            now_ms(),
        )?;
        let body = match self.config.format {
            Format::Parquet => {
                Body::Parquet(Box::new(ParquetPart::new(self.config.model_version_field)))
            }
            Format::Ndjson | Format::Csv => Body::Rows { gzip: None },
        };
        self.open.push(OpenPart {
            hour,
            last_use: self.clock,
            file,
            body,
        });
        Ok(self.open.len() - 1)
    }

    /// Hands file `i` to the finisher.
    fn finish(&mut self, i: usize) -> Result<(), SinkError> {
        let part = self.open.swap_remove(i);
        self.last = usize::MAX;
        let mut finished = Vec::new();
        let result = self
            .finisher
            .submit(Box::new(move || part.finish()), &mut finished);
        self.account(finished);
        result
    }

    /// Waits for the files being finished.
    fn drain(&mut self) -> Result<(), SinkError> {
        let mut finished = Vec::new();
        let result = self.finisher.drain(&mut finished);
        self.account(finished);
        result
    }

    fn account(&mut self, finished: Vec<PendingFile>) {
        for file in finished {
            self.stats.add(&file);
            self.pending.push(file);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::{MemoryStore, Store};
    use crate::upload::commit;
    use tenantflow_core::CompanyProfile;

    fn profile() -> CompanyProfile {
        CompanyProfile {
            industry: "retail".into(),
            revenu: 1,
            employees: 2,
            job30: 3,
            job90: 4,
            monthly_fee: 5.0,
            total_fee: 6.0,
        }
    }

    fn row(profile: &CompanyProfile, creation_date: i64) -> ResultRow<'_> {
        ResultRow {
            company_id: "c",
            profile,
            job30: 1,
            job90: 2,
            risk_of_churn: true,
            churn_score: Some(0.75),
            user_id: "u",
            nb_jobs: 1,
            creation_date,
            model_version: None,
        }
    }

    const HOUR: i64 = 3_600_000;
    const T0: i64 = 1_767_225_600_000;

    fn config() -> (Arc<dyn Store>, FileSinkConfig) {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let output = Location::root(Arc::clone(&store));
        let staging = Staging {
            location: output.child("_checkpoints"),
        };
        (store, FileSinkConfig::new(output, staging))
    }

    /// Result objects (not under `_checkpoints/`).
    fn results(store: &dyn Store) -> Vec<String> {
        store
            .list("")
            .unwrap()
            .into_iter()
            .map(|o| o.path)
            .filter(|p| !p.starts_with('_'))
            .collect()
    }

    fn commit_all(config: &FileSinkConfig, pending: &[PendingFile]) {
        for file in pending {
            commit(&config.output.store, &config.staging, file).unwrap();
        }
    }

    #[test]
    fn rows_land_in_their_hour_and_files_appear_only_when_committed() {
        let (store, mut config) = config();
        config.max_open_files = std::num::NonZeroUsize::new(2).unwrap();
        let p = profile();
        let fragments = config.format.profile_fragments("c", &p);
        let mut sink = PartitionedFileSink::new(config.clone(), 3);
        for t in [
            T0,
            T0 + HOUR,
            T0 + 10,
            T0 + 2 * HOUR,
            T0 + 5,
            T0 + 3 * HOUR,
            T0 + 7,
            T0 + 4 * HOUR,
            T0 + 5 * HOUR,
            T0 + 1,
        ] {
            sink.write(&row(&p, t), &fragments).unwrap();
        }
        // Each new hour finished the least recently written open file; hour 0 stayed
        // open while late rows kept it recent, until hours 4 and 5 pushed it out, so its
        // last late row went to a second file. Nothing is visible before a commit.
        assert_eq!(results(store.as_ref()), Vec::<String>::new());
        let (stats, pending) = sink.close().unwrap();
        assert_eq!((stats.files, stats.rows), (7, 10));
        commit_all(&config, &pending);
        assert_eq!(
            results(store.as_ref()),
            [
                "2026-01-01--00/part-w03-000001.ndjson",
                "2026-01-01--00/part-w03-000007.ndjson",
                "2026-01-01--01/part-w03-000002.ndjson",
                "2026-01-01--02/part-w03-000003.ndjson",
                "2026-01-01--03/part-w03-000004.ndjson",
                "2026-01-01--04/part-w03-000005.ndjson",
                "2026-01-01--05/part-w03-000006.ndjson",
            ]
        );
        let first = store
            .get("2026-01-01--00/part-w03-000001.ndjson")
            .unwrap()
            .unwrap();
        assert_eq!(first.split(|&b| b == b'\n').count() - 1, 4);
        assert_eq!(store.list("_checkpoints/uploads").unwrap(), vec![]);
    }

    #[test]
    fn files_roll_at_the_size_limit() {
        let (_, mut config) = config();
        config.max_file_bytes = 1;
        let p = profile();
        let fragments = config.format.profile_fragments("c", &p);
        let mut sink = PartitionedFileSink::new(config, 0);
        for _ in 0..3 {
            sink.write(&row(&p, T0), &fragments).unwrap();
        }
        assert_eq!(sink.close().unwrap().0.files, 3);
    }

    #[test]
    fn row_files_stay_open_across_checkpoints_and_survive_a_restore() {
        for compression in [Compression::None, Compression::Gzip] {
            let (store, mut config) = config();
            config.compression = compression;
            let p = profile();
            let fragments = config.format.profile_fragments("c", &p);
            let tails = config.staging.location.child("chk-1");
            let mut sink = PartitionedFileSink::new(config.clone(), 0);
            for i in 0..1000 {
                sink.write(&row(&p, T0 + i), &fragments).unwrap();
            }
            let (state, pending) = sink.checkpoint(&tails, now_ms()).unwrap();
            assert!(pending.is_empty());
            assert_eq!(state.open.len(), 1);
            // Rows after the checkpoint are lost with the crash.
            for i in 0..500 {
                sink.write(&row(&p, T0 + i), &fragments).unwrap();
            }
            drop(sink);
            let mut sink = PartitionedFileSink::restore(config.clone(), 0, &state).unwrap();
            for i in 0..10 {
                sink.write(&row(&p, T0 + i), &fragments).unwrap();
            }
            let (stats, pending) = sink.close().unwrap();
            assert_eq!((stats.files, stats.rows), (1, 1010));
            commit_all(&config, &pending);
            let names = results(store.as_ref());
            assert_eq!(names.len(), 1, "{names:?}");
            let data = store.get(&names[0]).unwrap().unwrap();
            let text = match compression {
                Compression::None => String::from_utf8(data.to_vec()).unwrap(),
                Compression::Gzip => {
                    let mut text = String::new();
                    std::io::Read::read_to_string(
                        &mut flate2::read::MultiGzDecoder::new(&data[..]),
                        &mut text,
                    )
                    .unwrap();
                    text
                }
            };
            assert_eq!(text.lines().count(), 1010);
        }
    }

    #[test]
    fn parquet_files_stay_open_across_checkpoints_and_survive_a_restore() {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        use parquet::record::RowAccessor;
        let (store, mut config) = config();
        config.format = Format::Parquet;
        config.max_file_age = Duration::from_secs(60);
        let p = profile();
        let fragments = config.format.profile_fragments("c", &p);
        let mut sink = PartitionedFileSink::new(config.clone(), 0);
        for i in 0..1000 {
            sink.write(&row(&p, T0 + i), &fragments).unwrap();
        }
        let chk1 = config.staging.location.child("chk-1");
        let (state, pending) = sink.checkpoint(&chk1, now_ms()).unwrap();
        assert!(pending.is_empty());
        assert_eq!((state.open.len(), state.row_groups.len()), (1, 1));
        // Rows after the checkpoint are lost with the crash.
        for i in 0..500 {
            sink.write(&row(&p, T0 + 5000 + i), &fragments).unwrap();
        }
        drop(sink);
        // The record survives a manifest's round trip through JSON.
        let state: SinkState =
            serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
        let mut sink = PartitionedFileSink::restore(config.clone(), 0, &state).unwrap();
        for i in 1000..1010 {
            sink.write(&row(&p, T0 + i), &fragments).unwrap();
        }
        let chk2 = config.staging.location.child("chk-2");
        let (state, _) = sink.checkpoint(&chk2, now_ms()).unwrap();
        let mut sink = PartitionedFileSink::restore(config.clone(), 0, &state).unwrap();
        for i in 1010..1015 {
            sink.write(&row(&p, T0 + i), &fragments).unwrap();
        }
        let (stats, pending) = sink.close().unwrap();
        assert_eq!((stats.files, stats.rows), (1, 1015));
        commit_all(&config, &pending);
        let names = results(store.as_ref());
        assert_eq!(names.len(), 1, "{names:?}");
        let reader = SerializedFileReader::new(store.get(&names[0]).unwrap().unwrap()).unwrap();
        assert_eq!(reader.metadata().num_row_groups(), 3);
        let times: Vec<i64> = reader
            .get_row_iter(None)
            .unwrap()
            .map(|r| r.unwrap().get_timestamp_millis(12).unwrap())
            .collect();
        assert_eq!(times, (0..1015).map(|i| T0 + i).collect::<Vec<_>>());
    }

    #[test]
    fn a_restored_parquet_file_needs_its_row_groups_record() {
        let (_, mut config) = config();
        config.format = Format::Parquet;
        config.max_file_age = Duration::from_secs(60);
        let p = profile();
        let fragments = config.format.profile_fragments("c", &p);
        let mut sink = PartitionedFileSink::new(config.clone(), 0);
        sink.write(&row(&p, T0), &fragments).unwrap();
        let chk = config.staging.location.child("chk-1");
        let (mut state, _) = sink.checkpoint(&chk, now_ms()).unwrap();
        state.row_groups.clear();
        let Err(e) = PartitionedFileSink::restore(config, 0, &state) else {
            panic!("restored without the record");
        };
        assert!(e.to_string().contains("records no row groups"), "{e}");
    }

    #[test]
    fn old_files_finish_at_their_age() {
        let (_, mut config) = config();
        let p = profile();
        let fragments = config.format.profile_fragments("c", &p);
        let tails = config.staging.location.child("chk-1");
        config.max_file_age = Duration::from_secs(60);
        let mut sink = PartitionedFileSink::new(config, 0);
        sink.write(&row(&p, T0), &fragments).unwrap();
        let (state, pending) = sink.checkpoint(&tails, now_ms()).unwrap();
        assert_eq!((state.open.len(), pending.len()), (1, 0));
        let (state, pending) = sink.checkpoint(&tails, now_ms() + 61_000).unwrap();
        assert_eq!((state.open.len(), pending.len()), (0, 1));
    }

    #[test]
    fn hive_partitioning_folders() {
        assert_eq!(
            Partitioning::Hive.folder(T0 / HOUR + 13),
            "dt=2026-01-01/hour=13"
        );
        assert_eq!(
            Partitioning::Hourly.folder(T0 / HOUR + 13),
            "2026-01-01--13"
        );
    }

    #[test]
    fn processing_time_puts_results_in_the_hour_they_are_written() {
        let (store, mut config) = config();
        config.partition_time = PartitionTime::Processing;
        let p = profile();
        let fragments = config.format.profile_fragments("c", &p);
        let mut sink = PartitionedFileSink::new(config.clone(), 0);
        let before = hour_of(now_ms());
        // Events of 2026-01-01, one hour apart: both go to the hour of the wall clock.
        sink.write(&row(&p, T0), &fragments).unwrap();
        sink.write(&row(&p, T0 + HOUR), &fragments).unwrap();
        let after = hour_of(now_ms());
        let tails = config.staging.location.child("chk-1");
        let (_, pending) = sink.checkpoint(&tails, now_ms() + HOUR).unwrap();
        commit_all(&config, &pending);
        let folders: Vec<String> = results(&*store)
            .iter()
            .map(|path| path.split('/').next().unwrap_or_default().to_owned())
            .collect();
        let expected: Vec<String> = (before..=after)
            .map(|h| Partitioning::Hourly.folder(h))
            .collect();
        assert!(!folders.is_empty());
        assert!(
            folders.iter().all(|f| expected.contains(f)),
            "{folders:?} not in {expected:?}"
        );
    }
}
