//! Why a run failed, and which of its stages' errors explains it.

use thiserror::Error;

use tenantflow_kinesis::KinesisError;
use tenantflow_sinks::SinkError;
use tenantflow_sources::SourceError;

use crate::checkpoint::coordinator::CheckpointStats;
use crate::checkpoint::manifest::ManifestError;
use crate::checkpoint::recovery::RecoveryError;

/// Why a run failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RunError {
    /// An input cannot be opened.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// An input failed while being read.
    #[error("reading input {input}")]
    Read {
        /// The input.
        input: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A sink failed.
    #[error("writing output")]
    Sink(#[from] SinkError),
    /// A worker stopped before the reader was done (its own error says why).
    #[error("worker {0} stopped early")]
    WorkerStopped(usize),
    /// A stream cannot be read.
    #[error("reading a Kinesis stream")]
    Kinesis(#[source] KinesisError),
    /// Results cannot be written to the output stream.
    #[error("writing results to the output stream")]
    OutputStream(#[source] KinesisError),
    /// The async runtime for streams cannot start.
    #[error("starting the runtime for streams")]
    Runtime(#[source] std::io::Error),
    /// The writer to the output stream stopped (its own error says why).
    #[error("the output stream writer stopped")]
    OutputStreamStopped,
    /// A stage panicked: a bug.
    #[error("the {0} thread panicked")]
    Panicked(String),
    /// A checkpoint cannot be written.
    #[error("writing a checkpoint")]
    Checkpoint(#[source] ManifestError),
    /// The job cannot resume from its checkpoint.
    #[error("resuming from the checkpoint")]
    Recovery(#[from] RecoveryError),
    /// The TenantManager's or the scorer's URL is unusable.
    #[error(transparent)]
    Url(#[from] tenantflow_remote::lookup::UrlError),
    /// Another job took over the output's lock: this one stopped before its next
    /// checkpoint.
    #[error(
        "another job took over the output's lock (this job could not renew it); stopped before writing another checkpoint"
    )]
    LockLost,
    /// The job's shard lease was taken by another worker: it stopped without committing
    /// its last checkpoint (the new owner resumes from the one before).
    #[error("the shard's lease is no longer this worker's: {0}; stopped without committing")]
    LeaseLost(String),
    /// Leases: the lease table, the stream's shards, or a shard job could not be used.
    #[error("leases: {0}")]
    Cluster(String),
    /// Another stage failed, and this one stopped for it (that stage's error says why).
    #[error("stopped because another stage failed")]
    Aborted,
}

/// How each stage of a run ended.
#[derive(Debug)]
pub(crate) struct StageEnds {
    /// The first error of the readers, stream consumers and checkpoint coordinator.
    pub(crate) first: Option<RunError>,
    /// The first error of the workers.
    pub(crate) worker: Option<RunError>,
    /// The output stream writer's error.
    pub(crate) output_stream: Option<RunError>,
    /// The coordinator's figures, when it completed.
    pub(crate) checkpoints: Option<CheckpointStats>,
}

/// The run's result from how its stages ended: the error that explains the failure
/// best, else the checkpoint figures.
///
/// A stage that stopped because another failed says only that (`WorkerStopped`,
/// `Aborted`, `OutputStreamStopped`): the error of the stage that failed first-hand wins
/// over it. The writer's own error explains a worker's "writer stopped"; a worker's own
/// error explains a reader's "worker stopped".
pub(crate) fn outcome(ends: StageEnds) -> Result<CheckpointStats, RunError> {
    let mut worker = ends.worker;
    if let Some(e) = ends.output_stream
        && matches!(worker, None | Some(RunError::OutputStreamStopped))
    {
        worker = Some(e);
    }
    match (ends.first, worker, ends.checkpoints) {
        (Some(RunError::WorkerStopped(_) | RunError::Aborted) | None, Some(e), _) => Err(e),
        (Some(e), _, _) => Err(e),
        (None, None, None) => Err(RunError::Aborted),
        (None, None, Some(checkpoints)) => Ok(checkpoints),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ends(
        first: Option<RunError>,
        worker: Option<RunError>,
        output_stream: Option<RunError>,
        completed: bool,
    ) -> StageEnds {
        StageEnds {
            first,
            worker,
            output_stream,
            checkpoints: completed.then(CheckpointStats::default),
        }
    }

    fn sink_error() -> RunError {
        RunError::Sink(SinkError::Compress {
            path: "a.ndjson.gz".into(),
            source: std::io::Error::other("disk full"),
        })
    }

    fn shown(result: Result<CheckpointStats, RunError>) -> String {
        match result {
            Ok(_) => "ok".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_clean_run_is_ok_and_a_missing_coordinator_is_aborted() {
        assert_eq!(shown(outcome(ends(None, None, None, true))), "ok");
        assert_eq!(
            shown(outcome(ends(None, None, None, false))),
            "stopped because another stage failed"
        );
    }

    #[test]
    fn a_workers_own_error_explains_a_reader_that_saw_it_stop() {
        let got = outcome(ends(
            Some(RunError::WorkerStopped(1)),
            Some(sink_error()),
            None,
            true,
        ));
        assert_eq!(shown(got), "writing output");
        let got = outcome(ends(
            Some(RunError::Aborted),
            Some(sink_error()),
            None,
            false,
        ));
        assert_eq!(shown(got), "writing output");
        let got = outcome(ends(
            None,
            Some(RunError::Panicked("worker 0".into())),
            None,
            true,
        ));
        assert_eq!(shown(got), "the worker 0 thread panicked");
    }

    #[test]
    fn a_first_hand_error_of_another_stage_wins_over_a_workers() {
        let got = outcome(ends(
            Some(RunError::LockLost),
            Some(sink_error()),
            None,
            true,
        ));
        assert!(matches!(got, Err(RunError::LockLost)));
    }

    #[test]
    fn the_writers_error_explains_a_worker_that_saw_it_stop() {
        let writer = || RunError::Runtime(std::io::Error::other("no runtime"));
        let got = outcome(ends(
            None,
            Some(RunError::OutputStreamStopped),
            Some(writer()),
            true,
        ));
        assert!(matches!(got, Err(RunError::Runtime(_))));
        let got = outcome(ends(None, None, Some(writer()), true));
        assert!(matches!(got, Err(RunError::Runtime(_))));
        // A worker's own error is kept over the writer's.
        let got = outcome(ends(None, Some(sink_error()), Some(writer()), true));
        assert!(matches!(got, Err(RunError::Sink(_))));
        // A reader that saw a worker stop for the writer: the writer's error.
        let got = outcome(ends(
            Some(RunError::WorkerStopped(0)),
            Some(RunError::OutputStreamStopped),
            Some(writer()),
            true,
        ));
        assert!(matches!(got, Err(RunError::Runtime(_))));
    }
}
