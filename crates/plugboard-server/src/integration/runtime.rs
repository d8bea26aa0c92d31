//! The runtime view: the MCP block materialised with secrets decrypted, audited on every read.

use axum::http::StatusCode;
use plugboard_store::{Integration, IntegrationStatus};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::App;

use super::stored::*;
use super::*;

/// The OAuth access token for `${oauth.access_token}` of a byo_oauth / mcp_oauth integration, refreshed first when
/// it expires within a minute ([`crate::oauth::access_token`]); `None` for other auth modes.
pub async fn oauth_access_token(
    app: &App,
    integration: &Integration,
) -> Result<Option<SecretString>, ApiError> {
    if integration.auth_mode.oauth_flow().is_none() {
        return Ok(None);
    }
    Ok(Some(crate::oauth::access_token(app, integration).await?))
}

/// `GET /api/v1/integrations/{id}/runtime`: the MCP block with every secret decrypted. Audited on every read
/// (before the secrets leave). 409 for an integration that is still waiting for OAuth, or disabled.
#[tracing::instrument(skip_all, fields(integration_id = %integration.id))]
pub async fn runtime(
    app: &App,
    principal: &Principal,
    integration: Integration,
) -> Result<IntegrationBody, ApiError> {
    if integration.status == IntegrationStatus::PendingOauth {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "oauth_pending",
            "this integration is waiting for its OAuth authorization to complete; it has no credentials to \
             hand out yet",
        ));
    }
    if !integration.enabled {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "integration_disabled",
            "this integration is disabled; enable it (PATCH `enabled`: true) to use it",
        ));
    }
    let stored = StoredMcp::parse(&integration.mcp).map_err(ApiError::internal)?;
    let rows = app.store.integration_secrets(&integration.id).await?;
    let mut values = open_fields(app, &rows).await?;
    for key in &stored.vaulted {
        if values.get(key).is_none() {
            return Err(ApiError::internal(format!(
                "integration {}: vault entry {}{key} is missing",
                integration.id,
                names::FIELD_PREFIX
            )));
        }
    }
    for (k, v) in &stored.plain {
        values.insert(k.clone(), v.clone());
    }
    let token = oauth_access_token(app, &integration).await?;
    let mcp = stored
        .render(
            values.map(),
            &app.config.public_url,
            token.as_ref().map(|t| t.expose_secret()),
        )
        .map_err(ApiError::internal)?;
    drop(values);
    app.store
        .append_audit(audit(
            &integration.workspace_id,
            principal,
            "integration.runtime_read",
            &integration.id,
            json!({"connector_id": integration.connector_id}),
        ))
        .await?;
    Ok(body_with_mcp(&integration, mcp))
}
