//! `GET /api/v1/connectors/oauth/callback`: completes a byo_oauth or mcp_oauth sign-in.
//!
//! Outcomes (each a small HTML page, see [`super::page`]):
//!
//! | situation | HTTP | integration |
//! |---|---|---|
//! | `state` missing, unknown, expired (10 min) or already used | 400 | unchanged |
//! | the provider sent `error` (e.g. `access_denied`) | 200 (the callback itself was valid; the page says access was not granted) | `error`, reason names the provider's code |
//! | `iss` present and not the issuer the flow started with | 400 | `error`; nothing is exchanged |
//! | no `code` | 400 | `error` |
//! | the exchange failed (unreachable, refused, unusable answer) | 502 | `error`, readable reason |
//! | tokens stored | 200 | `active` |
//!
//! The state is consumed (single use) before anything else, and the PKCE verifier is destroyed in every outcome
//! once the state was valid.

use axum::http::StatusCode;
use plugboard_store::{Integration, IntegrationStatus, NewAudit, OAuthFlow, OAuthTokenWrite};
use secrecy::ExposeSecret;
use serde_json::json;

use super::authorize::state_hash;
use super::page::Page;
use super::refresh::seal_tokens;
use super::token_endpoint::{token_request, EndpointError, TargetError};
use super::{error_code, sanitize};
use crate::state::App;
use crate::vault::names;

/// The callback's query parameters.
#[derive(Clone, Default)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

impl std::fmt::Debug for CallbackQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackQuery")
            .field("code", &self.code.as_ref().map(|_| "…"))
            .field("state", &self.state.as_ref().map(|_| "…"))
            .field("iss", &self.iss)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// Longest `state` looked up (ours are 43 characters).
const MAX_STATE_LEN: usize = 512;

fn invalid_state() -> Page {
    Page::new(
        StatusCode::BAD_REQUEST,
        "This sign-in link is no longer valid",
        "The sign-in state is unknown, has expired (after 10 minutes) or was already used. Start connecting \
         again from Plugboard.",
    )
}

fn internal(cause: impl std::fmt::Display) -> Page {
    tracing::error!(error = %cause, "oauth callback failed");
    Page::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "Plugboard could not finish the sign-in. Try connecting again; if it keeps failing, ask your \
         administrator to look at the server log.",
    )
}

/// A store failure: 503 when the database is unavailable (try again shortly), else as [`internal`].
fn store_failure(e: plugboard_store::StoreError) -> Page {
    if !e.is_unavailable() {
        return internal(e);
    }
    tracing::warn!(error = %e, "oauth callback: database unavailable");
    Page::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "Plugboard is briefly unavailable",
        "Plugboard could not reach its database to finish the sign-in. Reload this page in a few seconds; if the \
         sign-in link has expired by then, start connecting again from Plugboard.",
    )
}

