//! OAuth single-use states, grants (token metadata and the refresh lease) and dynamically registered clients.

use super::*;

for_both_backends! {
    impl OAuthStore {
        async fn consume_oauth_state(&self, state_hash: &[u8], now: i64) -> Result<Option<OAuthStateRow>> {
            let mut tx = begin!(self);
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
            commit!(tx);
            Ok(row)
        }

        async fn start_oauth_flow(&self, start: OAuthFlowStart) -> Result<()> {
            let now = now_ms();
            let id = &start.integration_id;
            let mut tx = begin!(self);
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
                .bind(g.flow)
                .bind(&g.issuer)
                .bind(&g.token_endpoint)
                .bind(&g.resource)
                .bind(&g.client_id)
                .bind(g.token_auth)
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
            commit!(tx);
            Ok(())
        }

        async fn get_oauth_grant(&self, integration_id: &IntegrationId) -> Result<Option<OAuthGrant>> {
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
            let now = w.written_at;
            let id = &w.integration_id;
            let mut tx = begin!(self);
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
                    .bind(w.flow)
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
            commit!(tx);
            Ok(true)
        }

        async fn try_lock_oauth_refresh(
            &self,
            integration_id: &IntegrationId,
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

        async fn release_oauth_refresh(&self, integration_id: &IntegrationId, owner: &str) -> Result<()> {
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
            .bind(c.token_auth)
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
    }
}
