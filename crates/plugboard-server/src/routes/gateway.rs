//! The MCP gateway's endpoints (MCP streamable HTTP, not part of the JSON API's OpenAPI document):
//! `/mcp/i/{integration_id}` (passthrough), `/mcp/crew/{crew_id}` and `/mcp/workspace/{workspace_id}` (aggregated).
//!
//! The caller authenticates with an agent token (`Authorization: Bearer pba_…`), or as a person (a `pb_…` token or
//! the session cookie, exactly as on the JSON API, `Origin` check included); who reaches what is decided by the
//! gateway's `Integrations` port ([`crate::gateway_wiring`]). Errors before MCP starts are the contract's error body.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use plugboard_gateway::{Caller, Scope};

use crate::agent_tokens::{looks_like_agent_token, AgentTokenCheck};
use crate::auth::{Credential, Principal};
use crate::error::ApiError;
use crate::gateway_wiring::gateway;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/mcp/i/{integration_id}", any(passthrough))
        .route("/mcp/crew/{crew_id}", any(crew))
        .route("/mcp/workspace/{workspace_id}", any(workspace))
}

/// The bearer token when it is an agent token.
fn agent_bearer(parts: &Parts) -> Option<String> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && looks_like_agent_token(token))
        .then(|| token.to_owned())
}

/// Who is calling: an agent token (valid, unexpired, unrevoked) or a person (token or session).
async fn caller(app: &AppState, parts: &mut Parts) -> Result<Caller, ApiError> {
    if let Some(token) = agent_bearer(parts) {
        return match app.agent_tokens.check(&token).await? {
            AgentTokenCheck::Valid(owner) => Ok(Caller::agent(owner.id.to_string())),
            AgentTokenCheck::Expired => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "token_expired",
                "this agent token has expired: an ADMIN of the workspace can create a new one",
            )),
            AgentTokenCheck::Unknown => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "this agent token is unknown or revoked: send a valid one as `Authorization: Bearer pba_…`",
            )),
        };
    }
    let principal = Principal::from_request_parts(parts, app).await?;
    let credential = match principal.credential {
        Credential::Token(id) => id.to_string(),
        Credential::Session(id) => id.to_string(),
    };
    Ok(Caller::person(credential, principal.user_id.to_string()))
}

/// The last path segment (axum's router matched the route, so it is there).
fn last_segment(parts: &Parts) -> String {
    parts
        .uri
        .path()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned()
}

async fn authenticated(
    app: &AppState,
    request: Request,
) -> Result<(Caller, String, Request), Response> {
    let (mut parts, body) = request.into_parts();
    let caller = caller(app, &mut parts)
        .await
        .map_err(IntoResponse::into_response)?;
    let id = last_segment(&parts);
    Ok((caller, id, Request::from_parts(parts, body)))
}

async fn passthrough(State(app): State<AppState>, request: Request) -> Response {
    match authenticated(&app, request).await {
        Ok((caller, id, request)) => gateway(&app).passthrough(caller, &id, request).await,
        Err(refused) => refused,
    }
}

async fn crew(State(app): State<AppState>, request: Request) -> Response {
    match authenticated(&app, request).await {
        Ok((caller, id, request)) => {
            gateway(&app)
                .aggregated(caller, Scope::Crew(id), request)
                .await
        }
        Err(refused) => refused,
    }
}

async fn workspace(State(app): State<AppState>, request: Request) -> Response {
    match authenticated(&app, request).await {
        Ok((caller, id, request)) => {
            gateway(&app)
                .aggregated(caller, Scope::Workspace(id), request)
                .await
        }
        Err(refused) => refused,
    }
}