/// Handles one callback at time `now` (ms since the epoch).
#[tracing::instrument(skip_all)]
pub async fn complete(app: &App, q: &CallbackQuery, now: i64) -> Page {
    let Some(state) = q
        .state
        .as_deref()
        .filter(|s| !s.is_empty() && s.len() <= MAX_STATE_LEN)
    else {
        return invalid_state();
    };
    let row = match app.store.consume_oauth_state(&state_hash(state), now).await {
        Ok(Some(row)) => row,
        Ok(None) => return invalid_state(),
        Err(e) => return store_failure(e),
    };
    let integration = match app.store.get_integration(&row.integration_id).await {
        Ok(Some(i)) => i,
        Ok(None) => return invalid_state(),
        Err(e) => return store_failure(e),
    };
    tracing::info!(integration_id = %integration.id, flow = %row.flow, "oauth callback");
    let id = integration.id.as_str();
    let name = integration.name.clone();

    let code = q.code.as_deref().filter(|c| !c.is_empty());
    let redact: Vec<&str> = code.into_iter().chain(Some(state)).collect();

    if let Some(err) = q.error.as_deref() {
        let code_text = error_code(err).unwrap_or_else(|| "error".into());
        let description = q
            .error_description
            .as_deref()
            .map(|d| sanitize(d, 200, &redact))
            .filter(|d| !d.is_empty());
        let reason = match &description {
            Some(d) => format!(
                "The provider did not grant access ({code_text}: {d}). Connect again to retry."
            ),
            None => {
                format!("The provider did not grant access ({code_text}). Connect again to retry.")
            }
        };
        fail(
            app,
            &integration,
            row.flow,
            &reason,
            "integration.oauth_denied",
        )
        .await;
        return Page::new(
            StatusCode::OK,
            "Access was not granted",
            format!("{name}: {reason}"),
        )
        .for_integration(id, IntegrationStatus::Error);
    }

    if row.iss_required && q.iss.is_none() {
        let reason = "The authorization server promised to name itself in its answer (RFC 9207) but did not; \
                      nothing was exchanged. Connect again."
            .to_string();
        tracing::warn!(integration_id = %id, "oauth callback without the promised iss");
        fail(
            app,
            &integration,
            row.flow,
            &reason,
            "integration.oauth_error",
        )
        .await;
        return Page::new(
            StatusCode::BAD_REQUEST,
            "Sign-in refused",
            format!("{name}: {reason}"),
        )
        .for_integration(id, IntegrationStatus::Error);
    }
    if let (Some(expected), Some(got)) = (row.issuer.as_deref(), q.iss.as_deref()) {
        if got != expected {
            let reason = format!(
                "The sign-in answer came from another authorization server ({}) than the one it was started \
                 with ({}); nothing was exchanged. Connect again.",
                sanitize(got, 200, &redact),
                sanitize(expected, 200, &[])
            );
            tracing::warn!(integration_id = %id, "oauth callback issuer mismatch");
            fail(
                app,
                &integration,
                row.flow,
                &reason,
                "integration.oauth_error",
            )
            .await;
            return Page::new(
                StatusCode::BAD_REQUEST,
                "Sign-in refused",
                format!("{name}: {reason}"),
            )
            .for_integration(id, IntegrationStatus::Error);
        }
    }

    let Some(code) = code.filter(|c| c.len() <= 4096) else {
        let reason = "The provider's answer had no authorization code. Connect again.".to_string();
        fail(
            app,
            &integration,
            row.flow,
            &reason,
            "integration.oauth_error",
        )
        .await;
        return Page::new(
            StatusCode::BAD_REQUEST,
            "Sign-in failed",
            format!("{name}: {reason}"),
        )
        .for_integration(id, IntegrationStatus::Error);
    };

    match exchange(
        app,
        &integration,
        row.flow,
        &row.redirect_uri,
        code,
        &redact,
    )
    .await
    {
        Ok(Exchanged::Tokens(write)) => match app.store.write_oauth_tokens(*write).await {
            Ok(_) => {
                tracing::info!(integration_id = %id, "oauth tokens stored; integration active");
                Page::new(
                    StatusCode::OK,
                    "Connected",
                    format!("{name} is connected and ready to use."),
                )
                .for_integration(id, IntegrationStatus::Active)
            }
            Err(e) => internal(e),
        },
        Ok(Exchanged::Failed(reason)) => {
            fail(
                app,
                &integration,
                row.flow,
                &reason,
                "integration.oauth_error",
            )
            .await;
            Page::new(
                StatusCode::BAD_GATEWAY,
                "Sign-in failed",
                format!("{name}: {reason}"),
            )
            .for_integration(id, IntegrationStatus::Error)
        }
        Err(page) => page,
    }
}

enum Exchanged {
    Tokens(Box<OAuthTokenWrite>),
    /// A readable reason (no code, secret or token in it).
    Failed(String),
}

