//! Storage: one code path over SQLite and PostgreSQL (`sqlx`'s `Any` driver), versioned
//! migrations, and every write in a transaction with its outbox row.

use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::tenant::Tenant;

/// The database kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Versioned migrations: (version, description, SQLite, PostgreSQL). A migration is
/// applied once, in a transaction, and recorded in `schema_migrations`.
const MIGRATIONS: &[(i64, &str, &str, &str)] = &[(
    1,
    "tenants and outbox",
    include_str!("../migrations/sqlite/0001_tenants.sql"),
    include_str!("../migrations/postgres/0001_tenants.sql"),
)];

/// The schema version this release migrates to.
pub const SCHEMA_VERSION: i64 = 1;

/// Why a database operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// The URL is neither `sqlite:` nor `postgres:`.
    #[error("database URL must start with sqlite:// or postgres:// (got `{0}`)")]
    Url(String),
    /// The database refused or failed.
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    /// The database is at a schema this release does not know.
    #[error(
        "the database schema is at version {found}, newer than this release's {SCHEMA_VERSION}"
    )]
    NewerSchema {
        /// The database's version.
        found: i64,
    },
}

impl DbError {
    /// True for a failure that a retry may not meet (the database unreachable or busy);
    /// false for one that will happen again (a row that cannot be decoded, a bug).
    pub fn is_transient(&self) -> bool {
        match self {
            DbError::Sql(e) => matches!(
                e,
                sqlx::Error::Io(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::Database(_)
            ),
            DbError::Url(_) | DbError::NewerSchema { .. } => false,
        }
    }
}

/// What a create found.
#[derive(Debug, PartialEq, Eq)]
pub enum Created {
    /// Inserted.
    Yes,
    /// A tenant with that id exists.
    Duplicate,
}

/// The tenants database.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    outbox: bool,
}

const COLUMNS: &str =
    "tenant_id, industry, revenu, employees, job30, job90, monthly_fee, total_fee";

impl Db {
    /// Connects (a SQLite file is created if missing) and migrates. With `outbox`,
    /// every write also queues its record for the companies stream.
    ///
    /// # Errors
    /// A bad URL, an unreachable database, or a failed migration.
    pub async fn open(url: &str, outbox: bool) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if let Some(rest) = url.strip_prefix("sqlite:") {
            let url = if rest.contains('?') {
                format!("sqlite:{rest}")
            } else {
                format!("sqlite:{rest}?mode=rwc")
            };
            (Backend::Sqlite, url)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            (Backend::Postgres, url.to_owned())
        } else {
            return Err(DbError::Url(redact(url)));
        };
        let mut options = AnyPoolOptions::new().max_connections(match backend {
            Backend::Sqlite => 8,
            Backend::Postgres => 16,
        });
        if backend == Backend::Sqlite {
            options = options.after_connect(|conn, _| {
                Box::pin(async move {
                    // WAL: readers never wait for the writer; a writer waits up to 5 s.
                    sqlx::query("PRAGMA journal_mode = WAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA busy_timeout = 5000")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA synchronous = NORMAL")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            });
        }
        let pool = options.connect(&url).await?;
        let db = Self {
            pool,
            backend,
            outbox,
        };
        db.migrate().await?;
        Ok(db)
    }

    /// The database kind.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    async fn migrate(&self) -> Result<(), DbError> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY NOT NULL, description TEXT NOT NULL, applied_ms BIGINT NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        let current: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        if current > SCHEMA_VERSION {
            return Err(DbError::NewerSchema { found: current });
        }
        for &(version, description, sqlite, postgres) in MIGRATIONS {
            if version <= current {
                continue;
            }
            let script = match self.backend {
                Backend::Sqlite => sqlite,
                Backend::Postgres => postgres,
            };
            let mut tx = self.pool.begin().await?;
            for statement in script.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                sqlx::query(statement).execute(&mut *tx).await?;
            }
            sqlx::query(
                "INSERT INTO schema_migrations (version, description, applied_ms) VALUES ($1, $2, $3)",
            )
            .bind(version)
            .bind(description)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            tracing::info!(version, description, "Migrated the database.");
        }
        Ok(())
    }

