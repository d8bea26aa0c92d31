//! One body of SQL, two backends: `store_impl!` expands the same method bodies for SQLite and PostgreSQL.

use async_trait::async_trait;
use sqlx::{PgPool, SqlitePool};

use crate::*;

/// SQLite-backed store (the embedded default).
#[derive(Clone)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
}

/// PostgreSQL-backed store (for several instances on one database).
#[derive(Clone)]
pub struct PgStore {
    pub(crate) pool: PgPool,
}

pub(crate) static SQLITE_MIGRATOR: sqlx::migrate::Migrator =
    sqlx::migrate!("../../migrations/sqlite");
pub(crate) static PG_MIGRATOR: sqlx::migrate::Migrator =
    sqlx::migrate!("../../migrations/postgres");

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
     enabled, mcp, created_by, created_at, updated_at";

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
        .bind(&st.flow)
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

/// Appends one audit entry with the given executor (a pool or an open transaction).
macro_rules! insert_audit {
    ($exec:expr, $entry:expr) => {{
        let entry: &NewAudit = $entry;
        sqlx::query(
            "INSERT INTO audit_log (id, workspace_id, actor_id, action, target, detail, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(new_id())
        .bind(&entry.workspace_id)
        .bind(&entry.actor_id)
        .bind(&entry.action)
        .bind(&entry.target)
        .bind(entry.detail.to_string())
        .bind(now_ms())
        .execute($exec)
        .await?;
    }};
}

macro_rules! store_impl {
    ($store:ty, $backend:literal, $migrator:expr) => {
        #[async_trait]
        impl Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn ping(&self) -> Result<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn migrate(&self) -> Result<usize> {
                let migrator = &$migrator;
                let before = applied_count(&self.pool).await;
                migrator.run(&self.pool).await?;
                let after = applied_count(&self.pool).await;
                Ok(after.saturating_sub(before))
            }

            async fn create_user(&self, email: &str, name: &str) -> Result<User> {
                let user = User {
                    id: new_id(),
                    email: email.trim().to_lowercase(),
                    name: name.to_string(),
                    created_at: now_ms(),
                };
                sqlx::query("INSERT INTO users (id, email, name, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(&user.id)
                    .bind(&user.email)
                    .bind(&user.name)
                    .bind(user.created_at)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| map_err(e, "a user with this email"))?;
                Ok(user)
            }

            async fn get_user(&self, id: &str) -> Result<Option<User>> {
                Ok(sqlx::query_as::<_, User>("SELECT id, email, name, created_at FROM users WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn create_workspace(&self, name: &str, owner_id: &str) -> Result<Workspace> {
                let ws = Workspace { id: new_id(), name: name.to_string(), created_at: now_ms() };
                let mut tx = self.pool.begin().await?;
                require_exists!(&mut *tx, "SELECT id FROM users WHERE id = $1", owner_id, "user");
                sqlx::query("INSERT INTO workspaces (id, name, created_at) VALUES ($1, $2, $3)")
                    .bind(&ws.id)
                    .bind(&ws.name)
                    .bind(ws.created_at)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO memberships (workspace_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(&ws.id)
                .bind(owner_id)
                .bind(Role::Owner.as_str())
                .bind(ws.created_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(ws)
            }

            async fn get_workspace(&self, id: &str) -> Result<Option<Workspace>> {
                Ok(sqlx::query_as::<_, Workspace>("SELECT id, name, created_at FROM workspaces WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn add_member(&self, workspace_id: &str, user_id: &str, role: Role) -> Result<Membership> {
                let mut tx = self.pool.begin().await?;
                require_exists!(&mut *tx, "SELECT id FROM workspaces WHERE id = $1", workspace_id, "workspace");
                require_exists!(&mut *tx, "SELECT id FROM users WHERE id = $1", user_id, "user");
                sqlx::query(
                    "INSERT INTO memberships (workspace_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (workspace_id, user_id) DO UPDATE SET role = excluded.role",
                )
                .bind(workspace_id)
                .bind(user_id)
                .bind(role.as_str())
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Membership { workspace_id: workspace_id.to_string(), user_id: user_id.to_string(), role })
            }

            async fn member_role(&self, workspace_id: &str, user_id: &str) -> Result<Option<Role>> {
                let row: Option<(String,)> =
                    sqlx::query_as("SELECT role FROM memberships WHERE workspace_id = $1 AND user_id = $2")
                        .bind(workspace_id)
                        .bind(user_id)
                        .fetch_optional(&self.pool)
                        .await?;
                // An unparseable role cannot be written (CHECK constraint); treat it as no access.
                Ok(row.and_then(|(r,)| r.parse().ok()))
            }

            async fn create_crew(&self, workspace_id: &str, name: &str) -> Result<Crew> {
                let crew = Crew {
                    id: new_id(),
                    workspace_id: workspace_id.to_string(),
                    name: name.to_string(),
                    created_at: now_ms(),
                };
                let mut tx = self.pool.begin().await?;
                require_exists!(&mut *tx, "SELECT id FROM workspaces WHERE id = $1", workspace_id, "workspace");
                sqlx::query("INSERT INTO crews (id, workspace_id, name, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(&crew.id)
                    .bind(&crew.workspace_id)
                    .bind(&crew.name)
                    .bind(crew.created_at)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(crew)
            }

            async fn get_crew(&self, id: &str) -> Result<Option<Crew>> {
                Ok(sqlx::query_as::<_, Crew>("SELECT id, workspace_id, name, created_at FROM crews WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn create_token(&self, user_id: &str, name: &str, token_hash: &[u8]) -> Result<TokenRecord> {
                let rec = TokenRecord {
                    id: new_id(),
                    user_id: user_id.to_string(),
                    name: name.to_string(),
                    created_at: now_ms(),
                    revoked_at: None,
                };
                let mut tx = self.pool.begin().await?;
                require_exists!(&mut *tx, "SELECT id FROM users WHERE id = $1", user_id, "user");
                sqlx::query(
                    "INSERT INTO api_tokens (id, user_id, name, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&rec.id)
                .bind(&rec.user_id)
                .bind(&rec.name)
                .bind(token_hash)
                .bind(rec.created_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| map_err(e, "a token with this hash"))?;
                tx.commit().await?;
                Ok(rec)
            }

            async fn revoke_token(&self, id: &str) -> Result<TokenRecord> {
                sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                    .bind(now_ms())
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                sqlx::query_as::<_, TokenRecord>(
                    "SELECT id, user_id, name, created_at, revoked_at FROM api_tokens WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .ok_or(StoreError::NotFound("token"))
            }

            async fn token_owner(&self, token_hash: &[u8]) -> Result<Option<TokenOwner>> {
                Ok(sqlx::query_as::<_, TokenOwner>(
                    "SELECT id AS token_id, user_id FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
                )
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn revocation_count(&self) -> Result<i64> {
                let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM api_tokens WHERE revoked_at IS NOT NULL")
                    .fetch_one(&self.pool)
                    .await?;
                Ok(n)
            }

            async fn data_keys(&self) -> Result<Vec<DataKeyRow>> {
                Ok(sqlx::query_as::<_, DataKeyRow>(
                    "SELECT id, wrapped, active, created_at FROM data_keys ORDER BY created_at, id",
                )
                .fetch_all(&self.pool)
                .await?)
            }

            async fn insert_data_key(&self, id: &str, wrapped: &[u8], active: bool) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                if active {
                    sqlx::query("UPDATE data_keys SET active = $1 WHERE active = $2")
                        .bind(false)
                        .bind(true)
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query("INSERT INTO data_keys (id, wrapped, active, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(id)
                    .bind(wrapped)
                    .bind(active)
                    .bind(now_ms())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| map_err(e, "a data key with this id"))?;
                tx.commit().await?;
                Ok(())
            }

            async fn active_data_key_id(&self) -> Result<Option<String>> {
                let row: Option<(String,)> = sqlx::query_as("SELECT id FROM data_keys WHERE active = $1")
                    .bind(true)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(|(id,)| id))
            }

            async fn secrets_not_under(&self, key_id: &str, limit: i64) -> Result<Vec<SecretRow>> {
                Ok(sqlx::query_as::<_, SecretRow>(
                    "SELECT integration_id, name, key_id, ciphertext FROM secrets WHERE key_id <> $1 \
                     ORDER BY integration_id, name LIMIT $2",
                )
                .bind(key_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn rewrap_secret(&self, old: &SecretRow, new_key_id: &str, new_ciphertext: &[u8]) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE secrets SET key_id = $1, ciphertext = $2 \
                     WHERE integration_id = $3 AND name = $4 AND key_id = $5 AND ciphertext = $6",
                )
                .bind(new_key_id)
                .bind(new_ciphertext)
                .bind(&old.integration_id)
                .bind(&old.name)
                .bind(&old.key_id)
                .bind(&old.ciphertext)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_unused_data_keys(&self) -> Result<u64> {
                let done = sqlx::query(
                    "DELETE FROM data_keys WHERE active = $1 \
                     AND NOT EXISTS (SELECT 1 FROM secrets s WHERE s.key_id = data_keys.id)",
                )
                .bind(false)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected())
            }

            async fn count_secrets(&self) -> Result<i64> {
                let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM secrets").fetch_one(&self.pool).await?;
                Ok(n)
            }

            async fn create_integration(&self, new: NewIntegration) -> Result<Integration> {
                let now = now_ms();
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "INSERT INTO integrations (id, workspace_id, crew_id, connector_id, name, auth_mode, status, \
                     enabled, mcp, created_by, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .bind(&new.id)
                .bind(&new.workspace_id)
                .bind(&new.crew_id)
                .bind(&new.connector_id)
                .bind(&new.name)
                .bind(&new.auth_mode)
                .bind(&new.status)
                .bind(true)
                .bind(&new.mcp)
                .bind(&new.created_by)
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| map_err(e, "the integration"))?;
                for s in &new.secrets {
                    write_secret!(&mut *tx, INSERT_SECRET, &new.id, s, now);
                }
                if let Some(st) = &new.oauth_state {
                    insert_oauth_state!(&mut *tx, &new.id, st, now);
                }
                insert_audit!(&mut *tx, &new.audit);
                if let Some(idem) = &new.idempotency {
                    sqlx::query(
                        "INSERT INTO idempotency_keys (workspace_id, user_id, idem_key, fingerprint, status, \
                         response, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(&new.workspace_id)
                    .bind(&new.created_by)
                    .bind(&idem.key)
                    .bind(&idem.fingerprint)
                    .bind(idem.status)
                    .bind(&idem.response)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| map_err(e, "a request with this Idempotency-Key"))?;
                }
                let row = sqlx::query_as::<_, Integration>(&format!(
                    "SELECT {INTEGRATION_COLUMNS} FROM integrations WHERE id = $1"
                ))
                .bind(&new.id)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(row)
            }

            async fn get_integration(&self, id: &str) -> Result<Option<Integration>> {
                Ok(sqlx::query_as::<_, Integration>(&format!(
                    "SELECT {INTEGRATION_COLUMNS} FROM integrations WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn list_integrations(&self, workspace_id: &str, crew_id: Option<&str>) -> Result<Vec<Integration>> {
                let q = match crew_id {
                    Some(_) => format!(
                        "SELECT {INTEGRATION_COLUMNS} FROM integrations WHERE workspace_id = $1 AND crew_id = $2 \
                         ORDER BY created_at, id"
                    ),
                    None => format!(
                        "SELECT {INTEGRATION_COLUMNS} FROM integrations WHERE workspace_id = $1 \
                         ORDER BY created_at, id"
                    ),
                };
                let mut query = sqlx::query_as::<_, Integration>(&q).bind(workspace_id);
                if let Some(c) = crew_id {
                    query = query.bind(c);
                }
                Ok(query.fetch_all(&self.pool).await?)
            }

            async fn update_integration(&self, id: &str, patch: IntegrationPatch) -> Result<Option<Integration>> {
                let now = now_ms();
                let mut tx = self.pool.begin().await?;
                let exists: Option<(String,)> = sqlx::query_as("SELECT id FROM integrations WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                if exists.is_none() {
                    return Ok(None);
                }
                if let Some(name) = &patch.name {
                    sqlx::query("UPDATE integrations SET name = $1 WHERE id = $2")
                        .bind(name)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                if let Some(enabled) = patch.enabled {
                    sqlx::query("UPDATE integrations SET enabled = $1 WHERE id = $2")
                        .bind(enabled)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                if let Some((status, reason)) = &patch.status {
                    sqlx::query("UPDATE integrations SET status = $1, status_reason = $2 WHERE id = $3")
                        .bind(status)
                        .bind(reason)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                if let Some(mcp) = &patch.mcp {
                    sqlx::query("UPDATE integrations SET mcp = $1 WHERE id = $2")
                        .bind(mcp)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                if let Some((prefix, secrets)) = &patch.replace_secrets {
                    sqlx::query(
                        "DELETE FROM secrets WHERE integration_id = $1 AND substr(name, 1, length($2)) = $2",
                    )
                    .bind(id)
                    .bind(prefix)
                    .execute(&mut *tx)
                    .await?;
                    for s in secrets {
                        write_secret!(&mut *tx, INSERT_SECRET, id, s, now);
                    }
                }
                for s in &patch.upsert_secrets {
                    write_secret!(&mut *tx, UPSERT_SECRET, id, s, now);
                }
                sqlx::query("UPDATE integrations SET updated_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                if let Some(audit) = &patch.audit {
                    insert_audit!(&mut *tx, audit);
                }
                let row = sqlx::query_as::<_, Integration>(&format!(
                    "SELECT {INTEGRATION_COLUMNS} FROM integrations WHERE id = $1"
                ))
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Some(row))
            }

            async fn delete_integration(&self, id: &str, audit: NewAudit) -> Result<bool> {
                let mut tx = self.pool.begin().await?;
                // Explicit deletes rather than trusting the cascade alone: the vault entries must be gone.
                sqlx::query("DELETE FROM secrets WHERE integration_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM oauth_states WHERE integration_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                let done = sqlx::query("DELETE FROM integrations WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                insert_audit!(&mut *tx, &audit);
                tx.commit().await?;
                Ok(true)
            }

            async fn integration_secrets(&self, integration_id: &str) -> Result<Vec<SecretRow>> {
                Ok(sqlx::query_as::<_, SecretRow>(
                    "SELECT integration_id, name, key_id, ciphertext FROM secrets WHERE integration_id = $1 \
                     ORDER BY name",
                )
                .bind(integration_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn idempotency_get(
                &self,
                workspace_id: &str,
                user_id: &str,
                key: &str,
            ) -> Result<Option<IdempotencyRecord>> {
                Ok(sqlx::query_as::<_, IdempotencyRecord>(
                    "SELECT fingerprint, status, response FROM idempotency_keys \
                     WHERE workspace_id = $1 AND user_id = $2 AND idem_key = $3",
                )
                .bind(workspace_id)
                .bind(user_id)
                .bind(key)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn consume_oauth_state(&self, state_hash: &[u8], now: i64) -> Result<Option<OAuthStateRow>> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(
                    "UPDATE oauth_states SET used_at = $1 WHERE state_hash = $2 AND used_at IS NULL AND expires_at > $3",
                )
                .bind(now)
                .bind(state_hash)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Ok(None);
                }
                let row = sqlx::query_as::<_, OAuthStateRow>(
                    "SELECT integration_id, flow, redirect_uri, issuer, iss_required, expires_at FROM oauth_states \
                     WHERE state_hash = $1",
                )
                .bind(state_hash)
                .fetch_optional(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(row)
            }

            async fn start_oauth_flow(&self, start: OAuthFlowStart) -> Result<()> {
                let now = now_ms();
                let id = &start.integration_id;
                let mut tx = self.pool.begin().await?;
                sqlx::query("DELETE FROM oauth_states WHERE integration_id = $1 AND used_at IS NULL")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                let st = &start.state;
                insert_oauth_state!(&mut *tx, id, st, now);
                if let Some(g) = &start.grant {
                    sqlx::query(
                        "INSERT INTO oauth_grants (integration_id, flow, issuer, token_endpoint, resource, client_id, \
                         token_auth, version, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8) \
                         ON CONFLICT (integration_id) DO UPDATE SET flow = excluded.flow, issuer = excluded.issuer, \
                         token_endpoint = excluded.token_endpoint, resource = excluded.resource, \
                         client_id = excluded.client_id, token_auth = excluded.token_auth, \
                         updated_at = excluded.updated_at",
                    )
                    .bind(id)
                    .bind(&g.flow)
                    .bind(&g.issuer)
                    .bind(&g.token_endpoint)
                    .bind(&g.resource)
                    .bind(&g.client_id)
                    .bind(&g.token_auth)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| map_err(e, "the OAuth grant"))?;
                }
                for name in &start.delete_secrets {
                    sqlx::query(DELETE_SECRET).bind(id).bind(name).execute(&mut *tx).await?;
                }
                for s in &start.upsert_secrets {
                    write_secret!(&mut *tx, UPSERT_SECRET, id, s, now);
                }
                if let Some(audit) = &start.audit {
                    insert_audit!(&mut *tx, audit);
                }
                tx.commit().await?;
                Ok(())
            }

            async fn get_oauth_grant(&self, integration_id: &str) -> Result<Option<OAuthGrant>> {
                Ok(sqlx::query_as::<_, OAuthGrant>(
                    "SELECT integration_id, flow, issuer, token_endpoint, resource, client_id, token_auth, \
                     expires_at, version, lock_owner, lock_until, updated_at FROM oauth_grants \
                     WHERE integration_id = $1",
                )
                .bind(integration_id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn write_oauth_tokens(&self, w: OAuthTokenWrite) -> Result<bool> {
                let now = now_ms();
                let id = &w.integration_id;
                let mut tx = self.pool.begin().await?;
                match &w.lock_owner {
                    Some(owner) => {
                        let done = sqlx::query(
                            "UPDATE oauth_grants SET version = version + 1, lock_owner = NULL, lock_until = NULL, \
                             updated_at = $1 WHERE integration_id = $2 AND lock_owner = $3",
                        )
                        .bind(now)
                        .bind(id)
                        .bind(owner)
                        .execute(&mut *tx)
                        .await?;
                        if done.rows_affected() != 1 {
                            return Ok(false);
                        }
                    }
                    None => {
                        sqlx::query(
                            "INSERT INTO oauth_grants (integration_id, flow, version, updated_at) \
                             VALUES ($1, $2, 1, $3) ON CONFLICT (integration_id) DO UPDATE SET \
                             version = oauth_grants.version + 1, lock_owner = NULL, lock_until = NULL, \
                             updated_at = excluded.updated_at",
                        )
                        .bind(id)
                        .bind(&w.flow)
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| map_err(e, "the OAuth grant"))?;
                    }
                }
                if let Some(expires_at) = w.expires_at {
                    sqlx::query("UPDATE oauth_grants SET expires_at = $1 WHERE integration_id = $2")
                        .bind(expires_at)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                for name in &w.delete_secrets {
                    sqlx::query(DELETE_SECRET).bind(id).bind(name).execute(&mut *tx).await?;
                }
                for s in &w.upsert_secrets {
                    write_secret!(&mut *tx, UPSERT_SECRET, id, s, now);
                }
                if let Some((status, reason)) = &w.status {
                    sqlx::query(
                        "UPDATE integrations SET status = $1, status_reason = $2, updated_at = $3 WHERE id = $4",
                    )
                    .bind(status)
                    .bind(reason)
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
                if let Some(audit) = &w.audit {
                    insert_audit!(&mut *tx, audit);
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn try_lock_oauth_refresh(
                &self,
                integration_id: &str,
                owner: &str,
                now: i64,
                until: i64,
            ) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE oauth_grants SET lock_owner = $1, lock_until = $2 WHERE integration_id = $3 \
                     AND (lock_owner IS NULL OR lock_until IS NULL OR lock_until < $4)",
                )
                .bind(owner)
                .bind(until)
                .bind(integration_id)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn release_oauth_refresh(&self, integration_id: &str, owner: &str) -> Result<()> {
                sqlx::query(
                    "UPDATE oauth_grants SET lock_owner = NULL, lock_until = NULL \
                     WHERE integration_id = $1 AND lock_owner = $2",
                )
                .bind(integration_id)
                .bind(owner)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn get_oauth_client(&self, issuer: &str, redirect_uri: &str) -> Result<Option<OAuthClientRow>> {
                Ok(sqlx::query_as::<_, OAuthClientRow>(
                    "SELECT issuer, redirect_uri, client_id, token_auth, secret_integration_id, \
                     client_secret_expires_at, created_at FROM oauth_clients \
                     WHERE issuer = $1 AND redirect_uri = $2",
                )
                .bind(issuer)
                .bind(redirect_uri)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn put_oauth_client(&self, c: OAuthClientRow) -> Result<()> {
                sqlx::query(
                    "INSERT INTO oauth_clients (issuer, redirect_uri, client_id, token_auth, secret_integration_id, \
                     client_secret_expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (issuer, redirect_uri) DO UPDATE SET client_id = excluded.client_id, \
                     token_auth = excluded.token_auth, secret_integration_id = excluded.secret_integration_id, \
                     client_secret_expires_at = excluded.client_secret_expires_at, created_at = excluded.created_at",
                )
                .bind(&c.issuer)
                .bind(&c.redirect_uri)
                .bind(&c.client_id)
                .bind(&c.token_auth)
                .bind(&c.secret_integration_id)
                .bind(c.client_secret_expires_at)
                .bind(c.created_at)
                .execute(&self.pool)
                .await
                .map_err(|e| map_err(e, "the OAuth client"))?;
                Ok(())
            }

            async fn delete_oauth_client(&self, issuer: &str, redirect_uri: &str) -> Result<()> {
                sqlx::query("DELETE FROM oauth_clients WHERE issuer = $1 AND redirect_uri = $2")
                    .bind(issuer)
                    .bind(redirect_uri)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn append_audit(&self, entry: NewAudit) -> Result<()> {
                insert_audit!(&self.pool, &entry);
                Ok(())
            }

            async fn list_audit(&self, workspace_id: &str, limit: i64, before: Option<i64>) -> Result<Vec<AuditRow>> {
                Ok(sqlx::query_as::<_, AuditRow>(
                    "SELECT id, workspace_id, actor_id, action, target, detail, created_at FROM audit_log \
                     WHERE workspace_id = $1 AND created_at < $2 ORDER BY created_at DESC, id DESC LIMIT $3",
                )
                .bind(workspace_id)
                .bind(before.unwrap_or(i64::MAX))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn list_audit_page(
                &self,
                workspace_id: &str,
                limit: i64,
                before: Option<(i64, &str)>,
            ) -> Result<Vec<AuditRow>> {
                let (at, id) = before.unwrap_or((i64::MAX, ""));
                Ok(sqlx::query_as::<_, AuditRow>(
                    "SELECT id, workspace_id, actor_id, action, target, detail, created_at FROM audit_log \
                     WHERE workspace_id = $1 AND (created_at < $2 OR (created_at = $2 AND id < $3)) \
                     ORDER BY created_at DESC, id DESC LIMIT $4",
                )
                .bind(workspace_id)
                .bind(at)
                .bind(id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }
        }
    };
}

store_impl!(SqliteStore, "sqlite", SQLITE_MIGRATOR);
store_impl!(PgStore, "postgres", PG_MIGRATOR);

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
