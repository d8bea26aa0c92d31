//! `serde_json::Value` → [`Manifest`], by hand, so that every error names the key path where it
//! sits (`fields[2].validation.pattern`, `mcp.args[1]`) and every rule of the spec is checked in
//! one place. `null` counts as absent everywhere.

use std::collections::{HashMap, HashSet};

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::manifest::*;
use crate::template::{Template, Var};
use crate::util::{
    is_header_name, is_hex_color, is_icon_key, is_identifier, is_key, is_manifest_id, path_index,
    path_key, shown,
};

/// Most fields a manifest may declare.
pub const MAX_FIELDS: usize = 100;
/// Most derived values a manifest may declare.
pub const MAX_DERIVED: usize = 100;
/// Longest field / derived key.
const MAX_KEY_LEN: usize = 64;

/// An error at a key path; shown as `path: message`.
#[derive(Debug)]
pub(crate) struct PathError {
    path: String,
    message: String,
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

type R<T> = Result<T, PathError>;

fn err<T>(path: &str, message: impl Into<String>) -> R<T> {
    Err(PathError {
        path: path.to_owned(),
        message: message.into(),
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

// ---------------------------------------------------------------------------------------------
// Typed access with paths.

/// A mapping whose keys are a fixed set; any other key is an error naming it.
fn object<'a>(v: &'a Value, path: &str, allowed: &[&str]) -> R<&'a Map<String, Value>> {
    let Value::Object(m) = v else {
        return err(path, format!("expected a mapping, found {}", kind(v)));
    };
    if let Some(unknown) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
        let place = if path.is_empty() {
            "at the top level".to_owned()
        } else {
            format!("in `{path}`")
        };
        return err(
            &path_key(path, unknown),
            format!(
                "unknown key `{}` {place} (expected one of: {})",
                shown(unknown),
                allowed.join(", ")
            ),
        );
    }
    Ok(m)
}

fn get<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    m.get(key).filter(|v| !v.is_null())
}

fn opt_str(m: &Map<String, Value>, path: &str, key: &str) -> R<Option<String>> {
    match get(m, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => err(
            &path_key(path, key),
            format!("expected a string, found {}", kind(other)),
        ),
    }
}

fn req_str(m: &Map<String, Value>, path: &str, key: &str) -> R<String> {
    opt_str(m, path, key)?.map_or_else(|| err(&path_key(path, key), "is required"), Ok)
}

fn opt_bool(m: &Map<String, Value>, path: &str, key: &str) -> R<Option<bool>> {
    match get(m, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => err(
            &path_key(path, key),
            format!("expected a bool (true or false), found {}", kind(other)),
        ),
    }
}

fn opt_usize(m: &Map<String, Value>, path: &str, key: &str) -> R<Option<usize>> {
    match get(m, key) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_u64().and_then(|n| usize::try_from(n).ok()) {
            Some(n) => Ok(Some(n)),
            None => err(&path_key(path, key), "expected a non-negative whole number"),
        },
        Some(other) => err(
            &path_key(path, key),
            format!(
                "expected a non-negative whole number, found {}",
                kind(other)
            ),
        ),
    }
}

fn opt_f64(m: &Map<String, Value>, path: &str, key: &str) -> R<Option<f64>> {
    match get(m, key) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if f.is_finite() => Ok(Some(f)),
            _ => err(&path_key(path, key), "expected a finite number"),
        },
        Some(other) => err(
            &path_key(path, key),
            format!("expected a number, found {}", kind(other)),
        ),
    }
}

fn opt_list<'a>(m: &'a Map<String, Value>, path: &str, key: &str) -> R<&'a [Value]> {
    match get(m, key) {
        None => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(other) => err(
            &path_key(path, key),
            format!("expected a list, found {}", kind(other)),
        ),
    }
}

