//! Install from the catalog, and the byo_oauth authorization URL (install and reconnect).

use axum::http::StatusCode;
use plugboard_catalog::{AuthMode, Manifest, RenderContext};
use plugboard_store::{
    now_ms, IntegrationId, IntegrationStatus, NewIdempotency, NewIntegration, NewOAuthState,
    NewSecret, OAuthFlow, UserId, WorkspaceId,
};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::{truncate, IdempotencyKey};
use crate::oauth::authorize::{AuthorizationParams, AuthorizationRequest};
use crate::state::App;
use crate::vault::names;

use super::idempotency::*;
use super::stored::*;
use super::*;

/// `POST /api/v1/connectors/{id}/install`, after authentication, `workspace_id`, the role check, the connector
/// (404), the `Idempotency-Key` and the body's shape (400): replay or 422, fields (400), crew (400), then one
/// transaction.
#[tracing::instrument(skip_all, fields(connector_id = %truncate(&m.id, 64)))]
pub async fn install(
    app: &App,
    principal: &Principal,
    workspace_id: &WorkspaceId,
    m: &Manifest,
    key: IdempotencyKey,
    request: InstallRequest,
) -> Result<Created, ApiError> {
    let idem = key.0.map(|key| Idem {
        fingerprint: fingerprint(&app.vault, "install", &m.id, &request.raw),
        key,
    });
    if let Some(idem) = &idem {
        if let Some(first) = replay(app, workspace_id, principal, idem).await? {
            return Ok(first);
        }
    }
    let InstallRequest {
        crew_id,
        name,
        fields: submitted,
        raw,
    } = request;
    drop(raw);
    let values = FieldValues::from(m.validate_submission(&submitted).map_err(field_error)?);
    drop(submitted);
    let name = name.unwrap_or_else(|| m.name.clone());
    let crew_id = check_crew(app, workspace_id, crew_id.as_deref()).await?;

    let id = IntegrationId::generate();
    let (plain, vaulted) = split_values(m, &values);
    let mut secrets = seal_fields(app, &id, &values, &vaulted).await?;
    let (status, next_step, oauth_url, oauth_state) = match m.auth_mode {
        AuthMode::Pat | AuthMode::ConnString | AuthMode::None => {
            (IntegrationStatus::Active, "", None, None)
        }
        AuthMode::McpOauth => (IntegrationStatus::PendingOauth, "mcp_oauth", None, None),
        AuthMode::ByoOauth => {
            let start = byo_oauth_start(app, m, &id, &values).await?;
            if let Some(v) = start.verifier {
                secrets.push(v);
            }
            (
                IntegrationStatus::PendingOauth,
                "oauth",
                Some(start.url),
                Some(start.state),
            )
        }
    };
    drop(values);
    let stored = StoredMcp::from_manifest(m, plain, vaulted).to_json()?;
    // The replayable copy of the response leaves the oauth_url out (it holds the client id and the state); with an
    // Idempotency-Key it is sealed instead, for a replay to put back.
    if let (Some(_), Some(url)) = (&idem, &oauth_url) {
        secrets.push(
            app.vault
                .seal(&id, names::AUTHORIZE_URL, url.as_bytes())
                .await
                .map_err(vault_err)?,
        );
    }
    let mut body = InstallBody {
        integration_id: id.clone(),
        next_step: next_step.to_string(),
        oauth_url: None,
    };
    let replayable = serde_json::to_string(&body).map_err(ApiError::internal)?;
    body.oauth_url = oauth_url;
    let response = serde_json::to_string(&body).map_err(ApiError::internal)?;
    let new = NewIntegration {
        id: id.clone(),
        workspace_id: workspace_id.clone(),
        crew_id: crew_id.clone(),
        connector_id: Some(m.id.clone()),
        name,
        auth_mode: m.auth_mode.into(),
        status,
        mcp: stored,
        created_by: principal.user_id.clone(),
        secrets,
        oauth_state,
        audit: audit(
            workspace_id,
            principal,
            "integration.install",
            &id,
            json!({"connector_id": m.id, "auth_mode": m.auth_mode.as_str(), "crew_id": crew_id, "status": status}),
        ),
        idempotency: idem.as_ref().map(|i| NewIdempotency {
            key: i.key.clone(),
            fingerprint: i.fingerprint.clone(),
            status: i64::from(StatusCode::CREATED.as_u16()),
            response: replayable,
        }),
    };
    write_integration(app, principal, new, idem.as_ref(), response).await
}

pub(crate) struct OAuthStart {
    url: String,
    state: NewOAuthState,
    verifier: Option<NewSecret>,
}

