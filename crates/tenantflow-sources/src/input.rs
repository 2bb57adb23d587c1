//! The inputs of a run: what the user named, resolved at start into an ordered list of
//! byte streams, each opened only when its turn comes.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use tenantflow_core::dead_letter::Redriven;
use thiserror::Error;

use crate::generator::{Generator, GeneratorConfig};

/// What the user named as input.
#[derive(Debug, Clone, PartialEq)]
pub enum InputSpec {
    /// A file or a folder of files.
    Path(PathBuf),
    /// Standard input (`-`).
    Stdin,
    /// The built-in generator.
    Generator(GeneratorConfig),
}

impl InputSpec {
    /// `-` is stdin, anything else a path.
    pub fn from_arg(arg: &str) -> Self {
        if arg == "-" {
            InputSpec::Stdin
        } else {
            InputSpec::Path(PathBuf::from(arg))
        }
    }
}

/// How the lines of an input are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    /// By file name: a file in a `_rejected` folder holds dead letters, `.csv` (or
    /// `.csv.gz`) is CSV, anything else NDJSON.
    #[default]
    Auto,
    /// One JSON object per line.
    Ndjson,
    /// Headerless CSV lines (see `Decoder::decode_csv`).
    Csv,
    /// Dead letters, as a run writes them in `OUTPUT/_rejected/`: each line's `record`
    /// (or `recordBase64`) is read again, as JSON when it starts with `{`, else as CSV.
    #[serde(rename = "dead-letters")]
    DeadLetters,
}

impl InputFormat {
    /// How the record of a dead letter being re-driven is read: as a stream record is,
    /// as JSON when it starts with `{`, else as CSV (a dead letter names no format).
    pub fn of_redriven(letter: &Redriven<'_>) -> InputFormat {
        if letter.is_json() {
            InputFormat::Ndjson
        } else {
            InputFormat::Csv
        }
    }
}

/// Why an input cannot be read.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The path does not exist or cannot be listed.
    #[error("input {path}: cannot open")]
    Open {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A folder holds no input file.
    #[error("input folder {0} holds no input file")]
    EmptyFolder(PathBuf),
    /// An input cannot be resumed where a checkpoint left it.
    #[error("cannot resume input {input} at byte {offset}: {reason}")]
    Resume {
        /// The input.
        input: String,
        /// Where the checkpoint left it.
        offset: u64,
        /// Why.
        reason: String,
    },
}

#[derive(Debug, Clone)]
enum Origin {
    File { path: PathBuf, gzip: bool },
    Stdin,
    Generator(GeneratorConfig),
}

/// One input stream, resolved but not yet opened.
#[derive(Debug, Clone)]
pub struct Input {
    name: String,
    format: InputFormat,
    origin: Origin,
}

impl Input {
    /// Resolves `specs` into inputs in reading order: folders expand to their files in
    /// name order (hidden files and names starting with `_` skipped).
    ///
    /// # Errors
    /// A path that does not exist or cannot be listed, or a folder with no input file.
    pub fn resolve(specs: &[InputSpec], format: InputFormat) -> Result<Vec<Input>, SourceError> {
        let mut inputs = Vec::new();
        for spec in specs {
            match spec {
                InputSpec::Stdin => inputs.push(Input {
                    name: "-".into(),
                    format: if format == InputFormat::Auto {
                        InputFormat::Ndjson
                    } else {
                        format
                    },
                    origin: Origin::Stdin,
                }),
                InputSpec::Generator(config) => inputs.push(Input {
                    name: "generator".into(),
                    format: InputFormat::Ndjson,
                    origin: Origin::Generator(config.clone()),
                }),
                InputSpec::Path(path) => {
                    let meta = std::fs::metadata(path).map_err(|source| SourceError::Open {
                        path: path.clone(),
                        source,
                    })?;
                    if meta.is_dir() {
                        let files = list_folder(path)?;
                        if files.is_empty() {
                            return Err(SourceError::EmptyFolder(path.clone()));
                        }
                        inputs.extend(files.into_iter().map(|f| Input::file(f, format)));
                    } else {
                        inputs.push(Input::file(path.clone(), format));
                    }
                }
            }
        }
        Ok(inputs)
    }

    fn file(path: PathBuf, format: InputFormat) -> Input {
        let name = path.to_string_lossy().into_owned();
        let gzip = name.ends_with(".gz");
        let stem = name.strip_suffix(".gz").unwrap_or(&name);
        let in_rejected = path.parent().is_some_and(|folder| {
            folder
                .components()
                .any(|c| c.as_os_str() == std::ffi::OsStr::new("_rejected"))
        });
        let format = match format {
            InputFormat::Auto if in_rejected => InputFormat::DeadLetters,
            InputFormat::Auto if stem.ends_with(".csv") => InputFormat::Csv,
            InputFormat::Auto => InputFormat::Ndjson,
            chosen => chosen,
        };
        Input {
            name,
            format,
            origin: Origin::File { path, gzip },
        }
    }

