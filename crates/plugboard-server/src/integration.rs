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
//!   to (workspace, caller, key); the fingerprint is SHA-256 over the operation, the connector id and the body in
//!   canonical form (object keys sorted). A retry with the same key and request gets the first response (same status
//!   and body, plus `Idempotent-Replayed: true`); the same key with another request gets 422
//!   `idempotency_key_reused`. The stored response holds no secret (an `oauth_url` carries the state, which is fine
//!   to replay to the same caller).

use std::collections::BTreeMap;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use plugboard_catalog::{AuthMode, Manifest, RenderContext, Template, Transport};
use plugboard_store::{
    new_id, now_ms, AuditRow, Integration, IntegrationPatch, NewAudit, NewIdempotency,
    NewIntegration, NewOAuthState, NewSecret, Role, SecretRow, StoreError,
};
use rand::RngCore;
use secrecy::zeroize::Zeroize;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::app::{App, AppState};
use crate::auth::{require_role, Principal};
use crate::error::ApiError;
use crate::routes::{json_object, only_keys, truncate};

/// What every vaulted value looks like in a response.
pub const MASK: &str = "********";
/// Secret names of credential fields: `field.<key>`.
pub const FIELD_SECRET_PREFIX: &str = "field.";
/// The PKCE code verifier of a pending byo_oauth install, for the OAuth callback to consume.
pub const PKCE_VERIFIER_SECRET: &str = "oauth.pkce_verifier";
/// `auth_mode` of a custom MCP server.
pub const CUSTOM_AUTH_MODE: &str = "custom";
/// An OAuth `state` is good for this long.
pub const OAUTH_STATE_TTL_MS: i64 = 10 * 60 * 1000;
/// The flow name stored with a byo_oauth state.
pub const BYO_OAUTH_FLOW: &str = "byo_oauth";

/// Limits on what a request may set.
pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_COMMAND_BYTES: usize = 1024;
pub const MAX_ARGS: usize = 64;
pub const MAX_ARG_BYTES: usize = 4096;
pub const MAX_MAP_ENTRIES: usize = 64;
pub const MAX_MAP_KEY_BYTES: usize = 128;
pub const MAX_MAP_VALUE_BYTES: usize = 16 * 1024;
pub const MAX_ENDPOINT_BYTES: usize = 2048;
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 255;
pub const AUDIT_DEFAULT_LIMIT: i64 = 50;
pub const AUDIT_MAX_LIMIT: i64 = 200;

// ---------------------------------------------------------------------------------------------------------------
// Values in memory
// ---------------------------------------------------------------------------------------------------------------

/// Credential form values in memory: wiped on drop; `Debug` lists the keys only.
#[derive(Default)]
pub struct FieldValues(BTreeMap<String, String>);

impl FieldValues {
    fn map(&self) -> &BTreeMap<String, String> {
        &self.0
    }
    fn insert(&mut self, key: String, value: String) {
        if let Some(mut old) = self.0.insert(key, value) {
            old.zeroize();
        }
    }
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}

impl From<BTreeMap<String, String>> for FieldValues {
    fn from(map: BTreeMap<String, String>) -> Self {
        FieldValues(map)
    }
}

impl Drop for FieldValues {
    fn drop(&mut self) {
        for v in self.0.values_mut() {
            v.zeroize();
        }
    }
}

impl std::fmt::Debug for FieldValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The stored MCP block
// ---------------------------------------------------------------------------------------------------------------

/// The `mcp` column: templates (sources), plain values and the names of vaulted fields. Never a secret value.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredMcp {
    /// Format version.
    pub v: u32,
    pub transport: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Name → template, in the author's order.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub env: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub headers: Map<String, Value>,
    /// The manifest's derived templates.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub derived: Map<String, Value>,
    /// Field values kept in the clear (non-secret fields of a `none` install).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub plain: BTreeMap<String, String>,
    /// Field keys whose values are sealed in the vault as `field.<key>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vaulted: Vec<String>,
}

const STORED_MCP_VERSION: u32 = 1;

/// A literal string as a template source: `${` is written `$${`, so nothing in it is a placeholder.
pub fn escape_literal(s: &str) -> String {
    s.replace("${", "$${")
}

/// Template sources of a manifest map, in the author's order.
fn template_map<'a>(it: impl Iterator<Item = (&'a String, &'a Template)>) -> Map<String, Value> {
    it.map(|(k, t)| (k.clone(), Value::String(t.source().to_string())))
        .collect()
}

impl StoredMcp {
    /// A snapshot of a manifest's templates.
    fn from_manifest(m: &Manifest, plain: BTreeMap<String, String>, vaulted: Vec<String>) -> Self {
        StoredMcp {
            v: STORED_MCP_VERSION,
            transport: m.mcp.transport.as_str().to_string(),
            command: m.mcp.command.as_ref().map(|t| t.source().to_string()),
            args: m.mcp.args.iter().map(|t| t.source().to_string()).collect(),
            endpoint: m.mcp.endpoint.as_ref().map(|t| t.source().to_string()),
            env: template_map(m.mcp.env.iter()),
            headers: template_map(m.mcp.headers.iter()),
            derived: template_map(m.derived.iter()),
            plain,
            vaulted,
        }
    }

    fn to_json(&self) -> Result<String, ApiError> {
        serde_json::to_string(self).map_err(ApiError::internal)
    }

    fn parse(text: &str) -> Result<StoredMcp, String> {
        let stored: StoredMcp =
            serde_json::from_str(text).map_err(|e| format!("stored MCP block: {e}"))?;
        if stored.v != STORED_MCP_VERSION {
            return Err(format!(
                "stored MCP block: unknown format version {}",
                stored.v
            ));
        }
        Ok(stored)
    }

