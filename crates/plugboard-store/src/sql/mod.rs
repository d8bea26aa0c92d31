//! One body of SQL, two backends: [`for_both_backends!`] expands the same method bodies for SQLite and PostgreSQL,
//! so the two cannot drift apart. One file per area of the store.

use sqlx::migrate::Migrator;
use sqlx::{PgPool, SqlitePool};

use crate::*;

/// SQLite-backed store (the embedded default).
#[derive(Clone)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
    /// Bound on one store call.
    pub(crate) timeout: std::time::Duration,
    pub(crate) epoch: WriteEpoch,
}

/// PostgreSQL-backed store (for several instances on one database).
#[derive(Clone)]
pub struct PgStore {
    pub(crate) pool: PgPool,
    /// Bound on one store call.
    pub(crate) timeout: std::time::Duration,
    pub(crate) epoch: WriteEpoch,
}

pub(crate) static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sqlite");
pub(crate) static PG_MIGRATOR: Migrator = sqlx::migrate!("../../migrations/postgres");

/// The query of [`free_tool_prefix!`] with the backend's string aggregate (SQLite's `group_concat`, PostgreSQL's
/// `string_agg`): one SQL text but for that name.
macro_rules! taken_tool_prefixes {
    ($aggregate:literal) => {
        concat!(
            "SELECT ",
            $aggregate,
            "(tool_prefix, ',') FROM integrations \
             WHERE workspace_id = $1 AND tool_prefix IS NOT NULL AND substr(tool_prefix, 1, $2) = $3"
        )
    };
}

impl SqliteStore {
    const BACKEND: &'static str = "sqlite";
    /// Transactions take SQLite's one write lock at their start (waiting up to the busy timeout for it), so that a
    /// transaction that reads then writes never fails with `SQLITE_BUSY` when another writer committed meanwhile.
    const BEGIN: &'static str = "BEGIN IMMEDIATE";
    const MIGRATOR: &'static Migrator = &SQLITE_MIGRATOR;
    /// See [`free_tool_prefix!`].
    const TAKEN_TOOL_PREFIXES: &'static str = taken_tool_prefixes!("group_concat");
}

impl PgStore {
    const BACKEND: &'static str = "postgres";
    const BEGIN: &'static str = "BEGIN";
    const MIGRATOR: &'static Migrator = &PG_MIGRATOR;
    /// See [`free_tool_prefix!`].
    const TAKEN_TOOL_PREFIXES: &'static str = taken_tool_prefixes!("string_agg");
}