/// A free-form string-keyed mapping (env, headers, derived, params); absent → empty.
fn opt_map<'a>(
    m: &'a Map<String, Value>,
    path: &str,
    key: &str,
) -> R<Option<&'a Map<String, Value>>> {
    match get(m, key) {
        None => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(other) => err(
            &path_key(path, key),
            format!("expected a mapping, found {}", kind(other)),
        ),
    }
}

fn string_list(m: &Map<String, Value>, path: &str, key: &str) -> R<Vec<String>> {
    let here = path_key(path, key);
    opt_list(m, path, key)?
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) => Ok(s.clone()),
            other => err(
                &path_index(&here, i),
                format!("expected a string, found {}", kind(other)),
            ),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Templates and the names they may use.

/// What templates in one place of the manifest may refer to.
struct Scope<'a> {
    fields: &'a [Field],
    derived: &'a HashSet<String>,
    /// `${oauth.access_token}` is allowed (inside `mcp` of an OAuth manifest).
    oauth_token: bool,
}

fn template(v: &Value, path: &str, scope: &Scope<'_>) -> R<Template> {
    let Value::String(s) = v else {
        return err(path, format!("expected a string, found {}", kind(v)));
    };
    template_str(s, path, scope)
}

fn template_str(s: &str, path: &str, scope: &Scope<'_>) -> R<Template> {
    let t = match Template::parse(s) {
        Ok(t) => t,
        Err(e) => return err(path, e.to_string()),
    };
    for p in t.placeholders() {
        match &p.var {
            Var::Field(k) if !scope.fields.iter().any(|f| &f.key == k) => {
                let declared: Vec<&str> = scope.fields.iter().map(|f| f.key.as_str()).collect();
                return err(
                    path,
                    format!(
                        "`{}` names an unknown field `{k}` (declared fields: {})",
                        p.var.display(),
                        if declared.is_empty() {
                            "none".to_owned()
                        } else {
                            declared.join(", ")
                        }
                    ),
                );
            }
            Var::Derived(k) if !scope.derived.contains(k) => {
                return err(
                    path,
                    format!("`{}` names an unknown derived key `{k}`", p.var.display()),
                );
            }
            Var::OAuthAccessToken if !scope.oauth_token => {
                return err(
                    path,
                    "`${oauth.access_token}` may only be used inside `mcp` of a byo_oauth or mcp_oauth manifest",
                );
            }
            _ => {}
        }
    }
    Ok(t)
}

fn opt_template(
    m: &Map<String, Value>,
    path: &str,
    key: &str,
    scope: &Scope<'_>,
) -> R<Option<Template>> {
    get(m, key)
        .map(|v| template(v, &path_key(path, key), scope))
        .transpose()
}

fn req_template(m: &Map<String, Value>, path: &str, key: &str, scope: &Scope<'_>) -> R<Template> {
    let here = path_key(path, key);
    match opt_template(m, path, key, scope)? {
        Some(t) if !t.source().trim().is_empty() => Ok(t),
        _ => err(&here, "is required"),
    }
}

/// A template that must be an http(s) URL when its scheme is written literally.
fn check_url_template(t: &Template, path: &str) -> R<()> {
    let prefix = t.literal_prefix().to_ascii_lowercase();
    if t.is_literal() || prefix.contains(':') {
        if prefix.starts_with("https://") || prefix.starts_with("http://") {
            return Ok(());
        }
        return err(path, "must be an http:// or https:// URL");
    }
    Ok(())
}

/// A string-keyed mapping of templates whose keys satisfy `valid_key`.
fn template_map(
    m: &Map<String, Value>,
    path: &str,
    key: &str,
    scope: &Scope<'_>,
    valid_key: impl Fn(&str) -> Result<(), String>,
) -> R<IndexMap<String, Template>> {
    let here = path_key(path, key);
    let mut out = IndexMap::new();
    if let Some(map) = opt_map(m, path, key)? {
        for (k, v) in map {
            let at = path_key(&here, k);
            if let Err(msg) = valid_key(k) {
                return err(&at, msg);
            }
            out.insert(k.clone(), template(v, &at, scope)?);
        }
    }
    Ok(out)
}

