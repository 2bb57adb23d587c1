//! tenantflow's data model, shared by every other crate.
//!
//! The job reads raw bytes, decodes them into [`Record`]s ([`decode`]), routes each
//! record by a hash of its `companyID` ([`partition`]) to a keyed worker in a [`Batch`],
//! and the worker turns each job event into a [`ResultRow`]. What cannot be processed
//! becomes a [`DeadLetter`] with a [`DeadLetterReason`]. Nothing here does I/O.
//!
//! ```
//! use tenantflow_core::{decode::{Decoder, DefaultKind}, Record};
//!
//! let decoder = Decoder::new(DefaultKind::Infer);
//! let line = br#"{"companyID":"comp_4","userID":"user_1","nbJobs":1,"creationDate":1767225601555}"#;
//! match decoder.decode_json(line).unwrap() {
//!     Record::Job(job) => assert_eq!(job.nb_jobs, 1),
//!     Record::Company(_) => unreachable!(),
//! }
//! ```

pub mod batch;
pub mod clock;
pub mod dead_letter;
pub mod decode;
pub mod industry;
pub mod partition;
pub mod record;
pub mod rng;
pub mod time;
pub mod validate;
pub mod warn_limit;

pub use batch::Batch;
pub use dead_letter::{DeadLetter, DeadLetterReason};
pub use decode::truncated;
pub use industry::Industry;
pub use record::{Company, CompanyProfile, JobEvent, Record, RecordKind, ResultRow};
