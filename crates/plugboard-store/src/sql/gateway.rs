//! The MCP gateway: agent tokens, aggregated sessions, default tool prefixes.

use super::*;

const AGENT_TOKEN_COLUMNS: &str =
    "id, workspace_id, crew_id, name, created_by, created_at, last_used_at, expires_at, revoked_at";

const GATEWAY_SESSION_COLUMNS: &str =
    "id_hash, token_id, scope, protocol_version, created_at, last_seen_at";

for_both_backends! {
    impl GatewayStore {
        async fn create_agent_token(&self, token: &NewAgentToken, audit: NewAudit) -> Result<AgentTokenRecord> {
            let rec = AgentTokenRecord {
                id: AgentTokenId::generate(),
                workspace_id: token.workspace_id.clone(),
                crew_id: token.crew_id.clone(),
                name: token.name.clone(),
                created_by: token.created_by.clone(),
                created_at: token.created_at,
                last_used_at: None,
                expires_at: token.expires_at,
                revoked_at: None,
            };
            let mut audit = audit;
            audit.target = Some(rec.id.to_string());
            let mut tx = begin!(self);
            require_exists!(&mut *tx, "SELECT id FROM workspaces WHERE id = $1", &token.workspace_id, "workspace");
            if let Some(crew_id) = &token.crew_id {
                let row: Option<(String,)> =
                    sqlx::query_as("SELECT id FROM crews WHERE id = $1 AND workspace_id = $2")
                        .bind(crew_id)
                        .bind(&token.workspace_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                if row.is_none() {
                    return Err(StoreError::NotFound("crew"));
                }
            }
            sqlx::query(
                "INSERT INTO agent_tokens (id, workspace_id, crew_id, name, token_hash, created_by, created_at, \
                 expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&rec.id)
            .bind(&rec.workspace_id)
            .bind(&rec.crew_id)
            .bind(&rec.name)
            .bind(&token.token_hash)
            .bind(&rec.created_by)
            .bind(rec.created_at)
            .bind(rec.expires_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| map_err(e, "an agent token with this hash"))?;
            insert_audit!(&mut *tx, &audit);
            commit!(tx);
            Ok(rec)
        }

        async fn list_agent_tokens(&self, workspace_id: &WorkspaceId) -> Result<Vec<AgentTokenRecord>> {
            Ok(sqlx::query_as::<_, AgentTokenRecord>(&format!(
                "SELECT {AGENT_TOKEN_COLUMNS} FROM agent_tokens WHERE workspace_id = $1 AND revoked_at IS NULL \
                 ORDER BY created_at, id"
            ))
            .bind(workspace_id)
            .fetch_all(&self.pool)
            .await?)
        }

        async fn get_agent_token(&self, id: &AgentTokenId) -> Result<Option<AgentTokenRecord>> {
            Ok(sqlx::query_as::<_, AgentTokenRecord>(&format!(
                "SELECT {AGENT_TOKEN_COLUMNS} FROM agent_tokens WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
        }

        async fn revoke_agent_token(&self, id: &AgentTokenId, audit: NewAudit) -> Result<bool> {
            let mut tx = begin!(self);
            let done = sqlx::query("UPDATE agent_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now_ms())
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            bump_generation!(&mut *tx);
            insert_audit!(&mut *tx, &audit);
            commit!(tx);
            Ok(true)
        }

        async fn agent_token_owner(&self, token_hash: &[u8]) -> Result<Option<AgentTokenOwner>> {
            Ok(sqlx::query_as::<_, AgentTokenOwner>(
                "SELECT id, workspace_id, crew_id, expires_at, last_used_at FROM agent_tokens \
                 WHERE token_hash = $1 AND revoked_at IS NULL",
            )
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?)
        }

        async fn touch_agent_token(&self, id: &AgentTokenId, now: i64, min_interval_ms: i64) -> Result<bool> {
            let done = sqlx::query(
                "UPDATE agent_tokens SET last_used_at = $1 \
                 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at <= $3)",
            )
            .bind(now)
            .bind(id)
            .bind(now.saturating_sub(min_interval_ms))
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() > 0)
        }

        async fn insert_gateway_session(&self, session: &GatewaySessionRow) -> Result<()> {
            sqlx::query(
                "INSERT INTO gateway_sessions (id_hash, token_id, scope, protocol_version, created_at, last_seen_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&session.id_hash)
            .bind(&session.token_id)
            .bind(&session.scope)
            .bind(&session.protocol_version)
            .bind(session.created_at)
            .bind(session.last_seen_at)
            .execute(&self.pool)
            .await
            .map_err(|e| map_err(e, "the gateway session"))?;
            Ok(())
        }

        async fn gateway_session(&self, id_hash: &str) -> Result<Option<GatewaySessionRow>> {
            Ok(sqlx::query_as::<_, GatewaySessionRow>(&format!(
                "SELECT {GATEWAY_SESSION_COLUMNS} FROM gateway_sessions WHERE id_hash = $1"
            ))
            .bind(id_hash)
            .fetch_optional(&self.pool)
            .await?)
        }

        async fn touch_gateway_session(&self, id_hash: &str, now: i64) -> Result<()> {
            sqlx::query("UPDATE gateway_sessions SET last_seen_at = $1 WHERE id_hash = $2")
                .bind(now)
                .bind(id_hash)
                .execute(&self.pool)
                .await?;
            Ok(())
        }

        async fn delete_gateway_session(&self, id_hash: &str) -> Result<bool> {
            let done = sqlx::query("DELETE FROM gateway_sessions WHERE id_hash = $1")
                .bind(id_hash)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected() > 0)
        }

        async fn delete_idle_gateway_sessions(&self, idle_before: i64) -> Result<u64> {
            let done = sqlx::query("DELETE FROM gateway_sessions WHERE last_seen_at < $1")
                .bind(idle_before)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected())
        }

        async fn assign_default_tool_prefixes(&self) -> Result<u64> {
            let missing: Vec<(IntegrationId, WorkspaceId, Option<String>, String)> = sqlx::query_as(
                "SELECT id, workspace_id, connector_id, name FROM integrations WHERE tool_prefix IS NULL \
                 ORDER BY created_at, id",
            )
            .fetch_all(&self.pool)
            .await?;
            let mut assigned = 0;
            for (id, workspace_id, connector_id, name) in missing {
                let mut tx = begin!(self);
                lock_row!(&mut *tx, "workspaces", &workspace_id);
                let prefix = free_tool_prefix!(&mut *tx, &workspace_id, connector_id.as_deref(), &name);
                let done = sqlx::query("UPDATE integrations SET tool_prefix = $1 WHERE id = $2 AND tool_prefix IS NULL")
                    .bind(&prefix)
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
                commit!(tx);
                assigned += done.rows_affected();
            }
            Ok(assigned)
        }
    }
}
