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
/// stored and shown in the clear. Its value says so (an HTTP auth scheme with a token, `Bearer …`; a URL with a
/// password; `password=` or `AccountKey=` in a connection string; a well-known token shape such as `ghp_…`,
/// `xoxb-…`, `sk-…`, `AKIA…`, a JWT or a PEM key), or its name does ([`credential_name`]): a password-like name
/// (`Authorization`, `Cookie`, `DB_PASSWORD`, `CLIENT_SECRET`) for any value that is not plainly a setting (a number,
/// true/false, a file path), a token-like one (`X-Api-Key`, `GITHUB_TOKEN`, `appKey`) for such a value of 8
/// characters or more.
///
/// A sealed value is hidden in responses, and the gateway also redacts it from everything the upstream sends back:
/// that is why settings are left plain (`MAX_TOKENS=4096`, `X-Auth-Required: true`, `AUTH_PROVIDER=github`,
/// `X-Api-Key: none`), since redacting every `4096`, `true` or `github` from the upstream's answers would break
/// them, and why names that describe a credential rather than hold one are not taken for credentials
/// (`TOKEN_TYPE`, `AUTH_URL`, `API_KEY_HEADER`, `AWS_ACCESS_KEY_ID`, `PASSWORD_FILE`).
pub(crate) fn looks_like_credential(name: &str, value: &str) -> bool {
    let value = value.trim();
    if value.is_empty() {
        return false;
    }
    if value_is_credential(value) {
        return true;
    }
    match credential_name(name) {
        None => false,
        Some(_) if plainly_a_setting(value) => false,
        Some(NameKind::Password) => true,
        Some(NameKind::Token) => value.chars().count() >= 8,
    }
}

/// What a credential name says its value is.
enum NameKind {
    /// Any value is a secret (passwords are often short words).
    Password,
    /// A secret when it is long enough to be a token or key (shorter ones are settings: `none`, `github`).
    Token,
}