/// Headers a manifest may not set: they frame or route the request, which is the client's job.
const FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
];

fn header_key(k: &str) -> Result<(), String> {
    if !is_header_name(k) {
        return Err(format!("`{}` is not a valid HTTP header name", shown(k)));
    }
    if FORBIDDEN_HEADERS.contains(&k.to_ascii_lowercase().as_str()) {
        return Err(format!("the header `{k}` may not be set by a manifest"));
    }
    Ok(())
}

fn env_key(k: &str) -> Result<(), String> {
    if is_identifier(k, 128) {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a valid environment variable name (letters, digits and `_`, not starting with a digit)",
            shown(k)
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// The manifest.

const TOP_KEYS: &[&str] = &[
    "id",
    "name",
    "description",
    "category",
    "brand",
    "auth_mode",
    "fields",
    "derived",
    "mcp",
    "verify",
    "oauth",
    "docs",
];
const BRAND_KEYS: &[&str] = &["logo", "color"];
const DOCS_KEYS: &[&str] = &["setup_md"];
const FIELD_KEYS: &[&str] = &[
    "key",
    "label",
    "type",
    "required",
    "default",
    "placeholder",
    "help",
    "choices",
    "secret",
    "validation",
];
const VALIDATION_KEYS: &[&str] = &["pattern", "min_length", "max_length", "min", "max"];
const MCP_KEYS: &[&str] = &["transport", "command", "args", "endpoint", "env", "headers"];
const VERIFY_KEYS: &[&str] = &["http", "sql", "mcp_method"];
const HTTP_VERIFY_KEYS: &[&str] = &[
    "method",
    "url",
    "headers",
    "body",
    "expect_status",
    "expect_json_field",
];
const SQL_VERIFY_KEYS: &[&str] = &["driver", "dsn"];
const OAUTH_KEYS: &[&str] = &[
    "authorization_url",
    "token_url",
    "scopes",
    "pkce",
    "scope_separator",
    "authorize_params",
    "token_params",
    "token_auth",
];
const HTTP_METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
/// Parameters the OAuth flow sets itself; `authorize_params` may not override them.
pub const RESERVED_AUTHORIZE_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "scope",
    "code_challenge",
    "code_challenge_method",
];
/// Parameters the OAuth flow sets itself; `token_params` may not override them.
pub const RESERVED_TOKEN_PARAMS: &[&str] = &[
    "grant_type",
    "code",
    "redirect_uri",
    "client_id",
    "client_secret",
    "code_verifier",
    "refresh_token",
];

pub(crate) fn manifest(v: &Value) -> R<Manifest> {
    let top = object(v, "", TOP_KEYS)?;

    let id = req_str(top, "", "id")?;
    if !is_manifest_id(&id) {
        return err(
            "id",
            format!(
                "`{}` is not a valid id (lower-case letter first, then a-z, 0-9, `_` or `-`; at most 64)",
                shown(&id)
            ),
        );
    }
    let name = req_str(top, "", "name")?;
    if name.trim().is_empty() {
        return err("name", "must not be empty");
    }
    let description = opt_str(top, "", "description")?.unwrap_or_default();
    let category = opt_str(top, "", "category")?.unwrap_or_default();
    let brand = match get(top, "brand") {
        None => Brand::default(),
        Some(b) => brand(b)?,
    };
    let auth_mode_text = req_str(top, "", "auth_mode")?;
    let Some(auth_mode) = AuthMode::parse(&auth_mode_text) else {
        return err(
            "auth_mode",
            format!(
                "unknown auth mode `{}` (expected one of: pat, conn_string, mcp_oauth, byo_oauth, none)",
                shown(&auth_mode_text)
            ),
        );
    };

    let fields = fields(top)?;

    // Derived keys are known before their templates are checked, so they may refer to each other.
    let derived_map = opt_map(top, "", "derived")?;
    let derived_keys: HashSet<String> = derived_map
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let plain_scope = Scope {
        fields: &fields,
        derived: &derived_keys,
        oauth_token: false,
    };
    if derived_keys.len() > MAX_DERIVED {
        return err("derived", format!("at most {MAX_DERIVED} derived values"));
    }
    let derived = template_map(top, "", "derived", &plain_scope, |k| {
        if is_key(k, MAX_KEY_LEN) {
            Ok(())
        } else {
            Err(format!(
                "`{}` is not a valid derived key (letters, digits, `_` and `-`, starting with a letter or `_`)",
                shown(k)
            ))
        }
    })?;
    if let Some(cycle) = find_cycle(&derived) {
        let first = cycle.first().map(String::as_str).unwrap_or_default();
        return err(
            &path_key("derived", first),
            format!("derived values form a cycle: {}", cycle.join(" -> ")),
        );
    }

    let mcp_scope = Scope {
        oauth_token: matches!(auth_mode, AuthMode::ByoOauth | AuthMode::McpOauth),
        ..plain_scope
    };
    let Some(mcp_value) = get(top, "mcp") else {
        return err("mcp", "is required");
    };
    let mcp = mcp(mcp_value, &mcp_scope)?;

    let verify = get(top, "verify")
        .map(|v| verify(v, &plain_scope))
        .transpose()?;
    let oauth = get(top, "oauth")
        .map(|v| oauth(v, &plain_scope))
        .transpose()?;
    let docs = get(top, "docs")
        .map(|d| -> R<Docs> {
            let m = object(d, "docs", DOCS_KEYS)?;
            Ok(Docs {
                setup_md: opt_str(m, "docs", "setup_md")?.unwrap_or_default(),
            })
        })
        .transpose()?;

    let manifest = Manifest {
        id,
        name,
        description,
        category,
        brand,
        auth_mode,
        fields,
        derived,
        mcp,
        verify,
        oauth,
        docs,
    };
    check_auth_mode(&manifest)?;
    Ok(manifest)
}

fn brand(v: &Value) -> R<Brand> {
    let m = object(v, "brand", BRAND_KEYS)?;
    let logo = opt_str(m, "brand", "logo")?.unwrap_or_default();
    if !logo.is_empty() && !is_icon_key(&logo) && !is_https_url(&logo) {
        return err(
            "brand.logo",
            "must be an icon key (letters, digits, `_`, `.`, `-`, `/`) or an https:// URL",
        );
    }
    // An unquoted `#336791` is a YAML comment, leaving `color:` null: say so rather than
    // silently dropping the colour.
    if m.get("color").is_some_and(Value::is_null) {
        return err(
            "brand.color",
            "is empty; quote the colour (`color: \"#336791\"`): an unquoted `#` starts a YAML comment",
        );
    }
    let color = opt_str(m, "brand", "color")?.unwrap_or_default();
    if !color.is_empty() && !is_hex_color(&color) {
        return err("brand.color", "must be empty or `#RRGGBB`");
    }
    Ok(Brand { logo, color })
}

fn is_https_url(s: &str) -> bool {
    s.len() <= 2048
        && url::Url::parse(s).is_ok_and(|u| {
            u.scheme() == "https"
                && u.host_str().is_some_and(|h| !h.is_empty())
                && u.username().is_empty()
                && u.password().is_none()
        })
}

fn fields(top: &Map<String, Value>) -> R<Vec<Field>> {
    let list = opt_list(top, "", "fields")?;
    if list.len() > MAX_FIELDS {
        return err("fields", format!("at most {MAX_FIELDS} fields"));
    }
    let mut out: Vec<Field> = Vec::with_capacity(list.len());
    for (i, v) in list.iter().enumerate() {
        let path = path_index("fields", i);
        let f = field(v, &path)?;
        if out.iter().any(|o| o.key == f.key) {
            return err(
                &format!("{path}.key"),
                format!("duplicate field key `{}`", f.key),
            );
        }
        out.push(f);
    }
    Ok(out)
}

fn field(v: &Value, path: &str) -> R<Field> {
    let m = object(v, path, FIELD_KEYS)?;
    let key = req_str(m, path, "key")?;
    if !is_key(&key, MAX_KEY_LEN) {
        return err(
            &path_key(path, "key"),
            format!(
                "`{}` is not a valid field key (letters, digits, `_` and `-`, starting with a letter or `_`; at most {MAX_KEY_LEN})",
                shown(&key)
            ),
        );
    }
    let label = opt_str(m, path, "label")?.unwrap_or_else(|| key.clone());
    let type_text = req_str(m, path, "type")?;
    let Some(field_type) = FieldType::parse(&type_text) else {
        return err(
            &path_key(path, "type"),
            format!(
                "unknown field type `{}` (expected one of: text, password, number, select, bool)",
                shown(&type_text)
            ),
        );
    };
    let required = opt_bool(m, path, "required")?.unwrap_or(false);
    // A default written as a YAML number or bool (`default: 5432`) is taken as its text.
    let default = match get(m, "default") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::Bool(b)) => Some(b.to_string()),
        Some(other) => {
            return err(
                &path_key(path, "default"),
                format!("expected a string, found {}", kind(other)),
            )
        }
    }
    .filter(|d| !d.is_empty());
    let placeholder = opt_str(m, path, "placeholder")?;
    let help = opt_str(m, path, "help")?;
    let choices = string_list(m, path, "choices")?;
    let choices_path = path_key(path, "choices");
    if field_type == FieldType::Select {
        if choices.is_empty() {
            return err(
                &choices_path,
                "a select field needs a non-empty list of choices",
            );
        }
        for (i, c) in choices.iter().enumerate() {
            if c.is_empty() {
                return err(&path_index(&choices_path, i), "a choice must not be empty");
            }
            if choices.iter().take(i).any(|p| p == c) {
                return err(&path_index(&choices_path, i), "duplicate choice");
            }
        }
    } else if !choices.is_empty() {
        return err(&choices_path, "choices are only allowed on select fields");
    }
    let secret = opt_bool(m, path, "secret")?.unwrap_or(field_type == FieldType::Password);
    let validation = get(m, "validation")
        .map(|v| validation(v, &path_key(path, "validation"), field_type))
        .transpose()?;

    let field = Field {
        key,
        label,
        field_type,
        required,
        default,
        placeholder,
        help,
        choices,
        secret,
        validation,
    };
    if let Some(d) = &field.default {
        if let Err(message) = field.check_value(d) {
            return err(
                &path_key(path, "default"),
                format!("the default does not satisfy the field's own rules: {message}"),
            );
        }
    }
    Ok(field)
}