    /// Renders the block with `values` for the fields (plain and vaulted alike).
    fn render(
        &self,
        values: &BTreeMap<String, String>,
        instance_url: &str,
        oauth_access_token: Option<&str>,
    ) -> Result<Value, String> {
        let transport = Transport::parse(&self.transport)
            .ok_or_else(|| format!("stored MCP block: unknown transport `{}`", self.transport))?;
        let parse = |what: &str, src: &str| {
            Template::parse(src).map_err(|e| format!("stored MCP block: {what}: {e}"))
        };
        let parse_map = |what: &str, map: &Map<String, Value>| {
            map.iter()
                .map(|(k, v)| {
                    let src = v
                        .as_str()
                        .ok_or_else(|| format!("stored MCP block: {what}.{k} is not a string"))?;
                    Ok((k.clone(), parse(&format!("{what}.{k}"), src)?))
                })
                .collect::<Result<Vec<(String, Template)>, String>>()
        };
        // Derived values, resolved transitively (the loader proved there is no cycle; a pass without progress is
        // still reported rather than looping).
        let mut derived = BTreeMap::new();
        let mut pending = parse_map("derived", &self.derived)?;
        while !pending.is_empty() {
            let before = pending.len();
            let mut waiting = Vec::new();
            for (key, t) in pending {
                if t.derived_refs().all(|d| derived.contains_key(d)) {
                    let ctx = RenderContext {
                        fields: values,
                        derived: &derived,
                        instance_url,
                        oauth_access_token: None,
                    };
                    let value = t
                        .render(&ctx)
                        .map_err(|e| format!("derived `{key}`: {e}"))?;
                    derived.insert(key, value);
                } else {
                    waiting.push((key, t));
                }
            }
            if waiting.len() == before {
                return Err("stored MCP block: derived values cannot be resolved".into());
            }
            pending = waiting;
        }
        let ctx = RenderContext {
            fields: values,
            derived: &derived,
            instance_url,
            oauth_access_token,
        };
        let render = |what: &str, t: &Template| {
            t.render(&ctx)
                .map(Value::String)
                .map_err(|e| format!("{what}: {e}"))
        };
        let mut out = Map::new();
        out.insert("transport".into(), Value::String(self.transport.clone()));
        if transport.is_http() {
            let endpoint = self
                .endpoint
                .as_deref()
                .ok_or("stored MCP block: an HTTP transport without an endpoint")?;
            out.insert(
                "endpoint".into(),
                render("endpoint", &parse("endpoint", endpoint)?)?,
            );
            let mut headers = Map::new();
            for (k, t) in parse_map("headers", &self.headers)? {
                let v = render(&format!("headers.{k}"), &t)?;
                headers.insert(k, v);
            }
            out.insert("headers".into(), Value::Object(headers));
        } else {
            let command = self
                .command
                .as_deref()
                .ok_or("stored MCP block: stdio without a command")?;
            out.insert(
                "command".into(),
                render("command", &parse("command", command)?)?,
            );
            let mut args = Vec::with_capacity(self.args.len());
            for (i, a) in self.args.iter().enumerate() {
                args.push(render(&format!("args[{i}]"), &parse("args", a)?)?);
            }
            out.insert("args".into(), Value::Array(args));
            let mut env = Map::new();
            for (k, t) in parse_map("env", &self.env)? {
                let v = render(&format!("env.{k}"), &t)?;
                env.insert(k, v);
            }
            out.insert("env".into(), Value::Object(env));
        }
        Ok(Value::Object(out))
    }

    /// The block as responses show it: vaulted values and the OAuth token as `"********"`.
    pub fn masked(&self, instance_url: &str) -> Result<Value, String> {
        let sentinel = format!("pbmask{}", random_alphanumeric(26));
        let mut values = self.plain.clone();
        for key in &self.vaulted {
            values.insert(key.clone(), sentinel.clone());
        }
        let mut rendered = self.render(&values, instance_url, Some(&sentinel))?;
        replace_in_strings(&mut rendered, &sentinel, MASK);
        Ok(rendered)
    }
}

fn replace_in_strings(v: &mut Value, from: &str, to: &str) {
    match v {
        Value::String(s) if s.contains(from) => *s = s.replace(from, to),
        Value::Array(items) => items
            .iter_mut()
            .for_each(|i| replace_in_strings(i, from, to)),
        Value::Object(map) => map
            .values_mut()
            .for_each(|i| replace_in_strings(i, from, to)),
        _ => {}
    }
}

fn random_alphanumeric(n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

fn random_b64url(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    let out = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&buf);
    buf.zeroize();
    out
}

// ---------------------------------------------------------------------------------------------------------------
// Response shapes
// ---------------------------------------------------------------------------------------------------------------

/// An integration as every endpoint but `/runtime` returns it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IntegrationBody {
    pub id: String,
    pub workspace_id: String,
    /// `null` at workspace scope.
    pub crew_id: Option<String>,
    /// `null` for a custom server.
    pub connector_id: Option<String>,
    pub name: String,
    /// `pat`, `conn_string`, `mcp_oauth`, `byo_oauth`, `none`, or `custom` for a custom server.
    pub auth_mode: String,
    /// `active`, `pending_oauth` or `error`.
    pub status: String,
    /// Why the status is what it is (set with `error`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    pub enabled: bool,
    /// Transport and its settings; every secret value is `"********"` (in `/runtime`: materialised).
    #[schema(value_type = Object)]
    pub mcp: Value,
    pub created_by: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Milliseconds since the Unix epoch.
    pub updated_at: i64,
}

/// The install response (201).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InstallBody {
    pub integration_id: String,
    /// `""` done; `"oauth"` open `oauth_url`; `"mcp_oauth"` hand off to the MCP OAuth flow.
    pub next_step: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth_url: Option<String>,
}

/// One audit entry.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: String,
    pub workspace_id: Option<String>,
    pub actor_id: Option<String>,
    /// e.g. `integration.install`, `integration.runtime_read`.
    pub action: String,
    /// The integration id.
    pub target: Option<String>,
    /// Never holds a secret value.
    #[schema(value_type = Object)]
    pub detail: Value,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

/// A page of the audit log, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` for the next (older) page; `null` when this page is the last.
    pub next_before: Option<String>,
}

/// A created resource (or the replay of one): status, JSON body, and whether it is a replay.
pub struct Created {
    pub status: StatusCode,
    pub body: String,
    pub replayed: bool,
}