/// Implements a trait for both backends from one body: `for_both_backends! { impl Trait { async fn … } }`. Inside,
/// `self.pool` is the backend's pool and the SQL text is the same for both (sqlx takes `$N` placeholders on both).
/// Every method is bounded by the store's timeout ([`crate::bounded`]): a database that does not answer in time is
/// [`StoreError::Unavailable`], never a hang.
macro_rules! for_both_backends {
    (impl $trait:ident { $(
        async fn $name:ident(&$self:tt $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty $body:block
    )* }) => {
        #[async_trait::async_trait]
        impl $trait for $crate::sql::SqliteStore {
            $(
                async fn $name(&$self $(, $arg: $ty)*) -> $ret {
                    let call = async move {
                        let result: $ret = $body;
                        result
                    };
                    $crate::bounded($self.timeout, stringify!($name), call).await
                }
            )*
        }
        #[async_trait::async_trait]
        impl $trait for $crate::sql::PgStore {
            $(
                async fn $name(&$self $(, $arg: $ty)*) -> $ret {
                    let call = async move {
                        let result: $ret = $body;
                        result
                    };
                    $crate::bounded($self.timeout, stringify!($name), call).await
                }
            )*
        }
    };
}

/// [`for_both_backends!`] without the bound (for the methods that may run long: migrations).
macro_rules! for_both_backends_unbounded {
    (impl $trait:ident { $($body:tt)* }) => {
        #[async_trait::async_trait]
        impl $trait for $crate::sql::SqliteStore {
            $($body)*
        }
        #[async_trait::async_trait]
        impl $trait for $crate::sql::PgStore {
            $($body)*
        }
    };
}

/// A transaction on one pooled connection. A transaction that did not commit (its `COMMIT` failed, for example on
/// a full disk, or the call was cancelled by its timeout, or it returned early with an error) never goes back to
/// the pool: its connection is closed, which rolls it back, so no pooled connection is ever left inside a
/// transaction that would swallow later writes. Made by [`begin!`], ended by [`commit!`].
pub(crate) struct Tx<DB: sqlx::Database> {
    conn: sqlx::pool::PoolConnection<DB>,
    open: bool,
    /// Grown when the transaction commits; `None` for the writes that change nothing anyone reads to decide
    /// access (the audit log).
    epoch: Option<WriteEpoch>,
}

impl<DB: sqlx::Database> Tx<DB> {
    pub(crate) fn new(conn: sqlx::pool::PoolConnection<DB>, epoch: Option<WriteEpoch>) -> Self {
        Tx {
            conn,
            open: true,
            epoch,
        }
    }

    /// `BEGIN` failed, so no transaction is open: the connection may go back to the pool.
    pub(crate) fn not_begun(&mut self) {
        self.open = false;
    }

    /// `COMMIT` succeeded: the connection may go back to the pool.
    pub(crate) fn committed(&mut self) {
        self.open = false;
        if let Some(epoch) = &self.epoch {
            epoch.grow();
        }
    }
}

/// How many transactions this process has committed through a store (its audit-only ones aside): a cache of
/// something read from the store, tagged with the epoch seen before the read, is current for this process's own
/// writes while the epoch has not moved. Other processes' writes are not counted.
#[derive(Clone, Default)]
pub(crate) struct WriteEpoch(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl WriteEpoch {
    fn grow(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }
}

impl<DB: sqlx::Database> std::ops::Deref for Tx<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &DB::Connection {
        &self.conn
    }
}

impl<DB: sqlx::Database> std::ops::DerefMut for Tx<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.conn
    }
}

impl<DB: sqlx::Database> Drop for Tx<DB> {
    fn drop(&mut self) {
        if self.open {
            self.conn.close_on_drop();
        }
    }
}

/// Begins a [`Tx`] on a connection of `self.pool` (`BEGIN IMMEDIATE` on SQLite, `BEGIN` on PostgreSQL).
///
/// The connection is guarded before `BEGIN` is sent: a call cancelled while `BEGIN` is under way (the store's
/// timeout, while SQLite waits for its write lock) drops the guard, which closes the connection. Returned to the
/// pool instead, it would start its transaction after all and keep SQLite's write lock, failing every later write.
macro_rules! begin {
    ($self:ident) => {
        begin!(@ $self, Some($self.epoch.clone()))
    };
    // A transaction whose commit does not grow the write epoch.
    ($self:ident, quiet) => {
        begin!(@ $self, None)
    };
    (@ $self:ident, $epoch:expr) => {{
        let conn = $self.pool.acquire().await?;
        let mut tx = $crate::sql::Tx::new(conn, $epoch);
        if let Err(e) = sqlx::query(Self::BEGIN).execute(&mut *tx).await {
            // A `BEGIN` that failed started nothing: the connection may go back to the pool.
            tx.not_begun();
            return Err(e.into());
        }
        tx
    }};
}

/// An audit entry's detail as stored: its JSON text (serialised straight to bytes: quicker than `Display`).
pub(crate) fn detail_text(detail: &serde_json::Value) -> String {
    serde_json::to_string(detail).unwrap_or_else(|_| detail.to_string())
}

/// Commits a [`Tx`]; on failure the error is returned and the connection is closed (rolling back).
macro_rules! commit {
    ($tx:ident) => {{
        sqlx::query("COMMIT").execute(&mut *$tx).await?;
        $tx.committed();
    }};
}

