//! The shape every async stage of a worker has (tenant lookups, remote scoring, and any
//! later one): records wait in it for remote answers that arrive on a channel; it can
//! be full (the worker takes answers before it offers more); it may have to act at a
//! deadline without an answer (a batch that lingered long enough); and at a barrier it
//! puts what waits into the checkpoint instead of being drained.
//!
//! What a record is offered as, and what an answer does, is each stage's own: a lookup
//! answer changes the tenant table before it releases records; a score writes results.
//! The worker does that part; its select loop, backpressure, barrier and idle
//! reporting go through this trait.

use std::time::Instant;

use crossbeam_channel::Receiver;

use crate::in_flight::InFlight;

/// An async stage of a worker.
pub(crate) trait AsyncStage {
    /// What arrives on the stage's channel.
    type Answer;

    /// Where answers arrive.
    fn answers(&self) -> Receiver<Self::Answer>;

    /// True while an answer is to come (the worker then selects on the channel).
    fn expects_answers(&self) -> bool;

    /// True when the worker must take answers before it offers another record.
    fn is_full(&self) -> bool;

    /// Records (or rows) waiting in the stage.
    fn waiting(&self) -> usize;

    /// When the stage must act without an answer, if it must.
    fn deadline(&self) -> Option<Instant> {
        None
    }

    /// Acts at its deadline.
    fn at_deadline(&mut self) {}

    /// Puts what waits into a checkpoint's waiting work, in the order it came.
    fn snapshot(&self, into: &mut InFlight);
}