impl IntoResponse for Created {
    fn into_response(self) -> Response {
        let mut res = (self.status, self.body).into_response();
        let h = res.headers_mut();
        h.insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.replayed {
            h.insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        res
    }
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

fn body_with_mcp(i: &Integration, mcp: Value) -> IntegrationBody {
    IntegrationBody {
        id: i.id.clone(),
        workspace_id: i.workspace_id.clone(),
        crew_id: i.crew_id.clone(),
        connector_id: i.connector_id.clone(),
        name: i.name.clone(),
        auth_mode: i.auth_mode.clone(),
        status: i.status.clone(),
        status_reason: i.status_reason.clone(),
        enabled: i.enabled,
        mcp,
        created_by: i.created_by.clone(),
        created_at: i.created_at,
        updated_at: i.updated_at,
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Request helpers
// ---------------------------------------------------------------------------------------------------------------

/// A user-facing label: trimmed, non-empty, at most [`MAX_NAME_CHARS`] characters, no control characters.
fn valid_name(raw: &str) -> Result<String, ApiError> {
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

fn opt_name(body: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    match body.get("name") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => valid_name(s).map(Some),
        Some(_) => Err(ApiError::invalid_field("`name` must be a string")),
    }
}

/// `crew_id`, when given, must be a crew of `workspace_id`.
async fn check_crew(
    app: &App,
    workspace_id: &str,
    body: &Map<String, Value>,
) -> Result<Option<String>, ApiError> {
    let crew_id = match body.get("crew_id") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.trim(),
        Some(_) => return Err(ApiError::invalid_field("`crew_id` must be a string")),
    };
    let bad = || ApiError::invalid_field("`crew_id` is not a crew of this workspace");
    if crew_id.is_empty() || crew_id.len() > 64 {
        return Err(bad());
    }
    match app.store.get_crew(crew_id).await? {
        Some(c) if c.workspace_id == workspace_id => Ok(Some(c.id)),
        _ => Err(bad()),
    }
}

/// The `Idempotency-Key` header: absent, or 1 to 255 visible ASCII characters (400 otherwise).
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all("idempotency-key").iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let bad = || {
        ApiError::bad_request(format!(
            "the Idempotency-Key header must be one value of 1 to {MAX_IDEMPOTENCY_KEY_BYTES} visible ASCII characters"
        ))
    };
    if values.next().is_some() {
        return Err(bad());
    }
    let bytes = value.as_bytes();
    if bytes.is_empty()
        || bytes.len() > MAX_IDEMPOTENCY_KEY_BYTES
        || !bytes.iter().all(|b| (0x21..=0x7e).contains(b))
    {
        return Err(bad());
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

/// The JSON value with object keys sorted, recursively.
fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .filter_map(|k| map.get(k).map(|x| (k.clone(), canonical(x))))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

fn fingerprint(operation: &str, connector_id: &str, body: &Map<String, Value>) -> Vec<u8> {
    let mut canon = canonical(&Value::Object(body.clone())).to_string();
    let mut h = Sha256::new();
    h.update(b"plugboard-idempotency/v1\0");
    h.update(operation.as_bytes());
    h.update(b"\0");
    h.update(connector_id.as_bytes());
    h.update(b"\0");
    h.update(canon.as_bytes());
    canon.zeroize();
    h.finalize().to_vec()
}

fn key_reused() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        "this Idempotency-Key was already used for a different request",
    )
}

/// A stored first response for this (workspace, caller, key), if any: the replay, or 422 for another request.
async fn replay(
    app: &App,
    workspace_id: &str,
    principal: &Principal,
    idem: &Idem,
) -> Result<Option<Created>, ApiError> {
    let Some(rec) = app
        .store
        .idempotency_get(workspace_id, &principal.user_id, &idem.key)
        .await?
    else {
        return Ok(None);
    };
    if rec.fingerprint != idem.fingerprint {
        return Err(key_reused());
    }
    let status = u16::try_from(rec.status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or_else(|| ApiError::internal("stored idempotent response has an invalid status"))?;
    Ok(Some(Created {
        status,
        body: rec.response,
        replayed: true,
    }))
}

struct Idem {
    key: String,
    fingerprint: Vec<u8>,
}

/// Writes a new integration; a concurrent duplicate that lost the unique race on its Idempotency-Key gets the
/// winner's stored response.
async fn write_integration(
    app: &App,
    principal: &Principal,
    new: NewIntegration,
    idem: Option<&Idem>,
    body: String,
) -> Result<Created, ApiError> {
    let workspace_id = new.workspace_id.clone();
    match app.store.create_integration(new).await {
        Ok(_) => Ok(Created {
            status: StatusCode::CREATED,
            body,
            replayed: false,
        }),
        Err(StoreError::Conflict(m)) => match idem {
            Some(idem) => match replay(app, &workspace_id, principal, idem).await? {
                Some(first) => Ok(first),
                None => Err(ApiError::conflict(m)),
            },
            None => Err(ApiError::conflict(m)),
        },
        Err(e) => Err(e.into()),
    }
}

fn vault_err(e: crate::vault::VaultServiceError) -> ApiError {
    ApiError::internal(e)
}

async fn seal_fields(
    app: &App,
    integration_id: &str,
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
                    &format!("{FIELD_SECRET_PREFIX}{key}"),
                    value.as_bytes(),
                )
                .await
                .map_err(vault_err)?,
        );
    }
    Ok(out)
}

