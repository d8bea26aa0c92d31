//! The manifest types (already validated: a `Manifest` only comes out of the loader) and the
//! runtime operations on them: validating a submitted form and resolving derived values.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde_json::Value;

use crate::template::{RenderContext, RenderError, Template};
use crate::util::shown;

/// Longest submitted (or default) field value, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// How a connector authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    Pat,
    ConnString,
    McpOauth,
    ByoOauth,
    None,
}

impl AuthMode {
    pub const ALL: [AuthMode; 5] = [
        AuthMode::Pat,
        AuthMode::ConnString,
        AuthMode::McpOauth,
        AuthMode::ByoOauth,
        AuthMode::None,
    ];

    /// The wire name: `pat`, `conn_string`, `mcp_oauth`, `byo_oauth` or `none`.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuthMode::Pat => "pat",
            AuthMode::ConnString => "conn_string",
            AuthMode::McpOauth => "mcp_oauth",
            AuthMode::ByoOauth => "byo_oauth",
            AuthMode::None => "none",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<AuthMode> {
        AuthMode::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// `mcp_oauth`, `byo_oauth` and `none` skip the verify probe (their auth happens through a
    /// redirect, or there is none).
    pub fn skips_verify(&self) -> bool {
        matches!(
            self,
            AuthMode::McpOauth | AuthMode::ByoOauth | AuthMode::None
        )
    }
}

impl std::fmt::Display for AuthMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A connector manifest: one catalog tile.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub id: String,
    pub name: String,
    /// Empty when absent.
    pub description: String,
    /// Empty when absent.
    pub category: String,
    pub brand: Brand,
    pub auth_mode: AuthMode,
    pub fields: Vec<Field>,
    /// In the author's order.
    pub derived: IndexMap<String, Template>,
    pub mcp: Mcp,
    pub verify: Option<Verify>,
    pub oauth: Option<OAuthConfig>,
    pub docs: Option<Docs>,
}

/// Empty strings when absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Brand {
    /// An icon key or an `https://` URL.
    pub logo: String,
    /// `#RRGGBB`.
    pub color: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Docs {
    pub setup_md: String,
}

/// One form field.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub key: String,
    /// The key when the author wrote no label.
    pub label: String,
    pub field_type: FieldType,
    pub required: bool,
    pub default: Option<String>,
    pub placeholder: Option<String>,
    pub help: Option<String>,
    /// Non-empty for `select`, empty otherwise.
    pub choices: Vec<String>,
    /// Resolved: `true` for `password` unless the author said otherwise, `false` for the rest
    /// unless the author said otherwise.
    pub secret: bool,
    pub validation: Option<Validation>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Text,
    Password,
    Number,
    Select,
    Bool,
}

impl FieldType {
    pub const ALL: [FieldType; 5] = [
        FieldType::Text,
        FieldType::Password,
        FieldType::Number,
        FieldType::Select,
        FieldType::Bool,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Password => "password",
            FieldType::Number => "number",
            FieldType::Select => "select",
            FieldType::Bool => "bool",
        }
    }

    pub fn parse(s: &str) -> Option<FieldType> {
        FieldType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// Extra rules for a field value (the `validation` extension).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Validation {
    /// Matched against the whole value.
    pub pattern: Option<Pattern>,
    /// In characters.
    pub min_length: Option<usize>,
    /// In characters.
    pub max_length: Option<usize>,
    /// For `number` fields.
    pub min: Option<f64>,
    /// For `number` fields.
    pub max: Option<f64>,
}

/// A `validation.pattern`: the author's text, matched like JSON Schema's `pattern` (a search: anchor with `^`/`$`
/// to match the whole value). It is compiled when loaded, to prove it valid, but the compiled form is kept only
/// once a value is matched against it: a catalog of 10,000 manifests holds thousands of patterns, of which a
/// running service uses few (a compiled regex is about 10 KiB).
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    regex: std::sync::OnceLock<Option<regex::Regex>>,
}

