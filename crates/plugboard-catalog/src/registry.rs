//! Converting entries of the official MCP Registry (`server.json`, schema `2025-09-29` and later: camelCase keys)
//! into manifests. Pure: text in, YAML text out; the caller writes the files.
//!
//! The mapping (also in `docs/behaviour.md`, Catalog):
//!
//! * **What it reads.** A document may be one `server.json` object, a registry API answer for one server
//!   (`{"server": {…}, "_meta": …}`), a list answer (`{"servers": [ … ]}`), or a JSON list of any of those.
//! * **Id.** From `name` (`namespace/server`): the namespace's last dot-label, a `-`, the server part (the label
//!   alone is dropped when the server part already starts with it), lower-cased, every other character than
//!   `a-z 0-9 _ -` made `-`, runs of `-` collapsed, at most 64 bytes. A name without `/`, or one that leaves no
//!   id starting with a letter, is skipped.
//! * **What it runs.** The first `streamable-http` remote, else the first `sse` remote, else the first package of
//!   type npm, pypi or oci whose transport is `stdio` (a package started as a local HTTP server cannot be expressed:
//!   nothing would start it). npm → `npx [runtimeArguments] -y <identifier>@<version> [packageArguments]`; pypi →
//!   `uvx [runtimeArguments] <identifier>@<version> [packageArguments]` (uv's exact-version form); oci →
//!   `docker run -i --rm [-e NAME]… [runtimeArguments] <image> [packageArguments]` with each environment variable
//!   passed by name (`-e NAME`) and its value in `env`, so no value sits on the command line. The version must be
//!   exact (no ranges, no `latest`); an oci image must carry a tag or a digest (or the entry a `version`).
//! * **Inputs become fields.** Each header, environment variable, argument and URL variable without a fixed
//!   `value` becomes a field (key from its name, value hint or flag; `label` the name, `help` the description);
//!   `isSecret` → `type: password` and `secret: true`; `format: number` → `number`, `boolean` → `bool`; `choices` →
//!   `select`; `isRequired`, `default`, `placeholder` carried over. A fixed `value` stays literal, with its
//!   `{variables}` turned into fields. Remote URL `{variables}` become fields too: one at the start of the URL must
//!   be an `http(s)://` address; elsewhere it is percent-encoded (`|url`), so it cannot change the host or path.
//! * **Secrets never on the command line.** An entry that passes a secret input as a command-line argument is
//!   skipped. An optional command-line argument without a value or default is left out (a manifest cannot add an
//!   argument only when a field is filled); the setup notes list what was left out. Environment variables and
//!   headers always become fields, optional when the entry says so.
//! * **Older schemas.** snake_case keys (2025-07-09), `version_detail.version`, remotes' `transport_type`, and the
//!   2025-05 seed's package `registry_name` / `name` (`docker` meaning oci) are read as their current forms.
//! * **auth_mode.** Any secret input → `pat`; a `streamable-http` remote with no input at all → `mcp_oauth` (a
//!   hosted server that needs no key usually signs people in with OAuth; the notes tell the reviewer to change it
//!   to `none` when the server is open); otherwise `none`.
//! * **verify.** `mcp_method: tools/list` for a `pat` streamable-http remote (the server itself checks the key);
//!   nothing otherwise.
//! * **Notes.** `docs.setup_md` names the registry entry and version, its website and repository, and every input
//!   with its description, so a reviewer can finish the manifest. Each produced manifest is parsed with the
//!   catalog's own rules before it is returned, so every file written passes `plugboard catalog lint`.

use std::collections::HashSet;

use serde_json::{json, Map, Value};

use crate::catalog::parse_manifest;
use crate::util::{is_header_name, is_identifier, is_manifest_id, shown};

/// One converted server: the manifest id, the file name to write and its YAML text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    pub id: String,
    pub file_name: String,
    pub yaml: String,
}

/// A server entry that was not converted, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    pub name: String,
    pub reason: String,
}

impl Skipped {
    fn new(name: &str, reason: impl Into<String>) -> Self {
        Skipped {
            name: shown(name),
            reason: reason.into(),
        }
    }
}

