//! Integrations as a service: install from the catalog, the custom MCP server, list / get / patch / delete, the
//! runtime view and the audit log. Handlers (`routes::install`, `routes::integrations`, `routes::audit`) only extract
//! the request and call these functions; nothing here holds SQL (that is the store's).
//!
//! # Decisions
//!
//! * **Where a value lives.** Every field value of a `pat`, `conn_string` or `byo_oauth` install (defaults included)
//!   is sealed into the vault, one secret per field, named `field.<key>`. A `none` install seals its `secret: true`
//!   fields the same way and keeps the others (a directory, say) in the stored MCP block in the clear. A custom
//!   server's values marked `{"value": …, "secret": true}` are sealed as `field.header_<n>` / `field.env_<n>`.
//! * **The stored MCP block** (`integrations.mcp`, see [`StoredMcp`]) is a snapshot of the manifest's *templates*
//!   at install time (`mcp` and `derived`), the plain values, and the names of the vaulted fields. Never a rendered
//!   secret, never a DSN. The runtime view re-renders from this snapshot, not from the live catalog, so a connector
//!   that later changes or leaves the catalog does not break (or silently change) what was installed. Replacing the
//!   credential fields (PATCH `fields`) validates against the *current* manifest and takes a fresh snapshot of it;
//!   if the connector has left the catalog, that PATCH answers 409.
//! * **Custom servers** store their literal values as templates with `${` escaped (`$${`), so a literal
//!   `${field.x}` typed by a user stays literal, and secret values as `${field.header_<n>}` placeholders.
//!   Their `auth_mode` is `"custom"` and `connector_id` is `null`.
//! * **Masking.** Responses other than `/runtime` render the snapshot with every vaulted value (and the OAuth token)
//!   replaced by a random alphanumeric sentinel that survives the `|url` filter, then turn each sentinel into
//!   `"********"`; literal parts of the templates stay visible.
//! * **Times** in responses are integers: milliseconds since the Unix epoch.
//! * **Not a member.** For `/integrations/{id}` endpoints the order is 401, 404 (no such integration), 403 (not a
//!   member of its workspace, or the role is too low). Ids are random (~119 bits), so the 403 reveals nothing useful.
//! * **Idempotency.** An `Idempotency-Key` (1 to 255 visible ASCII characters) on install or custom create is scoped
//!   to (workspace, caller, key); the fingerprint is a keyed hash (HMAC-SHA256 under the master key) of the operation, the connector id and the body in
//!   canonical form (object keys sorted). A retry with the same key and request gets the first response (same status
//!   and body, plus `Idempotent-Replayed: true`); the same key with another request gets 422
//!   `idempotency_key_reused`. The stored response holds no field value: a byo_oauth `oauth_url` (client id and
//!   state) is sealed in the vault as `oauth.authorize_url` and put back on replay; if that integration has since
//!   been deleted, the replay is a 409 `idempotent_result_gone`.

mod audit;
mod custom;
mod idempotency;
mod install;
mod requests;
mod runtime;
mod stored;

pub use audit::{audit_page, AuditEntry, AuditPage, AuditQuery};
pub use custom::{create_custom, seal_unmarked_credentials};
pub use idempotency::Created;
pub use install::{byo_oauth_restart, install};
pub use requests::{CustomServerRequest, InstallRequest, PatchRequest, ToolsBody};
pub use runtime::{materialize, oauth_access_token, runtime};
pub use stored::{escape_literal, FieldValues, StoredMcp};

use std::collections::BTreeMap;

use plugboard_catalog::{AuthMode, Manifest};
use plugboard_store::{
    CrewId, Integration, IntegrationAuthMode, IntegrationId, IntegrationPatch, IntegrationStatus,
    NewAudit, NewSecret, Role, SecretRow, UserId, WorkspaceId,
};
use secrecy::zeroize::Zeroize;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::auth::{require_role, Principal};
use crate::error::ApiError;
use crate::extract::truncate;
use crate::state::{App, AppState};
use crate::vault::names;

/// What every vaulted value looks like in a response.
pub const MASK: &str = "********";

/// Limits on what a request may set.
pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_COMMAND_BYTES: usize = 1024;
pub const MAX_ARGS: usize = 64;
pub const MAX_ARG_BYTES: usize = 4096;
pub const MAX_MAP_ENTRIES: usize = 64;
pub const MAX_MAP_KEY_BYTES: usize = 128;
pub const MAX_MAP_VALUE_BYTES: usize = 16 * 1024;
pub const MAX_ENDPOINT_BYTES: usize = 2048;
pub const AUDIT_DEFAULT_LIMIT: i64 = 50;
pub const AUDIT_MAX_LIMIT: i64 = 200;