/// Pattern texts already proved valid in this process (so loading the same pattern again, in another manifest or a
/// reload, does not compile it again). Bounded: cleared when full.
static VALIDATED: std::sync::Mutex<Option<std::collections::HashSet<String>>> =
    std::sync::Mutex::new(None);
const VALIDATED_MAX: usize = 4096;

impl Pattern {
    /// Longest pattern accepted, in bytes.
    pub const MAX_SOURCE_BYTES: usize = 1024;
    const SIZE_LIMIT: usize = 1 << 20;

    fn compile(source: &str) -> Result<regex::Regex, regex::Error> {
        regex::RegexBuilder::new(source)
            .size_limit(Self::SIZE_LIMIT)
            .dfa_size_limit(Self::SIZE_LIMIT)
            .build()
    }

    /// Checks `source` compiles unanchored within the compiled-size limit.
    pub fn new(source: &str) -> Result<Pattern, String> {
        if source.len() > Self::MAX_SOURCE_BYTES {
            return Err(format!(
                "pattern is too long (at most {} bytes)",
                Self::MAX_SOURCE_BYTES
            ));
        }
        let known = VALIDATED
            .lock()
            .map(|v| v.as_ref().is_some_and(|set| set.contains(source)))
            .unwrap_or(false);
        if !known {
            Self::compile(source).map_err(|e| match e {
                regex::Error::CompiledTooBig(_) => "pattern is too complex".to_owned(),
                other => format!("pattern does not compile: {other}"),
            })?;
            if let Ok(mut v) = VALIDATED.lock() {
                let set = v.get_or_insert_with(Default::default);
                if set.len() >= VALIDATED_MAX {
                    set.clear();
                }
                set.insert(source.to_owned());
            }
        }
        Ok(Pattern {
            source: source.to_owned(),
            regex: std::sync::OnceLock::new(),
        })
    }

    /// The pattern as the author wrote it.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when the pattern matches somewhere in `value` (JSON Schema semantics).
    pub fn is_match(&self, value: &str) -> bool {
        self.regex().is_some_and(|r| r.is_match(value))
    }

    /// The compiled regex (compiled on first use; `None` cannot happen for a pattern that loaded, since the same
    /// text compiled then).
    pub fn regex(&self) -> Option<&regex::Regex> {
        self.regex
            .get_or_init(|| Self::compile(&self.source).ok())
            .as_ref()
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Transport {
    #[serde(rename = "stdio")]
    Stdio,
    #[serde(rename = "streamable-http")]
    StreamableHttp,
    #[serde(rename = "sse")]
    Sse,
}

impl Transport {
    pub const ALL: [Transport; 3] = [Transport::Stdio, Transport::StreamableHttp, Transport::Sse];

    /// `stdio`, `streamable-http` or `sse`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Transport::Stdio => "stdio",
            Transport::StreamableHttp => "streamable-http",
            Transport::Sse => "sse",
        }
    }