/// The words of a name, lowercased: split at `-`, `_`, `.`, spaces and where a lowercase letter or digit meets an
/// uppercase one (`appKey`: `app`, `key`).
fn name_words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut previous_lower = false;
    for c in name.chars() {
        let boundary =
            matches!(c, '-' | '_' | '.' | ' ') || (c.is_ascii_uppercase() && previous_lower);
        if boundary && !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
        if !matches!(c, '-' | '_' | '.' | ' ') {
            word.push(c.to_ascii_lowercase());
        }
        previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// Whether a name says its value is a credential, and which kind.
fn credential_name(name: &str) -> Option<NameKind> {
    /// Last words of names that describe a credential rather than hold one (`TOKEN_TYPE`, `AUTH_URL`, `KEY_ID`).
    const DESCRIBES: &[&str] = &[
        "type", "mode", "url", "uri", "file", "path", "dir", "provider", "method", "ttl", "header",
        "prefix", "scheme", "name", "id", "endpoint", "host", "port", "timeout", "expiry",
        "expires", "lifetime", "region", "format", "version", "enabled", "required", "length",
        "limit", "size", "count", "issuer", "audience", "scope", "scopes", "domain", "server",
        "realm", "user", "username", "email", "location",
    ];
    /// Whole words of the name, by kind.
    const PASSWORD_WORDS: &[&str] = &[
        "authorization",
        "cookie",
        "bearer",
        "jwt",
        "pass",
        "passphrase",
        "pwd",
        "pw",
    ];
    const TOKEN_WORDS: &[&str] = &[
        "auth",
        "authentication",
        "key",
        "pat",
        "dsn",
        "sig",
        "signature",
    ];
    /// Anywhere in the name with its separators removed (`PGPASSWORD`, `X-Api-Key`, `MY_GITHUB_TOKEN`), by kind.
    const PASSWORD_PARTS: &[&str] = &["password", "passwd", "secret"];
    const TOKEN_PARTS: &[&str] = &["token", "credential", "apikey", "privatekey", "accesskey"];
    let words = name_words(name);
    if words
        .last()
        .is_some_and(|w| DESCRIBES.contains(&w.as_str()))
    {
        return None;
    }
    let compact: String = words.concat();
    let has = |parts: &[&str], list: &[&str]| {
        parts.iter().any(|p| compact.contains(p))
            || words.iter().any(|w| list.contains(&w.as_str()))
    };
    if has(PASSWORD_PARTS, PASSWORD_WORDS) {
        Some(NameKind::Password)
    } else if has(TOKEN_PARTS, TOKEN_WORDS) {
        Some(NameKind::Token)
    } else {
        None
    }
}

/// A number, a yes/no value or a file path: a setting, whatever its name says.
fn plainly_a_setting(value: &str) -> bool {
    let flag = [
        "true", "false", "yes", "no", "on", "off", "enabled", "disabled",
    ]
    .iter()
    .any(|f| value.eq_ignore_ascii_case(f));
    let number = value.chars().any(|c| c.is_ascii_digit())
        && value
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+'));
    let path = ["/", "./", "../", "~/"]
        .iter()
        .any(|p| value.starts_with(p))
        && !value.chars().any(char::is_whitespace);
    flag || number || path
}

fn value_is_credential(value: &str) -> bool {
    /// How a value that is an HTTP credential starts (followed by the credential).
    const SCHEMES: &[&str] = &[
        "bearer ",
        "basic ",
        "token ",
        "digest ",
        "negotiate ",
        "dpop ",
    ];
    /// What a connection string or query says before a secret.
    const ASSIGNMENTS: &[&str] = &[
        "password=",
        "passwd=",
        "pwd=",
        "accountkey=",
        "sharedaccesskey=",
        "secret=",
        "token=",
        "apikey=",
        "api_key=",
        "sig=",
    ];
    /// How well-known tokens start (GitHub, GitLab, Slack, OpenAI/Stripe-style, AWS access keys).
    const PREFIXES: &[&str] = &[
        "ghp_",
        "gho_",
        "ghu_",
        "ghs_",
        "ghr_",
        "github_pat_",
        "glpat-",
        "xoxb-",
        "xoxp-",
        "xoxa-",
        "xoxe-",
        "xapp-",
        "sk-",
        "sk_live_",
        "sk_test_",
        "rk_live_",
    ];
    /// Where a URL is itself the secret.
    const SECRET_URLS: &[&str] = &["hooks.slack.com/", "discord.com/api/webhooks/"];
    let starts_with = |prefix: &str| {
        value
            .get(..prefix.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
    };
    let one_token = |s: &str| s.len() >= 8 && !s.chars().any(char::is_whitespace);
    let lower = value.to_ascii_lowercase();
    if SCHEMES
        .iter()
        .any(|scheme| starts_with(scheme) && one_token(value[scheme.len()..].trim()))
    {
        return true;
    }
    if PREFIXES
        .iter()
        .any(|p| value.starts_with(p) && value.len() >= 16 && one_token(value))
    {
        return true;
    }
    // An AWS access key id: `AKIA` or `ASIA` and 16 more capitals or digits.
    if (value.starts_with("AKIA") || value.starts_with("ASIA"))
        && value.len() == 20
        && value
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        return true;
    }
    if value.starts_with("-----BEGIN") || ASSIGNMENTS.iter().any(|a| lower.contains(a)) {
        return true;
    }
    // A JWT: three base64url parts, the first a JSON object (`{"` is `eyJ`).
    if value.starts_with("eyJ") && one_token(value) && value.split('.').count() == 3 {
        return true;
    }
    if SECRET_URLS.iter().any(|u| lower.contains(u)) {
        return true;
    }
    url_has_password(value.strip_prefix("jdbc:").unwrap_or(value))
}

/// A URL with a password, also one the URL parser refuses (an unencoded `/` or `#` in the password): the whole value
/// is the URL, `scheme://user:password@…`.
fn url_has_password(value: &str) -> bool {
    if let Ok(url) = url::Url::parse(value) {
        return url.password().is_some();
    }
    let Some((scheme, rest)) = value.split_once("://") else {
        return false;
    };
    let scheme_ok = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok || value.chars().any(char::is_whitespace) {
        return false;
    }
    rest.rfind('@').is_some_and(|at| {
        rest[..at]
            .split_once(':')
            .is_some_and(|(user, _)| !user.contains('/'))
    })
}

/// Custom servers made before unmarked credentials were sealed ([`looks_like_credential`]) may hold such values in
/// the clear: this seals them, each as a vault entry of its own with the stored block pointing at it, with an audit
/// entry `integration.update` naming the headers and variables (never their values). Each such server is checked
/// once (the migration that brought this listed them); servers made since were sealed as they were made, so what
/// they keep plain was kept plain by choice. Returns how many integrations it changed.
pub async fn seal_unmarked_credentials(app: &App) -> Result<usize, ApiError> {
    let pending = app.store.credential_seal_pending().await?;
    if pending.is_empty() {
        return Ok(0);
    }
    // One instance at a time: another one starting now leaves the work to the holder (a server the holder already
    // sealed has nothing left to seal when a second pass reaches it, so nothing is done twice).
    let holder = crate::vault::lease_holder();
    let mut changed = 0;
    for id in pending {
        let now = plugboard_store::now_ms();
        let lease = app
            .store
            .try_lease(
                SEAL_LEASE,
                &holder,
                "sealing credentials custom servers hold in the clear",
                now,
                now + SEAL_LEASE_TTL_MS,
            )
            .await?;
        if !lease.taken {
            tracing::info!(
                holder = %lease.holder,
                "another instance is checking custom servers for credentials held in the clear; leaving it to that one"
            );
            return Ok(changed);
        }
        if let Some(integration) = app.store.get_integration(&id).await? {
            if integration.auth_mode == IntegrationAuthMode::Custom
                && seal_unmarked_in(app, &integration).await?
            {
                changed += 1;
            }
        }
        app.store.credential_seal_done(&id).await?;
    }
    app.store.release_lease(SEAL_LEASE, &holder).await?;
    Ok(changed)
}

/// The lease of [`seal_unmarked_credentials`], renewed before each server it checks.
const SEAL_LEASE: &str = "credential_seal";
/// How long that lease lasts unless renewed (an instance that crashed mid-way holds up the next start no longer).
const SEAL_LEASE_TTL_MS: i64 = 60_000;

/// [`seal_unmarked_credentials`] for one custom server; whether it sealed anything.
async fn seal_unmarked_in(
    app: &App,
    integration: &plugboard_store::Integration,
) -> Result<bool, ApiError> {
    let mut stored = match StoredMcp::parse(&integration.mcp) {
        Ok(stored) => stored,
        // Nothing to seal in a block that cannot be read (its `/runtime` fails the same way): not tried again.
        Err(e) => {
            tracing::warn!(
                integration_id = %integration.id,
                error = %e,
                "could not check a custom server for credentials held in the clear: its stored block is unreadable"
            );
            return Ok(false);
        }
    };
    let mut values = FieldValues::default();
    let mut fields: Vec<String> = Vec::new();
    let mut sealed: Vec<String> = Vec::new();
    for (what, map) in [("header", &mut stored.headers), ("env", &mut stored.env)] {
        for (name, template) in map.iter_mut() {
            let Some(t) = template
                .as_str()
                .and_then(|src| plugboard_catalog::Template::parse(src).ok())
            else {
                continue;
            };
            if !t.is_literal() || !looks_like_credential(name, t.literal_prefix()) {
                continue;
            }
            let Some(field) = (0..)
                .map(|i| format!("{what}_{i}"))
                .find(|f| !stored.vaulted.contains(f) && !fields.contains(f))
            else {
                continue;
            };
            values.insert(field.clone(), t.literal_prefix().to_owned());
            *template = Value::String(format!("${{field.{field}}}"));
            fields.push(field);
            let list = if what == "header" { "headers" } else { "env" };
            sealed.push(format!("{list}.{}", truncate(name, 64)));
        }
    }
    if fields.is_empty() {
        return Ok(false);
    }
    stored.vaulted.extend(fields.iter().cloned());
    let secrets = seal_fields(app, &integration.id, &values, &fields).await?;
    drop(values);
    let patch = plugboard_store::IntegrationPatch {
        mcp: Some(stored.to_json()?),
        upsert_secrets: secrets,
        audit: Some(plugboard_store::NewAudit {
            workspace_id: Some(integration.workspace_id.clone()),
            actor_id: None,
            action: "integration.update".to_string(),
            target: Some(integration.id.to_string()),
            detail: json!({"connector_id": null, "changed": ["sealed"], "sealed": sealed}),
        }),
        ..Default::default()
    };
    // Deleted meanwhile: nothing was written.
    let updated = app
        .store
        .update_integration(&integration.id, patch)
        .await?
        .is_some();
    if updated {
        tracing::info!(
            integration_id = %integration.id,
            sealed = ?sealed,
            "sealed values of a custom server that look like credentials but were stored in the clear"
        );
    }
    Ok(updated)
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

    /// Long enough for a token-like name.
    const KEY: &str = "k3y0123456789abcdef";

    #[test]
    fn values_under_credential_names_or_shaped_like_credentials_are_taken_for_credentials() {
        for (name, value) in [
            ("Authorization", "whatever"),
            ("Cookie", "a=b"),
            ("X-Api-Key", KEY),
            ("X-API-KEY", KEY),
            ("Api-Key", KEY),
            ("X-Goog-Api-Key", KEY),
            ("Ocp-Apim-Subscription-Key", KEY),
            ("X-Auth-Token", KEY),
            ("X-Auth-Key", KEY),
            ("X-Figma-Token", KEY),
            ("PRIVATE-TOKEN", KEY),
            ("X-Shopify-Access-Token", KEY),
            ("GITHUB_TOKEN", KEY),
            ("GITHUB_PERSONAL_ACCESS_TOKEN", KEY),
            ("SLACK_BOT_TOKEN", KEY),
            ("JIRA_API_TOKEN", KEY),
            ("OPENAI_API_KEY", KEY),
            ("NOTION_API_KEY", KEY),
            ("DD_APP_KEY", KEY),
            ("APIKEY", KEY),
            ("appKey", KEY),
            ("licenseKey", KEY),
            ("SECRET_KEY_BASE", "s"),
            ("DB_PASSWORD", "p"),
            ("PGPASSWORD", "postgres"),
            ("DB_PW", "p"),
            ("PASSPHRASE", "open sesame"),
            ("CLIENT_SECRET", "s"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("SENTRY_DSN", "https://abc123@o1.ingest.sentry.io/1"),
            ("GITLAB_PAT", KEY),
            ("X-Custom", "Bearer abcdefgh12"),
            ("X-Custom", "  basic dXNlcjpwYXNz"),
            ("DATABASE_URL", "postgres://app:hunter2@db.internal/app"),
            ("DATABASE_URL", "postgres://app:pa/ss@db.internal/app"),
            (
                "DATABASE_URL",
                "postgres://db.internal/app?user=app&password=hunter2",
            ),
            ("JDBC", "jdbc:mysql://app:hunter2@db.internal/app"),
            ("PG", "host=db user=app password=hunter2"),
            (
                "CONNECTION_STRING",
                "Server=db;Database=app;User Id=app;Password=hunter2;",
            ),
            (
                "STORAGE",
                "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=abc==;",
            ),
            ("X-Custom", "ghp_0123456789abcdefghijklmnopqrstuvwxyz"),
            ("SOMETHING", "xoxb-1234-5678-abcdefgh"),
            ("SOMETHING", "sk-proj-0123456789abcdef"),
            ("SOMETHING", "AKIAIOSFODNN7EXAMPLE"),
            (
                "SOMETHING",
                "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
            ),
            ("SOMETHING", "-----BEGIN PRIVATE KEY-----\nMIIE..."),
            ("WEBHOOK", "https://hooks.slack.com/services/T000/B000/XXXX"),
        ] {
            assert!(looks_like_credential(name, value), "{name}: {value}");
        }
    }

    #[test]
    fn settings_and_names_that_describe_a_credential_stay_in_the_clear() {
        for (name, value) in [
            ("X-Team", "platform"),
            ("Accept-Language", "en"),
            ("X-Tenant", "7"),
            ("X-Session-Id", "abc"),
            ("SESSION_TIMEOUT", "300s"),
            ("User-Agent", "Bearerbot/1.0"),
            ("X-Plan", "basic plan"),
            ("LOG_LEVEL", "debug"),
            ("PATH", "/usr/bin"),
            ("KEYBOARD_LAYOUT", "us"),
            ("GIT_AUTHOR_NAME", "Ada"),
            ("AUTHORITY_HOST", "login.example.com"),
            ("OAUTH_CLIENT_ID", "plugboard"),
            ("COMPASS_WORKSPACE", "main"),
            ("MAX_TOKENS", "4096"),
            ("TOKEN_LIMIT", "1000"),
            ("TOKEN_TTL", "30m"),
            ("AUTH_ENABLED", "true"),
            ("X-Auth-Required", "TRUE"),
            ("AUTH_PROVIDER", "github"),
            ("AUTH_TYPE", "oauth"),
            ("TOKEN_TYPE", "Bearer"),
            ("X-Auth-Scheme", "bearer"),
            ("X-Api-Key", "none"),
            ("KEY_PREFIX", "cache"),
            ("API_KEY_HEADER", "X-Api-Key"),
            ("AUTH_URL", "https://login.example.com/authorize"),
            ("AWS_ACCESS_KEY_ID", "some-identifier"),
            ("PASSWORD_FILE", "/run/secrets/db"),
            ("GOOGLE_APPLICATION_CREDENTIALS", "/secrets/sa.json"),
            ("REGION", "ASIA_PACIFIC_SOUTHEAST1"),
            ("X-Info", "see https://host:80/x@y"),
            ("API_KEY", ""),
            ("DATABASE_URL", "postgres://app@db.internal/app"),
            ("X-Endpoint", "https://example.com:8080/a?b=c@d"),
            ("SKU", "sk-1"),
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
        let setting = custom_value("env", "MAX_TOKENS", &json!("4096")).unwrap();
        assert_eq!(setting, ("4096".to_owned(), false));
        let unmarked = custom_value("header", "Authorization", &json!({"value": "x"})).unwrap();
        assert_eq!(unmarked, ("x".to_owned(), true));
    }
}