fn validation(v: &Value, path: &str, field_type: FieldType) -> R<Validation> {
    let m = object(v, path, VALIDATION_KEYS)?;
    let pattern = match opt_str(m, path, "pattern")? {
        None => None,
        Some(p) => Some(Pattern::new(&p).or_else(|e| err(&path_key(path, "pattern"), e))?),
    };
    let out = Validation {
        pattern,
        min_length: opt_usize(m, path, "min_length")?,
        max_length: opt_usize(m, path, "max_length")?,
        min: opt_f64(m, path, "min")?,
        max: opt_f64(m, path, "max")?,
    };
    match field_type {
        FieldType::Select | FieldType::Bool => {
            if m.values().any(|v| !v.is_null()) {
                return err(
                    path,
                    format!(
                        "validation is not supported on {} fields",
                        field_type.as_str()
                    ),
                );
            }
        }
        FieldType::Text | FieldType::Password => {
            for key in ["min", "max"] {
                if get(m, key).is_some() {
                    return err(
                        &path_key(path, key),
                        "only applies to number fields (use min_length / max_length for text)",
                    );
                }
            }
        }
        FieldType::Number => {}
    }
    if let (Some(lo), Some(hi)) = (out.min_length, out.max_length) {
        if lo > hi {
            return err(path, "min_length is greater than max_length");
        }
    }
    if let (Some(lo), Some(hi)) = (out.min, out.max) {
        if lo > hi {
            return err(path, "min is greater than max");
        }
    }
    Ok(out)
}