/// Converts every server entry of one registry document (`source` names it in skip reasons). Ids repeated inside
/// the document are skipped after the first.
pub fn convert_registry_document(source: &str, document: &str) -> Vec<Result<Converted, Skipped>> {
    let value: Value = match serde_json::from_str(document) {
        Ok(v) => v,
        Err(e) => {
            return vec![Err(Skipped::new(
                source,
                format!("not a registry document: invalid JSON: {e}"),
            ))]
        }
    };
    let mut entries = Vec::new();
    collect_entries(&value, &mut entries, 0);
    if entries.is_empty() {
        return vec![Err(Skipped::new(
            source,
            "not a registry document: no server entry (expected a server.json object, {\"server\": …} or {\"servers\": [ … ]})",
        ))];
    }
    let mut seen = HashSet::new();
    entries
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let name = text(entry, "name")
                .map(str::to_owned)
                .unwrap_or_else(|| format!("{source} (entry {})", i + 1));
            let converted = convert_server(entry).map_err(|reason| Skipped::new(&name, reason))?;
            if !seen.insert(converted.id.clone()) {
                return Err(Skipped::new(
                    &name,
                    format!(
                        "another entry of this import already became the id `{}`",
                        converted.id
                    ),
                ));
            }
            Ok(converted)
        })
        .collect()
}

fn collect_entries<'a>(v: &'a Value, out: &mut Vec<&'a Map<String, Value>>, depth: usize) {
    if depth > 3 {
        return;
    }
    match v {
        Value::Array(items) => {
            for item in items {
                collect_entries(item, out, depth + 1);
            }
        }
        Value::Object(m) => {
            if let Some(servers) = m.get("servers") {
                collect_entries(servers, out, depth + 1);
            } else if let Some(Value::Object(server)) = m.get("server") {
                out.push(server);
            } else if m.contains_key("name")
                || m.contains_key("packages")
                || m.contains_key("remotes")
            {
                out.push(m);
            }
        }
        _ => {}
    }
}

type R<T> = Result<T, String>;

fn text<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    m.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn flag(m: &Map<String, Value>, key: &str) -> bool {
    m.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn list<'a>(m: &'a Map<String, Value>, key: &str) -> &'a [Value] {
    m.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// `namespace/server` → a manifest id.
pub fn registry_id(name: &str) -> Option<String> {
    let (namespace, server) = name.split_once('/')?;
    let label = namespace.rsplit('.').next().unwrap_or_default();
    let server_l = server.to_ascii_lowercase();
    let label_l = label.to_ascii_lowercase();
    let with_label = if label_l.is_empty() || server_l.starts_with(&label_l) {
        server_l.clone()
    } else {
        format!("{label_l}-{server_l}")
    };
    // A label that does not start with a letter (`21st-dev`) cannot lead an id: the server part alone then.
    clean_id(&with_label).or_else(|| clean_id(&server_l))
}

fn clean_id(raw: &str) -> Option<String> {
    let mut id = String::new();
    for c in raw.chars() {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' {
            c
        } else {
            '-'
        };
        if c == '-' && (id.ends_with('-') || id.is_empty()) {
            continue;
        }
        id.push(c);
    }
    let mut id: String = id.trim_end_matches('-').chars().take(64).collect();
    while id.ends_with('-') {
        id.pop();
    }
    is_manifest_id(&id).then_some(id)
}

/// The form being built: fields, and notes for the reviewer.
#[derive(Default)]
struct Form {
    fields: Vec<Value>,
    keys: HashSet<String>,
    secret: bool,
    inputs: Vec<String>,
    left_out: Vec<String>,
}

impl Form {
    /// A field key from an input's name: letters, digits, `_`, `-`; unique in the form.
    fn key(&mut self, name: &str) -> String {
        let mut key: String = name
            .trim_start_matches('-')
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(56)
            .collect();
        if !key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            key.insert_str(0, "input_");
        }
        let base = key.clone();
        let mut n = 2;
        while self.keys.contains(&key) {
            key = format!("{base}_{n}");
            n += 1;
        }
        self.keys.insert(key.clone());
        key
    }

    /// Adds a field for an input (an `Input` object of the schema) and returns its key.
    fn field(&mut self, label: &str, input: &Map<String, Value>, url_prefix: bool) -> String {
        let key = self.key(label);
        let secret = flag(input, "isSecret");
        let choices: Vec<&str> = list(input, "choices")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let field_type = if !choices.is_empty() {
            "select"
        } else if secret {
            "password"
        } else {
            match text(input, "format") {
                Some("number") => "number",
                Some("boolean") => "bool",
                _ => "text",
            }
        };
        let mut f = Map::new();
        f.insert("key".into(), json!(key));
        f.insert("label".into(), json!(label));
        f.insert("type".into(), json!(field_type));
        f.insert("required".into(), json!(flag(input, "isRequired")));
        if secret {
            f.insert("secret".into(), json!(true));
            self.secret = true;
        }
        if let Some(d) = text(input, "default") {
            f.insert("default".into(), json!(d));
        }
        if let Some(p) = text(input, "placeholder") {
            f.insert("placeholder".into(), json!(p));
        }
        if let Some(d) = text(input, "description") {
            f.insert("help".into(), json!(d));
        }
        if !choices.is_empty() {
            f.insert("choices".into(), json!(choices));
        }
        if url_prefix {
            f.insert(
                "validation".into(),
                json!({"pattern": "^https?://[^\\s]+$"}),
            );
        }
        self.inputs.push(format!(
            "- `{label}`{}{}",
            if secret { " (secret)" } else { "" },
            text(input, "description")
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        ));
        self.fields.push(Value::Object(f));
        key
    }
}

