//! A worker's results as files under the output folder, partitioned by event hour.
//!
//! Each worker writes its own files, so no two threads share a file and no lock is
//! taken. A file is written under a hidden in-progress name
//! (`.part-w00-000001.ndjson.inprogress`) and renamed to its final name when complete,
//! so a reader never sees half a file and a crash leaves only hidden leftovers. Names
//! are deterministic: worker and a per-worker sequence number.
//!
//! A worker keeps a few partitions open at once (late events reach back into the
//! previous hour); past [`FileSinkConfig::max_open_files`] the least recently written
//! one is completed. A file is also completed when it reaches
//! [`FileSinkConfig::max_file_bytes`].

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use tenantflow_core::ResultRow;
use tenantflow_core::time::{civil_from_days, hour_of};

use crate::encoding::parquet::ParquetPart;
use crate::encoding::{Format, ProfileFragments};
use crate::{SinkError, io_error};

/// Bytes gathered before a write to the file.
const WRITE_BUFFER: usize = 256 * 1024;

/// How event hours map to folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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

/// Where and how a worker writes its results.
#[derive(Debug, Clone)]
pub struct FileSinkConfig {
    /// The output folder.
    pub dir: PathBuf,
    /// The encoding.
    pub format: Format,
    /// Folder layout.
    pub partitioning: Partitioning,
    /// A file is completed once it holds this many bytes.
    pub max_file_bytes: u64,
    /// Partitions a worker keeps open at once.
    pub max_open_files: usize,
}

impl FileSinkConfig {
    /// Defaults for `dir`: NDJSON, hourly folders, 128 MiB files, 8 open partitions.
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            format: Format::Ndjson,
            partitioning: Partitioning::Hourly,
            max_file_bytes: 128 << 20,
            max_open_files: 8,
        }
    }
}

/// What a sink wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileStats {
    /// Files completed.
    pub files: u64,
    /// Rows written.
    pub rows: u64,
    /// Bytes of completed files.
    pub bytes: u64,
}

enum Body {
    Rows {
        file: File,
        buf: Vec<u8>,
        bytes: u64,
    },
    Parquet(Box<ParquetPart>),
}

struct OpenPart {
    hour: i64,
    last_use: u64,
    rows: u64,
    in_progress: PathBuf,
    path: PathBuf,
    body: Body,
}

impl OpenPart {
    fn size(&self) -> u64 {
        match &self.body {
            Body::Rows { buf, bytes, .. } => bytes + buf.len() as u64,
            Body::Parquet(part) => part.estimated_bytes(),
        }
    }

    fn complete(self) -> Result<u64, SinkError> {
        match self.body {
            Body::Rows { mut file, buf, .. } => {
                file.write_all(&buf)
                    .map_err(io_error("writing", &self.in_progress))?;
                file.flush()
                    .map_err(io_error("writing", &self.in_progress))?;
            }
            Body::Parquet(part) => part.finish(&self.in_progress)?,
        }
        std::fs::rename(&self.in_progress, &self.path)
            .map_err(io_error("renaming", &self.in_progress))?;
        let meta =
            std::fs::metadata(&self.path).map_err(io_error("reading metadata of", &self.path))?;
        Ok(meta.len())
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
}

impl PartitionedFileSink {
    /// A sink for worker `worker`.
    pub fn new(config: FileSinkConfig, worker: usize) -> Self {
        Self {
            config,
            prefix: format!("part-w{worker:02}"),
            seq: 0,
            clock: 0,
            open: Vec::new(),
            last: usize::MAX,
            stats: FileStats::default(),
        }
    }

    /// The sink's encoding.
    pub fn format(&self) -> Format {
        self.config.format
    }

    /// Writes one result into its event hour's file.
    ///
    /// # Errors
    /// When a file cannot be created, written or completed.
    pub fn write(
        &mut self,
        row: &ResultRow<'_>,
        fragments: &ProfileFragments,
    ) -> Result<(), SinkError> {
        let hour = hour_of(row.creation_date);
        let i = match self.open.get(self.last) {
            Some(part) if part.hour == hour => self.last,
            _ => self.find_or_open(hour)?,
        };
        self.last = i;
        self.clock += 1;
        let format = self.config.format;
        let part = &mut self.open[i];
        part.last_use = self.clock;
        part.rows += 1;
        match &mut part.body {
            Body::Rows { file, buf, bytes } => {
                format.encode_row(buf, row, fragments);
                if buf.len() >= WRITE_BUFFER {
                    file.write_all(buf)
                        .map_err(io_error("writing", &part.in_progress))?;
                    *bytes += buf.len() as u64;
                    buf.clear();
                }
            }
            Body::Parquet(p) => p.push(row, &part.in_progress)?,
        }
        if part.size() >= self.config.max_file_bytes {
            self.complete(i)?;
        }
        Ok(())
    }

