//! The custom MCP server: strict validation, secret header / env values sealed.

use std::collections::BTreeMap;

use axum::http::{HeaderValue, StatusCode};
use plugboard_catalog::Transport;
use plugboard_store::{
    IntegrationAuthMode, IntegrationId, IntegrationStatus, NewIdempotency, NewIntegration,
    WorkspaceId,
};
use serde_json::{json, Map, Value};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::{truncate, IdempotencyKey};
use crate::state::App;

use super::idempotency::*;
use super::stored::*;
use super::*;

/// One header or env value of a custom server: a plain string or `{"value": "…", "secret": true}`, and whether it
/// is sealed. A value not marked either way is sealed when it [looks like a credential](looks_like_credential); only
/// an explicit `"secret": false` keeps such a value in the clear.
pub(crate) fn custom_value(what: &str, name: &str, v: &Value) -> Result<(String, bool), ApiError> {
    let shown = truncate(name, 64);
    let (value, secret) = match v {
        Value::String(s) => (s.clone(), None),
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
                None | Some(Value::Null) => None,
                Some(Value::Bool(b)) => Some(*b),
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
    let secret = secret.unwrap_or_else(|| looks_like_credential(name, &value));
    Ok((value, secret))
}

/// Whether a header or env value not marked either way is a credential, so it is sealed like one instead of being
/// stored and shown in the clear: its name says so (`Authorization`, `Cookie`, `X-Api-Key`, `GITHUB_TOKEN`,
/// `DB_PASSWORD`, `AWS_SECRET_ACCESS_KEY` …) or its value does (an HTTP auth scheme such as `Bearer …`, a URL with a
/// password). Erring towards sealing only hides a value in responses; erring the other way leaks it.
pub(crate) fn looks_like_credential(name: &str, value: &str) -> bool {
    /// Anywhere in the name.
    const PARTS: &[&str] = &[
        "auth",
        "cookie",
        "token",
        "secret",
        "passw",
        "credential",
        "apikey",
        "privatekey",
        "accesskey",
        "session",
        "signature",
    ];
    /// A whole word of the name (words split at `-`, `_` and `.`).
    const WORDS: &[&str] = &["key", "pass", "pwd", "pat", "dsn", "sig", "jwt", "bearer"];
    /// How a value that is an HTTP credential starts.
    const SCHEMES: &[&str] = &[
        "bearer ",
        "basic ",
        "token ",
        "digest ",
        "negotiate ",
        "dpop ",
    ];
    let lower = name.to_ascii_lowercase();
    let compact: String = lower
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    if PARTS.iter().any(|p| compact.contains(p))
        || lower
            .split(['-', '_', '.'])
            .any(|word| WORDS.contains(&word))
    {
        return true;
    }
    let value = value.trim_start();
    SCHEMES.iter().any(|scheme| {
        value
            .get(..scheme.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(scheme))
    }) || url::Url::parse(value).is_ok_and(|u| u.password().is_some())
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

/// Refuses the keys of the other transport (present and non-empty), naming the first.
pub(crate) fn forbid(present: &[(&str, bool)], transport: &str) -> Result<(), ApiError> {
    match present.iter().find(|(_, p)| *p) {
        Some((k, _)) => Err(ApiError::invalid_field(format!(
            "`{k}` is not allowed with transport `{transport}`"
        ))),
        None => Ok(()),
    }
}

fn non_empty_str(v: &Option<String>) -> bool {
    v.as_deref().is_some_and(|s| !s.is_empty())
}

fn non_empty_map(v: &Option<Map<String, Value>>) -> bool {
    v.as_ref().is_some_and(|m| !m.is_empty())
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
        request: &CustomServerRequest,
        transport: Transport,
    ) -> Result<(), ApiError> {
        forbid(
            &[
                ("command", non_empty_str(&request.command)),
                ("args", request.args.as_ref().is_some_and(|a| !a.is_empty())),
                ("env", non_empty_map(&request.env)),
            ],
            transport.as_str(),
        )?;
        let endpoint = match request.endpoint.as_deref().map(str::trim) {
            Some(s) if !s.is_empty() => s,
            _ => {
                return Err(ApiError::invalid_field(format!(
                    "`endpoint` is required with transport `{}`",
                    transport.as_str()
                )))
            }
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
        let Some(headers) = &request.headers else {
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

    pub(crate) fn stdio(&mut self, request: &CustomServerRequest) -> Result<(), ApiError> {
        forbid(
            &[
                ("endpoint", non_empty_str(&request.endpoint)),
                ("headers", non_empty_map(&request.headers)),
            ],
            "stdio",
        )?;
        let command = match request.command.as_deref().map(str::trim) {
            Some(s) if !s.is_empty() => s,
            _ => {
                return Err(ApiError::invalid_field(
                    "`command` is required with transport `stdio`",
                ))
            }
        };
        if command.len() > MAX_COMMAND_BYTES {
            return Err(ApiError::invalid_field(format!(
                "`command` must be at most {MAX_COMMAND_BYTES} bytes"
            )));
        }
        no_control("`command`", command)?;
        self.stored.command = Some(escape_literal(command));
        if let Some(args) = &request.args {
            if args.len() > MAX_ARGS {
                return Err(ApiError::invalid_field(format!(
                    "`args` may have at most {MAX_ARGS} items"
                )));
            }
            for (i, a) in args.iter().enumerate() {
                if a.len() > MAX_ARG_BYTES || a.contains('\0') {
                    return Err(ApiError::invalid_field(format!(
                        "`args[{i}]` must be at most {MAX_ARG_BYTES} bytes without NUL"
                    )));
                }
                self.stored.args.push(escape_literal(a));
            }
        }
        let Some(env) = &request.env else {
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
    workspace_id: &WorkspaceId,
    key: IdempotencyKey,
    request: CustomServerRequest,
) -> Result<Created, ApiError> {
    let idem = key.0.map(|key| Idem {
        fingerprint: fingerprint(&app.vault, "custom", "", &request.raw),
        key,
    });
    if let Some(idem) = &idem {
        if let Some(first) = replay(app, workspace_id, principal, idem).await? {
            return Ok(first);
        }
    }
    let transport = request.transport;
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
        custom.http(&request, transport)?;
    } else {
        custom.stdio(&request)?;
    }
    let crew_id = check_crew(app, workspace_id, request.crew_id.as_deref()).await?;
    let name = request.name;
    let id = IntegrationId::generate();
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
        workspace_id: workspace_id.clone(),
        crew_id: crew_id.clone(),
        connector_id: None,
        name,
        auth_mode: IntegrationAuthMode::Custom,
        status: IntegrationStatus::Active,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_under_credential_names_or_shaped_like_credentials_are_taken_for_credentials() {
        for (name, value) in [
            ("Authorization", "whatever"),
            ("authorization", ""),
            ("Cookie", "a=b"),
            ("X-Api-Key", "k"),
            ("X-API-KEY", "k"),
            ("X-Auth-Token", "t"),
            ("Private-Token", "t"),
            ("X-Session", "s"),
            ("GITHUB_TOKEN", "t"),
            ("GITHUB_PERSONAL_ACCESS_TOKEN", "t"),
            ("OPENAI_API_KEY", "k"),
            ("APIKEY", "k"),
            ("DB_PASSWORD", "p"),
            ("PGPASSWORD", "p"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("SENTRY_DSN", "d"),
            ("GITLAB_PAT", "p"),
            ("X-Custom", "Bearer abc"),
            ("X-Custom", "  basic dXNlcjpwYXNz"),
            ("DATABASE_URL", "postgres://app:hunter2@db.internal/app"),
        ] {
            assert!(looks_like_credential(name, value), "{name}: {value}");
        }
    }

    #[test]
    fn ordinary_names_and_values_stay_in_the_clear() {
        for (name, value) in [
            ("X-Team", "platform"),
            ("Accept-Language", "en"),
            ("X-Tenant", "7"),
            ("User-Agent", "Bearerbot/1.0"),
            ("LOG_LEVEL", "debug"),
            ("PATH", "/usr/bin"),
            ("KEYBOARD_LAYOUT", "us"),
            ("DATABASE_URL", "postgres://app@db.internal/app"),
            ("X-Endpoint", "https://example.com/a?b=c"),
        ] {
            assert!(!looks_like_credential(name, value), "{name}: {value}");
        }
    }

    #[test]
    fn an_explicit_mark_wins_over_the_guess() {
        let plain = custom_value(
            "header",
            "X-Session-Region",
            &json!({"value": "eu", "secret": false}),
        )
        .unwrap();
        assert_eq!(plain, ("eu".to_owned(), false));
        let sealed =
            custom_value("header", "X-Team", &json!({"value": "a", "secret": true})).unwrap();
        assert_eq!(sealed, ("a".to_owned(), true));
        let guessed = custom_value("header", "Authorization", &json!("Bearer x")).unwrap();
        assert_eq!(guessed, ("Bearer x".to_owned(), true));
        let unmarked = custom_value("header", "Authorization", &json!({"value": "x"})).unwrap();
        assert_eq!(unmarked, ("x".to_owned(), true));
    }
}