/// Which validated values go to the vault and which stay plain, by auth mode.
fn split_values(m: &Manifest, values: &FieldValues) -> (BTreeMap<String, String>, Vec<String>) {
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

fn field_error(e: plugboard_catalog::FieldError) -> ApiError {
    // `FieldError` names the field, never the value.
    ApiError::invalid_field(e.to_string())
}

fn audit(
    workspace_id: &str,
    principal: &Principal,
    action: &str,
    target: &str,
    detail: Value,
) -> NewAudit {
    NewAudit {
        workspace_id: Some(workspace_id.to_string()),
        actor_id: Some(principal.user_id.clone()),
        action: action.to_string(),
        target: Some(target.to_string()),
        detail,
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Install
// ---------------------------------------------------------------------------------------------------------------

/// `POST /api/v1/connectors/{id}/install`, after authentication, `workspace_id` and the role check: connector (404),
/// Idempotency-Key and body (400), replay or 422, fields (400), crew (400), then one transaction.
#[tracing::instrument(skip_all, fields(connector_id = %truncate(connector_id, 64)))]
pub async fn install(
    app: &App,
    principal: &Principal,
    workspace_id: &str,
    connector_id: &str,
    headers: &HeaderMap,
    raw_body: &[u8],
) -> Result<Created, ApiError> {
    let entry = app
        .catalog
        .catalog
        .get(connector_id)
        .ok_or_else(|| ApiError::not_found("connector"))?;
    let m = &entry.manifest;
    let key = idempotency_key(headers)?;
    let body = if raw_body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        json_object(raw_body)?
    };
    only_keys(&body, &["crew_id", "name", "fields"])?;
    let idem = key.map(|key| Idem {
        fingerprint: fingerprint("install", &m.id, &body),
        key,
    });
    if let Some(idem) = &idem {
        if let Some(first) = replay(app, workspace_id, principal, idem).await? {
            return Ok(first);
        }
    }
    let submitted = match body.get("fields") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(f)) => f.clone(),
        Some(_) => return Err(ApiError::invalid_field("`fields` must be an object")),
    };
    let values = FieldValues::from(m.validate_submission(&submitted).map_err(field_error)?);
    drop(submitted);
    let name = opt_name(&body)?.unwrap_or_else(|| m.name.clone());
    let crew_id = check_crew(app, workspace_id, &body).await?;

    let id = new_id();
    let (plain, vaulted) = split_values(m, &values);
    let mut secrets = seal_fields(app, &id, &values, &vaulted).await?;
    let (status, next_step, oauth_url, oauth_state) = match m.auth_mode {
        AuthMode::Pat | AuthMode::ConnString | AuthMode::None => ("active", "", None, None),
        AuthMode::McpOauth => ("pending_oauth", "mcp_oauth", None, None),
        AuthMode::ByoOauth => {
            let start = byo_oauth_start(app, m, &id, &values).await?;
            if let Some(v) = start.verifier {
                secrets.push(v);
            }
            ("pending_oauth", "oauth", Some(start.url), Some(start.state))
        }
    };
    drop(values);
    let stored = StoredMcp::from_manifest(m, plain, vaulted).to_json()?;
    let response = serde_json::to_string(&InstallBody {
        integration_id: id.clone(),
        next_step: next_step.to_string(),
        oauth_url,
    })
    .map_err(ApiError::internal)?;
    let new = NewIntegration {
        id: id.clone(),
        workspace_id: workspace_id.to_string(),
        crew_id: crew_id.clone(),
        connector_id: Some(m.id.clone()),
        name,
        auth_mode: m.auth_mode.as_str().to_string(),
        status: status.to_string(),
        mcp: stored,
        created_by: principal.user_id.clone(),
        secrets,
        oauth_state,
        audit: audit(
            workspace_id,
            principal,
            "integration.install",
            &id,
            json!({"connector_id": m.id, "auth_mode": m.auth_mode.as_str(), "crew_id": crew_id, "status": status}),
        ),
        idempotency: idem.as_ref().map(|i| NewIdempotency {
            key: i.key.clone(),
            fingerprint: i.fingerprint.clone(),
            status: i64::from(StatusCode::CREATED.as_u16()),
            response: response.clone(),
        }),
    };
    write_integration(app, principal, new, idem.as_ref(), response).await
}

struct OAuthStart {
    url: String,
    state: NewOAuthState,
    verifier: Option<NewSecret>,
}

/// The byo_oauth authorization URL: the manifest's `authorization_url` rendered with the fields, plus
/// `response_type=code`, `client_id`, `redirect_uri`, `scope`, a single-use `state` (only its SHA-256 is stored)
/// and, with PKCE, an S256 `code_challenge` whose verifier is sealed in the vault; then `authorize_params`.
async fn byo_oauth_start(
    app: &App,
    m: &Manifest,
    integration_id: &str,
    values: &FieldValues,
) -> Result<OAuthStart, ApiError> {
    let oauth = m
        .oauth
        .as_ref()
        .ok_or_else(|| ApiError::internal("byo_oauth manifest without an oauth block"))?;
    let instance_url = app.config.public_url.as_str();
    let derived = m
        .resolve_derived(values.map(), instance_url)
        .map_err(ApiError::internal)?;
    let ctx = RenderContext {
        fields: values.map(),
        derived: &derived,
        instance_url,
        oauth_access_token: None,
    };
    let rendered = oauth
        .authorization_url
        .render(&ctx)
        .map_err(ApiError::internal)?;
    let mut url = url::Url::parse(&rendered)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
        .ok_or_else(|| {
            ApiError::invalid_field(
                "the connector's authorization_url does not render to an http(s) URL with the submitted fields",
            )
        })?;
    let client_id = values
        .get("client_id")
        .ok_or_else(|| ApiError::invalid_field("field `client_id`: is required"))?;
    let state = random_b64url(32);
    let state_hash = Sha256::digest(state.as_bytes()).to_vec();
    let redirect_uri = app.config.oauth_redirect_uri();
    let mut extra = Vec::with_capacity(oauth.authorize_params.len());
    for (k, t) in &oauth.authorize_params {
        extra.push((k.clone(), t.render(&ctx).map_err(ApiError::internal)?));
    }
    let verifier = if oauth.pkce {
        let verifier = SecretString::from(random_b64url(32));
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(Sha256::digest(verifier.expose_secret().as_bytes()));
        let sealed = app
            .vault
            .seal(
                integration_id,
                PKCE_VERIFIER_SECRET,
                verifier.expose_secret().as_bytes(),
            )
            .await
            .map_err(vault_err)?;
        Some((sealed, challenge))
    } else {
        None
    };
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code");
        q.append_pair("client_id", client_id);
        q.append_pair("redirect_uri", &redirect_uri);
        let scope = oauth.scope_string();
        if !scope.is_empty() {
            q.append_pair("scope", &scope);
        }
        q.append_pair("state", &state);
        if let Some((_, challenge)) = &verifier {
            q.append_pair("code_challenge", challenge);
            q.append_pair("code_challenge_method", "S256");
        }
        for (k, v) in &extra {
            q.append_pair(k, v);
        }
    }
    Ok(OAuthStart {
        url: url.to_string(),
        state: NewOAuthState {
            state_hash,
            flow: BYO_OAUTH_FLOW.to_string(),
            redirect_uri,
            issuer: None,
            expires_at: now_ms().saturating_add(OAUTH_STATE_TTL_MS),
        },
        verifier: verifier.map(|(s, _)| s),
    })
}

