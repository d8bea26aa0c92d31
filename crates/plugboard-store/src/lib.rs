//! Plugboard's storage: the repository [`Store`], by area (identity, vault, integrations, OAuth, audit: one module
//! of records and a trait each), with a SQLite ([`SqliteStore`]) and a PostgreSQL ([`PgStore`]) implementation. Both run the same SQL text (sqlx accepts `$N` placeholders on both), generated from one body by a
//! macro, so the two backends cannot drift apart. Migrations are embedded, one folder per dialect.

mod audit;
mod backup;
mod existing;
mod gateway;
mod identity;
mod ids;
mod integrations;
mod kinds;
mod lease;
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
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

pub use audit::*;
pub use backup::{backup_sqlite, Backup, BackupError};
pub use existing::{open_existing, ExistingDbError};
pub use gateway::*;
pub use identity::*;
pub use ids::{
    is_well_formed_id, new_id, now_ms, AgentTokenId, CrewId, IntegrationId, MalformedId, SessionId,
    TokenId, UserId, WorkspaceId,
};
pub use integrations::*;
pub use kinds::{ClientAuthMethod, IntegrationAuthMode, IntegrationStatus, OAuthFlow};
pub use lease::{LeaseState, Leases};
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
    /// How the connection pool is used right now (for the metrics page); cheap, no database round-trip.
    fn pool_stats(&self) -> PoolStats;
}

/// A snapshot of a connection pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections open now (idle or in use).
    pub size: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// The most connections the pool opens.
    pub max: u32,
}

/// The repository, one handle for every area: [`IdentityStore`], [`PeopleStore`], [`VaultStore`],
/// [`IntegrationStore`], [`OAuthStore`], [`AuditStore`], [`GatewayStore`] and [`Leases`] (each in its own module, with its SQL in
/// `sql/<area>.rs`). Every method is one
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
    + GatewayStore
    + Leases
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
        + GatewayStore
        + Leases
        + 'static
{
}

/// SQLite's `synchronous` setting (the journal is always WAL).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SqliteSynchronous {
    /// Every commit is on disk before it is acknowledged: an OS crash or power cut loses nothing acknowledged.
    #[default]
    Full,
    /// Commits are synced at WAL checkpoints only: faster, but an OS crash or power cut can lose the last
    /// acknowledged transactions (never corrupting the database). A process crash loses nothing either way.
    Normal,
}

impl SqliteSynchronous {
    pub fn as_str(self) -> &'static str {
        match self {
            SqliteSynchronous::Full => "full",
            SqliteSynchronous::Normal => "normal",
        }
    }
}

/// How to open a database.
#[derive(Clone, Copy, Debug)]
pub struct ConnectOptions {
    /// Create the SQLite file (and its folder) when it is missing.
    pub create: bool,
    pub sqlite_synchronous: SqliteSynchronous,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            create: true,
            sqlite_synchronous: SqliteSynchronous::Full,
        }
    }
}

/// Opens the store a `sqlite://…` or `postgres://…` URL names (without migrating), with the default options.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>> {
    connect_with(url, ConnectOptions::default()).await
}

/// Opens the store a `sqlite://…` or `postgres://…` URL names (without migrating).
pub async fn connect_with(url: &str, options: ConnectOptions) -> Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect_with(url, options).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect(url).await?))
    } else {
        Err(StoreError::Invalid(
            "database URL must start with sqlite:// or postgres://".into(),
        ))
    }
}

impl SqliteStore {
    /// [`SqliteStore::connect_with`] with the default options (create when missing, `synchronous=FULL`).
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, ConnectOptions::default()).await
    }

    /// WAL journal, foreign keys on, a 5 s busy timeout, `synchronous` as the options say. With `create`, a
    /// missing file and its folder are created.
    pub async fn connect_with(url: &str, options: ConnectOptions) -> Result<Self> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(options.create)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match options.sqlite_synchronous {
                SqliteSynchronous::Full => sqlx::sqlite::SqliteSynchronous::Full,
                SqliteSynchronous::Normal => sqlx::sqlite::SqliteSynchronous::Normal,
            })
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        if let Some(parent) = opts.get_filename().parent() {
            if options.create && !parent.as_os_str().is_empty() {
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn synchronous_of(store: &SqliteStore) -> i64 {
        let (level,): (i64,) = sqlx::query_as("PRAGMA synchronous")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        level
    }

    #[tokio::test]
    async fn sqlite_commits_are_synced_fully_unless_the_operator_chooses_normal() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("a.db").display());
        // 2 is FULL, 1 is NORMAL.
        assert_eq!(
            synchronous_of(&SqliteStore::connect(&url).await.unwrap()).await,
            2
        );
        let normal = ConnectOptions {
            sqlite_synchronous: SqliteSynchronous::Normal,
            ..ConnectOptions::default()
        };
        let store = SqliteStore::connect_with(&url, normal).await.unwrap();
        assert_eq!(synchronous_of(&store).await, 1);
        let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[tokio::test]
    async fn without_create_a_missing_sqlite_file_is_an_error_and_nothing_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("sub/a.db").display());
        let options = ConnectOptions {
            create: false,
            ..ConnectOptions::default()
        };
        assert!(SqliteStore::connect_with(&url, options).await.is_err());
        assert!(!dir.path().join("sub").exists());
    }
}
