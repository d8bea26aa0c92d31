//! `GET /api/v1/audit?workspace_id=&limit=&before=` (ADMIN+): the workspace's audit log, newest first. `limit` is
//! 1 to 200 (default 50); `before` takes the previous page's `next_before` (or a time in epoch milliseconds).

use axum::extract::State;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{require_role_in, Principal};
use crate::error::ApiError;
use crate::extract::QueryPairs;
use crate::integration::{self, AuditPage, AuditQuery};
use crate::roles;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit))
}

/// A page of the workspace's audit log, newest first. Entries never hold a secret value.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", security(("bearer" = [])),
    params(
        ("workspace_id" = String, Query, description = "the workspace"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 200, description = "1 to 200, default 50"),
        ("before" = Option<String>, Query, pattern = r"^\s*([+-]?[0-9]{1,19}(\.[A-Za-z0-9]{0,64})?)?\s*$",
            description = "`next_before` of the previous page, or epoch milliseconds")),
    responses(
        (status = 200, description = "entries, newest first", body = AuditPage),
        (status = 400, description = "missing workspace_id or a bad limit / before", body = crate::error::ErrorBody),
        (status = 401, description = "not authenticated", body = crate::error::ErrorBody),
        (status = 403, description = "not ADMIN+ on the workspace", body = crate::error::ErrorBody)))]
pub async fn list_audit(
    State(app): State<AppState>,
    principal: Principal,
    query: QueryPairs,
) -> Result<Json<AuditPage>, ApiError> {
    let workspace_id = require_role_in(
        &app,
        &principal,
        query.require("workspace_id")?,
        roles::READ_AUDIT,
    )
    .await?;
    let page_query = AuditQuery::parse(&query)?;
    Ok(Json(
        integration::audit_page(&app, &workspace_id, &page_query).await?,
    ))
}
