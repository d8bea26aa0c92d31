//! Verify as a service: a pre-install probe of the credentials a user typed (`POST …/connectors/{id}/verify`).
//!
//! After the handler's checks (401, `workspace_id` 400, MANAGER+ 403, connector 404, body 400) this validates the
//! fields against the manifest (400 naming the field), charges the workspace's rate limit (only once the body is
//! valid), takes a probe slot, runs the probe (see [`crate::probe`]) and audits the outcome as `connector.verify`
//! with `{connector_id, ok, probe}`, never a field value. `mcp_oauth`, `byo_oauth` and `none` answer `ok: true`
//! without any outbound call; a manifest without a verify block answers `ok: true` saying nothing was checked.
//!
//! Outbound probes take a slot of [`VerifyLimits`](crate::limits::VerifyLimits) (16 at once per instance); a verify
//! waits for a slot at most `PLUGBOARD_PROBE_TIMEOUT_MS` (and at most 10 s).

use std::time::Duration;

use plugboard_catalog::Manifest;
use plugboard_store::{NewAudit, WorkspaceId};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::{is_blank, json_object, only_keys};
use crate::limits::retry_after_secs;
use crate::metrics::VerifyOutcome;
use crate::probe::{self, Outcome};
use crate::state::App;

/// The longest a verify waits for a probe slot (the request's own timeout is the probe timeout plus 20 s).
const MAX_SLOT_WAIT: Duration = Duration::from_secs(10);

/// The request body: `{"fields": {…}}`; an empty body is `{}`.
#[derive(Debug, Default, utoipa::ToSchema)]
pub struct VerifyRequest {
    /// The form values keyed by field key; may be omitted when the connector has no required fields.
    #[schema(value_type = Option<Object>)]
    pub fields: Map<String, Value>,
}

impl VerifyRequest {
    pub const KEYS: &'static [&'static str] = &["fields"];

    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        if is_blank(body) {
            return Ok(VerifyRequest::default());
        }
        let mut map = json_object(body)?;
        only_keys(&map, Self::KEYS)?;
        let fields = match map.remove("fields") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(fields)) => fields,
            Some(_) => {
                return Err(ApiError::bad_request(
                    "`fields` must be an object of form values keyed by field key",
                ))
            }
        };
        Ok(VerifyRequest { fields })
    }
}

/// The answer of a probe. `ok: false` means the provider (or the guard) said no: user-correctable, not an error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VerifyResponse {
    pub ok: bool,
    /// Empty on a plain success; otherwise a human-readable cause (at most 512 bytes, secrets removed).
    pub message: String,
}

/// Why a verify did not run.
#[derive(Debug)]
pub enum VerifyError {
    /// Too many verifies for this workspace, or too many probes running on this instance: retry after this many
    /// seconds.
    RateLimited {
        message: &'static str,
        retry_after: u64,
    },
    Api(ApiError),
}

impl From<ApiError> for VerifyError {
    fn from(e: ApiError) -> Self {
        VerifyError::Api(e)
    }
}

/// Validates, rate-limits, probes and audits (see the module).
pub async fn verify(
    app: &App,
    principal: &Principal,
    workspace_id: &WorkspaceId,
    manifest: &Manifest,
    request: VerifyRequest,
) -> Result<VerifyResponse, VerifyError> {
    let fields = manifest
        .validate_submission(&request.fields)
        .map_err(|e| ApiError::invalid_field(e.to_string()))?;
    drop(request);

    if let Err(wait) = app.verify_limits.take(workspace_id) {
        app.metrics.verify(&manifest.id, VerifyOutcome::RateLimited);
        return Err(VerifyError::RateLimited {
            message: "too many verifications for this workspace; try again later",
            retry_after: retry_after_secs(wait),
        });
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
            app.metrics.verify(&manifest.id, VerifyOutcome::RateLimited);
            return Err(VerifyError::RateLimited {
                message: "too many verifications are running on this server; try again shortly",
                retry_after: 1,
            });
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
        .await
        .map_err(ApiError::from)?;
    tracing::info!(connector_id = %manifest.id, workspace_id = %workspace_id, ok = outcome.ok, probe = outcome.probe, "verify finished");
    app.metrics.verify(
        &manifest.id,
        if outcome.ok {
            VerifyOutcome::Ok
        } else {
            VerifyOutcome::Failed
        },
    );

    Ok(VerifyResponse {
        ok: outcome.ok,
        message: outcome.message,
    })
}