    /// The name of the input in dead letters and logs: its path, `-` or `generator`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the input is, for a checkpoint to tell whether a later run reads the same:
    /// the name, and the generator's settings.
    pub fn identity(&self) -> String {
        match &self.origin {
            Origin::Generator(c) => format!(
                "generator(events={},companies={},seed={})",
                c.events, c.companies, c.seed
            ),
            _ => self.name.clone(),
        }
    }

    /// Its line format (never [`InputFormat::Auto`]).
    pub fn format(&self) -> InputFormat {
        self.format
    }

    /// Opens the stream at byte `offset` (of the decompressed stream for gzip files):
    /// plain files seek, gzip files and the generator read up to it.
    ///
    /// # Errors
    /// When the file cannot be opened, is shorter than `offset`, or is stdin (which
    /// cannot be read twice) with an offset.
    pub fn open_at(&self, offset: u64) -> Result<Box<dyn Read + Send>, SourceError> {
        if offset == 0 {
            return self.open();
        }
        let resume_error = |reason: String| SourceError::Resume {
            input: self.name.clone(),
            offset,
            reason,
        };
        match &self.origin {
            Origin::Stdin => Err(resume_error("stdin cannot be read again".into())),
            Origin::File { path, gzip: false } => {
                let mut file = File::open(path).map_err(|source| SourceError::Open {
                    path: path.clone(),
                    source,
                })?;
                let len = file.metadata().map(|m| m.len()).unwrap_or(0);
                if len < offset {
                    return Err(resume_error(format!(
                        "the file has only {len} bytes now; was it replaced?"
                    )));
                }
                io::Seek::seek(&mut file, io::SeekFrom::Start(offset))
                    .map_err(|e| resume_error(e.to_string()))?;
                Ok(Box::new(file))
            }
            Origin::File { gzip: true, .. } | Origin::Generator(_) => {
                let mut stream = self.open()?;
                let skipped = io::copy(&mut (&mut stream).take(offset), &mut io::sink())
                    .map_err(|e| resume_error(e.to_string()))?;
                if skipped < offset {
                    return Err(resume_error(format!(
                        "the input has only {skipped} bytes now; was it replaced?"
                    )));
                }
                Ok(stream)
            }
        }
    }

