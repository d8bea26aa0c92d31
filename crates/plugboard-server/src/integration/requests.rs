//! The request bodies of the integration endpoints, parsed (in the handler, after the role check) into typed values.
//! Each struct is what its endpoint parses and what the OpenAPI document describes (`ToSchema`), so the two cannot
//! drift apart. Parsing checks the shape (a JSON object, known keys, each member's type, the `name` rules); what
//! needs the manifest, the catalog or the database (field values, the crew) is the service's.
//!
//! Messages name the key, never a submitted value.

use plugboard_catalog::Transport;
use serde::Serialize;
use serde_json::{Map, Value};

use super::valid_name;
use crate::error::ApiError;
use crate::extract::{is_blank, json_object, only_keys, opt_object};

/// `name`: absent (or `null`), or a valid label.
fn opt_name(body: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    match body.get("name") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => valid_name(s).map(Some),
        Some(_) => Err(ApiError::invalid_field("`name` must be a string")),
    }
}

/// `crew_id`: absent (or `null`), or a string (whether it names a crew of the workspace is the service's check).
fn opt_crew_id(body: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    match body.get("crew_id") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(_) => Err(ApiError::invalid_field("`crew_id` must be a string")),
    }
}

/// An optional string member (400 `invalid_field` naming it otherwise).
fn opt_str(body: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::invalid_field(format!("`{key}` must be a string"))),
    }
}

/// A custom server's transport, as the API writes it (for the OpenAPI document).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "kebab-case")]
#[allow(dead_code)]
pub enum TransportName {
    Stdio,
    StreamableHttp,
    Sse,
}

/// `POST /api/v1/connectors/{connector_id}/install`: an empty body is `{}`.
#[derive(Debug, utoipa::ToSchema)]
pub struct InstallRequest {
    /// A crew of the same workspace for a crew-scoped install; omit for workspace scope.
    #[schema(value_type = Option<String>)]
    pub crew_id: Option<String>,
    /// User-facing label (1 to 200 characters); defaults to the manifest's name.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: Option<String>,
    /// The form values keyed by field key (required when the manifest has required fields).
    #[schema(value_type = Option<Object>)]
    pub fields: Map<String, Value>,
    /// The body as sent, for the `Idempotency-Key` fingerprint (a retry is the same request up to key order).
    #[schema(ignore)]
    pub(crate) raw: Map<String, Value>,
}

impl InstallRequest {
    pub const KEYS: &'static [&'static str] = &["crew_id", "name", "fields"];

    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let raw = if is_blank(body) {
            Map::new()
        } else {
            json_object(body)?
        };
        only_keys(&raw, Self::KEYS)?;
        let fields = match raw.get("fields") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(f)) => f.clone(),
            Some(_) => return Err(ApiError::invalid_field("`fields` must be an object")),
        };
        Ok(InstallRequest {
            name: opt_name(&raw)?,
            crew_id: opt_crew_id(&raw)?,
            fields,
            raw,
        })
    }
}

/// `POST /api/v1/integrations?workspace_id=`: a hand-described MCP server. A header or env value is a plain string,
/// or `{"value": "…", "secret": true}` to seal it in the vault. A value not marked either way is sealed all the same
/// when it is plainly a credential: by its value (`Bearer …`, a URL or connection string with a password, a known
/// token shape) or by its name (`Authorization`, `Cookie`, `X-Api-Key`, `GITHUB_TOKEN`, `DB_PASSWORD` …) unless the
/// value is a number or true/false; `"secret": false` keeps a value in the clear.
#[derive(Debug, utoipa::ToSchema)]
pub struct CustomServerRequest {
    /// User-facing label (1 to 200 characters).
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: String,
    /// A crew of the same workspace; omit for workspace scope.
    #[schema(value_type = Option<String>)]
    pub crew_id: Option<String>,
    #[schema(value_type = TransportName)]
    pub transport: Transport,
    /// stdio: the program to run (up to 1 KiB).
    #[schema(max_length = 1024)]
    pub command: Option<String>,
    /// stdio: its arguments (at most 64, up to 4 KiB each).
    #[schema(max_items = 64)]
    pub args: Option<Vec<String>>,
    /// stdio: environment variables (at most 64); each a string or `{"value", "secret"}`.
    #[schema(value_type = Option<Object>)]
    pub env: Option<Map<String, Value>>,
    /// streamable-http / sse: the http(s) URL, without credentials or fragment (up to 2 KiB).
    #[schema(max_length = 2048)]
    pub endpoint: Option<String>,
    /// streamable-http / sse: HTTP headers (at most 64); each a string or `{"value", "secret"}`.
    #[schema(value_type = Option<Object>)]
    pub headers: Option<Map<String, Value>>,
    /// The body as sent, for the `Idempotency-Key` fingerprint.
    #[schema(ignore)]
    pub(crate) raw: Map<String, Value>,
}