/// Maps constraint violations to outcomes; everything else stays a database error.
fn map_err(e: sqlx::Error, what: &'static str) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() {
            return StoreError::Conflict(format!("{what} already exists"));
        }
        if db.is_foreign_key_violation() {
            return StoreError::Invalid(format!("{what} refers to something that does not exist"));
        }
    }
    StoreError::Database(e)
}

const INTEGRATION_COLUMNS: &str =
    "id, workspace_id, crew_id, connector_id, name, auth_mode, status, status_reason, \
     enabled, mcp, created_by, created_at, updated_at, tool_allow, tool_deny, tool_prefix";

const INSERT_SECRET: &str =
    "INSERT INTO secrets (integration_id, name, key_id, ciphertext, updated_at) VALUES ($1, $2, $3, $4, $5)";
const UPSERT_SECRET: &str = "INSERT INTO secrets (integration_id, name, key_id, ciphertext, updated_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (integration_id, name) \
     DO UPDATE SET key_id = excluded.key_id, ciphertext = excluded.ciphertext, updated_at = excluded.updated_at";
const DELETE_SECRET: &str = "DELETE FROM secrets WHERE integration_id = $1 AND name = $2";

/// Writes one sealed secret of an integration (`INSERT_SECRET` or `UPSERT_SECRET`) inside an open transaction.
macro_rules! write_secret {
    ($exec:expr, $sql:expr, $integration_id:expr, $secret:expr, $now:expr) => {{
        let secret: &NewSecret = $secret;
        sqlx::query($sql)
            .bind($integration_id)
            .bind(&secret.name)
            .bind(&secret.key_id)
            .bind(&secret.ciphertext)
            .bind($now)
            .execute($exec)
            .await
            .map_err(|e| map_err(e, "the secret"))?;
    }};
}

/// Fails with `NotFound(what)` unless the query (one `$1` id) finds a row, inside an open transaction.
macro_rules! require_exists {
    ($exec:expr, $sql:literal, $id:expr, $what:literal) => {{
        let row: Option<(String,)> = sqlx::query_as($sql).bind($id).fetch_optional($exec).await?;
        if row.is_none() {
            return Err(StoreError::NotFound($what));
        }
    }};
}

