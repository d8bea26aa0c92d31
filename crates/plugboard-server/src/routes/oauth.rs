//! OAuth endpoints: the callback both flows end on (no bearer token; HTML pages) and the start of an mcp_oauth
//! flow (MANAGER+ on the integration's workspace). The work is in [`crate::oauth`].

use axum::extract::State;
use axum::response::Response;
use axum::Json;
use plugboard_store::OAuthFlow;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::{ApiPath, QueryPairs};
use crate::integration;
use crate::oauth::callback::{self, CallbackQuery};
use crate::oauth::{mcp, page};
use crate::roles;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(oauth_callback))
        .routes(routes!(oauth_start))
}

/// The answer of an mcp_oauth start.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct OAuthStartBody {
    /// The authorization URL to open (in a popup); it ends on the callback.
    pub oauth_url: String,
}

/// Completes a byo_oauth or mcp_oauth sign-in. Opened by the person's browser: answers a small HTML page (200
/// connected, or access not granted; 400 unknown / expired / used state, issuer mismatch or no code; 502 the token
/// exchange failed) that notifies `window.opener` with `postMessage({type: "plugboard:oauth", integration_id,
/// status})` and closes.
#[utoipa::path(get, path = "/api/v1/connectors/oauth/callback", tag = "oauth",
    params(
        ("code" = Option<String>, Query, description = "the authorization code"),
        ("state" = String, Query, description = "the single-use state from the authorization URL"),
        ("iss" = Option<String>, Query, description = "the authorization server's issuer (RFC 9207)"),
        ("error" = Option<String>, Query, description = "the provider's error code, e.g. access_denied"),
        ("error_description" = Option<String>, Query, description = "the provider's explanation")),
    responses(
        (status = 200, description = "connected, or the provider did not grant access (HTML)", content_type = "text/html"),
        (status = 400, description = "unknown, expired or used state; issuer mismatch; no code (HTML)", content_type = "text/html"),
        (status = 502, description = "the token exchange failed (HTML)", content_type = "text/html")))]
pub async fn oauth_callback(State(app): State<AppState>, query: QueryPairs) -> Response {
    let get = |k: &str| query.get(k).map(str::to_string);
    let q = CallbackQuery {
        code: get("code"),
        state: get("state"),
        iss: get("iss"),
        error: get("error"),
        error_description: get("error_description"),
    };
    drop(query);
    let page = callback::complete(&app, &q, plugboard_store::now_ms()).await;
    page::render(&page, &app.config.public_url)
}

/// Starts (or restarts, to reconnect) the authorization of an OAuth integration. byo_oauth: a new authorization URL
/// from the manifest and the stored fields. mcp_oauth: discovers the MCP server's authorization server
/// (RFC 9728, RFC 8414 / OpenID discovery), reuses or registers a client (RFC 7591), and returns the authorization
/// URL (PKCE S256, single-use state, RFC 8707 `resource`). Every call goes through the egress guard.
#[utoipa::path(post, path = "/api/v1/integrations/{integration_id}/oauth/start", tag = "oauth",
    security(("bearer" = [])),
    params(("integration_id" = String, Path, description = "an mcp_oauth or byo_oauth integration")),
    responses(
        (status = 200, description = "the authorization URL to open", body = OAuthStartBody),
        (status = 400, description = "not an OAuth integration", body = crate::error::ErrorBody),
        (status = 409, description = "byo_oauth: the connector left the catalog", body = crate::error::ErrorBody),
        (status = 401, description = "not authenticated", body = crate::error::ErrorBody),
        (status = 403, description = "not MANAGER+ on the integration's workspace", body = crate::error::ErrorBody),
        (status = 404, description = "no such integration", body = crate::error::ErrorBody),
        (status = 422, description = "discovery or registration failed (`oauth_discovery_failed`), or the authorization server lacks PKCE S256 or dynamic registration (`oauth_unsupported`); the integration, if pending, turns `error` with the same reason", body = crate::error::ErrorBody)))]
pub async fn oauth_start(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<OAuthStartBody>, ApiError> {
    let i = integration::load_for(&app, &principal, &id, roles::MANAGE_INTEGRATIONS).await?;
    let oauth_url = match i.auth_mode.oauth_flow() {
        Some(OAuthFlow::Byo) => {
            integration::byo_oauth_restart(&app, &i, &principal.user_id).await?
        }
        _ => mcp::start(&app, &i, &principal.user_id).await?,
    };
    Ok(Json(OAuthStartBody { oauth_url }))
}