async fn exchange(
    app: &App,
    integration: &Integration,
    flow: OAuthFlow,
    redirect_uri: &str,
    code: &str,
    redact: &[&str],
) -> Result<Exchanged, Page> {
    let id = &integration.id;
    let secrets = app.store.integration_secrets(id).await.map_err(internal)?;
    let verifier = match secrets.iter().find(|s| s.name == names::PKCE_VERIFIER) {
        Some(row) => Some(
            app.vault
                .open(row)
                .await
                .and_then(|p| p.into_string().map_err(Into::into))
                .map_err(internal)?,
        ),
        None => None,
    };
    let (target, resource, needs_verifier) = match flow {
        OAuthFlow::Mcp => {
            let grant = match app.store.get_oauth_grant(id).await.map_err(internal)? {
            Some(g) => g,
            None => {
                return Ok(Exchanged::Failed(
                    "The sign-in was not started properly (no authorization server recorded). Connect again."
                        .into(),
                ))
            }
        };
            let target = super::mcp::token_target(app, integration, &grant).await;
            (target, grant.resource.clone(), true)
        }
        OAuthFlow::Byo => {
            let pkce = super::byo::manifest(app, integration)
                .map(|m| super::byo::wants_pkce(&m))
                .unwrap_or(false);
            (super::byo::token_target(app, integration).await, None, pkce)
        }
    };
    let target = match target {
        Ok(t) => t,
        Err(TargetError::Config(reason)) => return Ok(Exchanged::Failed(reason)),
        Err(TargetError::Internal) => return Err(internal("token target")),
    };
    if needs_verifier && verifier.is_none() {
        return Ok(Exchanged::Failed(
            "The PKCE verifier of this sign-in is missing (was it started twice?). Connect again."
                .into(),
        ));
    }
    let mut form = vec![
        ("grant_type".to_string(), "authorization_code".to_string()),
        ("code".to_string(), code.to_string()),
        ("redirect_uri".to_string(), redirect_uri.to_string()),
    ];
    if let Some(v) = &verifier {
        form.push(("code_verifier".into(), v.expose_secret().to_string()));
    }
    if let Some(r) = resource {
        form.push(("resource".into(), r));
    }
    form.extend(target.extra);
    let mut redact: Vec<&str> = redact.to_vec();
    if let Some(v) = &verifier {
        redact.push(v.expose_secret());
    }
    let result = token_request(
        &app.egress,
        &target.endpoint,
        &form,
        &target.client,
        &redact,
    )
    .await;
    drop(form);
    match result {
        Ok(tokens) => {
            let now = app.clock.now_ms();
            let (secrets, expires_at) =
                seal_tokens(app, id, &tokens, now).await.map_err(internal)?;
            let mut delete = vec![names::PKCE_VERIFIER.to_string()];
            if tokens.refresh_token.is_none() {
                // A refresh token of an earlier sign-in belongs to the old grant.
                delete.push(names::REFRESH_TOKEN.to_string());
            }
            Ok(Exchanged::Tokens(Box::new(OAuthTokenWrite {
                integration_id: id.clone(),
                flow,
                upsert_secrets: secrets,
                delete_secrets: delete,
                expires_at: Some(expires_at),
                status: Some((IntegrationStatus::Active, None)),
                lock_owner: None,
                written_at: now,
                audit: Some(NewAudit {
                    workspace_id: Some(integration.workspace_id.clone()),
                    actor_id: None,
                    action: "integration.oauth_connected".into(),
                    target: Some(id.to_string()),
                    detail: json!({
                        "flow": flow,
                        "refresh_token": tokens.refresh_token.is_some(),
                        "expires_in": tokens.expires_in,
                    }),
                }),
            })))
        }
        Err(e) => {
            if flow == OAuthFlow::Mcp && e.code() == Some("invalid_client") {
                forget_client(app, integration, redirect_uri).await;
            }
            let reason = match &e {
                EndpointError::OAuth { .. } => format!(
                    "The provider refused the authorization code ({}). Connect again.",
                    e.message()
                ),
                _ => format!("The token exchange failed: {}. Connect again.", e.message()),
            };
            Ok(Exchanged::Failed(reason))
        }
    }
}

/// The registered client was refused: forget it so the next start registers a new one.
async fn forget_client(app: &App, integration: &Integration, redirect_uri: &str) {
    if let Ok(Some(grant)) = app.store.get_oauth_grant(&integration.id).await {
        if let Some(issuer) = grant.issuer {
            if let Err(e) = app.store.delete_oauth_client(&issuer, redirect_uri).await {
                tracing::warn!(error = %e, "could not forget a refused oauth client");
            }
        }
    }
}

/// Turns the integration `error` with `reason` and destroys the PKCE verifier.
async fn fail(app: &App, integration: &Integration, flow: OAuthFlow, reason: &str, action: &str) {
    let write = OAuthTokenWrite {
        integration_id: integration.id.clone(),
        flow,
        upsert_secrets: vec![],
        delete_secrets: vec![names::PKCE_VERIFIER.to_string()],
        expires_at: None,
        status: Some((IntegrationStatus::Error, Some(reason.to_string()))),
        lock_owner: None,
        audit: Some(NewAudit {
            workspace_id: Some(integration.workspace_id.clone()),
            actor_id: None,
            action: action.to_string(),
            target: Some(integration.id.to_string()),
            detail: json!({ "reason": reason }),
        }),
        written_at: app.clock.now_ms(),
    };
    if let Err(e) = app.store.write_oauth_tokens(write).await {
        tracing::error!(error = %e, "could not record the failed oauth callback");
    }
}
