//! Where a run starts: the state, files, dead letters and waiting work of each worker,
//! and each source's position, from the checkpoint it resumes (or from nothing).

use std::collections::{BTreeMap, HashMap, HashSet};

use tenantflow_kinesis::consumer::StartPosition;
use tenantflow_kinesis::url::KinesisInput;
use tenantflow_sinks::dead_letter::DeadLetterSink;
use tenantflow_sinks::file::PartitionedFileSink;
use tenantflow_sinks::upload::Location;

use crate::checkpoint::manifest::{FilesPosition, Manifest, StreamPosition};
use crate::checkpoint::recovery::RecoveryError;
use crate::error::RunError;
use crate::in_flight::InFlight;
use crate::job::JobConfig;
use crate::worker::new_table;

/// Where a run starts: from a checkpoint's manifest, or from the beginning.
pub(crate) struct Resume<'m> {
    manifest: Option<&'m Manifest>,
    pub(crate) next_checkpoint: u64,
    pub(crate) results: u64,
    pub(crate) files: FilesPosition,
    pub(crate) streams: BTreeMap<String, StreamPosition>,
}

/// What a worker resumes with.
pub(crate) struct WorkerParts {
    pub(crate) table:
        tenantflow_operators::tenant::TenantTable<tenantflow_sinks::encoding::ProfileFragments>,
    pub(crate) sink: PartitionedFileSink,
    pub(crate) dead_letters: DeadLetterSink,
    pub(crate) in_flight: Option<InFlight>,
}

impl<'m> Resume<'m> {
    pub(crate) fn of(manifest: Option<&'m Manifest>) -> Self {
        match manifest {
            Some(m) => Self {
                manifest,
                next_checkpoint: m.checkpoint + 1,
                results: m.results,
                files: m.files,
                streams: m.streams.clone(),
            },
            None => Self {
                manifest: None,
                next_checkpoint: 1,
                results: 0,
                files: FilesPosition {
                    input: 0,
                    offset: 0,
                    line: 1,
                    fingerprint: None,
                },
                streams: BTreeMap::new(),
            },
        }
    }

    /// Worker `w`'s state, files and dead letters.
    pub(crate) fn worker(
        &self,
        config: &JobConfig,
        w: usize,
        rejected: &Location,
    ) -> Result<WorkerParts, RunError> {
        let mut table = new_table(config.retention);
        let part = self.manifest.and_then(|m| m.workers.get(w));
        let name = format!("worker-{w:02}");
        let Some(part) = part else {
            return Ok(WorkerParts {
                table,
                sink: PartitionedFileSink::new(config.output.clone(), w),
                dead_letters: DeadLetterSink::new(
                    rejected.clone(),
                    config.output.staging.clone(),
                    &name,
                ),
                in_flight: None,
            });
        };
        let read = |path: &String| {
            config
                .checkpoints
                .location
                .store
                .get(path)
                .map_err(|e| RunError::Recovery(e.into()))?
                .ok_or_else(|| RunError::Recovery(RecoveryError::MissingState(path.clone())))
        };
        if let Some(path) = &part.state {
            let bytes = read(path)?;
            let format = config.output.format;
            table
                .restore(&bytes, &config.model, |id, profile| {
                    format.profile_fragments(id, profile)
                })
                .map_err(|source| {
                    RunError::Recovery(RecoveryError::State {
                        path: path.clone(),
                        source,
                    })
                })?;
        }
        let sink = PartitionedFileSink::restore(config.output.clone(), w, &part.files)
            .map_err(|e| RunError::Recovery(RecoveryError::Sink(e)))?;
        let dead_letters = DeadLetterSink::restore(
            rejected.clone(),
            config.output.staging.clone(),
            &name,
            &part.dead_letters,
        )
        .map_err(|e| RunError::Recovery(RecoveryError::Sink(e)))?;
        let in_flight = match &part.in_flight {
            Some(path) => Some(InFlight::decode(&read(path)?).map_err(|source| {
                RunError::Recovery(RecoveryError::InFlight {
                    path: path.clone(),
                    source,
                })
            })?),
            None => None,
        };
        Ok(WorkerParts {
            table,
            sink,
            dead_letters,
            in_flight,
        })
    }

    /// A source stage's dead letters.
    pub(crate) fn dead_letters(
        &self,
        rejected: &Location,
        staging: &tenantflow_sinks::upload::Staging,
        stage: &str,
    ) -> Result<DeadLetterSink, RunError> {
        let state = self
            .manifest
            .and_then(|m| m.sources.get(stage))
            .cloned()
            .unwrap_or_default();
        DeadLetterSink::restore(rejected.clone(), staging.clone(), stage, &state)
            .map_err(|e| RunError::Recovery(RecoveryError::Sink(e)))
    }

    /// Where a stream starts: after its recorded positions, or (never read in a
    /// checkpointed run) where its URL says.
    pub(crate) fn stream_start(&self, input: &KinesisInput) -> (StartPosition, HashSet<String>) {
        match self.streams.get(&input.stream) {
            // Nothing read yet: start as the URL says (`latest` stays latest).
            Some(position) if !position.positions.is_empty() || !position.finished.is_empty() => (
                StartPosition::After(
                    position
                        .positions
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect::<HashMap<_, _>>(),
                ),
                position.finished.iter().cloned().collect(),
            ),
            _ => (input.start.clone(), HashSet::new()),
        }
    }
}
