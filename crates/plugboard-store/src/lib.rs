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
    is_well_formed_id, new_id, new_time_ordered_id, now_ms, AgentTokenId, CrewId, IntegrationId,
    MalformedId, SessionId, TokenId, UserId, WorkspaceId, UNKNOWN_ID,
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
    /// The database did not answer in time (see [`ConnectOptions::timeout`]).
    #[error("{0}")]
    Unavailable(String),
}

impl StoreError {
    /// True for errors the caller caused (bad reference, duplicate), false for infrastructure failures.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            StoreError::NotFound(_) | StoreError::Conflict(_) | StoreError::Invalid(_)
        )
    }

    /// True when the database cannot be reached or cannot take the request now (stopped, frozen, unreachable,
    /// out of connections, locked, shutting down): retrying later can succeed. Never true for a client's mistake
    /// or a bug.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Unavailable(_) => true,
            StoreError::Database(e) => sqlx_unavailable(e),
            StoreError::Migrate(sqlx::migrate::MigrateError::Execute(e)) => sqlx_unavailable(e),
            _ => false,
        }
    }

    /// True when the database could not write because its storage is full (SQLite `SQLITE_FULL`, PostgreSQL
    /// `53100 disk_full`).
    pub fn is_storage_full(&self) -> bool {
        match self {
            StoreError::Database(e) => sqlx_storage_full(e),
            StoreError::Migrate(sqlx::migrate::MigrateError::Execute(e)) => sqlx_storage_full(e),
            _ => false,
        }
    }
}

/// The SQLite primary result code of a database error (the extended code's low byte), if it is one.
fn sqlite_primary_code(db: &dyn sqlx::error::DatabaseError) -> Option<i64> {
    db.try_downcast_ref::<sqlx::sqlite::SqliteError>()?;
    db.code()?.parse::<i64>().ok().map(|c| c & 0xff)
}

fn sqlx_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => {
            if let Some(code) = sqlite_primary_code(db.as_ref()) {
                // SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR, SQLITE_CANTOPEN, SQLITE_PROTOCOL
                return matches!(code, 5 | 6 | 10 | 14 | 15);
            }
            // PostgreSQL: connection exceptions (class 08), too many connections, shutting down or starting up,
            // out of memory or resources, a cancelled statement (statement_timeout).
            db.code().is_some_and(|c| {
                c.starts_with("08")
                    || matches!(
                        c.as_ref(),
                        "53000"
                            | "53200"
                            | "53300"
                            | "57014"
                            | "57P01"
                            | "57P02"
                            | "57P03"
                            | "58000"
                            | "58030"
                    )
            })
        }
        _ => false,
    }
}

fn sqlx_storage_full(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => match sqlite_primary_code(db.as_ref()) {
            Some(code) => code == 13,
            None => db.code().is_some_and(|c| c == "53100"),
        },
        _ => false,
    }
}

/// Runs one store call, bounded by `timeout`: a database that does not answer in time (frozen, unreachable, all
/// connections busy) is [`StoreError::Unavailable`]. Dropping the call's future returns its connection to the pool
/// (sqlx rolls back an open transaction) or closes it.
pub(crate) async fn bounded<T>(
    timeout: Duration,
    what: &'static str,
    call: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::Unavailable(format!(
            "the database did not answer within {} ms ({what})",
            timeout.as_millis()
        ))),
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What every backend offers besides the areas: its name, a health check and its migrations.
#[async_trait]
pub trait Database: Send + Sync {
    /// `"sqlite"` or `"postgres"`.
    fn backend(&self) -> &'static str;
    /// Grows with every transaction this process commits through this store (appends to the audit log aside). A
    /// cache of what the store said, tagged with the epoch seen before asking, is current as far as this process's
    /// own changes go while the epoch is unchanged; changes by other processes (another instance, an admin command)
    /// need a bounded lifetime on top.
    fn write_epoch(&self) -> u64;
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

/// The default of [`ConnectOptions::timeout`] (`PLUGBOARD_DB_TIMEOUT_MS`).
pub const DEFAULT_DB_TIMEOUT: Duration = Duration::from_millis(3000);

/// How to open a database.
#[derive(Clone, Copy, Debug)]
pub struct ConnectOptions {
    /// Create the SQLite file (and its folder) when it is missing.
    pub create: bool,
    pub sqlite_synchronous: SqliteSynchronous,
    /// How long one store call waits for the database (a pooled connection, a lock, an answer) before it fails
    /// with [`StoreError::Unavailable`]; also the pool's acquire timeout and SQLite's busy timeout.
    pub timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            create: true,
            sqlite_synchronous: SqliteSynchronous::Full,
            timeout: DEFAULT_DB_TIMEOUT,
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
        Ok(Arc::new(PgStore::connect_with(url, options).await?))
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

