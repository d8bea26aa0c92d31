//! `POST /api/v1/connectors/{connector_id}/verify?workspace_id=`: a pre-install probe of the credentials a user typed.
//! Checks run in the contract's order: authentication (401), `workspace_id` present (400), MANAGER+ on the workspace
//! (403, also for an unknown workspace or a non-member), the connector exists (404), the body (400); then the
//! service ([`crate::verify`]): fields (400, naming the field), the rate limit (429 with `Retry-After`), the probe.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{require_role_in, Principal};
use crate::error::ApiError;
use crate::extract::{ApiPath, QueryPairs};
use crate::roles;
use crate::state::AppState;
use crate::verify::{self as service, VerifyError, VerifyRequest, VerifyResponse};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(verify))
}

fn rate_limited(message: &str, retry_after: u64) -> Response {
    let mut res =
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message).into_response();
    if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

/// Probes the submitted credentials against the real provider.
#[utoipa::path(post, path = "/api/v1/connectors/{connector_id}/verify", tag = "connectors", security(("bearer" = [])),
    params(
        ("connector_id" = String, Path, description = "manifest id"),
        ("workspace_id" = String, Query, description = "workspace the caller is MANAGER+ on")),
    request_body = VerifyRequest,
    responses(
        (status = 200, description = "the probe's answer", body = VerifyResponse),
        (status = 400, description = "missing workspace_id, invalid body, or a field that is missing or invalid (named)", body = crate::error::ErrorBody),
        (status = 401, description = "not authenticated", body = crate::error::ErrorBody),
        (status = 403, description = "caller is not MANAGER+ on the workspace", body = crate::error::ErrorBody),
        (status = 404, description = "no connector with this id", body = crate::error::ErrorBody),
        (status = 413, description = "body larger than 1 MiB", body = crate::error::ErrorBody),
        (status = 429, description = "too many verifies for this workspace (see Retry-After)", body = crate::error::ErrorBody)))]
pub async fn verify(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(connector_id): ApiPath<String>,
    query: QueryPairs,
    body: Bytes,
) -> Result<Response, ApiError> {
    let workspace_id = require_role_in(
        &app,
        &principal,
        query.require("workspace_id")?,
        roles::VERIFY,
    )
    .await?;
    let manifest = super::connector(&app, &connector_id)?;
    let request = VerifyRequest::parse(&body)?;
    match service::verify(&app, &principal, &workspace_id, &manifest, request).await {
        Ok(answer) => Ok(Json(answer).into_response()),
        Err(VerifyError::RateLimited {
            message,
            retry_after,
        }) => Ok(rate_limited(message, retry_after)),
        Err(VerifyError::Api(e)) => Err(e),
    }
}
