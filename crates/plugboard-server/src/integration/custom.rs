//! The custom MCP server: strict validation, secret header / env values sealed.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use plugboard_catalog::Transport;
use plugboard_store::{new_id, NewIdempotency, NewIntegration};
use serde_json::{json, Map, Value};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::{json_object, only_keys, truncate};
use crate::state::App;

use super::idempotency::*;
use super::stored::*;
use super::*;

/// One header or env value of a custom server: a plain string or `{"value": "…", "secret": true}`.
pub(crate) fn custom_value(what: &str, name: &str, v: &Value) -> Result<(String, bool), ApiError> {
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

pub(crate) const FORBIDDEN_HEADERS: &[&str] = &[
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

pub(crate) fn is_env_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

pub(crate) fn no_control(what: &str, s: &str) -> Result<(), ApiError> {
    if s.chars().any(|c| c.is_control()) {
        return Err(ApiError::invalid_field(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(())
}

pub(crate) fn object_of<'a>(
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

pub(crate) fn forbid(
    body: &Map<String, Value>,
    keys: &[&str],
    transport: &str,
) -> Result<(), ApiError> {
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
pub(crate) struct CustomBuilder {
    stored: StoredMcp,
    secret_values: FieldValues,
}

impl CustomBuilder {
    /// One entry of `env` / `headers`: a literal template, or a placeholder for a value that will be sealed.
    pub(crate) fn entry(
        &mut self,
        prefix: &str,
        index: usize,
        value: String,
        secret: bool,
    ) -> Value {
        if secret {
            let field = format!("{prefix}_{index}");
            self.secret_values.insert(field.clone(), value);
            self.stored.vaulted.push(field.clone());
            Value::String(format!("${{field.{field}}}"))
        } else {
            Value::String(escape_literal(&value))
        }
    }

    pub(crate) fn http(
        &mut self,
        body: &Map<String, Value>,
        transport: Transport,
    ) -> Result<(), ApiError> {
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

    pub(crate) fn stdio(&mut self, body: &Map<String, Value>) -> Result<(), ApiError> {
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
        fingerprint: fingerprint(&app.vault, "custom", "", &body),
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
