//! Checkpoints: a consistent cut of the whole job (source positions, tenant state,
//! open and pending files), written as a manifest to the checkpoint store, after which
//! the files it lists as pending are committed. See `docs/ARCHITECTURE.md`.
//!
//! - [`gate`]: where sources stop at a checkpoint's barrier.
//! - [`coordinator`]: triggers checkpoints, collects the parts, writes the manifest,
//!   commits.
//! - [`manifest`]: what a checkpoint records, and the checkpoint store's layout.
//! - [`fence`]: with leases, the lease row's conditional update is the commit point.
//! - [`recovery`]: starting from the latest manifest.
//! - [`aggregates`]: the BI aggregates, built from a checkpoint's state and committed
//!   with it.

pub mod aggregates;
pub mod coordinator;
pub mod fence;
pub(crate) mod gate;
pub mod manifest;
pub mod recovery;
pub(crate) mod tenures;
