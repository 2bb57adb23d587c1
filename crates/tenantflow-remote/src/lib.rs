//! Calls from the job to remote services, the equivalent of Flink's AsyncIO.
//!
//! - [`call`]: one request's life: a `tower` stack of retry (exponential back-off with
//!   equal jitter, on what is worth retrying), a bound on requests in flight, and a
//!   timeout per attempt.
//! - [`keyed`]: the worker's side: records wait behind their key's request, in order,
//!   emitted in arrival order ([`keyed::Emission::Ordered`]) or as their key is ready
//!   ([`keyed::Emission::Unordered`]).
//! - [`executor`]: runs calls on the job's tokio runtime and hands completions back to
//!   the worker thread over a channel it can wait on with its input.
//! - [`lookup`]: the TenantManager's `GET /api/v1/tenants/{id}`.
//! - [`score`]: remote churn scoring, with [`contract`] saying how rows go out and
//!   answers come back.
//! - [`auth`]: an API key or an AWS SigV4 signature on requests.
//!
//! Why a crate of its own: the tenant lookup and remote scoring share all of this, and
//! the HTTP client is compiled once, here.

pub mod auth;
pub mod call;
pub mod contract;
pub mod executor;
pub mod keyed;
pub mod lookup;
pub mod score;

pub use call::{CallConfig, CallError};
