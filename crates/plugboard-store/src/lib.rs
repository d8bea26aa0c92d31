//! Plugboard's storage: the repository [`Store`], by area (identity, vault, integrations, OAuth, audit: one module
//! of records and a trait each), with a SQLite ([`SqliteStore`]) and a PostgreSQL ([`PgStore`]) implementation. Both run the same SQL text (sqlx accepts `$N` placeholders on both), generated from one body by a
//! macro, so the two backends cannot drift apart. Migrations are embedded, one folder per dialect.

mod audit;
mod identity;
mod ids;
mod integrations;
mod kinds;
mod oauth;
mod people;
mod sql;
#[cfg(feature = "testing")]
pub mod testing;
mod vault;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use audit::*;
pub use identity::*;
pub use ids::{
    is_well_formed_id, new_id, now_ms, CrewId, IntegrationId, MalformedId, SessionId, TokenId,
    UserId, WorkspaceId,
};
pub use integrations::*;
pub use kinds::{ClientAuthMethod, IntegrationAuthMode, IntegrationStatus, OAuthFlow};
pub use oauth::*;
pub use people::*;
pub use sql::{PgStore, SqliteStore};
pub use vault::*;

/// Errors that name outcomes; the database's own error is kept for the log, never shown to clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// True for errors the caller caused (bad reference, duplicate), false for infrastructure failures.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            StoreError::NotFound(_) | StoreError::Conflict(_) | StoreError::Invalid(_)
        )
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What every backend offers besides the areas: its name, a health check and its migrations.
#[async_trait]
pub trait Database: Send + Sync {
    /// `"sqlite"` or `"postgres"`.
    fn backend(&self) -> &'static str;
    /// Cheap round-trip used by `/readyz`.
    async fn ping(&self) -> Result<()>;
    /// Applies pending migrations; returns how many were applied.
    async fn migrate(&self) -> Result<usize>;
}

/// The repository, one handle for every area: [`IdentityStore`], [`PeopleStore`], [`VaultStore`],
/// [`IntegrationStore`], [`OAuthStore`] and [`AuditStore`] (each in its own module, with its SQL in `sql/<area>.rs`). Every method is one
/// transaction at most; multi-row writes are atomic. Callers hold an `Arc<dyn Store>` and call any area's methods
/// on it.
pub trait Store:
    Database
    + IdentityStore
    + PeopleStore
    + VaultStore
    + IntegrationStore
    + OAuthStore
    + AuditStore
    + 'static
{
}

impl<T> Store for T where
    T: Database
        + IdentityStore
        + PeopleStore
        + VaultStore
        + IntegrationStore
        + OAuthStore
        + AuditStore
        + 'static
{
}

/// Opens the store a `sqlite://…` or `postgres://…` URL names (without migrating).
pub async fn connect(url: &str) -> Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect(url).await?))
    } else {
        Err(StoreError::Invalid(
            "database URL must start with sqlite:// or postgres://".into(),
        ))
    }
}

impl SqliteStore {
    /// WAL journal, foreign keys on, a 5 s busy timeout, `synchronous=NORMAL` (safe in WAL mode: a crash can lose
    /// the last transactions but never corrupts). The file and its folder are created when missing.
    pub async fn connect(url: &str) -> Result<Self> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        if let Some(parent) = opts.get_filename().parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    StoreError::Invalid(format!(
                        "cannot create the database folder {}: {e}",
                        parent.display()
                    ))
                })?;
            }
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await?;
        Ok(SqliteStore { pool })
    }
}

impl PgStore {
    pub async fn connect(url: &str) -> Result<Self> {
        let opts = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await?;
        Ok(PgStore { pool })
    }
}