impl CustomServerRequest {
    pub const KEYS: &'static [&'static str] = &[
        "name",
        "crew_id",
        "transport",
        "command",
        "args",
        "env",
        "endpoint",
        "headers",
    ];

    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let raw = json_object(body)?;
        only_keys(&raw, Self::KEYS)?;
        let name = opt_name(&raw)?.ok_or_else(|| ApiError::invalid_field("`name` is required"))?;
        let crew_id = opt_crew_id(&raw)?;
        let transport = match raw.get("transport") {
            Some(Value::String(s)) => Transport::parse(s).ok_or_else(|| {
                ApiError::invalid_field("`transport` must be one of: stdio, streamable-http, sse")
            })?,
            None | Some(Value::Null) => {
                return Err(ApiError::invalid_field("`transport` is required"))
            }
            Some(_) => return Err(ApiError::invalid_field("`transport` must be a string")),
        };
        let args = match raw.get("args") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, a)| {
                        a.as_str().map(str::to_string).ok_or_else(|| {
                            ApiError::invalid_field(format!("`args[{i}]` must be a string"))
                        })
                    })
                    .collect::<Result<Vec<String>, ApiError>>()?,
            ),
            Some(_) => {
                return Err(ApiError::invalid_field(
                    "`args` must be an array of strings",
                ))
            }
        };
        Ok(CustomServerRequest {
            name,
            crew_id,
            transport,
            command: opt_str(&raw, "command")?,
            args,
            env: opt_object(&raw, "env")?,
            endpoint: opt_str(&raw, "endpoint")?,
            headers: opt_object(&raw, "headers")?,
            raw,
        })
    }
}

/// `PATCH /api/v1/integrations/{integration_id}`: at least one of these.
#[derive(Debug, Default, utoipa::ToSchema)]
pub struct PatchRequest {
    /// A new label (1 to 200 characters).
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: Option<String>,
    /// Enable or disable the integration.
    pub enabled: Option<bool>,
    /// Credential fields to replace (merged over the current values, validated as a whole against the current
    /// manifest, re-sealed); `null` clears a value so its default applies.
    #[schema(value_type = Option<Object>)]
    pub fields: Option<Map<String, Value>>,
    /// The MCP gateway's tool policy: `{"allow": [...], "deny": [...]}`, glob patterns (`*` matches any run of
    /// characters) against the upstream tool name, 1 to 128 bytes each, at most 100 per list; empty `allow`: every
    /// tool; `deny` wins. Replaces the whole policy (an omitted list is empty).
    #[schema(value_type = Option<ToolsBody>)]
    pub tools: Option<plugboard_gateway::ToolPolicy>,
    /// The prefix of this integration's tools on the gateway's aggregated endpoints (`<prefix>__<tool>`): 1 to 48
    /// of `a-z 0-9 - _`, starting with a letter or digit, not ending with `-` or `_`, without `__`; unique within
    /// the workspace (409 otherwise). `null` goes back to the default (the connector id, or a slug of the name for a
    /// custom server; the first of `<default>`, `<default>-2` … that no other integration of the workspace uses).
    #[schema(value_type = Option<String>)]
    pub tool_prefix: Option<Option<String>>,
}

/// An integration's tool policy on the MCP gateway.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ToolsBody {
    /// Glob patterns; empty: every tool.
    pub allow: Vec<String>,
    /// Glob patterns; a tool matching one is denied even when `allow` matches it.
    pub deny: Vec<String>,
}

impl PatchRequest {
    pub const KEYS: &'static [&'static str] =
        &["name", "enabled", "fields", "tools", "tool_prefix"];

    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let raw = json_object(body)?;
        only_keys(&raw, Self::KEYS)?;
        if raw.is_empty() {
            return Err(ApiError::bad_request(
                "the body must set at least one of: name, enabled, fields, tools, tool_prefix",
            ));
        }
        Ok(PatchRequest {
            name: opt_name(&raw)?,
            enabled: match raw.get("enabled") {
                None | Some(Value::Null) => None,
                Some(Value::Bool(b)) => Some(*b),
                Some(_) => return Err(ApiError::invalid_field("`enabled` must be true or false")),
            },
            fields: opt_object(&raw, "fields")?,
            tools: match raw.get("tools") {
                None | Some(Value::Null) => None,
                Some(v) => Some(parse_tools(v)?),
            },
            tool_prefix: match raw.get("tool_prefix") {
                None => None,
                Some(Value::Null) => Some(None),
                Some(Value::String(p)) => {
                    plugboard_gateway::policy::validate_prefix(p)
                        .map_err(|e| ApiError::invalid_field(format!("`tool_prefix`: {e}")))?;
                    Some(Some(p.clone()))
                }
                Some(_) => return Err(ApiError::invalid_field("`tool_prefix` must be a string")),
            },
        })
    }
}

/// `tools`: an object with optional `allow` and `deny` arrays of patterns, checked (the message names the list and
/// the problem, never more than the start of a pattern).
fn parse_tools(v: &Value) -> Result<plugboard_gateway::ToolPolicy, ApiError> {
    let obj = v.as_object().ok_or_else(|| {
        ApiError::invalid_field("`tools` must be an object: {\"allow\": [...], \"deny\": [...]}")
    })?;
    if let Some(k) = obj.keys().find(|k| *k != "allow" && *k != "deny") {
        return Err(ApiError::invalid_field(format!(
            "`tools` has an unknown key `{}`: only `allow` and `deny`",
            crate::extract::truncate(k, 64)
        )));
    }
    let list = |key: &str| -> Result<Vec<String>, ApiError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_str().map(str::to_owned).ok_or_else(|| {
                        ApiError::invalid_field(format!("`tools.{key}` must hold strings only"))
                    })
                })
                .collect(),
            Some(_) => Err(ApiError::invalid_field(format!(
                "`tools.{key}` must be an array of glob patterns"
            ))),
        }
    };
    let policy = plugboard_gateway::ToolPolicy {
        allow: list("allow")?,
        deny: list("deny")?,
    };
    policy.validate().map_err(ApiError::invalid_field)?;
    Ok(policy)
}
