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
    /// Tenants seeded at start.
    pub seeded: Option<seed::Seeded>,
    listener: TcpListener,
    state: AppState,
    outbox: Option<(String, Arc<Notify>)>,
}

impl Service {
    /// Opens and migrates the database, seeds it, and binds the address.
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
        let seeded = match &config.seed {
            Some(path) => Some(seed::seed(&db, path).await?),
            None => None,
        };
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
        Ok(Self {
            addr,
            seeded,
            listener,
            state: AppState {
                db,
                api_key: config.api_key.map(Arc::from),
                metrics: Arc::new(ApiMetrics::default()),
                outbox_wake: outbox.as_ref().map(|(_, wake)| Arc::clone(wake)),
            },
            outbox,
        })
    }

    /// Serves until `shutdown` completes; the outbox relay then publishes what is left.
    ///
    /// # Errors
    /// The server failed.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServiceError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let relay = self.outbox.map(|(stream, wake)| {
            let db = self.state.db.clone();
            let metrics = Arc::clone(&self.state.metrics);
            tokio::spawn(outbox::relay(db, stream, wake, metrics, stop_rx))
        });
        let app = api::router(self.state);
        let served = axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(ServiceError::Serve);
        let _ = stop_tx.send(true);
        if let Some(relay) = relay {
            let _ = relay.await;
        }
        served
    }
}
