//! Integrations with their sealed secrets and idempotency records.

use super::*;

for_both_backends! {
    impl IntegrationStore {
        async fn create_integration(&self, new: NewIntegration) -> Result<Integration> {
            let now = now_ms();
            let mut tx = begin!(self);
            // Serialises installs into one workspace, so two of them cannot pick the same default prefix.
            lock_row!(&mut *tx, "workspaces", &new.workspace_id);
            let prefix = free_tool_prefix!(&mut *tx, &new.workspace_id, new.connector_id.as_deref(), &new.name);
            sqlx::query(
                "INSERT INTO integrations (id, workspace_id, crew_id, connector_id, name, auth_mode, status, \
                 enabled, mcp, created_by, created_at, updated_at, tool_prefix) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(&new.id)
            .bind(&new.workspace_id)
            .bind(&new.crew_id)
            .bind(&new.connector_id)
            .bind(&new.name)
            .bind(new.auth_mode)
            .bind(new.status)
            .bind(true)
            .bind(&new.mcp)
            .bind(&new.created_by)
            .bind(now)
            .bind(now)
            .bind(&prefix)
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
            commit!(tx);
            Ok(row)
        }

        async fn get_integration(&self, id: &IntegrationId) -> Result<Option<Integration>> {
            Ok(sqlx::query_as::<_, Integration>(&format!(
                "SELECT {INTEGRATION_COLUMNS} FROM integrations WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
        }

        async fn list_integrations(&self, workspace_id: &WorkspaceId, crew_id: Option<&CrewId>) -> Result<Vec<Integration>> {
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

        async fn credential_seal_pending(&self) -> Result<Vec<IntegrationId>> {
            let rows: Vec<(IntegrationId,)> = sqlx::query_as(
                "SELECT p.integration_id FROM credential_seal_pending p \
                 JOIN integrations i ON i.id = p.integration_id ORDER BY i.created_at, i.id",
            )
            .fetch_all(&self.pool)
            .await?;
            Ok(rows.into_iter().map(|(id,)| id).collect())
        }

        async fn credential_seal_done(&self, id: &IntegrationId) -> Result<()> {
            sqlx::query("DELETE FROM credential_seal_pending WHERE integration_id = $1")
                .bind(id)
                .execute(&self.pool)
                .await?;
            Ok(())
        }

        async fn update_integration(&self, id: &IntegrationId, patch: IntegrationPatch) -> Result<Option<Integration>> {
            let now = now_ms();
            let mut tx = begin!(self);
            // A write first: on SQLite the transaction takes the write lock now (waiting for it under the busy
            // timeout) instead of reading first and failing to upgrade when another connection wrote meanwhile
            // (the gateway's audit writers, say).
            let touched = sqlx::query("UPDATE integrations SET updated_at = $1 WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if touched.rows_affected() == 0 {
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
            if let Some((allow, deny)) = &patch.tools {
                sqlx::query("UPDATE integrations SET tool_allow = $1, tool_deny = $2 WHERE id = $3")
                    .bind(allow)
                    .bind(deny)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            if patch.reset_tool_prefix {
                let (workspace_id, connector_id, name): (WorkspaceId, Option<String>, String) = sqlx::query_as(
                    "SELECT workspace_id, connector_id, name FROM integrations WHERE id = $1",
                )
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
                // As at install: under the workspace's lock, the first free default; its own prefix does not count.
                lock_row!(&mut *tx, "workspaces", &workspace_id);
                sqlx::query("UPDATE integrations SET tool_prefix = NULL WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                let prefix = free_tool_prefix!(&mut *tx, &workspace_id, connector_id.as_deref(), &name);
                sqlx::query("UPDATE integrations SET tool_prefix = $1 WHERE id = $2")
                    .bind(&prefix)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| map_err(e, "an integration with this tool_prefix in the workspace"))?;
            }
            if let Some(tool_prefix) = &patch.tool_prefix {
                sqlx::query("UPDATE integrations SET tool_prefix = $1 WHERE id = $2")
                    .bind(tool_prefix)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| map_err(e, "an integration with this tool_prefix in the workspace"))?;
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
            if let Some(audit) = &patch.audit {
                insert_audit!(&mut *tx, audit);
            }
            let row = sqlx::query_as::<_, Integration>(&format!(
                "SELECT {INTEGRATION_COLUMNS} FROM integrations WHERE id = $1"
            ))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            commit!(tx);
            Ok(Some(row))
        }

        async fn delete_integration(&self, id: &IntegrationId, audit: NewAudit) -> Result<bool> {
            let mut tx = begin!(self);
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
            commit!(tx);
            Ok(true)
        }

        async fn integration_secrets(&self, integration_id: &IntegrationId) -> Result<Vec<SecretRow>> {
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
            workspace_id: &WorkspaceId,
            user_id: &UserId,
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
    }
}
