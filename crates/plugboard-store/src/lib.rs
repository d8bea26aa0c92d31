//! Plugboard's storage: repository trait [`Store`] with a SQLite ([`SqliteStore`]) and a PostgreSQL ([`PgStore`])
//! implementation. Both run the same SQL text (sqlx accepts `$N` placeholders on both), generated from one body by a
//! macro, so the two backends cannot drift apart. Migrations are embedded, one folder per dialect.

mod backup;
mod existing;
mod ids;
mod lease;
mod model;
mod oauth;
mod records;
mod sql;
#[cfg(feature = "testing")]
pub mod testing;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

pub use backup::{backup_sqlite, Backup, BackupError};
pub use existing::{open_existing, ExistingDbError};
pub use ids::{new_id, now_ms};
pub use lease::{LeaseState, Leases};
pub use model::*;
pub use oauth::*;
pub use records::*;
pub use sql::{PgStore, SqliteStore};

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

/// The repository. Every method is one transaction at most; multi-row writes are atomic.
#[async_trait]
pub trait Store: Leases + Send + Sync + 'static {
    /// `"sqlite"` or `"postgres"`.
    fn backend(&self) -> &'static str;
    /// Cheap round-trip used by `/readyz`.
    async fn ping(&self) -> Result<()>;
    /// Applies pending migrations; returns how many were applied.
    async fn migrate(&self) -> Result<usize>;

    // --- identity ---
    async fn create_user(&self, email: &str, name: &str) -> Result<User>;
    async fn get_user(&self, id: &str) -> Result<Option<User>>;
    /// Creates the workspace and makes `owner_id` its OWNER, atomically.
    async fn create_workspace(&self, name: &str, owner_id: &str) -> Result<Workspace>;
    async fn get_workspace(&self, id: &str) -> Result<Option<Workspace>>;
    /// Adds a member or changes an existing member's role.
    async fn add_member(&self, workspace_id: &str, user_id: &str, role: Role)
        -> Result<Membership>;
    async fn member_role(&self, workspace_id: &str, user_id: &str) -> Result<Option<Role>>;
    async fn create_crew(&self, workspace_id: &str, name: &str) -> Result<Crew>;
    async fn get_crew(&self, id: &str) -> Result<Option<Crew>>;
    async fn create_token(
        &self,
        user_id: &str,
        name: &str,
        token_hash: &[u8],
    ) -> Result<TokenRecord>;
    /// Revokes a token; `NotFound` when no token has this id. Revoking twice is not an error.
    async fn revoke_token(&self, id: &str) -> Result<TokenRecord>;
    /// The owner of an unrevoked token with this hash.
    async fn token_owner(&self, token_hash: &[u8]) -> Result<Option<TokenOwner>>;
    /// How many tokens were ever revoked: grows with every revocation, so a change means "drop caches".
    async fn revocation_count(&self) -> Result<i64>;

    // --- vault ---
    async fn data_keys(&self) -> Result<Vec<DataKeyRow>>;
    /// Inserts a wrapped data key; when `active`, it becomes the only active key in the same transaction.
    async fn insert_data_key(&self, id: &str, wrapped: &[u8], active: bool) -> Result<()>;
    async fn active_data_key_id(&self) -> Result<Option<String>>;
    /// Up to `limit` secrets sealed under any key other than `key_id`.
    async fn secrets_not_under(&self, key_id: &str, limit: i64) -> Result<Vec<SecretRow>>;
    /// Compare-and-set: replaces a secret's ciphertext only if it still holds `old`. Returns whether it did.
    async fn rewrap_secret(
        &self,
        old: &SecretRow,
        new_key_id: &str,
        new_ciphertext: &[u8],
    ) -> Result<bool>;
    /// Deletes data keys that are neither active nor used by any secret; returns how many.
    async fn delete_unused_data_keys(&self) -> Result<u64>;
    async fn count_secrets(&self) -> Result<i64>;

    // --- integrations ---
    /// Inserts the integration, its secrets, its OAuth state (if any), the audit entry and the idempotency record
    /// (if any) in one transaction.
    async fn create_integration(&self, new: NewIntegration) -> Result<Integration>;
    async fn get_integration(&self, id: &str) -> Result<Option<Integration>>;
    async fn list_integrations(
        &self,
        workspace_id: &str,
        crew_id: Option<&str>,
    ) -> Result<Vec<Integration>>;
    /// Applies a patch (and replaces secrets when given: old entries destroyed) with its audit entry, atomically.
    async fn update_integration(
        &self,
        id: &str,
        patch: IntegrationPatch,
    ) -> Result<Option<Integration>>;
    /// Deletes the integration and (by cascade) its vault entries and OAuth states, with its audit entry.
    async fn delete_integration(&self, id: &str, audit: NewAudit) -> Result<bool>;
    async fn integration_secrets(&self, integration_id: &str) -> Result<Vec<SecretRow>>;
    async fn idempotency_get(
        &self,
        workspace_id: &str,
        user_id: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>>;

    // --- OAuth states ---
    /// Marks an unused, unexpired state as used and returns it; `None` for unknown, expired or already used.
    async fn consume_oauth_state(
        &self,
        state_hash: &[u8],
        now: i64,
    ) -> Result<Option<OAuthStateRow>>;

    // --- OAuth grants and clients ---
    /// Starts a flow: drops the integration's other unused states, inserts the new one, upserts the grant's
    /// metadata and writes / destroys vault entries, in one transaction.
    async fn start_oauth_flow(&self, start: OAuthFlowStart) -> Result<()>;
    async fn get_oauth_grant(&self, integration_id: &str) -> Result<Option<OAuthGrant>>;
    /// Writes tokens (vault entries), expiry, status and audit in one transaction, bumping the grant's version.
    /// With `lock_owner`, writes only while that owner holds the refresh lock (and releases it); returns whether it
    /// wrote.
    async fn write_oauth_tokens(&self, write: OAuthTokenWrite) -> Result<bool>;
    /// Compare-and-set on the grant row: takes the refresh lock for `owner` until `until` when nobody holds it or
    /// the holder's lease ended before `now`. Returns whether `owner` got it.
    async fn try_lock_oauth_refresh(
        &self,
        integration_id: &str,
        owner: &str,
        now: i64,
        until: i64,
    ) -> Result<bool>;
    /// Releases the refresh lock if `owner` holds it.
    async fn release_oauth_refresh(&self, integration_id: &str, owner: &str) -> Result<()>;
    async fn get_oauth_client(
        &self,
        issuer: &str,
        redirect_uri: &str,
    ) -> Result<Option<OAuthClientRow>>;
    /// Inserts or replaces the client registered for `(issuer, redirect_uri)`.
    async fn put_oauth_client(&self, client: OAuthClientRow) -> Result<()>;
    async fn delete_oauth_client(&self, issuer: &str, redirect_uri: &str) -> Result<()>;

    // --- audit ---
    async fn append_audit(&self, entry: NewAudit) -> Result<()>;
    async fn list_audit(
        &self,
        workspace_id: &str,
        limit: i64,
        before: Option<i64>,
    ) -> Result<Vec<AuditRow>>;
    /// Up to `limit` entries of a workspace strictly older than the cursor `(created_at, id)` (newest first, ties
    /// broken by id descending), so a page boundary never skips entries written in the same millisecond.
    async fn list_audit_page(
        &self,
        workspace_id: &str,
        limit: i64,
        before: Option<(i64, &str)>,
    ) -> Result<Vec<AuditRow>>;
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
