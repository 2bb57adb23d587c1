//! A stage's dead letters as NDJSON files under `<output>/_rejected/`.
//!
//! A file is started with the first dead letter (a clean run leaves none) and written
//! as an upload like result files: it stays open across checkpoints, is finished at
//! the first checkpoint after it is [`DeadLetterSink::max_age`] old and at the end, and
//! becomes visible when the checkpoint that recorded it is committed. Files are named
//! `STAGE-000001.ndjson`, numbered per stage.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tenantflow_core::DeadLetter;

use crate::SinkError;
use crate::upload::{FileUpload, Location, PendingFile, Staging, UploadState};
use tenantflow_core::clock::now_ms;

/// A stage's dead-letter file as a checkpoint records it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterState {
    /// The last file sequence number used.
    pub seq: u64,
    /// The open file, if any.
    pub open: Option<UploadState>,
}

/// One stage's dead-letter files.
pub struct DeadLetterSink {
    folder: Location,
    staging: Staging,
    name: String,
    seq: u64,
    file: Option<FileUpload>,
    count: u64,
    pending: Vec<PendingFile>,
    /// A file is finished at the first checkpoint after it is this old.
    pub max_age: Duration,
}

impl DeadLetterSink {
    /// Dead letters of stage `name` (e.g. `reader`, `worker-01`) in `folder`.
    pub fn new(folder: Location, staging: Staging, name: &str) -> Self {
        Self {
            folder,
            staging,
            name: name.to_owned(),
            seq: 0,
            file: None,
            count: 0,
            pending: Vec::new(),
            max_age: Duration::from_secs(15 * 60),
        }
    }

    /// Goes on from a checkpoint's state.
    ///
    /// # Errors
    /// When the open file cannot be restored.
    pub fn restore(
        folder: Location,
        staging: Staging,
        name: &str,
        state: &DeadLetterState,
    ) -> Result<Self, SinkError> {
        let mut sink = Self::new(folder, staging, name);
        sink.seq = state.seq;
        if let Some(open) = &state.open {
            sink.file = Some(FileUpload::restore(
                &sink.folder.store,
                &sink.staging,
                open,
            )?);
        }
        Ok(sink)
    }

    /// Records a dead letter.
    ///
    /// # Errors
    /// When the file cannot be started or written.
    pub fn write(&mut self, letter: &DeadLetter<'_>) -> Result<(), SinkError> {
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                self.seq += 1;
                let path = self
                    .folder
                    .path(&format!("{}-{:06}.ndjson", self.name, self.seq));
                self.file.insert(FileUpload::begin(
                    &self.folder.store,
                    &self.staging,
                    path,
                    now_ms(),
                )?)
            }
        };
        letter.write_json_line(file.buffer());
        file.wrote(1)?;
        self.count += 1;
        Ok(())
    }

    /// Dead letters written by this process.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// At a checkpoint: finishes the file if it is old enough, else stages its tail in
    /// `tails`; hands over the files finished since the last checkpoint.
    ///
    /// # Errors
    /// When the file cannot be finished or its tail staged.
    pub fn checkpoint(
        &mut self,
        tails: &Location,
        now_ms: i64,
    ) -> Result<(DeadLetterState, Vec<PendingFile>), SinkError> {
        let max_age = i64::try_from(self.max_age.as_millis()).unwrap_or(i64::MAX);
        if let Some(file) = &self.file
            && now_ms.saturating_sub(file.opened_ms()) >= max_age
        {
            self.finish()?;
        }
        let open = match &mut self.file {
            Some(file) => Some(file.persist(&tails.path(file.path()))?),
            None => None,
        };
        Ok((
            DeadLetterState {
                seq: self.seq,
                open,
            },
            std::mem::take(&mut self.pending),
        ))
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        if let Some(file) = self.file.take() {
            self.pending.push(file.finish()?);
        }
        Ok(())
    }

    /// Finishes the file; returns the final state and the files waiting for the final
    /// checkpoint.
    ///
    /// # Errors
    /// When the file cannot be finished.
    pub fn close(&mut self) -> Result<(DeadLetterState, Vec<PendingFile>), SinkError> {
        self.finish()?;
        let state = DeadLetterState {
            seq: self.seq,
            open: None,
        };
        Ok((state, std::mem::take(&mut self.pending)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::{MemoryStore, Store};
    use crate::upload::commit;
    use tenantflow_core::DeadLetterReason;

    #[test]
    fn no_file_without_dead_letters_and_one_line_each_otherwise() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let root = Location::root(Arc::clone(&store));
        let staging = Staging {
            location: root.child("_checkpoints"),
        };
        let rejected = root.child("_rejected");
        let mut sink = DeadLetterSink::new(rejected.clone(), staging.clone(), "reader");
        assert!(sink.close().unwrap().1.is_empty());
        let mut sink = DeadLetterSink::new(rejected, staging.clone(), "reader");
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
                record_bytes: None,
                record_truncated_from: None,
            })
            .unwrap();
        }
        assert_eq!(sink.count(), 2);
        let (_, pending) = sink.close().unwrap();
        for file in &pending {
            commit(&store, &staging, file).unwrap();
        }
        let text = store
            .get("_rejected/reader-000001.ndjson")
            .unwrap()
            .unwrap();
        assert_eq!(text.split(|&b| b == b'\n').count() - 1, 2);
    }
}
