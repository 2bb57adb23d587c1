//! A stage's dead letters as one NDJSON file under `<output>/_rejected/`.
//!
//! The file is created with the first dead letter (a clean run leaves no file),
//! written under an in-progress name, and renamed when the stage closes it.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

use tenantflow_core::DeadLetter;

use crate::{SinkError, io_error};

const WRITE_BUFFER: usize = 64 * 1024;

/// One stage's dead-letter file.
pub struct DeadLetterSink {
    dir: PathBuf,
    name: String,
    file: Option<File>,
    buf: Vec<u8>,
    count: u64,
}

impl DeadLetterSink {
    /// Dead letters of stage `name` (e.g. `reader`, `worker-01`) under `dir`.
    pub fn new(dir: PathBuf, name: &str) -> Self {
        Self {
            dir,
            name: format!("{name}.ndjson"),
            file: None,
            buf: Vec::new(),
            count: 0,
        }
    }

    fn in_progress(&self) -> PathBuf {
        self.dir.join(format!(".{}.inprogress", self.name))
    }

    /// Records a dead letter.
    ///
    /// # Errors
    /// When the file cannot be created or written.
    pub fn write(&mut self, letter: &DeadLetter<'_>) -> Result<(), SinkError> {
        letter.write_json_line(&mut self.buf);
        self.count += 1;
        if self.buf.len() >= WRITE_BUFFER {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        let path = self.in_progress();
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                std::fs::create_dir_all(&self.dir)
                    .map_err(io_error("creating folder", &self.dir))?;
                self.file
                    .insert(File::create(&path).map_err(io_error("creating", &path))?)
            }
        };
        file.write_all(&self.buf)
            .map_err(io_error("writing", &path))?;
        self.buf.clear();
        Ok(())
    }

    /// Completes the file; returns the number of dead letters written.
    ///
    /// # Errors
    /// When the file cannot be written or renamed.
    pub fn close(mut self) -> Result<u64, SinkError> {
        if self.count == 0 {
            return Ok(0);
        }
        self.flush()?;
        let from = self.in_progress();
        let to = self.dir.join(&self.name);
        std::fs::rename(&from, &to).map_err(io_error("renaming", &from))?;
        Ok(self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenantflow_core::DeadLetterReason;

    #[test]
    fn no_file_without_dead_letters_and_one_line_each_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let rejected = dir.path().join("_rejected");
        assert_eq!(
            DeadLetterSink::new(rejected.clone(), "reader")
                .close()
                .unwrap(),
            0
        );
        assert!(!rejected.exists());
        let mut sink = DeadLetterSink::new(rejected.clone(), "reader");
        for line in 1..=2 {
            sink.write(&DeadLetter {
                reason: DeadLetterReason::Malformed,
                error: "bad",
                source: "in",
                line: Some(line),
                shard: None,
                sequence: None,
                record: "x",
                record_lossy: false,
                record_truncated_from: None,
            })
            .unwrap();
        }
        assert_eq!(sink.close().unwrap(), 2);
        let text = std::fs::read_to_string(rejected.join("reader.ndjson")).unwrap();
        assert_eq!(text.lines().count(), 2);
    }
}