/// An integration as every endpoint but `/runtime` returns it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IntegrationBody {
    #[schema(value_type = String)]
    pub id: IntegrationId,
    #[schema(value_type = String)]
    pub workspace_id: WorkspaceId,
    /// `null` at workspace scope.
    #[schema(value_type = Option<String>)]
    pub crew_id: Option<CrewId>,
    /// `null` for a custom server.
    pub connector_id: Option<String>,
    pub name: String,
    /// `pat`, `conn_string`, `mcp_oauth`, `byo_oauth`, `none`, or `custom` for a custom server.
    #[schema(value_type = String)]
    pub auth_mode: IntegrationAuthMode,
    /// `active`, `pending_oauth` or `error`.
    #[schema(value_type = String)]
    pub status: IntegrationStatus,
    /// Why the status is what it is (set with `error`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    pub enabled: bool,
    /// Transport and its settings; every secret value is `"********"` (in `/runtime`: materialised).
    #[schema(value_type = Object)]
    pub mcp: Value,
    #[schema(value_type = String)]
    pub created_by: UserId,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Milliseconds since the Unix epoch.
    pub updated_at: i64,
    /// The MCP gateway's tool policy for this integration.
    pub tools: ToolsBody,
    /// The prefix of its tools on the gateway's aggregated endpoints (`<prefix>__<tool>`), unique in the workspace.
    pub tool_prefix: String,
}

/// The install response (201).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InstallBody {
    #[schema(value_type = String)]
    pub integration_id: IntegrationId,
    /// `""` done; `"oauth"` open `oauth_url`; `"mcp_oauth"` hand off to the MCP OAuth flow.
    pub next_step: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth_url: Option<String>,
}

/// The integration JSON with the masked MCP block. A block that cannot be rendered (never expected) shows as
/// `null` and is logged, so one bad row does not break a whole list.
pub fn integration_body(app: &App, i: &Integration) -> IntegrationBody {
    let mcp = match StoredMcp::parse(&i.mcp).and_then(|s| s.masked(&app.config.public_url)) {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(integration_id = %i.id, error = %e, "cannot render an integration's MCP block");
            Value::Null
        }
    };
    body_with_mcp(i, mcp)
}

pub(crate) fn body_with_mcp(i: &Integration, mcp: Value) -> IntegrationBody {
    IntegrationBody {
        id: i.id.clone(),
        workspace_id: i.workspace_id.clone(),
        crew_id: i.crew_id.clone(),
        connector_id: i.connector_id.clone(),
        name: i.name.clone(),
        auth_mode: i.auth_mode,
        status: i.status,
        status_reason: i.status_reason.clone(),
        enabled: i.enabled,
        mcp,
        created_by: i.created_by.clone(),
        created_at: i.created_at,
        updated_at: i.updated_at,
        tools: ToolsBody {
            allow: tool_list(&i.tool_allow),
            deny: tool_list(&i.tool_deny),
        },
        tool_prefix: tool_prefix(i),
    }
}

/// A stored list of tool patterns (a JSON array; written only by PATCH, so never unreadable in practice).
pub fn tool_list(stored: &str) -> Vec<String> {
    serde_json::from_str(stored).unwrap_or_else(|e| {
        tracing::error!(error = %e, "an integration's stored tool policy is not a JSON array of strings");
        Vec::new()
    })
}

/// The integration's tool prefix (its default when the row has none yet).
pub fn tool_prefix(i: &Integration) -> String {
    i.tool_prefix
        .clone()
        .unwrap_or_else(|| plugboard_store::default_tool_prefix(i.connector_id.as_deref(), &i.name))
}

/// A user-facing label: trimmed, non-empty, at most [`MAX_NAME_CHARS`] characters, no control characters.
pub(crate) fn valid_name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(ApiError::invalid_field("`name` must not be empty"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::invalid_field(format!(
            "`name` must be at most {MAX_NAME_CHARS} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            "`name` must not contain control characters",
        ));
    }
    Ok(name.to_string())
}

/// `crew_id`, when given, must be a crew of `workspace_id` (an id of the wrong shape is not one, without a lookup).
pub(crate) async fn check_crew(
    app: &App,
    workspace_id: &WorkspaceId,
    crew_id: Option<&str>,
) -> Result<Option<CrewId>, ApiError> {
    let Some(crew_id) = crew_id else {
        return Ok(None);
    };
    let bad = || ApiError::invalid_field("`crew_id` is not a crew of this workspace");
    let crew_id = CrewId::parse(crew_id.trim()).ok_or_else(bad)?;
    match app.store.get_crew(&crew_id).await? {
        Some(c) if c.workspace_id == *workspace_id => Ok(Some(c.id)),
        _ => Err(bad()),
    }
}

