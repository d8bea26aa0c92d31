//! The catalog: list and get, answered from bytes prepared when the catalog loads.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::ApiPath;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_connectors))
        .routes(routes!(get_connector))
}

/// The whole catalog, in stable order (`[]` when empty). Supports `ETag` / `If-None-Match`.
#[utoipa::path(get, path = "/api/v1/connectors", tag = "connectors", security(("bearer" = [])),
    responses(
        (status = 200, description = "catalog tiles", body = [crate::prepared::ConnectorSummary]),
        (status = 304, description = "not modified (If-None-Match)"),
        (status = 401, description = "not authenticated", body = crate::error::ErrorBody)))]
pub async fn list_connectors(
    State(app): State<AppState>,
    _who: Principal,
    headers: HeaderMap,
) -> Response {
    app.catalog.list.respond(&headers)
}

/// The full manifest, verbatim. Supports `ETag` / `If-None-Match`.
#[utoipa::path(get, path = "/api/v1/connectors/{connector_id}", tag = "connectors", security(("bearer" = [])),
    params(("connector_id" = String, Path, description = "manifest id")),
    responses(
        (status = 200, description = "the manifest as its author wrote it", body = serde_json::Value),
        (status = 304, description = "not modified (If-None-Match)"),
        (status = 401, description = "not authenticated", body = crate::error::ErrorBody),
        (status = 404, description = "no connector with this id", body = crate::error::ErrorBody)))]
pub async fn get_connector(
    State(app): State<AppState>,
    _who: Principal,
    ApiPath(connector_id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let item = app
        .catalog
        .item(&connector_id)
        .ok_or_else(|| ApiError::not_found("connector"))?;
    Ok(item.respond(&headers))
}
