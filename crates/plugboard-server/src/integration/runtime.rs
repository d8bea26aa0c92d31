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
    let (mcp, _secrets) = materialize(app, &integration).await?;
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

/// The integration's MCP block rendered with its secrets (an OAuth access token refreshed first when it is due),
/// and every secret value that went into it (field values and the token), so a caller can redact them from
/// anything an upstream sends back. Whether the integration may be used (status, `enabled`) is the caller's check.
pub async fn materialize(
    app: &App,
    integration: &Integration,
) -> Result<(serde_json::Value, Vec<SecretString>), ApiError> {
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
    let mut secrets: Vec<SecretString> = stored
        .vaulted
        .iter()
        .filter_map(|k| values.get(k))
        .filter(|v| !v.is_empty())
        .map(|v| SecretString::from(v.to_owned()))
        .collect();
    for (k, v) in &stored.plain {
        values.insert(k.clone(), v.clone());
    }
    let token = oauth_access_token(app, integration).await?;
    let mcp = stored
        .render(
            values.map(),
            &app.config.public_url,
            token.as_ref().map(|t| t.expose_secret()),
        )
        .map_err(ApiError::internal)?;
    drop(values);
    if let Some(t) = token {
        secrets.push(t);
    }
    Ok((mcp, secrets))
}
