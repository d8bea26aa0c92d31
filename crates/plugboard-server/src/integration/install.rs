//! Install from the catalog, and the byo_oauth authorization URL.

use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use plugboard_catalog::{AuthMode, Manifest, RenderContext};
use plugboard_store::{new_id, now_ms, NewIdempotency, NewIntegration, NewOAuthState, NewSecret};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::{json_object, only_keys, truncate};
use crate::state::App;

use super::idempotency::*;
use super::stored::*;
use super::*;

/// `POST /api/v1/connectors/{id}/install`, after authentication, `workspace_id` and the role check: connector (404),
/// Idempotency-Key and body (400), replay or 422, fields (400), crew (400), then one transaction.
#[tracing::instrument(skip_all, fields(connector_id = %truncate(connector_id, 64)))]
pub async fn install(
    app: &App,
    principal: &Principal,
    workspace_id: &str,
    connector_id: &str,
    headers: &HeaderMap,
    raw_body: &[u8],
) -> Result<Created, ApiError> {
    let entry = app
        .catalog
        .catalog
        .get(connector_id)
        .ok_or_else(|| ApiError::not_found("connector"))?;
    let m = &entry.manifest;
    let key = idempotency_key(headers)?;
    let body = if raw_body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        json_object(raw_body)?
    };
    only_keys(&body, &["crew_id", "name", "fields"])?;
    let idem = key.map(|key| Idem {
        fingerprint: fingerprint(&app.vault, "install", &m.id, &body),
        key,
    });
    if let Some(idem) = &idem {
        if let Some(first) = replay(app, workspace_id, principal, idem).await? {
            return Ok(first);
        }
    }
    let submitted = match body.get("fields") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(f)) => f.clone(),
        Some(_) => return Err(ApiError::invalid_field("`fields` must be an object")),
    };
    let values = FieldValues::from(m.validate_submission(&submitted).map_err(field_error)?);
    drop(submitted);
    let name = opt_name(&body)?.unwrap_or_else(|| m.name.clone());
    let crew_id = check_crew(app, workspace_id, &body).await?;

    let id = new_id();
    let (plain, vaulted) = split_values(m, &values);
    let mut secrets = seal_fields(app, &id, &values, &vaulted).await?;
    let (status, next_step, oauth_url, oauth_state) = match m.auth_mode {
        AuthMode::Pat | AuthMode::ConnString | AuthMode::None => ("active", "", None, None),
        AuthMode::McpOauth => ("pending_oauth", "mcp_oauth", None, None),
        AuthMode::ByoOauth => {
            let start = byo_oauth_start(app, m, &id, &values).await?;
            if let Some(v) = start.verifier {
                secrets.push(v);
            }
            ("pending_oauth", "oauth", Some(start.url), Some(start.state))
        }
    };
    drop(values);
    let stored = StoredMcp::from_manifest(m, plain, vaulted).to_json()?;
    // The replayable copy of the response leaves the oauth_url out (it holds the client id and the state); with an
    // Idempotency-Key it is sealed instead, for a replay to put back.
    if let (Some(_), Some(url)) = (&idem, &oauth_url) {
        secrets.push(
            app.vault
                .seal(&id, AUTHORIZE_URL_SECRET, url.as_bytes())
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
        workspace_id: workspace_id.to_string(),
        crew_id: crew_id.clone(),
        connector_id: Some(m.id.clone()),
        name,
        auth_mode: m.auth_mode.as_str().to_string(),
        status: status.to_string(),
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
    integration_id: &str,
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
    let mut url = url::Url::parse(&rendered)
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
    let state = random_b64url(32);
    let state_hash = Sha256::digest(state.as_bytes()).to_vec();
    let redirect_uri = app.config.oauth_redirect_uri();
    let mut extra = Vec::with_capacity(oauth.authorize_params.len());
    for (k, t) in &oauth.authorize_params {
        extra.push((k.clone(), t.render(&ctx).map_err(ApiError::internal)?));
    }
    let verifier = if oauth.pkce {
        let verifier = SecretString::from(random_b64url(32));
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(Sha256::digest(verifier.expose_secret().as_bytes()));
        let sealed = app
            .vault
            .seal(
                integration_id,
                PKCE_VERIFIER_SECRET,
                verifier.expose_secret().as_bytes(),
            )
            .await
            .map_err(vault_err)?;
        Some((sealed, challenge))
    } else {
        None
    };
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code");
        q.append_pair("client_id", client_id);
        q.append_pair("redirect_uri", &redirect_uri);
        let scope = oauth.scope_string();
        if !scope.is_empty() {
            q.append_pair("scope", &scope);
        }
        q.append_pair("state", &state);
        if let Some((_, challenge)) = &verifier {
            q.append_pair("code_challenge", challenge);
            q.append_pair("code_challenge_method", "S256");
        }
        for (k, v) in &extra {
            q.append_pair(k, v);
        }
    }
    Ok(OAuthStart {
        url: url.to_string(),
        state: NewOAuthState {
            state_hash,
            flow: BYO_OAUTH_FLOW.to_string(),
            redirect_uri,
            issuer: None,
            iss_required: false,
            expires_at: now_ms().saturating_add(OAUTH_STATE_TTL_MS),
        },
        verifier: verifier.map(|(s, _)| s),
    })
}

/// Re-authorisation of an installed byo_oauth integration (`POST /integrations/{id}/oauth/start`): a new
/// authorization URL from the manifest and the fields in the vault, a new single-use state (earlier unused ones are
/// dropped) and, with PKCE, a new sealed verifier. The tokens already stored stay until the callback replaces them,
/// so an `error` integration can be reconnected without a new install.
pub(crate) async fn byo_oauth_restart(
    app: &App,
    integration: &plugboard_store::Integration,
    actor_id: &str,
) -> Result<String, ApiError> {
    use crate::oauth::tokens::TargetError;
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
    let start = byo_oauth_start(app, m, &integration.id, &values).await?;
    drop(values);
    let (upsert_secrets, delete_secrets) = match start.verifier {
        Some(v) => (vec![v], Vec::new()),
        None => (Vec::new(), vec![PKCE_VERIFIER_SECRET.to_string()]),
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
                actor_id: Some(actor_id.to_string()),
                action: "integration.oauth_start".into(),
                target: Some(integration.id.clone()),
                detail: json!({ "flow": crate::oauth::FLOW_BYO }),
            }),
        })
        .await?;
    Ok(start.url)
}
