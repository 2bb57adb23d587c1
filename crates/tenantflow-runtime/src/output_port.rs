//! Where a worker's results and dead letters go: its output port. The job's port is
//! the result files, the output stream (if any) and the dead-letter file; a test puts
//! a port of its own in their place and looks at what the worker wrote.

use tenantflow_core::clock::now_ms;
use tenantflow_core::{DeadLetter, ResultRow};
use tenantflow_sinks::dead_letter::{DeadLetterSink, DeadLetterState};
use tenantflow_sinks::encoding::{Format, ProfileFragments};
use tenantflow_sinks::file::{FileStats, PartitionedFileSink, SinkState};
use tenantflow_sinks::upload::{Location, PendingFile};

use crate::error::RunError;
use crate::stream_sink::StreamSink;

/// What the port hands to a checkpoint.
#[derive(Debug, Default)]
pub(crate) struct PortCheckpoint {
    pub(crate) files: SinkState,
    pub(crate) dead_letters: DeadLetterState,
    /// Files finished since the last checkpoint, committed once it is durable.
    pub(crate) pending: Vec<PendingFile>,
}

/// A worker's output port.
pub(crate) trait OutputPort {
    /// The encoding of results (a tenant's unchanging fields are encoded once).
    fn format(&self) -> Format;

    /// Results carry `modelVersion`.
    fn model_version_field(&self) -> bool;

    /// Writes a result.
    fn result(&mut self, row: &ResultRow<'_>, fragments: &ProfileFragments)
    -> Result<(), RunError>;

    /// Writes a dead letter.
    fn dead_letter(&mut self, letter: &DeadLetter<'_>) -> Result<(), RunError>;

    /// Result files open now.
    fn open_files(&self) -> usize {
        0
    }

    /// After a batch: sends what is buffered for the output stream.
    fn flush(&mut self) -> Result<(), RunError>;

    /// At checkpoint `tails`' barrier: everything written so far made durable (staged
    /// tails in `tails`), the files finished since the last one handed over.
    fn checkpoint(&mut self, tails: &Location) -> Result<PortCheckpoint, RunError>;

    /// At the end: every file finished; what was written, and the final part.
    fn close(&mut self) -> Result<(FileStats, PortCheckpoint), RunError>;
}

/// The job's port: result files, the output stream, the dead-letter file.
pub(crate) struct FileOutput {
    pub(crate) sink: PartitionedFileSink,
    pub(crate) dead_letters: DeadLetterSink,
    pub(crate) stream: Option<StreamSink>,
}

impl OutputPort for FileOutput {
    fn format(&self) -> Format {
        self.sink.format()
    }

    fn open_files(&self) -> usize {
        self.sink.open_files()
    }

    fn model_version_field(&self) -> bool {
        self.sink.model_version_field()
    }

    fn result(
        &mut self,
        row: &ResultRow<'_>,
        fragments: &ProfileFragments,
    ) -> Result<(), RunError> {
        self.sink.write(row, fragments)?;
        if let Some(stream) = &mut self.stream {
            // The stream gets JSON whatever the file format; reuse the tenant's
            // pre-encoded profile when the files are NDJSON too.
            let mut json = Vec::with_capacity(256);
            if self.sink.format() == Format::Ndjson {
                Format::Ndjson.encode_row(&mut json, row, fragments);
            } else {
                let fragments = Format::Ndjson.profile_fragments(row.company_id, row.profile);
                Format::Ndjson.encode_row(&mut json, row, &fragments);
            }
            json.pop(); // the newline: one JSON document per Kinesis record
            stream.push(row.company_id, json);
        }
        Ok(())
    }

    fn dead_letter(&mut self, letter: &DeadLetter<'_>) -> Result<(), RunError> {
        Ok(self.dead_letters.write(letter)?)
    }

    fn flush(&mut self) -> Result<(), RunError> {
        match &mut self.stream {
            Some(stream) => stream.flush(),
            None => Ok(()),
        }
    }

    fn checkpoint(&mut self, tails: &Location) -> Result<PortCheckpoint, RunError> {
        if let Some(stream) = &mut self.stream {
            stream.sync()?;
        }
        let now = now_ms();
        let (files, mut pending) = self.sink.checkpoint(tails, now)?;
        let (dead_letters, more) = self.dead_letters.checkpoint(tails, now)?;
        pending.extend(more);
        Ok(PortCheckpoint {
            files,
            dead_letters,
            pending,
        })
    }

    fn close(&mut self) -> Result<(FileStats, PortCheckpoint), RunError> {
        if let Some(mut stream) = self.stream.take() {
            stream.sync()?;
        }
        let (stats, mut pending) = self.sink.close()?;
        let (dead_letters, more) = self.dead_letters.close()?;
        pending.extend(more);
        Ok((
            stats,
            PortCheckpoint {
                files: SinkState {
                    seq: self.sink.seq(),
                    ..SinkState::default()
                },
                dead_letters,
                pending,
            },
        ))
    }
}