// ---------------------------------------------------------------------------------------------------------------
// The custom MCP server
// ---------------------------------------------------------------------------------------------------------------

/// One header or env value of a custom server: a plain string or `{"value": "…", "secret": true}`.
fn custom_value(what: &str, name: &str, v: &Value) -> Result<(String, bool), ApiError> {
    let shown = truncate(name, 64);
    let (value, secret) = match v {
        Value::String(s) => (s.clone(), false),
        Value::Object(o) => {
            if let Some(k) = o.keys().find(|k| *k != "value" && *k != "secret") {
                return Err(ApiError::invalid_field(format!(
                    "{what} `{shown}`: unknown key `{}` (allowed: value, secret)",
                    truncate(k, 64)
                )));
            }
            let value = match o.get("value") {
                Some(Value::String(s)) => s.clone(),
                _ => {
                    return Err(ApiError::invalid_field(format!(
                        "{what} `{shown}`: `value` must be a string"
                    )))
                }
            };
            let secret = match o.get("secret") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    return Err(ApiError::invalid_field(format!(
                        "{what} `{shown}`: `secret` must be true or false"
                    )))
                }
            };
            (value, secret)
        }
        _ => {
            return Err(ApiError::invalid_field(format!(
                "{what} `{shown}` must be a string or {{\"value\": \"…\", \"secret\": true}}"
            )))
        }
    };
    if value.len() > MAX_MAP_VALUE_BYTES {
        return Err(ApiError::invalid_field(format!(
            "{what} `{shown}`: the value is longer than {MAX_MAP_VALUE_BYTES} bytes"
        )));
    }
    Ok((value, secret))
}

const FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-authorization",
    "proxy-connection",
    "expect",
];

fn is_env_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn no_control(what: &str, s: &str) -> Result<(), ApiError> {
    if s.chars().any(|c| c.is_control()) {
        return Err(ApiError::invalid_field(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(())
}

fn object_of<'a>(
    body: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a Map<String, Value>>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(ApiError::invalid_field(format!(
            "`{key}` must be an object"
        ))),
    }
}

fn forbid(body: &Map<String, Value>, keys: &[&str], transport: &str) -> Result<(), ApiError> {
    for k in keys {
        let present = match body.get(*k) {
            None | Some(Value::Null) => false,
            Some(Value::Array(a)) => !a.is_empty(),
            Some(Value::Object(o)) => !o.is_empty(),
            Some(Value::String(s)) => !s.is_empty(),
            Some(_) => true,
        };
        if present {
            return Err(ApiError::invalid_field(format!(
                "`{k}` is not allowed with transport `{transport}`"
            )));
        }
    }
    Ok(())
}

/// The stored block of a custom server being built, with the values to seal.
struct CustomBuilder {
    stored: StoredMcp,
    secret_values: FieldValues,
}

impl CustomBuilder {
    /// One entry of `env` / `headers`: a literal template, or a placeholder for a value that will be sealed.
    fn entry(&mut self, prefix: &str, index: usize, value: String, secret: bool) -> Value {
        if secret {
            let field = format!("{prefix}_{index}");
            self.secret_values.insert(field.clone(), value);
            self.stored.vaulted.push(field.clone());
            Value::String(format!("${{field.{field}}}"))
        } else {
            Value::String(escape_literal(&value))
        }
    }

    fn http(&mut self, body: &Map<String, Value>, transport: Transport) -> Result<(), ApiError> {
        forbid(body, &["command", "args", "env"], transport.as_str())?;
        let endpoint = match body.get("endpoint") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim(),
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return Err(ApiError::invalid_field(format!(
                    "`endpoint` is required with transport `{}`",
                    transport.as_str()
                )))
            }
            Some(_) => return Err(ApiError::invalid_field("`endpoint` must be a string")),
        };
        if endpoint.len() > MAX_ENDPOINT_BYTES {
            return Err(ApiError::invalid_field(format!(
                "`endpoint` must be at most {MAX_ENDPOINT_BYTES} bytes"
            )));
        }
        let url = url::Url::parse(endpoint)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| ApiError::invalid_field("`endpoint` must be an http(s) URL"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ApiError::invalid_field(
                "`endpoint` must not contain credentials: send them in a secret header",
            ));
        }
        if url.fragment().is_some() {
            return Err(ApiError::invalid_field(
                "`endpoint` must not have a #fragment",
            ));
        }
        self.stored.endpoint = Some(escape_literal(url.as_str()));
        let Some(headers) = object_of(body, "headers")? else {
            return Ok(());
        };
        if headers.len() > MAX_MAP_ENTRIES {
            return Err(ApiError::invalid_field(format!(
                "`headers` may have at most {MAX_MAP_ENTRIES} entries"
            )));
        }
        for (index, (name, v)) in headers.iter().enumerate() {
            let shown = truncate(name, 64);
            if name.len() > MAX_MAP_KEY_BYTES
                || axum::http::HeaderName::from_bytes(name.as_bytes()).is_err()
            {
                return Err(ApiError::invalid_field(format!(
                    "header `{shown}` is not a valid header name"
                )));
            }
            if FORBIDDEN_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(ApiError::invalid_field(format!(
                    "header `{shown}` is set by the transport and may not be configured"
                )));
            }
            if self
                .stored
                .headers
                .keys()
                .any(|k| k.eq_ignore_ascii_case(name))
            {
                return Err(ApiError::invalid_field(format!(
                    "header `{shown}` is given twice"
                )));
            }
            let (value, secret) = custom_value("header", name, v)?;
            if HeaderValue::from_str(&value).is_err() {
                return Err(ApiError::invalid_field(format!(
                    "header `{shown}`: the value must be visible ASCII (no line breaks)"
                )));
            }
            let t = self.entry("header", index, value, secret);
            self.stored.headers.insert(name.clone(), t);
        }
        Ok(())
    }

    fn stdio(&mut self, body: &Map<String, Value>) -> Result<(), ApiError> {
        forbid(body, &["endpoint", "headers"], "stdio")?;
        let command = match body.get("command") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim(),
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return Err(ApiError::invalid_field(
                    "`command` is required with transport `stdio`",
                ))
            }
            Some(_) => return Err(ApiError::invalid_field("`command` must be a string")),
        };
        if command.len() > MAX_COMMAND_BYTES {
            return Err(ApiError::invalid_field(format!(
                "`command` must be at most {MAX_COMMAND_BYTES} bytes"
            )));
        }
        no_control("`command`", command)?;
        self.stored.command = Some(escape_literal(command));
        match body.get("args") {
            None | Some(Value::Null) => {}
            Some(Value::Array(args)) => {
                if args.len() > MAX_ARGS {
                    return Err(ApiError::invalid_field(format!(
                        "`args` may have at most {MAX_ARGS} items"
                    )));
                }
                for (i, a) in args.iter().enumerate() {
                    let a = a.as_str().ok_or_else(|| {
                        ApiError::invalid_field(format!("`args[{i}]` must be a string"))
                    })?;
                    if a.len() > MAX_ARG_BYTES || a.contains('\0') {
                        return Err(ApiError::invalid_field(format!(
                            "`args[{i}]` must be at most {MAX_ARG_BYTES} bytes without NUL"
                        )));
                    }
                    self.stored.args.push(escape_literal(a));
                }
            }
            Some(_) => {
                return Err(ApiError::invalid_field(
                    "`args` must be an array of strings",
                ))
            }
        }
        let Some(env) = object_of(body, "env")? else {
            return Ok(());
        };
        if env.len() > MAX_MAP_ENTRIES {
            return Err(ApiError::invalid_field(format!(
                "`env` may have at most {MAX_MAP_ENTRIES} entries"
            )));
        }
        for (index, (name, v)) in env.iter().enumerate() {
            let shown = truncate(name, 64);
            if name.len() > MAX_MAP_KEY_BYTES || !is_env_name(name) {
                return Err(ApiError::invalid_field(format!(
                    "env `{shown}` is not a valid variable name (letters, digits and `_`, not starting with a digit)"
                )));
            }
            let (value, secret) = custom_value("env", name, v)?;
            if value.contains('\0') {
                return Err(ApiError::invalid_field(format!(
                    "env `{shown}`: the value must not contain NUL"
                )));
            }
            let t = self.entry("env", index, value, secret);
            self.stored.env.insert(name.clone(), t);
        }
        Ok(())
    }
}