    /// True if the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").fetch_one(&self.pool).await.is_ok()
    }

    /// One tenant.
    ///
    /// # Errors
    /// The database failed.
    pub async fn get(&self, id: &str) -> Result<Option<Tenant>, DbError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM tenants WHERE tenant_id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| tenant_of(&r)).transpose()?)
    }

    /// Up to `limit` tenants with ids after `after`, in id order.
    ///
    /// # Errors
    /// The database failed.
    pub async fn list(&self, after: &str, limit: i64) -> Result<Vec<Tenant>, DbError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM tenants WHERE tenant_id > $1 ORDER BY tenant_id LIMIT $2"
        ))
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(tenant_of).collect::<Result<_, _>>()?)
    }

    /// How many tenants there are.
    ///
    /// # Errors
    /// The database failed.
    pub async fn count(&self) -> Result<i64, DbError> {
        Ok(sqlx::query("SELECT COUNT(*) FROM tenants")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?)
    }

    /// Adds a tenant, unless its id exists.
    ///
    /// # Errors
    /// The database failed.
    pub async fn create(&self, tenant: &Tenant) -> Result<Created, DbError> {
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "INSERT INTO tenants ({COLUMNS}, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (tenant_id) DO NOTHING"
        );
        let inserted = sqlx::query(&sql);
        let done = bind_tenant(inserted, tenant)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(Created::Duplicate);
        }
        self.queue(&mut tx, tenant, false).await?;
        tx.commit().await?;
        Ok(Created::Yes)
    }

    /// Creates or replaces a tenant; true if it existed.
    ///
    /// # Errors
    /// The database failed.
    pub async fn put(&self, tenant: &Tenant) -> Result<bool, DbError> {
        let mut tx = self.pool.begin().await?;
        let existed = self.put_in(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(existed)
    }

    /// Creates every tenant of `tenants` that does not exist, and replaces those that
    /// do if `overwrite`, in one transaction (all or none). Returns (created, replaced).
    ///
    /// # Errors
    /// The database failed.
    pub async fn seed_many(
        &self,
        tenants: &[Tenant],
        overwrite: bool,
    ) -> Result<(u64, u64), DbError> {
        let mut tx = self.pool.begin().await?;
        let (mut created, mut replaced) = (0, 0);
        for tenant in tenants {
            if overwrite {
                if self.put_in(&mut tx, tenant).await? {
                    replaced += 1;
                } else {
                    created += 1;
                }
            } else if self.insert_in(&mut tx, tenant).await? {
                self.queue(&mut tx, tenant, false).await?;
                created += 1;
            }
        }
        tx.commit().await?;
        Ok((created, replaced))
    }

    /// Inserts a tenant unless its id exists; true if inserted.
    async fn insert_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        tenant: &Tenant,
    ) -> Result<bool, DbError> {
        let sql = format!(
            "INSERT INTO tenants ({COLUMNS}, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (tenant_id) DO NOTHING"
        );
        Ok(bind_tenant(sqlx::query(&sql), tenant)
            .bind(now_ms())
            .execute(&mut **tx)
            .await?
            .rows_affected()
            == 1)
    }

    async fn put_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        tenant: &Tenant,
    ) -> Result<bool, DbError> {
        // Writes first, so that a transaction never upgrades a read lock (SQLite would
        // refuse concurrent upgrades at once instead of waiting).
        let inserted = self.insert_in(tx, tenant).await?;
        if !inserted {
            let update = sqlx::query(
                "UPDATE tenants SET industry = $2, revenu = $3, employees = $4, job30 = $5, \
                 job90 = $6, monthly_fee = $7, total_fee = $8, updated_ms = $9 WHERE tenant_id = $1",
            );
            bind_tenant(update, tenant)
                .bind(now_ms())
                .execute(&mut **tx)
                .await?;
        }
        self.queue(tx, tenant, false).await?;
        Ok(!inserted)
    }

    /// Deletes a tenant; the deleted tenant, if it existed.
    ///
    /// # Errors
    /// The database failed.
    pub async fn delete(&self, id: &str) -> Result<Option<Tenant>, DbError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "DELETE FROM tenants WHERE tenant_id = $1 RETURNING {COLUMNS}"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let tenant = tenant_of(&row)?;
        self.queue(&mut tx, &tenant, true).await?;
        tx.commit().await?;
        Ok(Some(tenant))
    }

    async fn queue(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        tenant: &Tenant,
        deleted: bool,
    ) -> Result<(), DbError> {
        if !self.outbox {
            return Ok(());
        }
        sqlx::query("INSERT INTO outbox (tenant_id, payload, created_ms) VALUES ($1, $2, $3)")
            .bind(tenant.tenant_id.as_str())
            .bind(tenant.to_stream_record(deleted))
            .bind(now_ms())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// The oldest outbox rows: (sequence number, tenant id, record).
    ///
    /// # Errors
    /// The database failed.
    pub async fn outbox_batch(&self, limit: i64) -> Result<Vec<(i64, String, String)>, DbError> {
        let rows = sqlx::query("SELECT seq, tenant_id, payload FROM outbox ORDER BY seq LIMIT $1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    /// Drops the outbox rows up to `seq`, published.
    ///
    /// # Errors
    /// The database failed.
    pub async fn outbox_done(&self, seq: i64) -> Result<(), DbError> {
        sqlx::query("DELETE FROM outbox WHERE seq <= $1")
            .bind(seq)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Rows waiting in the outbox.
    ///
    /// # Errors
    /// The database failed.
    pub async fn outbox_len(&self) -> Result<i64, DbError> {
        Ok(sqlx::query("SELECT COUNT(*) FROM outbox")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?)
    }
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

fn bind_tenant<'q>(query: AnyQuery<'q>, t: &'q Tenant) -> AnyQuery<'q> {
    query
        .bind(t.tenant_id.as_str())
        .bind(t.industry.as_str())
        .bind(t.revenu)
        .bind(t.employees)
        .bind(t.job30)
        .bind(t.job90)
        .bind(t.monthly_fee)
        .bind(t.total_fee)
}

fn tenant_of(row: &AnyRow) -> Result<Tenant, sqlx::Error> {
    Ok(Tenant {
        tenant_id: row.try_get(0)?,
        industry: row.try_get(1)?,
        revenu: row.try_get(2)?,
        employees: row.try_get(3)?,
        job30: row.try_get(4)?,
        job90: row.try_get(5)?,
        monthly_fee: row.try_get(6)?,
        total_fee: row.try_get(7)?,
    })
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A database URL as it may be shown: without its password.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}
