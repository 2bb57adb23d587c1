//! The job: the only place that knows the graph.
//!
//! ```text
//!  inputs ──► reader ──(decode, hash companyID)──► N bounded channels of Batches
//!                                                   │
//!                      ┌────────────────────────────┘
//!                      ▼
//!              keyed worker i: TenantTable (profile join + day windows) → score
//!                      │                                  │
//!                      ▼                                  ▼
//!          hour-partitioned result files         _rejected/worker-i.ndjson
//! ```
//!
//! One reader thread reads the inputs in order, decodes each line, and appends the
//! record to the batch of the worker that owns its tenant ([`tenantflow_core::partition`]).
//! Full batches go through a bounded channel per worker (backpressure, not buffering),
//! and drained batches come back to be refilled, so the steady state allocates nothing
//! per record. Each worker owns its tenants' state and its output files outright: no
//! lock on the hot path. A tenant's records meet in one worker in input order, which
//! makes results deterministic.
//!
//! Why threads and not async tasks: this job is CPU-bound from the first byte to the
//! last; an OS thread per worker pinned to its own state is the shape that uses every
//! core. Async sources (Kinesis, lookups) feed the same channels.

pub mod checkpoint;
pub mod cluster;
mod error;
mod file_reader;
mod in_flight;
mod job;
pub mod lease_fence;
mod lookup;
mod metrics;
mod output;
pub mod output_lock;
mod output_port;
pub mod repartition;
mod resume;
mod router;
mod scoring;
mod shutdown;
mod sources;
mod stage;
pub mod status;
mod stream_reader;
mod stream_sink;
mod stream_stage;
mod worker;

pub use checkpoint::coordinator::CheckpointStats;
pub use checkpoint::manifest::CheckpointStore;
pub use error::RunError;
pub use job::{JobConfig, LeaseResume, ResumeFrom, RunSummary, ShardScope, run};
pub use lookup::LookupConfig;
pub use metrics::{Metrics, MetricsSnapshot};
pub use output::{OutputError, OutputStart, prepare_output};
pub use output_lock::{LockConfig, LockError, OutputLock};
pub use router::MissingEventTime;
pub use scoring::ScoringConfig;
pub use status::{JobStatus, Phase, RiskFilter, TenantView};
pub use tenantflow_remote::call::{CallConfig, CallStats};
pub use tenantflow_remote::keyed::Emission;
pub use tenantflow_remote::score::ScorerTarget;
