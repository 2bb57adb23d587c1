//! Finishing files in the background: the last part, the footer, syncing to disk or
//! the last request to the store, off the worker's thread. A checkpoint waits for the
//! files finished before it ([`Finisher::drain`]): they are pending files of that
//! checkpoint.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::SinkError;
use crate::upload::PendingFile;

/// Threads finishing one sink's files.
const THREADS: usize = 4;
/// Files being finished at once, at most: past it, handing one over waits.
const MAX_OUTSTANDING: usize = 16;

type Job = Box<dyn FnOnce() -> Result<PendingFile, SinkError> + Send>;

/// A small pool that finishes files.
pub(crate) struct Finisher {
    jobs: Option<Sender<Job>>,
    results: Receiver<Result<PendingFile, SinkError>>,
    threads: Vec<JoinHandle<()>>,
    outstanding: usize,
}

impl Finisher {
    pub(crate) fn new(name: &str) -> Self {
        let (jobs, queue) = channel::<Job>();
        let (done, results) = channel();
        let queue = Arc::new(Mutex::new(queue));
        let threads = (0..THREADS)
            .filter_map(|i| {
                let queue = Arc::clone(&queue);
                let done = done.clone();
                std::thread::Builder::new()
                    .name(format!("{name}-finish-{i}"))
                    .spawn(move || {
                        loop {
                            let job = {
                                let queue = queue.lock().unwrap_or_else(|p| p.into_inner());
                                queue.recv()
                            };
                            let Ok(job) = job else { break };
                            if done.send(job()).is_err() {
                                break;
                            }
                        }
                    })
                    .ok()
            })
            .collect();
        Self {
            jobs: Some(jobs),
            results,
            threads,
            outstanding: 0,
        }
    }

    /// Hands over a file to finish; returns the files finished meanwhile. Runs it here
    /// if the pool has no thread.
    pub(crate) fn submit(
        &mut self,
        job: Job,
        finished: &mut Vec<PendingFile>,
    ) -> Result<(), SinkError> {
        if self.threads.is_empty() {
            finished.push(job()?);
            return Ok(());
        }
        while self.outstanding >= MAX_OUTSTANDING {
            self.take_one(finished)?;
        }
        match self.jobs.as_ref().map(|jobs| jobs.send(job)) {
            Some(Ok(())) => self.outstanding += 1,
            Some(Err(returned)) => finished.push((returned.0)()?),
            None => {}
        }
        while let Ok(result) = self.results.try_recv() {
            self.outstanding -= 1;
            finished.push(result?);
        }
        Ok(())
    }

    fn take_one(&mut self, finished: &mut Vec<PendingFile>) -> Result<(), SinkError> {
        match self.results.recv() {
            Ok(result) => {
                self.outstanding -= 1;
                finished.push(result?);
                Ok(())
            }
            Err(_) => {
                self.outstanding = 0;
                Ok(())
            }
        }
    }

    /// Waits for every file handed over.
    pub(crate) fn drain(&mut self, finished: &mut Vec<PendingFile>) -> Result<(), SinkError> {
        let mut first_error = None;
        while self.outstanding > 0 {
            if let Err(e) = self.take_one(finished) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for Finisher {
    fn drop(&mut self) {
        self.jobs = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
