//! `GET /api/v1/audit?workspace_id=&limit=&before=` (ADMIN+): the workspace's audit log, newest first. `limit` is
//! 1 to 200 (default 50); `before` takes the previous page's `next_before` (or a time in epoch milliseconds).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use plugboard_store::Role;

use crate::app::AppState;
use crate::auth::{require_role, Principal};
use crate::error::ApiError;
use crate::integration::{self, AuditPage};
use crate::routes::QueryPairs;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/audit", get(list))
}

/// A page of the workspace's audit log, newest first. Entries never hold a secret value.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", security(("bearer" = [])),
    params(
        ("workspace_id" = String, Query, description = "the workspace"),
        ("limit" = Option<i64>, Query, description = "1 to 200, default 50"),
        ("before" = Option<String>, Query, description = "`next_before` of the previous page, or epoch milliseconds")),
    responses(
        (status = 200, description = "entries, newest first", body = AuditPage),
        (status = 400, description = "missing workspace_id or a bad limit / before", body = crate::openapi::ErrorBody),
        (status = 401, description = "not authenticated", body = crate::openapi::ErrorBody),
        (status = 403, description = "not ADMIN+ on the workspace", body = crate::openapi::ErrorBody)))]
pub async fn list(
    State(app): State<AppState>,
    principal: Principal,
    query: QueryPairs,
) -> Result<Json<AuditPage>, ApiError> {
    let workspace_id = query.require("workspace_id")?;
    require_role(&app, &principal, workspace_id, Role::Admin).await?;
    Ok(Json(
        integration::audit_page(&app, workspace_id, query.get("limit"), query.get("before"))
            .await?,
    ))
}
