//! Agent tokens (`pba_…`), the MCP gateway's credentials: a workspace's ADMIN+ lists, creates and revokes them.
//! Handlers extract and authorise; the work is in [`crate::people`].

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;
use plugboard_store::{AgentTokenId, WorkspaceId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiPath;
use crate::people::{
    self, authorize, parse_id, Action, AgentTokenBody, AgentTokenCreated, CreateAgentTokenRequest,
};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_agent_tokens, create_agent_token))
        .routes(routes!(revoke_agent_token))
}

/// The workspace's agent tokens (ADMIN+): unrevoked ones, expired ones included, oldest first. Never the token.
#[utoipa::path(get, path = "/api/v1/workspaces/{id}/agent-tokens", tag = "gateway",
    security(("bearer" = []), ("session" = [])),
    params(("id" = String, Path, description = "workspace id")),
    responses(
        (status = 200, description = "the agent tokens", body = [AgentTokenBody]),
        (status = 401, description = "not signed in", body = ErrorBody),
        (status = 403, description = "not ADMIN+ on the workspace (or no such workspace); an agent token (`agent_token_not_allowed`)", body = ErrorBody)))]
pub async fn list_agent_tokens(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<AgentTokenBody>>, ApiError> {
    let id: WorkspaceId = parse_id(&id);
    let access = authorize(&app, &principal, &id, Action::ManageAgentTokens).await?;
    Ok(Json(people::list_agent_tokens(&app, &access).await?))
}

/// A new agent token of the workspace (ADMIN+), shown this once. It reaches only the MCP gateway (`/mcp/…`): with
/// `crew_id`, that crew's integrations and the workspace-scoped ones; without, every integration of the workspace.
#[utoipa::path(post, path = "/api/v1/workspaces/{id}/agent-tokens", tag = "gateway",
    security(("bearer" = []), ("session" = [])),
    params(("id" = String, Path, description = "workspace id")),
    request_body = CreateAgentTokenRequest,
    responses(
        (status = 201, description = "created: `token` is shown this once", body = AgentTokenCreated),
        (status = 400, description = "invalid id or body (the key is named; `crew_id` not a crew of this workspace)", body = ErrorBody),
        (status = 401, description = "not signed in", body = ErrorBody),
        (status = 403, description = "not ADMIN+ on the workspace, `csrf_rejected`, or `agent_token_not_allowed`", body = ErrorBody)))]
pub async fn create_agent_token(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<AgentTokenCreated>), ApiError> {
    let id: WorkspaceId = parse_id(&id);
    let access = authorize(&app, &principal, &id, Action::ManageAgentTokens).await?;
    let request = CreateAgentTokenRequest::parse(&body)?;
    Ok((
        StatusCode::CREATED,
        Json(people::create_agent_token(&app, &access, request).await?),
    ))
}

/// Revokes an agent token (ADMIN+ of its workspace); it fails everywhere within a second.
#[utoipa::path(delete, path = "/api/v1/agent-tokens/{id}", tag = "gateway",
    security(("bearer" = []), ("session" = [])),
    params(("id" = String, Path, description = "agent token id")),
    responses(
        (status = 204, description = "revoked"),
        (status = 401, description = "not signed in", body = ErrorBody),
        (status = 403, description = "not ADMIN+ on the token's workspace, `csrf_rejected`, or `agent_token_not_allowed`", body = ErrorBody),
        (status = 404, description = "no such agent token (unknown or already revoked)", body = ErrorBody)))]
pub async fn revoke_agent_token(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let id: AgentTokenId = parse_id(&id);
    people::revoke_agent_token(&app, &principal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
