//! The TenantManager: tenants over REST (the original service's paths), stored in
//! SQLite or PostgreSQL, every change published to the companies stream through a
//! transactional outbox.
//!
//! - [`tenant`]: the JSON and its checks.
//! - [`db`]: storage, migrations, the outbox table.
//! - [`api`]: the axum routes.
//! - [`outbox`]: the relay to Kinesis.
//! - [`seed`]: loading tenants from the original CSV or NDJSON.

pub mod api;
pub mod db;
pub mod outbox;
pub mod seed;
pub mod tenant;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use crate::api::{ApiMetrics, AppState};
use crate::db::{Db, DbError};
use crate::seed::SeedError;

/// How the service runs.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// `sqlite://FILE` or `postgres://…`.
    pub database: String,
    /// The key writes need (`None`: read-only).
    pub api_key: Option<String>,
    /// The Kinesis stream changes are published to, if any.
    pub companies_stream: Option<String>,
    /// Tenants to load at start.
    pub seed: Option<PathBuf>,
    /// Seeding replaces tenants that exist already (by default they are kept: a tenant
    /// changed through the API stays changed across restarts).
    pub seed_overwrite: bool,
}

/// Why the service stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The database cannot be opened or migrated.
    #[error("opening the database {url}")]
    Open {
        /// The URL, without password.
        url: String,
        /// Why.
        #[source]
        source: DbError,
    },
    /// The seed file cannot be loaded.
    #[error("seeding")]
    Seed(#[from] SeedError),
    /// The address cannot be bound.
    #[error("listening on {addr}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server failed.
    #[error("serving")]
    Serve(#[source] std::io::Error),
    /// The API key is empty or blank: every request would carry it.
    #[error(
        "the API key (--api-key, TENANTFLOW_API_KEY) is empty: set a secret key, or leave it unset for a read-only service"
    )]
    EmptyApiKey,
}

/// A started service.
pub struct Service {
    /// The address it listens on (the port chosen, if 0 was asked for).
    pub addr: SocketAddr,
    /// The seed file to load once serving, and whether it replaces existing tenants.
    seed: Option<(PathBuf, bool)>,
    listener: TcpListener,
    state: AppState,
    outbox: Option<(String, Arc<Notify>)>,
}

impl Service {
    /// Opens and migrates the database and binds the address. The seed file loads once
    /// [`Service::serve`] runs, and the service is ready when it is loaded.
    ///
    /// # Errors
    /// See [`ServiceError`].
    pub async fn start(config: ServiceConfig) -> Result<Self, ServiceError> {
        if config
            .api_key
            .as_deref()
            .is_some_and(|k| k.trim().is_empty())
        {
            return Err(ServiceError::EmptyApiKey);
        }
        let outbox = config.companies_stream.is_some();
        let db = Db::open(&config.database, outbox)
            .await
            .map_err(|source| ServiceError::Open {
                url: db::redact(&config.database),
                source,
            })?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServiceError::Listen {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(ServiceError::Serve)?;
        let outbox = config
            .companies_stream
            .map(|stream| (stream, Arc::new(Notify::new())));
        let ready = Arc::new(std::sync::atomic::AtomicBool::new(config.seed.is_none()));
        Ok(Self {
            addr,
            seed: config.seed.map(|path| (path, config.seed_overwrite)),
            listener,
            state: AppState {
                db,
                api_key: config.api_key.map(Arc::from),
                metrics: Arc::new(ApiMetrics::default()),
                outbox_wake: outbox.as_ref().map(|(_, wake)| Arc::clone(wake)),
                ready,
            },
            outbox,
        })
    }

    /// Serves until `shutdown` completes; the outbox relay then publishes what is left.
    /// The seed file, if any, loads meanwhile; `on_ready` is called once the service is
    /// ready, with what seeding did.
    ///
    /// # Errors
    /// The server failed, or the seed file could not be loaded (the service then stops).
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
        on_ready: impl FnOnce(Option<&seed::Seeded>) + Send + 'static,
    ) -> Result<(), ServiceError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let relay = self.outbox.map(|(stream, wake)| {
            let db = self.state.db.clone();
            let metrics = Arc::clone(&self.state.metrics);
            tokio::spawn(outbox::relay(db, stream, wake, metrics, stop_rx))
        });
        let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<SeedError>();
        let seeding = {
            let db = self.state.db.clone();
            let ready = Arc::clone(&self.state.ready);
            let seed = self.seed;
            tokio::spawn(async move {
                let seeded = match &seed {
                    Some((path, overwrite)) => match seed::seed(&db, path, *overwrite).await {
                        Ok(seeded) => Some(seeded),
                        Err(e) => {
                            let _ = failed_tx.send(e);
                            return;
                        }
                    },
                    None => None,
                };
                ready.store(true, std::sync::atomic::Ordering::Release);
                on_ready(seeded.as_ref());
            })
        };
        let seed_failure = Arc::new(std::sync::Mutex::new(None));
        let shutdown = {
            let seed_failure = Arc::clone(&seed_failure);
            async move {
                tokio::select! {
                    () = shutdown => {}
                    Ok(e) = failed_rx => {
                        if let Ok(mut slot) = seed_failure.lock() {
                            *slot = Some(e);
                        }
                    }
                }
            }
        };
        let app = api::router(self.state);
        let served = axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(ServiceError::Serve);
        seeding.abort();
        let _ = stop_tx.send(true);
        if let Some(relay) = relay {
            let _ = relay.await;
        }
        let failure = seed_failure.lock().ok().and_then(|mut slot| slot.take());
        match failure {
            Some(e) => Err(ServiceError::Seed(e)),
            None => served,
        }
    }
}
