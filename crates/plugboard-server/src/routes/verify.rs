//! `POST /api/v1/connectors/{connector_id}/verify?workspace_id=`: a pre-install probe of the credentials a user typed.
//!
//! Checks run in the contract's order: authentication (401), `workspace_id` present (400), MANAGER+ on the workspace
//! (403, also for an unknown workspace or a non-member), the connector exists (404), the body and its fields (400,
//! naming the field). Then the workspace's rate limit (429 with `Retry-After`), then the probe (see
//! [`crate::probe`]): `mcp_oauth`, `byo_oauth` and `none` answer `ok: true` without any outbound call; a manifest
//! without a verify block answers `ok: true` saying nothing was checked. Every verify that reaches the probe stage is
//! audited as `connector.verify` with `{connector_id, ok, probe}`, never a field value.
//!
//! Outbound probes take a slot of [`VerifyLimits`](crate::limits::VerifyLimits) (16 at once per instance); a verify
//! waits for a slot at most `PLUGBOARD_PROBE_TIMEOUT_MS` (and at most 10 s), then answers 429.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use plugboard_store::{NewAudit, Role};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{require_role, Principal};
use crate::error::ApiError;
use crate::extract::{json_object, only_keys, ApiPath, QueryPairs};
use crate::limits::retry_after_secs;
use crate::probe::{self, Outcome};
use crate::state::AppState;

/// The longest a verify waits for a probe slot (the request's own timeout is the probe timeout plus 20 s).
const MAX_SLOT_WAIT: Duration = Duration::from_secs(10);

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(verify))
}

/// The request body.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct VerifyRequest {
    /// The form values keyed by field key; may be omitted when the connector has no required fields.
    #[schema(value_type = Object)]
    fields: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The answer of a probe. `ok: false` means the provider (or the guard) said no: user-correctable, not an error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VerifyResponse {
    pub ok: bool,
    /// Empty on a plain success; otherwise a human-readable cause (at most 512 bytes, secrets removed).
    pub message: String,
}

fn rate_limited(message: &str, retry_after: u64) -> Response {
    let mut res =
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message).into_response();
    if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

/// The submitted `fields` object (an empty body counts as `{}`).
fn submitted_fields(body: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    let mut map = json_object(body)?;
    only_keys(&map, &["fields"])?;
    match map.remove("fields") {
        None | Some(serde_json::Value::Null) => Ok(serde_json::Map::new()),
        Some(serde_json::Value::Object(fields)) => Ok(fields),
        Some(_) => Err(ApiError::bad_request(
            "`fields` must be an object of form values keyed by field key",
        )),
    }
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
    let workspace_id = query.require("workspace_id")?.to_owned();
    require_role(&app, &principal, &workspace_id, Role::Manager).await?;
    let entry = app
        .catalog
        .catalog
        .get(&connector_id)
        .ok_or_else(|| ApiError::not_found("connector"))?;
    let manifest = &entry.manifest;
    let submitted = submitted_fields(&body)?;
    let fields = manifest
        .validate_submission(&submitted)
        .map_err(|e| ApiError::invalid_field(e.to_string()))?;

    if let Err(wait) = app.verify_limits.take(&workspace_id) {
        return Ok(rate_limited(
            "too many verifications for this workspace; try again later",
            retry_after_secs(wait),
        ));
    }

    let outcome = if manifest.auth_mode.skips_verify() {
        Outcome::ok("skipped")
    } else if manifest.verify.is_none() {
        probe::run(
            &app.egress,
            app.config.probe_timeout,
            manifest,
            &fields,
            &app.config.public_url,
        )
        .await
    } else {
        let wait = app.config.probe_timeout.min(MAX_SLOT_WAIT);
        let Some(_slot) = app.verify_limits.probe_slot(wait).await else {
            return Ok(rate_limited(
                "too many verifications are running on this server; try again shortly",
                1,
            ));
        };
        probe::run(
            &app.egress,
            app.config.probe_timeout,
            manifest,
            &fields,
            &app.config.public_url,
        )
        .await
    };

    app.store
        .append_audit(NewAudit {
            workspace_id: Some(workspace_id.clone()),
            actor_id: Some(principal.user_id.clone()),
            action: "connector.verify".to_owned(),
            target: Some(manifest.id.clone()),
            detail: serde_json::json!({
                "connector_id": manifest.id,
                "ok": outcome.ok,
                "probe": outcome.probe,
            }),
        })
        .await?;
    tracing::info!(connector_id = %manifest.id, workspace_id = %workspace_id, ok = outcome.ok, probe = outcome.probe, "verify finished");

    Ok(Json(VerifyResponse {
        ok: outcome.ok,
        message: outcome.message,
    })
    .into_response())
}