/// Escapes a literal for a template (`${` → `$${`).
fn literal(s: &str) -> String {
    s.replace("${", "$${")
}

/// An input's value as a template: its fixed `value` (with `{variables}` made fields), else a field of its own.
/// `None` when the input is optional, has no value and no default (it is left out).
fn input_template(
    form: &mut Form,
    label: &str,
    input: &Map<String, Value>,
    on_command_line: bool,
) -> R<Option<String>> {
    if let Some(value) = input.get("value").and_then(Value::as_str) {
        let vars = input.get("variables").and_then(Value::as_object);
        return substitute(form, value, vars, on_command_line, false).map(Some);
    }
    if on_command_line && flag(input, "isSecret") {
        return Err(format!(
            "the input `{}` is a secret passed on the command line; Plugboard passes secrets only through \
             environment variables or headers",
            shown(label)
        ));
    }
    if !flag(input, "isRequired") && text(input, "default").is_none() {
        form.left_out.push(format!("`{}`", shown(label)));
        return Ok(None);
    }
    let key = form.field(label, input, false);
    Ok(Some(format!("${{field.{key}}}")))
}

/// Replaces `{name}` of `vars` in `value` with field placeholders; the rest is literal. `url` applies the URL rules.
fn substitute(
    form: &mut Form,
    value: &str,
    vars: Option<&Map<String, Value>>,
    on_command_line: bool,
    url: bool,
) -> R<String> {
    // Literal runs are escaped whole, so a `$` in one piece and a `{` in the next cannot form a placeholder.
    let mut out = String::new();
    let mut run = String::new();
    let mut rest = value;
    while let Some(open) = rest.find('{') {
        let (before, after) = rest.split_at(open);
        run.push_str(before);
        let Some(close) = after.find('}') else {
            run.push_str(after);
            rest = "";
            break;
        };
        let name = after.get(1..close).unwrap_or_default();
        match vars.and_then(|v| v.get(name)).and_then(Value::as_object) {
            Some(var) => {
                if on_command_line && flag(var, "isSecret") {
                    return Err(format!(
                        "the variable `{}` is a secret passed on the command line; Plugboard passes secrets only \
                         through environment variables or headers",
                        shown(name)
                    ));
                }
                if run.ends_with('$') {
                    return Err(format!(
                        "a `$` directly before the variable `{}` cannot be expressed in a manifest template",
                        shown(name)
                    ));
                }
                let at_start = url && out.is_empty() && run.is_empty();
                out.push_str(&literal(&std::mem::take(&mut run)));
                let key = form.field(name, var, at_start);
                if url && !at_start {
                    out.push_str(&format!("${{field.{key}|url}}"));
                } else {
                    out.push_str(&format!("${{field.{key}}}"));
                }
            }
            None => run.push_str(after.get(..=close).unwrap_or_default()),
        }
        rest = after.get(close + 1..).unwrap_or_default();
    }
    run.push_str(rest);
    out.push_str(&literal(&run));
    Ok(out)
}

/// A version written as an exact version (no range, no tag such as `latest`).
fn exact_version(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 128
        && v.starts_with(|c: char| c.is_ascii_digit())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_'))
        && !v.split('.').any(|p| p == "x" || p == "X")
}