pub(crate) fn vault_err(e: crate::vault::VaultServiceError) -> ApiError {
    match e {
        crate::vault::VaultServiceError::Store(e) => ApiError::from(e),
        other => ApiError::internal(other),
    }
}

pub(crate) async fn seal_fields(
    app: &App,
    integration_id: &IntegrationId,
    values: &FieldValues,
    keys: &[String],
) -> Result<Vec<NewSecret>, ApiError> {
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let value = values.get(key).unwrap_or_default();
        out.push(
            app.vault
                .seal(
                    integration_id,
                    &format!("{}{key}", names::FIELD_PREFIX),
                    value.as_bytes(),
                )
                .await
                .map_err(vault_err)?,
        );
    }
    Ok(out)
}

/// Which validated values go to the vault and which stay plain, by auth mode.
pub(crate) fn split_values(
    m: &Manifest,
    values: &FieldValues,
) -> (BTreeMap<String, String>, Vec<String>) {
    let mut plain = BTreeMap::new();
    let mut vaulted = Vec::new();
    for (key, value) in values.map() {
        let secret = match m.auth_mode {
            AuthMode::Pat | AuthMode::ConnString | AuthMode::ByoOauth | AuthMode::McpOauth => true,
            AuthMode::None => m.field(key).is_none_or(|f| f.secret),
        };
        if secret {
            vaulted.push(key.clone());
        } else {
            plain.insert(key.clone(), value.clone());
        }
    }
    (plain, vaulted)
}

pub(crate) fn field_error(e: plugboard_catalog::FieldError) -> ApiError {
    // `FieldError` names the field, never the value.
    ApiError::invalid_field(e.to_string())
}

pub(crate) fn audit(
    workspace_id: &WorkspaceId,
    principal: &Principal,
    action: &str,
    target: &IntegrationId,
    detail: Value,
) -> NewAudit {
    NewAudit {
        workspace_id: Some(workspace_id.clone()),
        actor_id: Some(principal.user_id.clone()),
        action: action.to_string(),
        target: Some(target.to_string()),
        detail,
    }
}

/// Loads an integration (by the id a request named) and checks the caller's role on its workspace: 404 when it
/// does not exist (an id of the wrong shape does not, without a lookup), then 403.
pub async fn load_for(
    app: &AppState,
    principal: &Principal,
    integration_id: &str,
    min: Role,
) -> Result<Integration, ApiError> {
    let not_found = || ApiError::not_found("integration");
    let id = IntegrationId::parse(integration_id).ok_or_else(not_found)?;
    let integration = app
        .store
        .get_integration(&id)
        .await?
        .ok_or_else(not_found)?;
    require_role(app, principal, &integration.workspace_id, min).await?;
    Ok(integration)
}

/// The integrations of a workspace (optionally only those installed at one crew's scope), oldest first.
pub async fn list(
    app: &App,
    workspace_id: &WorkspaceId,
    crew_id: Option<&str>,
) -> Result<Vec<IntegrationBody>, ApiError> {
    let crew_id = match crew_id {
        None => None,
        Some(c) => {
            let bad = || ApiError::bad_request("`crew_id` is not a crew of this workspace");
            let c = CrewId::parse(c).ok_or_else(bad)?;
            match app.store.get_crew(&c).await? {
                Some(crew) if crew.workspace_id == *workspace_id => Some(c),
                _ => return Err(bad()),
            }
        }
    };
    let rows = app
        .store
        .list_integrations(workspace_id, crew_id.as_ref())
        .await?;
    Ok(rows.iter().map(|i| integration_body(app, i)).collect())
}

/// Decrypts every `field.*` secret of an integration.
pub(crate) async fn open_fields(app: &App, rows: &[SecretRow]) -> Result<FieldValues, ApiError> {
    let mut values = FieldValues::default();
    for row in rows {
        if let Some(key) = row.name.strip_prefix(names::FIELD_PREFIX) {
            let plain = app.vault.open(row).await.map_err(vault_err)?;
            let text = plain
                .into_string()
                .map_err(|e| ApiError::internal(format!("secret {}: {e}", row.name)))?;
            values.insert(key.to_string(), text.expose_secret().to_string());
        }
    }
    Ok(values)
}

