//! The file stage: inputs with lines (files, folders, stdin, the generator), in order.

use tenantflow_core::decode::{Decoder, DefaultKind};
use tenantflow_sources::Input;
use tenantflow_sources::lines::{Line, LineReader, ReadError};

use crate::job::RunError;
use crate::router::{Origin, Router};

/// Lines between two looks at the stop flag.
const STOP_CHECK_LINES: u64 = 4096;

/// Reads every input to its end (or until the job is asked to stop), routing each line.
pub(crate) fn read_inputs(
    inputs: &[Input],
    default_kind: DefaultKind,
    max_record_bytes: usize,
    mut router: Router<'_>,
) -> Result<(), RunError> {
    'inputs: for (index, input) in inputs.iter().enumerate() {
        tracing::debug!(input = input.name(), "Reading input.");
        let stream = input.open()?;
        let source = u32::try_from(index).unwrap_or(u32::MAX);
        let decoder = Decoder::new(default_kind);
        let format = input.format();
        let result = LineReader::new(stream, max_record_bytes).read_all(|event| {
            if event.number % STOP_CHECK_LINES == 0 && router.stopping() {
                return Err(RunError::Stopped);
            }
            let origin = Origin {
                source,
                name: input.name(),
                line: Some(event.number),
                shard: None,
            };
            match event.line {
                Line::Record(bytes) => {
                    router.record(bytes, format, decoder, event.arrival_ms, &origin)
                }
                Line::TooLarge { prefix, len } => {
                    router.too_large(prefix, len, max_record_bytes, &origin)
                }
            }
        });
        match result {
            Ok(()) => {}
            Err(ReadError::Handler(RunError::Stopped)) => {
                tracing::info!(
                    input = input.name(),
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
    router.finish()
}