/// `POST /api/v1/integrations?workspace_id=`: a hand-described MCP server. Secret header / env values are sealed;
/// everything else is validated strictly and stored plainly.
#[tracing::instrument(skip_all)]
pub async fn create_custom(
    app: &App,
    principal: &Principal,
    workspace_id: &str,
    headers: &HeaderMap,
    raw_body: &[u8],
) -> Result<Created, ApiError> {
    let key = idempotency_key(headers)?;
    let body = json_object(raw_body)?;
    only_keys(
        &body,
        &[
            "name",
            "crew_id",
            "transport",
            "command",
            "args",
            "env",
            "endpoint",
            "headers",
        ],
    )?;
    let idem = key.map(|key| Idem {
        fingerprint: fingerprint("custom", "", &body),
        key,
    });
    if let Some(idem) = &idem {
        if let Some(first) = replay(app, workspace_id, principal, idem).await? {
            return Ok(first);
        }
    }
    let name = opt_name(&body)?.ok_or_else(|| ApiError::invalid_field("`name` is required"))?;
    let transport = match body.get("transport") {
        Some(Value::String(s)) => Transport::parse(s).ok_or_else(|| {
            ApiError::invalid_field("`transport` must be one of: stdio, streamable-http, sse")
        })?,
        None | Some(Value::Null) => return Err(ApiError::invalid_field("`transport` is required")),
        Some(_) => return Err(ApiError::invalid_field("`transport` must be a string")),
    };
    let mut custom = CustomBuilder {
        stored: StoredMcp {
            v: STORED_MCP_VERSION,
            transport: transport.as_str().to_string(),
            command: None,
            args: Vec::new(),
            endpoint: None,
            env: Map::new(),
            headers: Map::new(),
            derived: Map::new(),
            plain: BTreeMap::new(),
            vaulted: Vec::new(),
        },
        secret_values: FieldValues::default(),
    };
    if transport.is_http() {
        custom.http(&body, transport)?;
    } else {
        custom.stdio(&body)?;
    }
    let crew_id = check_crew(app, workspace_id, &body).await?;
    let id = new_id();
    let CustomBuilder {
        stored,
        secret_values,
    } = custom;
    let secrets = seal_fields(app, &id, &secret_values, &stored.vaulted).await?;
    drop(secret_values);
    let response = serde_json::to_string(&InstallBody {
        integration_id: id.clone(),
        next_step: String::new(),
        oauth_url: None,
    })
    .map_err(ApiError::internal)?;
    let new = NewIntegration {
        id: id.clone(),
        workspace_id: workspace_id.to_string(),
        crew_id: crew_id.clone(),
        connector_id: None,
        name,
        auth_mode: CUSTOM_AUTH_MODE.to_string(),
        status: "active".to_string(),
        mcp: stored.to_json()?,
        created_by: principal.user_id.clone(),
        secrets,
        oauth_state: None,
        audit: audit(
            workspace_id,
            principal,
            "integration.create",
            &id,
            json!({"connector_id": null, "transport": transport.as_str(), "crew_id": crew_id,
                   "secret_values": stored.vaulted.len()}),
        ),
        idempotency: idem.as_ref().map(|i| NewIdempotency {
            key: i.key.clone(),
            fingerprint: i.fingerprint.clone(),
            status: i64::from(StatusCode::CREATED.as_u16()),
            response: response.clone(),
        }),
    };
    write_integration(app, principal, new, idem.as_ref(), response).await
}

