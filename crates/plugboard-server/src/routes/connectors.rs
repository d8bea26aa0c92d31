//! The catalog: list and get, answered from bytes prepared when the catalog loads.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use plugboard_catalog::AuthMode;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::{ApiPath, QueryPairs};
use crate::prepared::ListFilter;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_connectors))
        .routes(routes!(get_connector))
}

/// The filters of `GET /api/v1/connectors`. Each narrows the list; together they all apply; the order stays the
/// catalog's. A blank value is the same as leaving the parameter out; other parameters are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CatalogQuery {
    /// Only connectors of this category (exact, case-sensitive: `developer-tools`). An unknown category gives `[]`.
    pub category: Option<String>,
    /// Only connectors with this auth mode; anything else is a 400.
    #[param(value_type = Option<String>, pattern = r"^\s*(pat|conn_string|mcp_oauth|byo_oauth|none)?\s*$")]
    pub auth_mode: Option<AuthMode>,
    /// Only connectors whose id, name, description or category contains this text (case-insensitive, trimmed).
    pub q: Option<String>,
}

impl CatalogQuery {
    /// The three filters of the query string (400 naming the parameter when one is given twice or `auth_mode` is
    /// not one of the five modes).
    pub fn parse(query: &QueryPairs) -> Result<CatalogQuery, ApiError> {
        let one = |key: &str| -> Result<Option<String>, ApiError> {
            let mut values = query.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v);
            let first = values.next().cloned();
            if values.next().is_some() {
                return Err(ApiError::bad_request(format!(
                    "query parameter `{key}` is given more than once; give it once"
                )));
            }
            Ok(first.filter(|v| !v.trim().is_empty()))
        };
        let auth_mode = match one("auth_mode")? {
            None => None,
            Some(raw) => Some(AuthMode::parse(raw.trim()).ok_or_else(|| {
                ApiError::bad_request(
                    "query parameter `auth_mode` must be one of pat, conn_string, mcp_oauth, byo_oauth, none",
                )
            })?),
        };
        Ok(CatalogQuery {
            category: one("category")?,
            auth_mode,
            q: one("q")?,
        })
    }

    fn filter(&self) -> ListFilter {
        ListFilter::new(self.category.as_deref(), self.auth_mode, self.q.as_deref())
    }
}

/// The whole catalog, in stable order (`[]` when empty), optionally narrowed by `category`, `auth_mode` and `q`.
/// Supports `ETag` / `If-None-Match` and `Accept-Encoding` (`br`, `gzip`).
#[utoipa::path(get, path = "/api/v1/connectors", tag = "connectors", security(("bearer" = [])),
    params(CatalogQuery),
    responses(
        (status = 200, description = "catalog tiles", body = [crate::prepared::ConnectorSummary]),
        (status = 304, description = "not modified (If-None-Match)"),
        (status = 400, description = "an unknown auth_mode, or a parameter given twice", body = crate::error::ErrorBody),
        (status = 401, description = "not authenticated", body = crate::error::ErrorBody),
        (status = 406, description = "Accept-Encoding refuses br, gzip and identity", body = crate::error::ErrorBody)))]
pub async fn list_connectors(
    State(app): State<AppState>,
    _who: Principal,
    query: QueryPairs,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let catalog = app.catalog.current();
    if query.0.is_empty() {
        return Ok(catalog.list.respond(&headers));
    }
    let filter = CatalogQuery::parse(&query)?.filter();
    Ok(catalog.filtered(&filter).respond(&headers))
}

/// The full manifest, verbatim. Supports `ETag` / `If-None-Match` and `Accept-Encoding` (`br`, `gzip`).
#[utoipa::path(get, path = "/api/v1/connectors/{connector_id}", tag = "connectors", security(("bearer" = [])),
    params(("connector_id" = String, Path, description = "manifest id")),
    responses(
        (status = 200, description = "the manifest as its author wrote it", body = serde_json::Value),
        (status = 304, description = "not modified (If-None-Match)"),
        (status = 401, description = "not authenticated", body = crate::error::ErrorBody),
        (status = 404, description = "no connector with this id", body = crate::error::ErrorBody),
        (status = 406, description = "Accept-Encoding refuses br, gzip and identity", body = crate::error::ErrorBody)))]
pub async fn get_connector(
    State(app): State<AppState>,
    _who: Principal,
    ApiPath(connector_id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let catalog = app.catalog.current();
    let item = catalog
        .item(&connector_id)
        .ok_or_else(|| ApiError::not_found("connector"))?;
    Ok(item.respond(&headers))
}