/// Finds a cycle among derived references, as `a -> b -> a`. The recursion is bounded by
/// [`MAX_DERIVED`].
fn find_cycle(derived: &IndexMap<String, Template>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        OnStack,
        Done,
    }
    fn visit<'a>(
        key: &'a str,
        derived: &'a IndexMap<String, Template>,
        state: &mut HashMap<&'a str, State>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match state.get(key) {
            Some(State::Done) => return None,
            Some(State::OnStack) => {
                let start = stack.iter().position(|k| *k == key)?;
                let mut cycle: Vec<String> =
                    stack.iter().skip(start).map(|k| (*k).to_owned()).collect();
                cycle.push(key.to_owned());
                return Some(cycle);
            }
            None => {}
        }
        state.insert(key, State::OnStack);
        stack.push(key);
        if let Some(t) = derived.get(key) {
            for next in t.derived_refs() {
                if let Some(cycle) = visit(next, derived, state, stack) {
                    return Some(cycle);
                }
            }
        }
        stack.pop();
        state.insert(key, State::Done);
        None
    }
    let mut state = HashMap::new();
    let mut stack = Vec::new();
    derived
        .keys()
        .find_map(|k| visit(k, derived, &mut state, &mut stack))
}

fn mcp(v: &Value, scope: &Scope<'_>) -> R<Mcp> {
    let m = object(v, "mcp", MCP_KEYS)?;
    let transport_text = req_str(m, "mcp", "transport")?;
    let Some(transport) = Transport::parse(&transport_text) else {
        return err(
            "mcp.transport",
            format!(
                "unknown transport `{}` (expected one of: stdio, streamable-http, sse)",
                shown(&transport_text)
            ),
        );
    };
    let command = opt_template(m, "mcp", "command", scope)?.filter(|t| !t.source().is_empty());
    let args = opt_list(m, "mcp", "args")?
        .iter()
        .enumerate()
        .map(|(i, a)| template(a, &path_index("mcp.args", i), scope))
        .collect::<R<Vec<_>>>()?;
    let endpoint = opt_template(m, "mcp", "endpoint", scope)?.filter(|t| !t.source().is_empty());
    let env = template_map(m, "mcp", "env", scope, env_key)?;
    let headers = template_map(m, "mcp", "headers", scope, header_key)?;

    match transport {
        Transport::Stdio => {
            let Some(command) = &command else {
                return err("mcp.command", "is required for transport stdio");
            };
            if !command.is_literal() || command.source().trim().is_empty() {
                return err(
                    "mcp.command",
                    "must be a plain program name or path (no placeholders)",
                );
            }
            if endpoint.is_some() {
                return err("mcp.endpoint", "is not allowed for transport stdio");
            }
            if !headers.is_empty() {
                return err(
                    "mcp.headers",
                    "is not allowed for transport stdio (use env)",
                );
            }
        }
        Transport::StreamableHttp | Transport::Sse => {
            let Some(endpoint) = &endpoint else {
                return err(
                    "mcp.endpoint",
                    format!("is required for transport {}", transport.as_str()),
                );
            };
            check_url_template(endpoint, "mcp.endpoint")?;
            if command.is_some() {
                return err(
                    "mcp.command",
                    format!("is not allowed for transport {}", transport.as_str()),
                );
            }
            if !args.is_empty() {
                return err(
                    "mcp.args",
                    format!("is not allowed for transport {}", transport.as_str()),
                );
            }
            if !env.is_empty() {
                return err(
                    "mcp.env",
                    format!(
                        "is not allowed for transport {} (use headers)",
                        transport.as_str()
                    ),
                );
            }
        }
    }
    Ok(Mcp {
        transport,
        command,
        args,
        endpoint,
        env,
        headers,
    })
}