/// Inserts one single-use OAuth state (only its hash) for an integration inside an open transaction.
macro_rules! insert_oauth_state {
    ($exec:expr, $integration_id:expr, $state:expr, $now:expr) => {{
        let st: &NewOAuthState = $state;
        sqlx::query(
            "INSERT INTO oauth_states (state_hash, integration_id, flow, redirect_uri, issuer, iss_required, \
             created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&st.state_hash)
        .bind($integration_id)
        .bind(st.flow)
        .bind(&st.redirect_uri)
        .bind(&st.issuer)
        .bind(st.iss_required)
        .bind($now)
        .bind(st.expires_at)
        .execute($exec)
        .await
        .map_err(|e| map_err(e, "the OAuth state"))?;
    }};
}

const TOKEN_COLUMNS: &str = "id, user_id, name, created_at, revoked_at, expires_at, last_used_at";

/// The first free default tool prefix (see [`crate::unique_tool_prefix`]) for an integration of `workspace_id` with
/// this connector id and name, inside an open transaction. Only the prefixes that could be a candidate (those that
/// start with [`crate::tool_prefix_stem`]) are read, in one row joined by commas (`TAKEN_TOOL_PREFIXES`; a prefix
/// never holds a comma): a workspace may hold thousands of integrations of one connector, and reading their
/// prefixes one row each held the write transaction for tens of milliseconds per install at 10,000.
macro_rules! free_tool_prefix {
    ($exec:expr, $workspace_id:expr, $connector_id:expr, $name:expr) => {{
        let base = crate::default_tool_prefix($connector_id, $name);
        let stem = crate::tool_prefix_stem(&base);
        let (taken,): (Option<String>,) = sqlx::query_as(Self::TAKEN_TOOL_PREFIXES)
            .bind($workspace_id)
            .bind(i32::try_from(stem.chars().count()).unwrap_or(i32::MAX))
            .bind(stem)
            .fetch_one($exec)
            .await?;
        crate::unique_tool_prefix(&base, taken.as_deref().unwrap_or("").split(','))
    }};
}

/// Grows the credential generation by one inside an open transaction (with every revocation of a credential).
macro_rules! bump_generation {
    ($exec:expr) => {{
        sqlx::query("UPDATE credential_generation SET value = value + 1 WHERE id = 1")
            .execute($exec)
            .await?;
    }};
}

/// Takes the write lock on one row inside an open transaction, so that concurrent changes to what hangs off it
/// (memberships of a workspace, integrations of a crew) run one after the other: `SELECT … FOR UPDATE` on
/// PostgreSQL; on SQLite any write takes the database's one write lock, so a no-op update of the row (the table
/// must have a `name` column). True when the row exists.
macro_rules! lock_row {
    ($exec:expr, $table:literal, $id:expr) => {{
        if Self::BACKEND == "postgres" {
            let row: Option<(String,)> = sqlx::query_as(concat!(
                "SELECT id FROM ",
                $table,
                " WHERE id = $1 FOR UPDATE"
            ))
            .bind($id)
            .fetch_optional($exec)
            .await?;
            row.is_some()
        } else {
            sqlx::query(concat!("UPDATE ", $table, " SET name = name WHERE id = $1"))
                .bind($id)
                .execute($exec)
                .await?
                .rows_affected()
                > 0
        }
    }};
}

/// Appends one audit entry with the given executor (a pool or an open transaction).
macro_rules! insert_audit {
    ($exec:expr, $entry:expr) => {{
        let entry: &NewAudit = $entry;
        sqlx::query(
            "INSERT INTO audit_log (id, workspace_id, actor_id, action, target, detail, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(new_time_ordered_id(now_ms()))
        .bind(&entry.workspace_id)
        .bind(&entry.actor_id)
        .bind(&entry.action)
        .bind(&entry.target)
        .bind($crate::sql::detail_text(&entry.detail))
        .bind(now_ms())
        .execute($exec)
        .await?;
    }};
}

for_both_backends_unbounded! {
    impl Database {
        fn backend(&self) -> &'static str {
            Self::BACKEND
        }

        fn write_epoch(&self) -> u64 {
            self.epoch.get()
        }

        async fn ping(&self) -> Result<()> {
            crate::bounded(self.timeout, "ping", async {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            })
            .await
        }

        async fn migrate(&self) -> Result<usize> {
            let before = applied_count(&self.pool).await;
            Self::MIGRATOR.run(&self.pool).await?;
            // Rows from before tool prefixes existed get their default (a no-op once every row has one).
            self.assign_default_tool_prefixes().await?;
            let after = applied_count(&self.pool).await;
            Ok(after.saturating_sub(before))
        }

        fn pool_stats(&self) -> crate::PoolStats {
            crate::PoolStats {
                size: self.pool.size(),
                idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
                max: self.pool.options().get_max_connections(),
            }
        }
    }
}

// After the macros above: each area's SQL, one file each.
mod audit;
mod gateway;
mod identity;
mod integrations;
mod oauth;
mod people;
mod vault;

async fn applied_count<'e, E>(exec: E) -> usize
where
    E: sqlx::Executor<'e>,
    i64: sqlx::Type<E::Database> + for<'r> sqlx::Decode<'r, E::Database>,
    (i64,): for<'r> sqlx::FromRow<'r, <E::Database as sqlx::Database>::Row>,
    for<'q> <E::Database as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, E::Database>,
{
    // Before the first migration the table does not exist: that is zero applied.
    sqlx::query_as::<_, (i64,)>("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = TRUE")
        .fetch_one(exec)
        .await
        .map(|(n,)| usize::try_from(n).unwrap_or(0))
        .unwrap_or(0)
}
