//! Installed integrations: list, get, patch, delete, the custom MCP server and the runtime view. Handlers extract
//! and authorise; the work is in [`crate::integration`].
//!
//! Order of checks: authentication (401); for `/integrations?workspace_id=`: the parameter (400) then the role
//! (403, also for an unknown workspace or a non-member); for `/integrations/{id}`: the integration exists (404),
//! then the caller's role on its workspace (403, also for a non-member); then the body (400).

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{require_role_in, Principal};
use crate::error::ApiError;
use crate::extract::{ApiPath, IdempotencyKey, QueryPairs};
use crate::integration::{self, CustomServerRequest, IntegrationBody, PatchRequest};
use crate::roles;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_integrations, create_integration))
        .routes(routes!(
            get_integration,
            patch_integration,
            delete_integration
        ))
        .routes(routes!(integration_runtime))
}

/// The workspace's integrations (only those of one crew with `crew_id`), oldest first. No secret values, ever.
#[utoipa::path(get, path = "/api/v1/integrations", tag = "integrations", security(("bearer" = [])),
    params(
        ("workspace_id" = String, Query, description = "the workspace"),
        ("crew_id" = Option<String>, Query, description = "only integrations installed at this crew's scope")),
    responses(
        (status = 200, description = "integrations", body = [IntegrationBody]),
        (status = 400, description = "missing workspace_id, or crew_id not a crew of the workspace", body = crate::error::ErrorBody),
        (status = 401, description = "not authenticated", body = crate::error::ErrorBody),
        (status = 403, description = "not a member of the workspace", body = crate::error::ErrorBody)))]
pub async fn list_integrations(
    State(app): State<AppState>,
    principal: Principal,
    query: QueryPairs,
) -> Result<Json<Vec<IntegrationBody>>, ApiError> {
    let workspace_id = require_role_in(
        &app,
        &principal,
        query.require("workspace_id")?,
        roles::VIEW,
    )
    .await?;
    let crew_id = query
        .get("crew_id")
        .map(str::trim)
        .filter(|c| !c.is_empty());
    Ok(Json(integration::list(&app, &workspace_id, crew_id).await?))
}

/// The custom MCP server escape hatch.
#[utoipa::path(post, path = "/api/v1/integrations", tag = "integrations", security(("bearer" = [])),
    params(
        ("workspace_id" = String, Query, description = "the workspace"),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters")),
    request_body = CustomServerRequest,
    responses(
        (status = 201, description = "created", body = integration::InstallBody),
        (status = 400, description = "missing workspace_id or an invalid body (the key is named)", body = crate::error::ErrorBody),
        (status = 401, description = "not authenticated", body = crate::error::ErrorBody),
        (status = 403, description = "not MANAGER+ on the workspace", body = crate::error::ErrorBody),
        (status = 422, description = "Idempotency-Key already used for another request", body = crate::error::ErrorBody)))]
pub async fn create_integration(
    State(app): State<AppState>,
    principal: Principal,
    query: QueryPairs,
    key: Result<IdempotencyKey, ApiError>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let workspace_id = require_role_in(
        &app,
        &principal,
        query.require("workspace_id")?,
        roles::INSTALL,
    )
    .await?;
    let key = key?;
    let request = CustomServerRequest::parse(&body)?;
    Ok(
        integration::create_custom(&app, &principal, &workspace_id, key, request)
            .await?
            .into_response(),
    )
}

/// One integration (any member of its workspace).
#[utoipa::path(get, path = "/api/v1/integrations/{integration_id}", tag = "integrations", security(("bearer" = [])),
    params(("integration_id" = String, Path, description = "integration id")),
    responses(
        (status = 200, description = "the integration", body = IntegrationBody),
        (status = 401, description = "not authenticated", body = crate::error::ErrorBody),
        (status = 403, description = "not a member of its workspace", body = crate::error::ErrorBody),
        (status = 404, description = "no such integration", body = crate::error::ErrorBody)))]
pub async fn get_integration(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<IntegrationBody>, ApiError> {
    let i = integration::load_for(&app, &principal, &id, roles::VIEW).await?;
    Ok(Json(integration::integration_body(&app, &i)))
}

/// Rename, enable/disable, replace credential fields (MANAGER+).
#[utoipa::path(patch, path = "/api/v1/integrations/{integration_id}", tag = "integrations", security(("bearer" = [])),
    params(("integration_id" = String, Path, description = "integration id")),
    request_body = PatchRequest,
    responses(
        (status = 200, description = "the updated integration", body = IntegrationBody),
        (status = 400, description = "invalid body, or a field rejected (named)", body = crate::error::ErrorBody),
        (status = 401, description = "not authenticated", body = crate::error::ErrorBody),
        (status = 403, description = "not MANAGER+ on its workspace", body = crate::error::ErrorBody),
        (status = 404, description = "no such integration", body = crate::error::ErrorBody),
        (status = 409, description = "fields cannot be replaced: the connector left the catalog or changed its auth mode; or `tool_prefix_taken`: another integration of the workspace has that tool_prefix", body = crate::error::ErrorBody)))]
pub async fn patch_integration(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    body: Bytes,
) -> Result<Json<IntegrationBody>, ApiError> {
    let i = integration::load_for(&app, &principal, &id, roles::MANAGE_INTEGRATIONS).await?;
    let request = PatchRequest::parse(&body)?;
    Ok(Json(
        integration::patch(&app, &principal, i, request).await?,
    ))
}

/// Removes the integration and destroys its vault entries (MANAGER+).
#[utoipa::path(delete, path = "/api/v1/integrations/{integration_id}", tag = "integrations", security(("bearer" = [])),
    params(("integration_id" = String, Path, description = "integration id")),
    responses(
        (status = 204, description = "deleted"),
        (status = 401, description = "not authenticated", body = crate::error::ErrorBody),
        (status = 403, description = "not MANAGER+ on its workspace", body = crate::error::ErrorBody),
        (status = 404, description = "no such integration", body = crate::error::ErrorBody)))]
pub async fn delete_integration(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let i = integration::load_for(&app, &principal, &id, roles::MANAGE_INTEGRATIONS).await?;
    integration::delete(&app, &principal, i).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The materialised MCP block with secrets decrypted, for the agent runtime (ADMIN+). Every read is audited.
#[utoipa::path(get, path = "/api/v1/integrations/{integration_id}/runtime", tag = "integrations", security(("bearer" = [])),
    params(("integration_id" = String, Path, description = "integration id")),
    responses(
        (status = 200, description = "the integration with `mcp` materialised (secrets included)", body = IntegrationBody),
        (status = 401, description = "not authenticated", body = crate::error::ErrorBody),
        (status = 403, description = "not ADMIN+ on its workspace", body = crate::error::ErrorBody),
        (status = 404, description = "no such integration", body = crate::error::ErrorBody),
        (status = 409, description = "waiting for OAuth (`oauth_pending`) or disabled (`integration_disabled`)", body = crate::error::ErrorBody)))]
pub async fn integration_runtime(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let i = integration::load_for(&app, &principal, &id, roles::READ_RUNTIME).await?;
    let body = integration::runtime(&app, &principal, i).await?;
    let mut res = Json(body).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}
