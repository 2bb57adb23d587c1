//! Where a run starts: the state, files, dead letters and waiting work of each worker,
//! and each source's position, from the checkpoint it resumes (or from nothing).

use std::collections::{BTreeMap, HashMap, HashSet};

use tenantflow_kinesis::consumer::StartPosition;
use tenantflow_kinesis::hash_key::HashRange;
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
    /// A child shard's first start: its parents' final checkpoints, and the child's
    /// hash-key range (it takes their tenants in it).
    parents: &'m [Manifest],
    range: Option<HashRange>,
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
                parents: &[],
                range: None,
                next_checkpoint: m.checkpoint + 1,
                results: m.results,
                files: m.files,
                streams: m.streams.clone(),
            },
            None => Self {
                manifest: None,
                parents: &[],
                range: None,
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

    /// A child shard's first start: the tenants of `parents` (their final checkpoints)
    /// whose hash key `range` holds, and, of the streams other than `leased` (read in
    /// full), the earliest position any parent reached, so that no profile update is
    /// missed (one applied twice changes nothing).
    pub(crate) fn from_parents(parents: &'m [Manifest], range: HashRange, leased: &str) -> Self {
        let mut resume = Self::of(None);
        resume.parents = parents;
        resume.range = Some(range);
        for parent in parents {
            for (stream, position) in parent.streams.iter().filter(|(s, _)| *s != leased) {
                let merged = resume
                    .streams
                    .entry(stream.clone())
                    .or_insert_with(|| position.clone());
                for (shard, sequence) in &position.positions {
                    let earliest = merged
                        .positions
                        .entry(shard.clone())
                        .or_insert_with(|| sequence.clone());
                    if sequence_order(sequence, earliest).is_lt() {
                        earliest.clone_from(sequence);
                    }
                }
                // A shard is finished only if every parent read it to its end.
                merged
                    .finished
                    .retain(|shard| position.finished.contains(shard));
            }
        }
        resume
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
            for parent in self.parents {
                let Some(path) = parent.workers.get(w).and_then(|p| p.state.as_ref()) else {
                    continue;
                };
                let bytes = config
                    .checkpoints
                    .location
                    .store
                    .get(path)
                    .map_err(|e| RunError::Recovery(e.into()))?
                    .ok_or_else(|| RunError::Recovery(RecoveryError::MissingState(path.clone())))?;
                let format = config.output.format;
                let range = self.range.unwrap_or(HashRange::ALL);
                table
                    .restore_some(
                        &bytes,
                        &config.model,
                        |id| range.holds(id),
                        |id, profile| format.profile_fragments(id, profile),
                    )
                    .map_err(|source| {
                        RunError::Recovery(RecoveryError::State {
                            path: path.clone(),
                            source,
                        })
                    })?;
            }
            return Ok(WorkerParts {
                table,
                sink: PartitionedFileSink::new(config.output.clone(), w),
                dead_letters: finishing(
                    DeadLetterSink::new(rejected.clone(), config.output.staging.clone(), &name),
                    config.output.finish_at_checkpoint,
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
        let dead_letters = finishing(dead_letters, config.output.finish_at_checkpoint);
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
        config: &JobConfig,
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
            .map(|sink| finishing(sink, config.output.finish_at_checkpoint))
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

/// A dead-letter sink whose file is finished at every checkpoint when `finish` (a shard
/// job's), else at its age.
fn finishing(mut sink: DeadLetterSink, finish: bool) -> DeadLetterSink {
    if finish {
        sink.max_age = std::time::Duration::ZERO;
    }
    sink
}

/// Kinesis sequence numbers (decimal strings of up to 128 bits) in their order.
fn sequence_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_order_as_numbers() {
        assert!(sequence_order("99", "100").is_lt());
        assert!(
            sequence_order(
                "49590338271490256608559692538361571095921575989136588898",
                "49590338271490256608559692538361571095921575989136588899"
            )
            .is_lt()
        );
        assert!(sequence_order("7", "7").is_eq());
    }
}