fn verify(v: &Value, scope: &Scope<'_>) -> R<Verify> {
    let m = object(v, "verify", VERIFY_KEYS)?;
    let present: Vec<&str> = VERIFY_KEYS
        .iter()
        .copied()
        .filter(|k| get(m, k).is_some())
        .collect();
    match present.as_slice() {
        ["http"] => {
            let h = object(
                get(m, "http").unwrap_or(&Value::Null),
                "verify.http",
                HTTP_VERIFY_KEYS,
            )?;
            http_verify(h, scope).map(Verify::Http)
        }
        ["sql"] => {
            let s = object(
                get(m, "sql").unwrap_or(&Value::Null),
                "verify.sql",
                SQL_VERIFY_KEYS,
            )?;
            let driver_text = req_str(s, "verify.sql", "driver")?;
            let driver = match driver_text.as_str() {
                "postgres" => SqlDriver::Postgres,
                "mysql" => SqlDriver::Mysql,
                other => {
                    return err(
                        "verify.sql.driver",
                        format!(
                            "unknown driver `{}` (expected postgres or mysql)",
                            shown(other)
                        ),
                    )
                }
            };
            let dsn = req_template(s, "verify.sql", "dsn", scope)?;
            Ok(Verify::Sql(SqlVerify { driver, dsn }))
        }
        ["mcp_method"] => {
            let method = req_str(m, "verify", "mcp_method")?;
            let valid = !method.is_empty()
                && method.len() <= 128
                && method
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '.'));
            if !valid {
                return err(
                    "verify.mcp_method",
                    "must be an MCP method name such as `tools/list`",
                );
            }
            // Any transport: on a stdio manifest (catalogs written for other platforms carry one) the server
            // answers `ok: true` without starting the program.
            Ok(Verify::McpMethod(method))
        }
        [] => err("verify", "needs one of http, sql, mcp_method"),
        _ => err(
            "verify",
            format!(
                "needs exactly one of http, sql, mcp_method (found {})",
                present.join(" and ")
            ),
        ),
    }
}