    /// WAL journal, foreign keys on, the options' timeout as busy timeout, `synchronous` as the options say.
    /// With `create`, a missing file and its folder are created.
    pub async fn connect_with(url: &str, options: ConnectOptions) -> Result<Self> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(options.create)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match options.sqlite_synchronous {
                SqliteSynchronous::Full => sqlx::sqlite::SqliteSynchronous::Full,
                SqliteSynchronous::Normal => sqlx::sqlite::SqliteSynchronous::Normal,
            })
            .foreign_keys(true)
            .busy_timeout(options.timeout);
        if options.create {
            create_private(opts.get_filename())?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(options.timeout)
            .connect_with(opts)
            .await?;
        Ok(SqliteStore {
            pool,
            timeout: options.timeout,
            epoch: Default::default(),
        })
    }
}

/// Creates a missing database file (and its missing folders) readable by the owner only: folders 0700, the file
/// 0600 (SQLite gives its `-wal` and `-shm` files the database file's mode). Existing ones are left as they are.
fn create_private(file: &std::path::Path) -> Result<()> {
    let err = |what: &std::path::Path, e: std::io::Error| {
        StoreError::Invalid(format!("cannot create {}: {e}", what.display()))
    };
    if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(parent).map_err(|e| err(parent, e))?;
    }
    if file.as_os_str().is_empty() || file.to_str() == Some(":memory:") {
        return Ok(());
    }
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    match open.open(file) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(err(file, e)),
    }
}

impl PgStore {
    /// [`PgStore::connect_with`] with the default options.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, ConnectOptions::default()).await
    }

    /// Opens a pool of up to 16 connections; acquiring one and connecting are bounded by the options' timeout.
    pub async fn connect_with(url: &str, options: ConnectOptions) -> Result<Self> {
        let opts = PgConnectOptions::from_str(url)?;
        let pool = bounded(options.timeout, "connect", async {
            Ok(PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(options.timeout)
                .connect_with(opts)
                .await?)
        })
        .await?;
        Ok(PgStore {
            pool,
            timeout: options.timeout,
            epoch: Default::default(),
        })
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
    async fn a_write_cancelled_while_waiting_for_sqlites_lock_does_not_leave_its_connection_inside_a_transaction(
    ) {
        use sqlx::Connection;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("a.db").display());
        SqliteStore::connect(&url)
            .await
            .unwrap()
            .migrate()
            .await
            .unwrap();
        // One pooled connection, so the next write gets the one the cancelled write used; SQLite waits for its lock
        // longer than the store waits for an answer, so the store's timeout cancels a `BEGIN` still under way.
        let opts = SqliteConnectOptions::from_str(&url)
            .unwrap()
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(10));
        let store = SqliteStore {
            pool: SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(opts.clone())
                .await
                .unwrap(),
            timeout: Duration::from_millis(200),
            epoch: Default::default(),
        };
        let owner = store
            .create_user("owner@example.com", "Owner")
            .await
            .unwrap();
        let mut other = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut other)
            .await
            .unwrap();
        let waited = store.create_workspace("first", &owner.id).await;
        assert!(
            matches!(waited, Err(StoreError::Unavailable(_))),
            "{waited:?}"
        );
        // The lock is free again: a `BEGIN` of the cancelled write still under way would take it now.
        sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;

        let second = store.create_workspace("second", &owner.id).await.unwrap();
        assert_eq!(second.name, "second");
        // Nobody keeps the write lock: another connection writes at once, and only the second workspace exists.
        sqlx::query("PRAGMA busy_timeout = 0")
            .execute(&mut other)
            .await
            .unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut other)
            .await
            .unwrap();
        let (names,): (String,) = sqlx::query_as("SELECT group_concat(name) FROM workspaces")
            .fetch_one(&mut other)
            .await
            .unwrap();
        sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
        assert_eq!(names, "second");
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

    #[cfg(unix)]
    #[tokio::test]
    async fn a_new_database_folder_is_0700_and_its_files_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let url = format!("sqlite://{}", data.join("plugboard.db").display());
        let store = SqliteStore::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        for file in ["plugboard.db", "plugboard.db-wal", "plugboard.db-shm"] {
            assert_eq!(mode(&data.join(file)), 0o600, "{file}");
        }
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
