//! Where records come from: files, folders of files, gzip, stdin, and the built-in
//! generator. Every input is a byte stream of lines; [`lines::LineReader`] cuts it into
//! lines without loading it whole and enforces the record size limit.
//!
//! ```
//! use std::ops::ControlFlow;
//! use tenantflow_sources::lines::{Line, LineReader, ReadEnd};
//!
//! let mut reader = LineReader::new(&b"a\n\nbc\r\n"[..], 1024);
//! let mut seen = Vec::new();
//! let end = reader.read_all(|event| {
//!     if let Line::Record(bytes) = event.line { seen.push((event.number, bytes.to_vec())); }
//!     Ok::<_, ()>(ControlFlow::Continue(()))
//! }).unwrap();
//! assert_eq!(end, ReadEnd::EndOfInput);
//! assert_eq!(seen, vec![(1, b"a".to_vec()), (2, b"".to_vec()), (3, b"bc".to_vec())]);
//! ```

pub mod generator;
pub mod input;
pub mod lines;

pub use input::{Input, InputFingerprint, InputFormat, InputSpec, SourceError};
