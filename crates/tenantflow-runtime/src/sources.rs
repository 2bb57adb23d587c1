//! The job's sources and their numbers, in one place.
//!
//! Two numberings meet here. Each source *thread* has a slot at the checkpoint gate:
//! the file reader (one thread for every file input, even with none) is slot 0, stream
//! `i` is slot `1 + i`. Each *input* has an id, which a record's `Position::source`
//! carries to its dead letter: the file inputs first, in the order given, then the
//! streams.

use crate::job::JobConfig;

/// The sources of a job.
#[derive(Debug, Clone)]
pub(crate) struct Sources {
    /// Each input's name, by input id.
    names: Vec<String>,
    files: usize,
    streams: usize,
}

impl Sources {
    pub(crate) fn of(config: &JobConfig) -> Self {
        let names = config
            .inputs
            .iter()
            .map(|i| i.name().to_owned())
            .chain(
                config
                    .streams
                    .iter()
                    .map(|s| format!("kinesis://{}", s.stream)),
            )
            .collect();
        Self {
            names,
            files: config.inputs.len(),
            streams: config.streams.len(),
        }
    }

    /// Each input's name, by input id.
    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }

    /// Source threads, each a slot at the gate.
    pub(crate) fn threads(&self) -> usize {
        1 + self.streams
    }

    /// The file reader's slot at the gate.
    pub(crate) const READER: usize = 0;

    /// Stream `i`'s slot at the gate.
    pub(crate) fn stream_slot(&self, i: usize) -> usize {
        1 + i
    }

    /// The input id of file input `index`.
    pub(crate) fn file_input(index: usize) -> u32 {
        u32::try_from(index).unwrap_or(u32::MAX)
    }

    /// The input id of stream `i`.
    pub(crate) fn stream_input(&self, i: usize) -> u32 {
        u32::try_from(self.files + i).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_come_first_then_streams() {
        let sources = Sources {
            names: vec!["a.ndjson".into(), "b.csv".into(), "kinesis://jobs".into()],
            files: 2,
            streams: 1,
        };
        assert_eq!(sources.threads(), 2);
        assert_eq!(Sources::READER, 0);
        assert_eq!(sources.stream_slot(0), 1);
        assert_eq!(Sources::file_input(1), 1);
        let id = sources.stream_input(0);
        assert_eq!(id, 2);
        assert_eq!(sources.names()[id as usize], "kinesis://jobs");
    }
}
