//! Liveness, readiness and the OpenAPI document (no authentication).

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::openapi::OpenApiJson;
use crate::state::AppState;

/// Bound on the readiness check's round-trip to the database.
pub const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(900);

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(openapi))
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "process up")))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// The database is reachable.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "database reachable"),
    (status = 503, description = "database unreachable (code `database_unavailable`)", body = crate::error::ErrorBody)))]
pub async fn readyz(State(app): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    // Bounded tighter than requests: a load balancer must learn within a second that this instance cannot serve.
    let bound = READY_TIMEOUT.min(app.config.db_timeout);
    match tokio::time::timeout(bound, app.store.ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(ApiError::database_unavailable(e)),
        Err(_) => {
            return Err(ApiError::database_unavailable(format!(
                "readiness check: the database did not answer within {} ms",
                bound.as_millis()
            )))
        }
    }
    Ok(Json(
        serde_json::json!({ "status": "ready", "database": app.store.backend() }),
    ))
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "health", responses((status = 200, description = "OpenAPI 3.1 document")))]
pub async fn openapi(Extension(doc): Extension<OpenApiJson>) -> Response {
    let mut res = doc.0.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}