// ---------------------------------------------------------------------------------------------------------------
// List, get, patch, delete
// ---------------------------------------------------------------------------------------------------------------

/// Loads an integration and checks the caller's role on its workspace: 404 when it does not exist, then 403.
pub async fn load_for(
    app: &AppState,
    principal: &Principal,
    integration_id: &str,
    min: Role,
) -> Result<Integration, ApiError> {
    let not_found = || ApiError::not_found("integration");
    if integration_id.is_empty() || integration_id.len() > 64 {
        return Err(not_found());
    }
    let integration = app
        .store
        .get_integration(integration_id)
        .await?
        .ok_or_else(not_found)?;
    require_role(app, principal, &integration.workspace_id, min).await?;
    Ok(integration)
}

/// The integrations of a workspace (optionally only those installed at one crew's scope), oldest first.
pub async fn list(
    app: &App,
    workspace_id: &str,
    crew_id: Option<&str>,
) -> Result<Vec<IntegrationBody>, ApiError> {
    if let Some(c) = crew_id {
        match app.store.get_crew(c).await? {
            Some(crew) if crew.workspace_id == workspace_id => {}
            _ => {
                return Err(ApiError::bad_request(
                    "`crew_id` is not a crew of this workspace",
                ))
            }
        }
    }
    let rows = app.store.list_integrations(workspace_id, crew_id).await?;
    Ok(rows.iter().map(|i| integration_body(app, i)).collect())
}

/// Decrypts every `field.*` secret of an integration.
async fn open_fields(app: &App, rows: &[SecretRow]) -> Result<FieldValues, ApiError> {
    let mut values = FieldValues::default();
    for row in rows {
        if let Some(key) = row.name.strip_prefix(FIELD_SECRET_PREFIX) {
            let plain = app.vault.open(row).await.map_err(vault_err)?;
            let text = plain
                .into_string()
                .map_err(|e| ApiError::internal(format!("secret {}: {e}", row.name)))?;
            values.insert(key.to_string(), text.expose_secret().to_string());
        }
    }
    Ok(values)
}

/// `PATCH /api/v1/integrations/{id}`: `name`, `enabled`, and `fields` (replace credential fields: merged over the
/// current values, validated as a whole against the current manifest, re-sealed; the old entries are destroyed).
#[tracing::instrument(skip_all, fields(integration_id = %integration.id))]
pub async fn patch(
    app: &App,
    principal: &Principal,
    integration: Integration,
    raw_body: &[u8],
) -> Result<IntegrationBody, ApiError> {
    let body = json_object(raw_body)?;
    only_keys(&body, &["name", "enabled", "fields"])?;
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "the body must set at least one of: name, enabled, fields",
        ));
    }
    let mut patch = IntegrationPatch {
        name: opt_name(&body)?,
        ..Default::default()
    };
    patch.enabled = match body.get("enabled") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(ApiError::invalid_field("`enabled` must be true or false")),
    };
    let mut changed: Vec<&str> = Vec::new();
    if patch.name.is_some() {
        changed.push("name");
    }
    if patch.enabled.is_some() {
        changed.push("enabled");
    }
    let mut field_keys: Vec<String> = Vec::new();
    match body.get("fields") {
        None | Some(Value::Null) => {}
        Some(Value::Object(submitted)) => {
            let connector_id = integration.connector_id.as_deref().ok_or_else(|| {
                ApiError::invalid_field("`fields`: a custom server has no credential fields")
            })?;
            let entry = app.catalog.catalog.get(connector_id).ok_or_else(|| {
                ApiError::conflict(format!(
                    "connector `{}` is no longer in the catalog, so its fields cannot be validated; \
                     delete this integration and install again",
                    truncate(connector_id, 64)
                ))
            })?;
            let m = &entry.manifest;
            if m.auth_mode.as_str() != integration.auth_mode {
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
            let mut secrets = seal_fields(app, &integration.id, &values, &vaulted).await?;
            drop(values);
            // Entries that are not credential fields (an OAuth verifier, later tokens) are kept as they are.
            secrets.extend(
                rows.into_iter()
                    .filter(|r| !r.name.starts_with(FIELD_SECRET_PREFIX))
                    .map(|r| NewSecret {
                        name: r.name,
                        key_id: r.key_id,
                        ciphertext: r.ciphertext,
                    }),
            );
            patch.mcp = Some(StoredMcp::from_manifest(m, plain, vaulted).to_json()?);
            patch.replace_secrets = Some(secrets);
            field_keys = submitted.keys().map(|k| truncate(k, 64)).collect();
            changed.push("fields");
        }
        Some(_) => return Err(ApiError::invalid_field("`fields` must be an object")),
    }
    patch.audit = Some(audit(
        &integration.workspace_id,
        principal,
        "integration.update",
        &integration.id,
        json!({"connector_id": integration.connector_id, "changed": changed, "fields": field_keys}),
    ));
    let updated = app
        .store
        .update_integration(&integration.id, patch)
        .await?
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

// ---------------------------------------------------------------------------------------------------------------
// Runtime
// ---------------------------------------------------------------------------------------------------------------

/// The OAuth access token for `${oauth.access_token}`. OAuth tokens arrive with the OAuth issue (callback and
/// refresh store them in the vault); until then no integration has one, and OAuth integrations stay
/// `pending_oauth`, which `/runtime` answers with 409 before asking for a token.
pub async fn oauth_access_token(
    _app: &App,
    _integration: &Integration,
) -> Result<Option<SecretString>, ApiError> {
    Ok(None)
}

/// `GET /api/v1/integrations/{id}/runtime`: the MCP block with every secret decrypted. Audited on every read
/// (before the secrets leave). 409 for an integration that is still waiting for OAuth, or disabled.
#[tracing::instrument(skip_all, fields(integration_id = %integration.id))]
pub async fn runtime(
    app: &App,
    principal: &Principal,
    integration: Integration,
) -> Result<IntegrationBody, ApiError> {
    if integration.status == "pending_oauth" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "oauth_pending",
            "this integration is waiting for its OAuth authorization to complete; it has no credentials to \
             hand out yet",
        ));
    }
    if !integration.enabled {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "integration_disabled",
            "this integration is disabled; enable it (PATCH `enabled`: true) to use it",
        ));
    }
    let stored = StoredMcp::parse(&integration.mcp).map_err(ApiError::internal)?;
    let rows = app.store.integration_secrets(&integration.id).await?;
    let mut values = open_fields(app, &rows).await?;
    for key in &stored.vaulted {
        if values.get(key).is_none() {
            return Err(ApiError::internal(format!(
                "integration {}: vault entry {FIELD_SECRET_PREFIX}{key} is missing",
                integration.id
            )));
        }
    }
    for (k, v) in &stored.plain {
        values.insert(k.clone(), v.clone());
    }
    let token = oauth_access_token(app, &integration).await?;
    let mcp = stored
        .render(
            values.map(),
            &app.config.public_url,
            token.as_ref().map(|t| t.expose_secret()),
        )
        .map_err(ApiError::internal)?;
    drop(values);
    app.store
        .append_audit(audit(
            &integration.workspace_id,
            principal,
            "integration.runtime_read",
            &integration.id,
            json!({"connector_id": integration.connector_id}),
        ))
        .await?;
    Ok(body_with_mcp(&integration, mcp))
}