/// Command-line arguments (`runtimeArguments` / `packageArguments`) as templates.
fn arguments(form: &mut Form, args: &[Value], out: &mut Vec<String>) -> R<()> {
    for (i, a) in args.iter().enumerate() {
        let Some(a) = a.as_object() else {
            return Err(format!("argument {} is not an object", i + 1));
        };
        match text(a, "type") {
            Some("positional") => {
                let label = text(a, "valueHint")
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("argument_{}", i + 1));
                if let Some(t) = input_template(form, &label, a, true)? {
                    out.push(t);
                }
            }
            Some("named") => {
                let Some(name) = text(a, "name") else {
                    return Err(format!("named argument {} has no name", i + 1));
                };
                let has_value = a.contains_key("value")
                    || flag(a, "isRequired")
                    || text(a, "default").is_some();
                if !has_value {
                    form.left_out.push(format!("`{}`", shown(name)));
                    continue;
                }
                if let Some(t) = input_template(form, name, a, true)? {
                    // `--flag=value` forms stay one argument; otherwise the flag, then its value.
                    if name.ends_with('=') {
                        out.push(format!("{}{t}", literal(name)));
                    } else {
                        out.push(literal(name));
                        out.push(t);
                    }
                }
            }
            other => {
                return Err(format!(
                    "argument {} has an unknown type `{}` (expected positional or named)",
                    i + 1,
                    shown(other.unwrap_or(""))
                ))
            }
        }
    }
    Ok(())
}

/// `environmentVariables` (or `headers`) → a name → template map.
fn key_values(
    form: &mut Form,
    items: &[Value],
    what: &str,
    valid: impl Fn(&str) -> bool,
) -> R<Map<String, Value>> {
    let mut out = Map::new();
    for item in items {
        let Some(item) = item.as_object() else {
            return Err(format!("a {what} entry is not an object"));
        };
        let Some(name) = text(item, "name") else {
            return Err(format!("a {what} has no name"));
        };
        if !valid(name) {
            return Err(format!(
                "the {what} name `{}` cannot be expressed in a manifest",
                shown(name)
            ));
        }
        // An environment variable or header always becomes a field (optional when the entry says so): leaving it
        // out would lose it, and an empty value is how most servers read "not set".
        let t = match item.get("value").and_then(Value::as_str) {
            Some(value) => {
                let vars = item.get("variables").and_then(Value::as_object);
                substitute(form, value, vars, false, false)?
            }
            None => format!("${{field.{}}}", form.field(name, item, false)),
        };
        out.insert(name.to_owned(), json!(t));
    }
    Ok(out)
}

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

fn header_ok(name: &str) -> bool {
    is_header_name(name) && !FORBIDDEN_HEADERS.contains(&name.to_ascii_lowercase().as_str())
}

fn env_ok(name: &str) -> bool {
    is_identifier(name, 128)
}

