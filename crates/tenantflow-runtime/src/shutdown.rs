//! Shutdown on Ctrl-C or SIGTERM: the sources stop reading, everything read so far is
//! processed and written, a final checkpoint is taken, and the run ends normally.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Waits for Ctrl-C or SIGTERM, then raises `stop` (the file reader looks at it) and
/// tells the stream consumers through `consumers`.
pub(crate) async fn on_signal(
    stop: Arc<AtomicBool>,
    consumers: tokio::sync::watch::Sender<bool>,
    told: Option<tokio::sync::watch::Receiver<bool>>,
) {
    match told {
        // A shard job stops on a signal, or when its worker tells it (lease lost, or
        // the worker stopping).
        Some(mut told) => {
            tokio::select! {
                () = wait_for_signal() => {}
                _ = told.wait_for(|stop| *stop) => {}
            }
        }
        None => wait_for_signal().await,
    }
    tracing::warn!("Stopping: finishing the records in flight.");
    stop.store(true, Ordering::Relaxed);
    let _ = consumers.send(true);
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