    /// What a checkpoint records of the input at `offset`, to tell at resume whether it
    /// is still the same input: the file's size and modified time and, for a plain
    /// file, a hash of its first bytes and of the bytes just before `offset`. `None` for
    /// stdin and the generator (whose identity is its settings).
    ///
    /// # Errors
    /// When the file cannot be read.
    pub fn fingerprint(&self, offset: u64) -> Result<Option<InputFingerprint>, SourceError> {
        let Origin::File { path, gzip } = &self.origin else {
            return Ok(None);
        };
        let open_error = |source| SourceError::Open {
            path: path.clone(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(open_error)?;
        let modified_ms = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let bytes_hash = if *gzip {
            None
        } else {
            Some(hash_before(path, offset).map_err(open_error)?)
        };
        Ok(Some(InputFingerprint {
            size: meta.len(),
            modified_ms,
            bytes_hash,
        }))
    }

    /// Checks that the input is the one `recorded` describes before resuming it at
    /// `offset`: a plain file's bytes before the offset are unchanged (it may have
    /// grown), a gzip file is unchanged.
    ///
    /// # Errors
    /// [`SourceError::Resume`] saying what changed.
    pub fn check_fingerprint(
        &self,
        offset: u64,
        recorded: &InputFingerprint,
    ) -> Result<(), SourceError> {
        let Some(now) = self.fingerprint(offset)? else {
            return Ok(());
        };
        let same = match (recorded.bytes_hash, now.bytes_hash) {
            (Some(was), Some(is)) => was == is && now.size >= offset,
            _ => recorded.size == now.size && recorded.modified_ms == now.modified_ms,
        };
        if same {
            return Ok(());
        }
        Err(SourceError::Resume {
            input: self.name.clone(),
            offset,
            reason: format!(
                "the input changed since the checkpoint (it had {} bytes, modified at {} ms; \
                 now {} bytes, modified at {} ms, and its bytes before the offset differ); \
                 restore the original file, or start over with --from-scratch --overwrite",
                recorded.size, recorded.modified_ms, now.size, now.modified_ms
            ),
        })
    }

    /// True for stdin, which cannot be read again after a crash.
    pub fn is_stdin(&self) -> bool {
        matches!(self.origin, Origin::Stdin)
    }

    /// Opens the stream.
    ///
    /// # Errors
    /// When the file cannot be opened.
    pub fn open(&self) -> Result<Box<dyn Read + Send>, SourceError> {
        match &self.origin {
            Origin::Stdin => Ok(Box::new(io::stdin())),
            Origin::Generator(config) => Ok(Box::new(Generator::new(config.clone()))),
            Origin::File { path, gzip } => {
                let file = File::open(path).map_err(|source| SourceError::Open {
                    path: path.clone(),
                    source,
                })?;
                if *gzip {
                    let buffered = BufReader::with_capacity(1 << 16, file);
                    Ok(Box::new(flate2::read::MultiGzDecoder::new(buffered)))
                } else {
                    Ok(Box::new(file))
                }
            }
        }
    }
}

/// What a checkpoint records of a file input (see [`Input::fingerprint`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InputFingerprint {
    /// The file's size in bytes.
    pub size: u64,
    /// Its modified time, epoch milliseconds.
    pub modified_ms: i64,
    /// FNV-1a of its first 4 KiB and of the 64 KiB before the offset (plain files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_hash: Option<u64>,
}

/// Bytes hashed at the start of a file, and before the offset.
const HEAD_BYTES: u64 = 4 << 10;
const WINDOW_BYTES: u64 = 64 << 10;

/// FNV-1a of the file's first bytes and of the window before `offset` (both cut at
/// `offset`, and at the file's end when it is shorter).
fn hash_before(path: &Path, offset: u64) -> io::Result<u64> {
    use std::io::Seek;
    let mut file = File::open(path)?;
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    let mut feed = |file: &mut File, from: u64, len: u64| -> io::Result<()> {
        file.seek(io::SeekFrom::Start(from))?;
        let mut buf = Vec::with_capacity(len as usize);
        file.take(len).read_to_end(&mut buf)?;
        for &b in &buf {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash = (hash ^ buf.len() as u64).wrapping_mul(0x0000_0100_0000_01b3);
        Ok(())
    };
    feed(&mut file, 0, HEAD_BYTES.min(offset))?;
    let from = offset.saturating_sub(WINDOW_BYTES);
    feed(&mut file, from, offset - from)?;
    Ok(hash)
}

fn list_folder(path: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let open_error = |source| SourceError::Open {
        path: path.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(open_error)? {
        let entry = entry.map_err(open_error)?;
        let name = entry.file_name();
        let hidden = name.to_string_lossy().starts_with(['.', '_']);
        if !hidden && entry.file_type().map_err(open_error)?.is_file() {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn folders_expand_in_name_order_and_formats_follow_names() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.ndjson", "a.csv", "c.json.gz", ".hidden", "_rejected"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let inputs =
            Input::resolve(&[InputSpec::Path(dir.path().into())], InputFormat::Auto).unwrap();
        let names: Vec<_> = inputs
            .iter()
            .map(|i| {
                (
                    Path::new(i.name()).file_name().unwrap().to_owned(),
                    i.format(),
                )
            })
            .collect();
        assert_eq!(
            names,
            vec![
                ("a.csv".into(), InputFormat::Csv),
                ("b.ndjson".into(), InputFormat::Ndjson),
                ("c.json.gz".into(), InputFormat::Ndjson),
            ]
        );
    }

    #[test]
    fn files_in_a_rejected_folder_are_dead_letters_unless_a_format_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let rejected = dir.path().join("out/_rejected");
        std::fs::create_dir_all(&rejected).unwrap();
        std::fs::write(rejected.join("worker-00-000001.ndjson"), b"").unwrap();
        let spec = [InputSpec::Path(rejected.clone())];
        let formats = |format| -> Vec<InputFormat> {
            let inputs = Input::resolve(&spec, format).unwrap();
            inputs.iter().map(Input::format).collect()
        };
        assert_eq!(formats(InputFormat::Auto), [InputFormat::DeadLetters]);
        assert_eq!(formats(InputFormat::Ndjson), [InputFormat::Ndjson]);
        let file = [InputSpec::Path(rejected.join("worker-00-000001.ndjson"))];
        let inputs = Input::resolve(&file, InputFormat::Auto).unwrap();
        assert_eq!(inputs[0].format(), InputFormat::DeadLetters);
    }

    #[test]
    fn gzip_files_are_decompressed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.ndjson.gz");
        let mut gz =
            flate2::write::GzEncoder::new(File::create(&path).unwrap(), Default::default());
        gz.write_all(b"hello\n").unwrap();
        gz.finish().unwrap();
        let inputs = Input::resolve(&[InputSpec::Path(path)], InputFormat::Auto).unwrap();
        let mut text = String::new();
        inputs[0].open().unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "hello\n");
    }

    #[test]
    fn missing_paths_fail_at_resolve() {
        let err =
            Input::resolve(&[InputSpec::from_arg("/no/such/file")], InputFormat::Auto).unwrap_err();
        assert!(err.to_string().contains("/no/such/file"), "{err}");
    }
}