    pub fn parse(s: &str) -> Option<Transport> {
        Transport::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// `streamable-http` or `sse`.
    pub fn is_http(&self) -> bool {
        !matches!(self, Transport::Stdio)
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How to reach the MCP server.
///
/// `stdio`: `command` is `Some` (and a literal), `endpoint` is `None`, `headers` is empty.
/// `streamable-http` / `sse`: `endpoint` is `Some`, `command` is `None`, `args` and `env` are empty.
#[derive(Debug, Clone, PartialEq)]
pub struct Mcp {
    pub transport: Transport,
    pub command: Option<Template>,
    pub args: Vec<Template>,
    pub endpoint: Option<Template>,
    pub env: IndexMap<String, Template>,
    pub headers: IndexMap<String, Template>,
}

/// The pre-install probe.
#[derive(Debug, Clone, PartialEq)]
pub enum Verify {
    Http(HttpVerify),
    Sql(SqlVerify),
    /// An MCP method such as `tools/list`. Probed on `streamable-http` manifests; on `stdio` (and `sse`) ones the
    /// server answers `ok: true` without a probe.
    McpMethod(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpVerify {
    /// Upper-cased; `GET` by default.
    pub method: String,
    pub url: Template,
    pub headers: IndexMap<String, Template>,
    pub body: Option<Template>,
    /// `[200]` by default; every code in `100..=599`; never empty.
    pub expect_status: Vec<u16>,
    /// A top-level JSON field of the response that must be exactly `true`.
    pub expect_json_field: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SqlDriver {
    Postgres,
    Mysql,
}

impl SqlDriver {
    pub fn as_str(&self) -> &'static str {
        match self {
            SqlDriver::Postgres => "postgres",
            SqlDriver::Mysql => "mysql",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SqlVerify {
    pub driver: SqlDriver,
    pub dsn: Template,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenAuth {
    /// `client_id` / `client_secret` in the token request body (the default).
    ClientSecretPost,
    /// HTTP Basic authentication on the token request.
    ClientSecretBasic,
}

impl TokenAuth {
    pub fn as_str(&self) -> &'static str {
        match self {
            TokenAuth::ClientSecretPost => "client_secret_post",
            TokenAuth::ClientSecretBasic => "client_secret_basic",
        }
    }
}

/// The `oauth` block of a `byo_oauth` manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthConfig {
    pub authorization_url: Template,
    pub token_url: Template,
    pub scopes: Vec<String>,
    /// `false` when absent.
    pub pkce: bool,
    /// `" "` when absent.
    pub scope_separator: String,
    /// Extra authorize-request parameters. Never one the flow sets itself (see the crate docs).
    pub authorize_params: IndexMap<String, Template>,
    /// Extra token-request parameters. Never one the flow sets itself (see the crate docs).
    pub token_params: IndexMap<String, Template>,
    pub token_auth: TokenAuth,
}

impl OAuthConfig {
    /// The scopes joined with `scope_separator`.
    pub fn scope_string(&self) -> String {
        self.scopes.join(&self.scope_separator)
    }
}

/// A submitted value was rejected. Names the field, never the value (it may be a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    fn new(field: &str, message: impl Into<String>) -> Self {
        FieldError {
            field: shown(field),
            message: message.into(),
        }
    }
}

impl Manifest {
    /// The field with this key.
    pub fn field(&self, key: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.key == key)
    }

    /// Keys of the fields whose values are secret.
    pub fn secret_keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.fields
            .iter()
            .filter(|f| f.secret)
            .map(|f| f.key.as_str())
    }

    /// Validates a user's submitted form values (the JSON object `fields` of a request body).
    ///
    /// Accepts JSON strings; for `number` fields also JSON numbers, for `bool` fields JSON bools
    /// (normalised to strings). `null` counts as absent. An empty string counts as missing: a
    /// default then applies, and a required field without one is an error. Unknown keys are
    /// rejected. Returns the values of the fields that have one (submitted or default), keyed by
    /// field key; an optional field left blank without a default is absent from the map.
    ///
    /// The first problem found is returned (unknown keys first, then fields in manifest order).
    pub fn validate_submission(
        &self,
        submitted: &serde_json::Map<String, Value>,
    ) -> Result<BTreeMap<String, String>, FieldError> {
        if let Some(unknown) = submitted.keys().find(|k| self.field(k).is_none()) {
            return Err(FieldError::new(unknown, "is not a field of this connector"));
        }
        let mut out = BTreeMap::new();
        for field in &self.fields {
            let submitted_value = match submitted.get(&field.key) {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Number(n)) if field.field_type == FieldType::Number => {
                    Some(n.to_string())
                }
                Some(Value::Bool(b)) if field.field_type == FieldType::Bool => Some(b.to_string()),
                Some(_) => {
                    let expected = match field.field_type {
                        FieldType::Number => "must be a number or a string",
                        FieldType::Bool => "must be a bool or a string",
                        _ => "must be a string",
                    };
                    return Err(FieldError::new(&field.key, expected));
                }
            };
            let value = match submitted_value {
                Some(s) if !s.is_empty() => Some(s),
                _ => field.default.clone(),
            };
            match value {
                Some(v) => {
                    field
                        .check_value(&v)
                        .map_err(|m| FieldError::new(&field.key, m))?;
                    out.insert(field.key.clone(), v);
                }
                None if field.required => {
                    return Err(FieldError::new(&field.key, "is required"));
                }
                None => {}
            }
        }
        Ok(out)
    }

    /// Resolves every `derived` value, transitively, from validated field values.
    pub fn resolve_derived(
        &self,
        fields: &BTreeMap<String, String>,
        instance_url: &str,
    ) -> Result<BTreeMap<String, String>, RenderError> {
        let mut done: BTreeMap<String, String> = BTreeMap::new();
        let mut pending: Vec<(&String, &Template)> = self.derived.iter().collect();
        // Each pass resolves every entry whose derived references are all resolved; a pass
        // without progress means a cycle or an unknown key (impossible for a loaded manifest,
        // which was checked, but the fields are public).
        while !pending.is_empty() {
            let before = pending.len();
            let mut waiting = Vec::new();
            for (key, template) in pending {
                if template.derived_refs().all(|d| done.contains_key(d)) {
                    let value = {
                        let ctx = RenderContext {
                            fields,
                            derived: &done,
                            instance_url,
                            oauth_access_token: None,
                        };
                        template
                            .render(&ctx)
                            .map_err(|e| RenderError::new(format!("derived `{key}`: {e}")))?
                    };
                    done.insert(key.clone(), value);
                } else {
                    waiting.push((key, template));
                }
            }
            if waiting.len() == before {
                let keys: Vec<&str> = waiting.iter().map(|(k, _)| k.as_str()).collect();
                return Err(RenderError::new(format!(
                    "derived values cannot be resolved (a cycle or an unknown key): {}",
                    keys.join(", ")
                )));
            }
            pending = waiting;
        }
        Ok(done)
    }
}

impl Field {
    /// Checks one non-empty value against the field's type, choices and validation. The message
    /// never contains the value.
    pub fn check_value(&self, value: &str) -> Result<(), String> {
        if value.len() > MAX_VALUE_BYTES {
            return Err(format!("is too long (at most {MAX_VALUE_BYTES} bytes)"));
        }
        if value.contains('\0') {
            return Err("must not contain a NUL character".to_owned());
        }
        let mut number = None;
        match self.field_type {
            FieldType::Text | FieldType::Password => {}
            FieldType::Number => match value.parse::<f64>() {
                Ok(n) if n.is_finite() => number = Some(n),
                _ => return Err("must be a number".to_owned()),
            },
            FieldType::Bool => {
                if value != "true" && value != "false" {
                    return Err("must be `true` or `false`".to_owned());
                }
            }
            FieldType::Select => {
                if !self.choices.iter().any(|c| c == value) {
                    return Err(format!("must be one of: {}", self.choices.join(", ")));
                }
            }
        }
        let Some(v) = &self.validation else {
            return Ok(());
        };
        let chars = value.chars().count();
        if let Some(min) = v.min_length {
            if chars < min {
                return Err(format!("must be at least {min} characters long"));
            }
        }
        if let Some(max) = v.max_length {
            if chars > max {
                return Err(format!("must be at most {max} characters long"));
            }
        }
        if let (Some(min), Some(n)) = (v.min, number) {
            if n < min {
                return Err(format!("must be at least {min}"));
            }
        }
        if let (Some(max), Some(n)) = (v.max, number) {
            if n > max {
                return Err(format!("must be at most {max}"));
            }
        }
        if let Some(p) = &v.pattern {
            if !p.is_match(value) {
                return Err(format!("does not match the pattern `{}`", p.as_str()));
            }
        }
        Ok(())
    }
}