// ---------------------------------------------------------------------------------------------------------------
// Audit
// ---------------------------------------------------------------------------------------------------------------

/// Parses `before`: a cursor from `next_before` (`<ms>.<id>`) or a bare time in epoch milliseconds.
fn parse_cursor(raw: &str) -> Option<(i64, String)> {
    let (at, id) = match raw.split_once('.') {
        Some((at, id)) => (at, id),
        None => (raw, ""),
    };
    let at: i64 = at.parse().ok()?;
    if id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    Some((at, id.to_string()))
}

/// `GET /api/v1/audit`: newest first, `limit` 1..=200 (default 50), `before` a cursor.
pub async fn audit_page(
    app: &App,
    workspace_id: &str,
    limit: Option<&str>,
    before: Option<&str>,
) -> Result<AuditPage, ApiError> {
    let limit = match limit {
        None => AUDIT_DEFAULT_LIMIT,
        Some(raw) => raw
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=AUDIT_MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "query parameter `limit` must be a whole number from 1 to {AUDIT_MAX_LIMIT}"
                ))
            })?,
    };
    let cursor = match before.map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(raw) => Some(parse_cursor(raw).ok_or_else(|| {
            ApiError::bad_request(
                "query parameter `before` must be a `next_before` value or a time in epoch milliseconds",
            )
        })?),
    };
    let rows = app
        .store
        .list_audit_page(
            workspace_id,
            limit,
            cursor.as_ref().map(|(t, id)| (*t, id.as_str())),
        )
        .await?;
    let next_before = if i64::try_from(rows.len()).unwrap_or(0) == limit {
        rows.last().map(|r| format!("{}.{}", r.created_at, r.id))
    } else {
        None
    };
    Ok(AuditPage {
        entries: rows.into_iter().map(audit_entry).collect(),
        next_before,
    })
}

fn audit_entry(r: AuditRow) -> AuditEntry {
    let detail = serde_json::from_str(&r.detail).unwrap_or(Value::String(r.detail));
    AuditEntry {
        id: r.id,
        workspace_id: r.workspace_id,
        actor_id: r.actor_id,
        action: r.action,
        target: r.target,
        detail,
        created_at: r.created_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render_literal(s: &str) -> String {
        let t = Template::parse(&escape_literal(s)).expect("escaped literal parses");
        let empty = BTreeMap::new();
        let ctx = RenderContext {
            fields: &empty,
            derived: &empty,
            instance_url: "https://x",
            oauth_access_token: None,
        };
        t.render(&ctx).expect("renders")
    }

    #[test]
    fn an_escaped_literal_renders_as_itself() {
        for s in [
            "",
            "plain",
            "${field.x}",
            "$${",
            "$$${x}",
            "a$b",
            "$",
            "${",
            "}${}{$",
            "${oauth.access_token}",
            "$${field.y}$",
            "x$",
        ] {
            assert_eq!(render_literal(s), s, "{s:?}");
        }
    }

    #[test]
    fn idempotency_keys_are_visible_ascii_of_bounded_length() {
        let mut h = HeaderMap::new();
        assert_eq!(idempotency_key(&h).unwrap(), None);
        h.insert("idempotency-key", HeaderValue::from_static("abc-123_~!"));
        assert_eq!(idempotency_key(&h).unwrap().as_deref(), Some("abc-123_~!"));
        for bad in ["", "with space", &"k".repeat(256)] {
            h.insert("idempotency-key", HeaderValue::from_str(bad).unwrap());
            assert!(idempotency_key(&h).is_err(), "{bad:?}");
        }
        h.insert(
            "idempotency-key",
            HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
        );
        assert!(idempotency_key(&h).is_err());
    }

    #[test]
    fn the_fingerprint_ignores_key_order_but_not_values() {
        let a = json!({"name": "x", "fields": {"a": "1", "b": "2"}});
        let b = json!({"fields": {"b": "2", "a": "1"}, "name": "x"});
        let c = json!({"fields": {"b": "2", "a": "3"}, "name": "x"});
        let f = |v: &Value| fingerprint("install", "github", v.as_object().unwrap());
        assert_eq!(f(&a), f(&b));
        assert_ne!(f(&a), f(&c));
        assert_ne!(
            fingerprint("install", "github", a.as_object().unwrap()),
            fingerprint("install", "slack", a.as_object().unwrap())
        );
    }

    #[test]
    fn field_values_do_not_print_their_values() {
        let mut v = FieldValues::default();
        v.insert("token".into(), "canary-value".into());
        let shown = format!("{v:?}");
        assert!(
            shown.contains("token") && !shown.contains("canary"),
            "{shown}"
        );
    }

    #[test]
    fn audit_cursors_parse_or_are_refused() {
        assert_eq!(parse_cursor("12"), Some((12, String::new())));
        assert_eq!(parse_cursor("12.cabc"), Some((12, "cabc".into())));
        assert_eq!(parse_cursor("x"), None);
        assert_eq!(parse_cursor("12.a'b"), None);
    }
}