/// `PATCH /api/v1/integrations/{id}`: `name`, `enabled`, `fields` (replace credential fields: merged over the
/// current values, validated as a whole against the current manifest, re-sealed; the old entries are destroyed),
/// and the gateway's `tools` policy and `tool_prefix` (409 `tool_prefix_taken` when another integration of the
/// workspace has it).
#[tracing::instrument(skip_all, fields(integration_id = %integration.id))]
pub async fn patch(
    app: &App,
    principal: &Principal,
    integration: Integration,
    request: PatchRequest,
) -> Result<IntegrationBody, ApiError> {
    let mut patch = IntegrationPatch {
        name: request.name,
        enabled: request.enabled,
        ..Default::default()
    };
    let mut changed: Vec<&str> = Vec::new();
    if patch.name.is_some() {
        changed.push("name");
    }
    if patch.enabled.is_some() {
        changed.push("enabled");
    }
    if let Some(tools) = &request.tools {
        let json = |l: &Vec<String>| serde_json::to_string(l).map_err(ApiError::internal);
        patch.tools = Some((json(&tools.allow)?, json(&tools.deny)?));
        changed.push("tools");
    }
    match &request.tool_prefix {
        Some(Some(prefix)) => patch.tool_prefix = Some(prefix.clone()),
        Some(None) => patch.reset_tool_prefix = true,
        None => {}
    }
    if request.tool_prefix.is_some() {
        changed.push("tool_prefix");
    }
    let mut field_keys: Vec<String> = Vec::new();
    if let Some(submitted) = &request.fields {
        {
            let connector_id = integration.connector_id.as_deref().ok_or_else(|| {
                ApiError::invalid_field("`fields`: a custom server has no credential fields")
            })?;
            let m = app.catalog.manifest(connector_id).ok_or_else(|| {
                ApiError::conflict(format!(
                    "connector `{}` is no longer in the catalog, so its fields cannot be validated; \
                     delete this integration and install again",
                    truncate(connector_id, 64)
                ))
            })?;
            let m = &*m;
            if IntegrationAuthMode::from(m.auth_mode) != integration.auth_mode {
                return Err(ApiError::conflict(
                    "the connector's auth mode has changed since this integration was installed; \
                     delete it and install again",
                ));
            }
            let stored = StoredMcp::parse(&integration.mcp).map_err(ApiError::internal)?;
            let rows = app.store.integration_secrets(&integration.id).await?;
            let current = open_fields(app, &rows).await?;
            // The current values (only keys the manifest still declares), the submitted ones over them.
            let mut merged = Map::new();
            for (k, v) in stored.plain.iter().chain(current.map().iter()) {
                if m.field(k).is_some() {
                    merged.insert(k.clone(), Value::String(v.clone()));
                }
            }
            drop(current);
            for (k, v) in submitted {
                merged.insert(k.clone(), v.clone());
            }
            let validated = m.validate_submission(&merged).map_err(field_error);
            for v in merged.values_mut() {
                if let Value::String(s) = v {
                    s.zeroize();
                }
            }
            let values = FieldValues::from(validated?);
            let (plain, vaulted) = split_values(m, &values);
            let secrets = seal_fields(app, &integration.id, &values, &vaulted).await?;
            drop(values);
            // Only the credential fields are replaced: entries under other names (an OAuth verifier, tokens a
            // concurrent callback or refresh is writing) are left alone in the database, not copied over.
            patch.mcp = Some(StoredMcp::from_manifest(m, plain, vaulted).to_json()?);
            patch.replace_secrets = Some((names::FIELD_PREFIX.to_string(), secrets));
            field_keys = submitted.keys().map(|k| truncate(k, 64)).collect();
            changed.push("fields");
        }
    }
    patch.audit = Some(audit(
        &integration.workspace_id,
        principal,
        "integration.update",
        &integration.id,
        json!({"connector_id": integration.connector_id, "changed": changed, "fields": field_keys}),
    ));
    let prefix = patch.tool_prefix.clone();
    let reset = patch.reset_tool_prefix;
    let updated = app
        .store
        .update_integration(&integration.id, patch)
        .await
        .map_err(|e| match (e, &prefix) {
            (plugboard_store::StoreError::Conflict(_), None) if reset => ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "tool_prefix_taken",
                "another integration of this workspace took the default tool_prefix at the same moment: send the \
                 request again to get the next free one",
            ),
            (plugboard_store::StoreError::Conflict(_), Some(p)) => ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "tool_prefix_taken",
                format!(
                    "another integration of this workspace already uses the tool_prefix `{p}`: choose another \
                     one (or change that integration's first)"
                ),
            ),
            (e, _) => e.into(),
        })?
        .ok_or_else(|| ApiError::not_found("integration"))?;
    Ok(integration_body(app, &updated))
}

/// `DELETE /api/v1/integrations/{id}`: the integration, its vault entries and OAuth states, with the audit entry.
#[tracing::instrument(skip_all, fields(integration_id = %integration.id))]
pub async fn delete(
    app: &App,
    principal: &Principal,
    integration: Integration,
) -> Result<(), ApiError> {
    let entry = audit(
        &integration.workspace_id,
        principal,
        "integration.delete",
        &integration.id,
        json!({"connector_id": integration.connector_id}),
    );
    if app.store.delete_integration(&integration.id, entry).await? {
        Ok(())
    } else {
        Err(ApiError::not_found("integration"))
    }
}
