//! `POST /api/v1/connectors/{connector_id}/install?workspace_id=`: a catalog entry becomes an integration, its
//! credentials sealed in the vault. Checks in the contract's order: authentication (401), `workspace_id` (400),
//! MANAGER+ (403, also for an unknown workspace or a non-member), the connector (404), then the
//! `Idempotency-Key` header, body and fields (400, naming the field) and `crew_id` (400). The work is
//! [`crate::integration::install`].

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{require_role_in, Principal};
use crate::error::ApiError;
use crate::extract::{ApiPath, IdempotencyKey, QueryPairs};
use crate::integration::{self, InstallRequest};
use crate::roles;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(install))
}

/// Installs a connector. With an `Idempotency-Key`, a retry of the same request returns the first response.
#[utoipa::path(post, path = "/api/v1/connectors/{connector_id}/install", tag = "connectors",
    security(("bearer" = [])),
    params(
        ("connector_id" = String, Path, description = "manifest id"),
        ("workspace_id" = String, Query, description = "the workspace to install into"),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters")),
    request_body = InstallRequest,
    responses(
        (status = 201, description = "installed (or the replay of the first response)", body = integration::InstallBody),
        (status = 400, description = "missing workspace_id, invalid body, a field rejected (named), unknown crew", body = crate::error::ErrorBody),
        (status = 401, description = "not authenticated", body = crate::error::ErrorBody),
        (status = 403, description = "not MANAGER+ on the workspace", body = crate::error::ErrorBody),
        (status = 404, description = "no connector with this id", body = crate::error::ErrorBody),
        (status = 422, description = "Idempotency-Key already used for another request", body = crate::error::ErrorBody)))]
pub async fn install(
    State(app): State<AppState>,
    principal: Principal,
    query: QueryPairs,
    ApiPath(connector_id): ApiPath<String>,
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
    let manifest = super::connector(&app, &connector_id)?;
    let key = key?;
    let request = InstallRequest::parse(&body)?;
    Ok(
        integration::install(&app, &principal, &workspace_id, &manifest, key, request)
            .await?
            .into_response(),
    )
}