fn http_verify(h: &Map<String, Value>, scope: &Scope<'_>) -> R<HttpVerify> {
    let path = "verify.http";
    let method = opt_str(h, path, "method")?
        .unwrap_or_else(|| "GET".to_owned())
        .to_ascii_uppercase();
    if !HTTP_METHODS.contains(&method.as_str()) {
        return err(
            "verify.http.method",
            format!(
                "unsupported method `{}` (expected one of: {})",
                shown(&method),
                HTTP_METHODS.join(", ")
            ),
        );
    }
    let url = req_template(h, path, "url", scope)?;
    check_url_template(&url, "verify.http.url")?;
    let headers = template_map(h, path, "headers", scope, header_key)?;
    let body = opt_template(h, path, "body", scope)?;
    let status_path = "verify.http.expect_status";
    let expect_status = match get(h, "expect_status") {
        None => vec![200],
        Some(Value::Array(list)) => {
            if list.is_empty() {
                return err(status_path, "must not be an empty list");
            }
            list.iter()
                .enumerate()
                .map(|(i, v)| status_code(v, &path_index(status_path, i)))
                .collect::<R<Vec<_>>>()?
        }
        Some(v) => vec![status_code(v, status_path)?],
    };
    let expect_json_field = opt_str(h, path, "expect_json_field")?;
    if expect_json_field.as_deref() == Some("") {
        return err("verify.http.expect_json_field", "must not be empty");
    }
    Ok(HttpVerify {
        method,
        url,
        headers,
        body,
        expect_status,
        expect_json_field,
    })
}

fn status_code(v: &Value, path: &str) -> R<u16> {
    match v.as_u64().and_then(|n| u16::try_from(n).ok()) {
        Some(n) if (100..=599).contains(&n) => Ok(n),
        _ => err(path, "expected an HTTP status code between 100 and 599"),
    }
}