/// The byo_oauth authorization URL: the manifest's `authorization_url` rendered with the fields, plus
/// `response_type=code`, `client_id`, `redirect_uri`, `scope`, a single-use `state` (only its SHA-256 is stored)
/// and, with PKCE, an S256 `code_challenge` whose verifier is sealed in the vault; then `authorize_params`.
pub(crate) async fn byo_oauth_start(
    app: &App,
    m: &Manifest,
    integration_id: &IntegrationId,
    values: &FieldValues,
) -> Result<OAuthStart, ApiError> {
    let oauth = m
        .oauth
        .as_ref()
        .ok_or_else(|| ApiError::internal("byo_oauth manifest without an oauth block"))?;
    let instance_url = app.config.public_url.as_str();
    let derived = m
        .resolve_derived(values.map(), instance_url)
        .map_err(ApiError::internal)?;
    let ctx = RenderContext {
        fields: values.map(),
        derived: &derived,
        instance_url,
        oauth_access_token: None,
    };
    let rendered = oauth
        .authorization_url
        .render(&ctx)
        .map_err(ApiError::internal)?;
    let endpoint = url::Url::parse(&rendered)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
        .ok_or_else(|| {
            ApiError::invalid_field(
                "the connector's authorization_url does not render to an http(s) URL with the submitted fields",
            )
        })?;
    let client_id = values
        .get("client_id")
        .ok_or_else(|| ApiError::invalid_field("field `client_id`: is required"))?;
    let redirect_uri = app.config.oauth_redirect_uri();
    let mut extra = Vec::with_capacity(oauth.authorize_params.len());
    for (k, t) in &oauth.authorize_params {
        extra.push((k.clone(), t.render(&ctx).map_err(ApiError::internal)?));
    }
    let request = AuthorizationRequest::new(oauth.pkce);
    let scope = oauth.scope_string();
    let url = request.url(
        &endpoint,
        &AuthorizationParams {
            client_id,
            redirect_uri: &redirect_uri,
            scope: Some(&scope),
            extra: &extra,
        },
    );
    let verifier = match &request.pkce {
        Some(pkce) => Some(
            app.vault
                .seal(
                    integration_id,
                    names::PKCE_VERIFIER,
                    pkce.verifier().expose_secret().as_bytes(),
                )
                .await
                .map_err(vault_err)?,
        ),
        None => None,
    };
    Ok(OAuthStart {
        url: url.to_string(),
        state: request.state_record(OAuthFlow::Byo, &redirect_uri, None, false, now_ms()),
        verifier,
    })
}

/// Re-authorisation of an installed byo_oauth integration (`POST /integrations/{id}/oauth/start`): a new
/// authorization URL from the manifest and the fields in the vault, a new single-use state (earlier unused ones are
/// dropped) and, with PKCE, a new sealed verifier. The tokens already stored stay until the callback replaces them,
/// so an `error` integration can be reconnected without a new install.
pub async fn byo_oauth_restart(
    app: &App,
    integration: &plugboard_store::Integration,
    actor_id: &UserId,
) -> Result<String, ApiError> {
    use crate::oauth::token_endpoint::TargetError;
    let target_err = |e: TargetError| match e {
        TargetError::Config(msg) => ApiError::conflict(msg),
        TargetError::Internal => {
            ApiError::internal("cannot read the byo_oauth integration's stored fields")
        }
    };
    let m = crate::oauth::byo::manifest(app, integration).map_err(target_err)?;
    let values = FieldValues::from(
        crate::oauth::byo::fields(app, &integration.id)
            .await
            .map_err(target_err)?,
    );
    let start = byo_oauth_start(app, &m, &integration.id, &values).await?;
    drop(values);
    let (upsert_secrets, delete_secrets) = match start.verifier {
        Some(v) => (vec![v], Vec::new()),
        None => (Vec::new(), vec![names::PKCE_VERIFIER.to_string()]),
    };
    app.store
        .start_oauth_flow(plugboard_store::OAuthFlowStart {
            integration_id: integration.id.clone(),
            state: start.state,
            grant: None,
            upsert_secrets,
            delete_secrets,
            audit: Some(plugboard_store::NewAudit {
                workspace_id: Some(integration.workspace_id.clone()),
                actor_id: Some(actor_id.clone()),
                action: "integration.oauth_start".into(),
                target: Some(integration.id.to_string()),
                detail: json!({ "flow": OAuthFlow::Byo.as_str() }),
            }),
        })
        .await?;
    Ok(start.url)
}
