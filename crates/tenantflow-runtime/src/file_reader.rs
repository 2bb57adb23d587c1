//! The file stage: inputs with lines (files, folders, stdin, the generator), in order,
//! from where the last checkpoint left them.

use std::ops::ControlFlow;

use tenantflow_core::decode::{Decoder, DefaultKind};
use tenantflow_sources::Input;
use tenantflow_sources::lines::{Line, LineReader, ReadEnd, ReadError};

use crate::checkpoint::manifest::FilesPosition;
use crate::error::RunError;
use crate::router::{Origin, Router};
use crate::sources::Sources;

/// Lines between two looks at the stop flag.
const STOP_CHECK_LINES: u64 = 4096;

/// Reads every input from `start` to its end (or until the job is asked to stop),
/// routing each line, and stopping at each checkpoint's barrier.
pub(crate) fn read_inputs(
    inputs: &[Input],
    start: FilesPosition,
    default_kind: DefaultKind,
    max_record_bytes: usize,
    mut router: Router<'_>,
) -> Result<(), RunError> {
    // Where reading resumes: the next line not yet routed.
    let mut next = start;
    'inputs: for (index, input) in inputs.iter().enumerate().skip(start.input) {
        let (offset, line) = if index == start.input {
            (start.offset, start.line.max(1))
        } else {
            (0, 1)
        };
        if index == start.input
            && offset > 0
            && let Some(recorded) = &start.fingerprint
        {
            input.check_fingerprint(offset, recorded)?;
        }
        next = FilesPosition {
            input: index,
            offset,
            line,
            fingerprint: None,
        };
        tracing::debug!(input = input.name(), offset, "Reading input.");
        let stream = input.open_at(offset)?;
        let decoder = Decoder::new(default_kind);
        let format = input.format();
        let reader = LineReader::new(stream, max_record_bytes).starting_at(offset, line);
        // A pipe's records go on as they come: when it has nothing more for now, what
        // was read is sent to the workers instead of waiting for full batches.
        let interactive = input.is_stdin();
        let result = { reader }.read_all(|event| {
            let here = FilesPosition {
                input: index,
                offset: event.offset,
                line: event.number,
                fingerprint: None,
            };
            if let Some(n) = router.checkpoint_due() {
                let at = FilesPosition {
                    fingerprint: input.fingerprint(event.offset)?,
                    ..here
                };
                router.arrive(n, Some(at), None)?;
            }
            if event.number % STOP_CHECK_LINES == 0 && router.stopping() {
                next = here;
                return Ok(ControlFlow::Break(()));
            }
            let origin = Origin {
                source: Sources::file_input(index),
                name: input.name(),
                line: Some(event.number),
                shard: None,
                partition_key: None,
            };
            match event.line {
                Line::Record(bytes) => {
                    router.record(bytes, format, decoder, event.arrival_ms, &origin)?;
                }
                Line::TooLarge { prefix, len } => {
                    router.too_large(prefix, len, max_record_bytes, &origin)?;
                }
            }
            if interactive && event.last_of_read {
                router.flush_partial()?;
            }
            Ok(ControlFlow::Continue(()))
        });
        match result {
            Ok(ReadEnd::EndOfInput) => {
                next = FilesPosition {
                    input: index + 1,
                    offset: 0,
                    line: 1,
                    fingerprint: None,
                };
            }
            Ok(ReadEnd::Stopped) => {
                tracing::info!(
                    input = input.name(),
                    line = next.line,
                    "Stopped reading: the job is stopping."
                );
                break 'inputs;
            }
            Err(ReadError::Handler(e)) => return Err(e),
            Err(ReadError::Io(source)) => {
                return Err(RunError::Read {
                    input: input.name().to_owned(),
                    source,
                });
            }
        }
    }
    if next.offset > 0
        && let Some(input) = inputs.get(next.input)
    {
        next.fingerprint = input.fingerprint(next.offset)?;
    }
    router.finish(Some(next), None)
}