    /// Completes every open file.
    ///
    /// # Errors
    /// When a file cannot be completed.
    pub fn close(mut self) -> Result<FileStats, SinkError> {
        while !self.open.is_empty() {
            self.complete(self.open.len() - 1)?;
        }
        Ok(self.stats)
    }

    fn find_or_open(&mut self, hour: i64) -> Result<usize, SinkError> {
        if let Some(i) = self.open.iter().position(|p| p.hour == hour) {
            return Ok(i);
        }
        if self.open.len() >= self.config.max_open_files.max(1) {
            let lru = (0..self.open.len())
                .min_by_key(|&i| self.open[i].last_use)
                .expect("open is not empty");
            self.complete(lru)?;
        }
        let dir = self.config.dir.join(self.config.partitioning.folder(hour));
        std::fs::create_dir_all(&dir).map_err(io_error("creating folder", &dir))?;
        self.seq += 1;
        let name = format!(
            "{}-{:06}.{}",
            self.prefix,
            self.seq,
            self.config.format.extension()
        );
        let in_progress = dir.join(format!(".{name}.inprogress"));
        let file = File::create(&in_progress).map_err(io_error("creating", &in_progress))?;
        let body = match self.config.format {
            Format::Parquet => Body::Parquet(Box::new(ParquetPart::new(file, &in_progress)?)),
            Format::Ndjson | Format::Csv => Body::Rows {
                file,
                buf: Vec::with_capacity(WRITE_BUFFER + 4096),
                bytes: 0,
            },
        };
        self.open.push(OpenPart {
            hour,
            last_use: self.clock,
            rows: 0,
            in_progress,
            path: dir.join(name),
            body,
        });
        Ok(self.open.len() - 1)
    }

    fn complete(&mut self, i: usize) -> Result<(), SinkError> {
        let part = self.open.swap_remove(i);
        self.last = usize::MAX;
        let rows = part.rows;
        self.stats.bytes += part.complete()?;
        self.stats.files += 1;
        self.stats.rows += rows;
        Ok(())
    }
}

/// Paths of the result files under `dir`: every file whose name and folders do not
/// start with `_` or `.`, sorted.
///
/// # Errors
/// When a folder cannot be listed.
pub fn result_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(['_', '.']) {
                continue;
            }
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
            } else {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
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
            churn_score: 0.75,
            user_id: "u",
            nb_jobs: 1,
            creation_date,
        }
    }

    const HOUR: i64 = 3_600_000;
    const T0: i64 = 1_767_225_600_000;

    #[test]
    fn rows_land_in_their_hour_and_files_appear_only_when_complete() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = FileSinkConfig::new(dir.path().into());
        config.max_open_files = 2;
        let p = profile();
        let fragments = config.format.profile_fragments("c", &p);
        let mut sink = PartitionedFileSink::new(config, 3);
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
        // Each new hour completed the least recently written open file; hour 0 stayed
        // open while late rows kept it recent, until hours 4 and 5 pushed it out, so its
        // last late row went to a second file.
        let visible = result_files(dir.path()).unwrap();
        assert_eq!(visible.len(), 5, "{visible:?}");
        let stats = sink.close().unwrap();
        assert_eq!((stats.files, stats.rows), (7, 10));
        let names: Vec<String> = result_files(dir.path())
            .unwrap()
            .iter()
            .map(|p| {
                p.strip_prefix(dir.path())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(
            names,
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
        let first = std::fs::read_to_string(dir.path().join(&names[0])).unwrap();
        assert_eq!(first.lines().count(), 4);
    }

    #[test]
    fn files_roll_at_the_size_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = FileSinkConfig::new(dir.path().into());
        config.max_file_bytes = 1;
        let p = profile();
        let fragments = config.format.profile_fragments("c", &p);
        let mut sink = PartitionedFileSink::new(config, 0);
        for _ in 0..3 {
            sink.write(&row(&p, T0), &fragments).unwrap();
        }
        assert_eq!(sink.close().unwrap().files, 3);
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
}