/// Older schema versions (2025-07-09 and the 2025-05 seed) wrote snake_case keys, `transport_type` on remotes,
/// `registry_name` + `name` on packages and `version_detail.version`; they are read as the camelCase form.
fn normalize(v: &Value, in_package: bool, depth: usize) -> Value {
    const RENAMES: &[(&str, &str)] = &[
        ("registry_type", "registryType"),
        ("registry_name", "registryType"),
        ("registry_base_url", "registryBaseUrl"),
        ("runtime_hint", "runtimeHint"),
        ("runtime_arguments", "runtimeArguments"),
        ("package_arguments", "packageArguments"),
        ("environment_variables", "environmentVariables"),
        ("is_required", "isRequired"),
        ("is_secret", "isSecret"),
        ("value_hint", "valueHint"),
        ("is_repeated", "isRepeated"),
        ("website_url", "websiteUrl"),
        ("file_sha256", "fileSha256"),
        ("transport_type", "type"),
    ];
    if depth > 32 {
        return Value::Null;
    }
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, child) in m {
                let key = RENAMES
                    .iter()
                    .find(|(old, _)| old == k)
                    .map_or(k.as_str(), |(_, new)| new);
                let child = normalize(child, k == "packages", depth + 1);
                // Only fill a key the entry does not already have in its current spelling.
                if !out.contains_key(key) || !m.contains_key(key) || key == k {
                    out.insert(key.to_owned(), child);
                }
            }
            if in_package && !out.contains_key("identifier") {
                if let Some(n) = out.remove("name") {
                    out.insert("identifier".to_owned(), n);
                }
            }
            if !out.contains_key("version") {
                if let Some(v) = out
                    .get("version_detail")
                    .and_then(|d| d.get("version"))
                    .cloned()
                {
                    out.insert("version".to_owned(), v);
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| normalize(i, in_package, depth + 1))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn convert_server(server: &Map<String, Value>) -> R<Converted> {
    let normalized = normalize(&Value::Object(server.clone()), false, 0);
    let Value::Object(server) = &normalized else {
        return Err("the entry is not an object".to_owned());
    };
    let name = text(server, "name").ok_or("the entry has no name")?;
    let id = registry_id(name).ok_or_else(|| {
        "the name cannot become a manifest id (expected namespace/server with letters or digits)".to_owned()
    })?;
    let version = text(server, "version").unwrap_or("unknown");
    let mut form = Form::default();
    let mut mcp = Map::new();
    let mut verify = None;
    let runs;

    let remote = ["streamable-http", "sse"].iter().find_map(|kind| {
        list(server, "remotes")
            .iter()
            .filter_map(Value::as_object)
            .find(|r| text(r, "type") == Some(kind))
            .map(|r| (*kind, r))
    });
    if let Some((kind, remote)) = remote {
        let url = text(remote, "url").ok_or("the remote has no url")?;
        let vars = remote.get("variables").and_then(Value::as_object);
        let endpoint = substitute(&mut form, url, vars, false, true)?;
        let headers = key_values(&mut form, list(remote, "headers"), "header", header_ok)?;
        mcp.insert("transport".into(), json!(kind));
        mcp.insert("endpoint".into(), json!(endpoint));
        if !headers.is_empty() {
            mcp.insert("headers".into(), Value::Object(headers));
        }
        runs = format!("the hosted server at `{}` ({kind})", url);
    } else {
        let mut reasons = Vec::new();
        let mut chosen = None;
        for p in list(server, "packages").iter().filter_map(Value::as_object) {
            let kind = text(p, "registryType").map(|k| if k == "docker" { "oci" } else { k });
            let transport = p
                .get("transport")
                .and_then(Value::as_object)
                .and_then(|t| text(t, "type"))
                .unwrap_or("stdio");
            match kind {
                Some("npm" | "pypi" | "oci") if transport == "stdio" => {
                    chosen = Some(p);
                    break;
                }
                Some("npm" | "pypi" | "oci") => reasons.push(format!(
                    "its {} package uses transport `{}` (a server that must be started and then reached over HTTP cannot be expressed)",
                    kind.unwrap_or_default(),
                    shown(transport)
                )),
                Some(other) => reasons.push(format!(
                    "its package type `{}` is not supported (npm, pypi and oci are)",
                    shown(other)
                )),
                None => reasons.push("a package has no registryType".to_owned()),
            }
        }
        let Some(p) = chosen else {
            return Err(if reasons.is_empty() {
                "no remote and no npm, pypi or oci package".to_owned()
            } else {
                format!("no remote, and {}", reasons.join("; "))
            });
        };
        let kind = match text(p, "registryType").unwrap_or_default() {
            "docker" => "oci",
            k => k,
        };
        let identifier = text(p, "identifier").ok_or("the package has no identifier")?;
        if identifier.starts_with('-') || identifier.chars().any(char::is_whitespace) {
            return Err(format!(
                "the package identifier `{}` is not a package name",
                shown(identifier)
            ));
        }
        let pkg_version = text(p, "version");
        let env = key_values(
            &mut form,
            list(p, "environmentVariables"),
            "environment variable",
            env_ok,
        )?;
        let mut runtime = Vec::new();
        arguments(&mut form, list(p, "runtimeArguments"), &mut runtime)?;
        let mut package = Vec::new();
        arguments(&mut form, list(p, "packageArguments"), &mut package)?;
        let (command, mut args) = match kind {
            "npm" | "pypi" => {
                let v = pkg_version.ok_or("the package has no version to pin")?;
                if !exact_version(v) {
                    return Err(format!(
                        "the package version `{}` is not an exact version",
                        shown(v)
                    ));
                }
                if kind == "npm" {
                    let mut a = runtime;
                    a.push("-y".to_owned());
                    a.push(literal(&format!("{identifier}@{v}")));
                    ("npx", a)
                } else {
                    let mut a = runtime;
                    a.push(literal(&format!("{identifier}@{v}")));
                    ("uvx", a)
                }
            }
            _ => {
                let last = identifier.rsplit('/').next().unwrap_or_default();
                let image = if identifier.contains('@') || last.contains(':') {
                    identifier.to_owned()
                } else if let Some(v) = pkg_version.filter(|v| *v != "latest") {
                    format!("{identifier}:{v}")
                } else {
                    return Err(format!(
                        "the image `{}` has no tag or digest to pin",
                        shown(identifier)
                    ));
                };
                if image.ends_with(":latest") {
                    return Err(format!(
                        "the image `{}` is pinned to `latest`, which is not a version",
                        shown(&image)
                    ));
                }
                let mut a: Vec<String> = ["run", "-i", "--rm"].map(str::to_owned).to_vec();
                for name in env.keys() {
                    a.push("-e".to_owned());
                    a.push(name.clone());
                }
                a.extend(runtime);
                a.push(literal(&image));
                ("docker", a)
            }
        };
        args.extend(package);
        mcp.insert("transport".into(), json!("stdio"));
        mcp.insert("command".into(), json!(command));
        mcp.insert("args".into(), json!(args));
        if !env.is_empty() {
            mcp.insert("env".into(), Value::Object(env));
        }
        runs = format!(
            "the {kind} package `{identifier}`{} started with `{command}`",
            pkg_version.map(|v| format!(" {v}")).unwrap_or_default()
        );
    }

    let transport = mcp.get("transport").and_then(Value::as_str).unwrap_or("");
    let auth_mode = if form.secret {
        if transport == "streamable-http" {
            verify = Some(json!({"mcp_method": "tools/list"}));
        }
        "pat"
    } else if transport == "streamable-http" && form.fields.is_empty() {
        mcp.insert(
            "headers".into(),
            json!({"Authorization": "Bearer ${oauth.access_token}"}),
        );
        "mcp_oauth"
    } else {
        "none"
    };

    let display = text(server, "title").map(str::to_owned).unwrap_or_else(|| {
        name.split_once('/')
            .map(|(_, s)| s)
            .unwrap_or(name)
            .to_owned()
    });
    let mut notes = format!(
        "Imported from the MCP Registry entry `{name}` version {version}: {runs}. Review it before you publish it: \
         the registry does not say how the server checks credentials.\n"
    );
    if let Some(w) = text(server, "websiteUrl") {
        notes.push_str(&format!("\nWebsite: <{w}>\n"));
    }
    if let Some(r) = server
        .get("repository")
        .and_then(Value::as_object)
        .and_then(|r| text(r, "url"))
    {
        notes.push_str(&format!("\nSource: <{r}>\n"));
    }
    if !form.inputs.is_empty() {
        notes.push_str("\nWhat the entry asks for:\n\n");
        notes.push_str(&form.inputs.join("\n"));
        notes.push('\n');
    }
    if !form.left_out.is_empty() {
        notes.push_str(&format!(
            "\nOptional command-line arguments left out (add them to `mcp.args` by hand if needed): {}.\n",
            form.left_out.join(", ")
        ));
    }
    if auth_mode == "mcp_oauth" {
        notes.push_str(
            "\nThe entry asks for no key, so this manifest assumes the server signs people in with OAuth \
             (`mcp_oauth`). If the server is open to everyone, change `auth_mode` to `none` and remove the \
             `Authorization` header.\n",
        );
    }

    let mut m = Map::new();
    m.insert("id".into(), json!(id));
    m.insert("name".into(), json!(display));
    if let Some(d) = text(server, "description") {
        m.insert("description".into(), json!(d));
    }
    m.insert("auth_mode".into(), json!(auth_mode));
    if !form.fields.is_empty() {
        m.insert("fields".into(), Value::Array(form.fields));
    }
    m.insert("mcp".into(), Value::Object(mcp));
    if let Some(v) = verify {
        m.insert("verify".into(), v);
    }
    m.insert("docs".into(), json!({"setup_md": notes}));

    let yaml = serde_yaml_ng::to_string(&Value::Object(m))
        .map_err(|e| format!("the manifest could not be written as YAML: {e}"))?;
    let file_name = format!("{id}.yaml");
    // The catalog's own rules decide: what does not load is not written.
    parse_manifest(&file_name, &yaml).map_err(|e| {
        format!(
            "the converted manifest does not pass the catalog rules: {}",
            e.error
        )
    })?;
    Ok(Converted {
        id,
        file_name,
        yaml,
    })
}
