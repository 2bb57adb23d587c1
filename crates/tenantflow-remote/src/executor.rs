//! Runs calls on the job's tokio runtime for a worker thread, and hands the answers
//! back over a channel the worker can wait on beside its input.

use crossbeam_channel::{Receiver, Sender};
use tokio::runtime::Handle;
use tower::ServiceExt;

use crate::call::{CallError, CallService};

/// The answer to a call about `key`.
#[derive(Debug)]
pub struct Completion<A, K = Box<str>> {
    /// The key the call was about.
    pub key: K,
    /// What came back.
    pub result: Result<A, CallError>,
}

/// A worker's calls to one service; `K` says what a call was about.
pub struct Executor<Req, A, K = Box<str>> {
    service: CallService<Req, A>,
    runtime: Handle,
    tx: Sender<Completion<A, K>>,
    rx: Receiver<Completion<A, K>>,
}

impl<Req, A, K> Executor<Req, A, K>
where
    Req: Send + 'static,
    A: Send + 'static,
    K: Send + 'static,
{
    /// Calls `service` on `runtime`.
    pub fn new(service: CallService<Req, A>, runtime: Handle) -> Self {
        // Unbounded, but never holds more than the calls its owner started.
        let (tx, rx) = crossbeam_channel::unbounded();
        Self {
            service,
            runtime,
            tx,
            rx,
        }
    }

    /// Starts a call about `key`; its answer comes on [`Executor::completions`].
    pub fn submit(&self, key: K, request: Req) {
        let service = self.service.clone();
        let tx = self.tx.clone();
        self.runtime.spawn(async move {
            let result = service.oneshot(request).await;
            // The worker gone (it failed): nobody wants the answer.
            let _ = tx.send(Completion { key, result });
        });
    }

    /// Where answers arrive, in the order they come.
    pub fn completions(&self) -> &Receiver<Completion<A, K>> {
        &self.rx
    }
}
