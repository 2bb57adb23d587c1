//! The admin server of a running job: `/metrics` (Prometheus), `/healthz` and
//! `/readyz` (for an orchestrator's probes), the tenant state API (`/tenants`,
//! `/tenants/{companyID}`), and the dashboard at `/`.
//!
//! It runs on a thread and a one-thread Tokio runtime of its own, so that it answers
//! while the job recovers, and whatever it is asked costs the job's workers only the
//! answer to a question between two batches.

mod exporter;
mod routes;
mod series;

use std::net::SocketAddr;
use std::sync::Arc;

use tenantflow_runtime::Metrics;
use tokio::sync::oneshot;

pub use exporter::NAMES as METRIC_NAMES;
pub use routes::MAX_LIMIT;

/// Why the admin server did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The address could not be listened on.
    #[error("the admin server cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Its runtime or thread could not start.
    #[error("the admin server cannot start: {0}")]
    Start(std::io::Error),
}

/// A running admin server; dropping it stops it.
#[derive(Debug)]
pub struct AdminServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AdminServer {
    /// Listens on `listen` and serves `metrics`' run until dropped.
    ///
    /// # Errors
    /// The address is taken or not local, or the server's thread cannot start.
    pub fn start(listen: SocketAddr, metrics: Arc<Metrics>) -> Result<Self, AdminError> {
        let listener = std::net::TcpListener::bind(listen)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|source| AdminError::Listen {
                addr: listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(AdminError::Start)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(AdminError::Start)?;
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let state = routes::AdminState {
            registry: Arc::new(exporter::registry(Arc::clone(&metrics))),
            series: Arc::default(),
            metrics,
        };
        let thread = std::thread::Builder::new()
            .name("tenantflow-admin".into())
            .spawn(move || runtime.block_on(serve(listener, state, stop_rx)))
            .map_err(AdminError::Start)?;
        tracing::info!(%addr, "Admin server listening (/metrics, /healthz, /readyz, /tenants, dashboard at /).");
        Ok(Self {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The address it listens on (the port chosen, if 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    state: routes::AdminState,
    stop: oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "The admin server cannot serve.");
            return;
        }
    };
    let sampler = {
        let metrics = Arc::clone(&state.metrics);
        let series = Arc::clone(&state.series);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(series::SAMPLE_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                every.tick().await;
                series.push(series::Sample::take(
                    &metrics,
                    tenantflow_core::clock::now_ms(),
                ));
            }
        })
    };
    let served = axum::serve(listener, routes::router(state))
        .with_graceful_shutdown(async {
            let _ = stop.await;
        })
        .await;
    sampler.abort();
    if let Err(e) = served {
        tracing::error!(error = %e, "The admin server failed.");
    }
}