fn oauth(v: &Value, scope: &Scope<'_>) -> R<OAuthConfig> {
    let path = "oauth";
    let m = object(v, path, OAUTH_KEYS)?;
    let authorization_url = req_template(m, path, "authorization_url", scope)?;
    check_url_template(&authorization_url, "oauth.authorization_url")?;
    let token_url = req_template(m, path, "token_url", scope)?;
    check_url_template(&token_url, "oauth.token_url")?;
    let scopes = string_list(m, path, "scopes")?;
    let scope_separator = opt_str(m, path, "scope_separator")?.unwrap_or_else(|| " ".to_owned());
    if scope_separator.is_empty() {
        return err("oauth.scope_separator", "must not be empty");
    }
    for (i, s) in scopes.iter().enumerate() {
        if s.is_empty() || s.contains(scope_separator.as_str()) {
            return err(
                &path_index("oauth.scopes", i),
                "a scope must be non-empty and must not contain the scope separator",
            );
        }
    }
    let pkce = opt_bool(m, path, "pkce")?.unwrap_or(false);
    let authorize_params = template_map(m, path, "authorize_params", scope, |k| {
        param_key(k, RESERVED_AUTHORIZE_PARAMS)
    })?;
    let token_params = template_map(m, path, "token_params", scope, |k| {
        param_key(k, RESERVED_TOKEN_PARAMS)
    })?;
    let token_auth = match opt_str(m, path, "token_auth")?.as_deref() {
        None | Some("client_secret_post") => TokenAuth::ClientSecretPost,
        Some("client_secret_basic") => TokenAuth::ClientSecretBasic,
        Some(other) => {
            return err(
                "oauth.token_auth",
                format!(
                    "unknown token_auth `{}` (expected client_secret_post or client_secret_basic)",
                    shown(other)
                ),
            )
        }
    };
    Ok(OAuthConfig {
        authorization_url,
        token_url,
        scopes,
        pkce,
        scope_separator,
        authorize_params,
        token_params,
        token_auth,
    })
}

fn param_key(k: &str, reserved: &[&str]) -> Result<(), String> {
    if k.is_empty() {
        return Err("a parameter name must not be empty".to_owned());
    }
    if reserved.contains(&k) {
        return Err(format!(
            "`{k}` is set by the OAuth flow and may not be overridden"
        ));
    }
    Ok(())
}

fn check_auth_mode(m: &Manifest) -> R<()> {
    if m.oauth.is_some() && m.auth_mode != AuthMode::ByoOauth {
        return err(
            "oauth",
            format!(
                "is only allowed for auth_mode byo_oauth (this manifest is {})",
                m.auth_mode
            ),
        );
    }
    match m.auth_mode {
        AuthMode::Pat => {
            if !m
                .fields
                .iter()
                .any(|f| f.secret || f.field_type == FieldType::Password)
            {
                return err(
                    "fields",
                    "auth_mode pat needs at least one password (or secret: true) field",
                );
            }
        }
        AuthMode::ConnString => {
            if m.fields.is_empty() {
                return err("fields", "auth_mode conn_string needs at least one field");
            }
        }
        AuthMode::ByoOauth => {
            for key in ["client_id", "client_secret"] {
                if m.field(key).is_none() {
                    return err(
                        "fields",
                        format!("auth_mode byo_oauth needs a `{key}` field"),
                    );
                }
            }
            if m.oauth.is_none() {
                return err("oauth", "is required for auth_mode byo_oauth");
            }
        }
        AuthMode::McpOauth => {
            if !m.fields.is_empty() {
                return err(
                    "fields",
                    "auth_mode mcp_oauth takes no fields (the MCP server runs the OAuth flow)",
                );
            }
            if m.mcp.transport != Transport::StreamableHttp {
                return err(
                    "mcp.transport",
                    "auth_mode mcp_oauth needs transport streamable-http",
                );
            }
        }
        AuthMode::None => {}
    }
    Ok(())
}
