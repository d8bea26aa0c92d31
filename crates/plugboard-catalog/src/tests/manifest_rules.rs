use super::*;
use crate::*;

// --- the spec example and raw ---------------------------------------------------------------

#[test]
fn the_spec_example_loads_unchanged() {
    let e = load(SPEC_EXAMPLE);
    let m = e.manifest().unwrap();
    assert_eq!(m.id, "postgres");
    assert_eq!(m.name, "PostgreSQL");
    assert_eq!(m.category, "databases");
    assert_eq!(
        m.brand,
        Brand {
            logo: "postgres".into(),
            color: "#336791".into()
        }
    );
    assert_eq!(m.auth_mode, AuthMode::ConnString);
    assert_eq!(m.fields.len(), 5);
    let port = m.field("port").unwrap();
    assert_eq!(port.field_type, FieldType::Number);
    assert_eq!(port.default.as_deref(), Some("5432"));
    assert!(m.field("password").unwrap().secret);
    assert!(!m.field("host").unwrap().secret);
    assert_eq!(m.secret_keys().collect::<Vec<_>>(), ["password"]);
    assert_eq!(m.mcp.transport, Transport::Stdio);
    assert_eq!(m.mcp.command.as_ref().unwrap().source(), "npx");
    assert_eq!(m.mcp.args.len(), 3);
    match &m.verify {
        Some(Verify::Sql(s)) => {
            assert_eq!(s.driver, SqlDriver::Postgres);
            assert_eq!(s.dsn.source(), "${derived.dsn}");
        }
        other => panic!("{other:?}"),
    }
    assert!(m.oauth.is_none() && m.docs.is_none());
    assert_eq!(e.source, "t.yaml");
}

#[test]
fn the_spec_example_renders_a_dsn_with_an_awkward_password() {
    let m = manifest(SPEC_EXAMPLE);
    let submitted = serde_json::json!({
        "host": "db.example.com", "database": "app", "user": "me@corp", "password": "p@ss/w:rd"
    });
    let fields = m
        .validate_submission(submitted.as_object().unwrap())
        .unwrap();
    assert_eq!(fields["port"], "5432");
    let derived = m.resolve_derived(&fields, "https://pb.example").unwrap();
    assert_eq!(
        derived["dsn"],
        "postgres://me%40corp:p%40ss%2Fw%3Ard@db.example.com:5432/app"
    );
}

#[test]
fn raw_is_the_authors_document_verbatim_in_key_order() {
    let e = load(SPEC_EXAMPLE);
    let raw = e.raw();
    let keys: Vec<&String> = raw.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "id",
            "name",
            "description",
            "category",
            "brand",
            "auth_mode",
            "fields",
            "derived",
            "mcp",
            "verify"
        ]
    );
    // Not re-generated: no resolved defaults (`secret`) appear, and the values are as written.
    assert_eq!(
        e.raw()["fields"][4],
        serde_json::json!({"key": "password", "label": "Password", "type": "password", "required": true})
    );
    assert_eq!(e.raw()["brand"]["color"], "#336791");
    assert_eq!(
        serde_json::to_string(&e.raw()["fields"][1]).unwrap(),
        r#"{"key":"port","label":"Port","type":"number","required":true,"default":"5432"}"#
    );
}

#[test]
fn a_json_manifest_loads_too() {
    let json = r#"{"id":"j","name":"J","auth_mode":"none",
        "mcp":{"transport":"stdio","command":"uvx","args":["mcp-server-time"]},
        "oauth":null,"verify":null}"#;
    let e = parse_manifest("j.json", json).unwrap();
    assert_eq!(e.id(), "j");
    assert_eq!(e.manifest().unwrap().id, "j");
    assert_eq!(e.raw()["oauth"], serde_json::Value::Null);
}

#[test]
fn a_document_that_is_not_a_mapping_is_rejected() {
    for text in ["", "- a\n- b\n", "just text", "42"] {
        let e = parse_manifest("t.yaml", text).unwrap_err();
        assert!(e.error.contains("expected a mapping"), "{text:?}: {e}");
    }
}

// --- strictness -------------------------------------------------------------------------------

#[test]
fn an_unknown_top_level_key_is_rejected_naming_the_key_and_the_file() {
    let e = error(&format!("{PAT_HTTP}colour: red\n"));
    assert!(e.starts_with("t.yaml: "), "{e}");
    assert!(e.contains("unknown key `colour`"), "{e}");
}

#[test]
fn an_unknown_key_in_fields_is_rejected_naming_the_key() {
    rejects(
        &PAT_HTTP.replace("required: true}", "required: true, secert: true}"),
        &["fields[0].secert", "unknown key `secert`"],
    );
}

#[test]
fn an_unknown_key_anywhere_is_rejected_naming_the_path() {
    let cases: &[(&str, &str)] = &[
        ("brand: {logo: x, colour: \"#000000\"}\n", "brand.colour"),
        ("docs: {setup_md: hi, intro: x}\n", "docs.intro"),
        (
            "verify: {http: {url: \"https://x\", expect: 200}}\n",
            "verify.http.expect",
        ),
        ("verify: {tcp: {host: x}}\n", "verify.tcp"),
    ];
    for (extra, path) in cases {
        rejects(&format!("{PAT_HTTP}{extra}"), &[path, "unknown key"]);
    }
    rejects(
        &PAT_HTTP.replace(
            "transport: streamable-http",
            "transport: streamable-http\n  timeout: 5",
        ),
        &["mcp.timeout", "unknown key `timeout`"],
    );
    rejects(
        &PAT_HTTP.replace("required: true}", "required: true, validation: {regex: x}}"),
        &["fields[0].validation.regex"],
    );
    rejects(
        &SPEC_EXAMPLE.replace("driver: postgres,", "driver: postgres, ssl: true,"),
        &["verify.sql.ssl"],
    );
    rejects(
        &byo_oauth().replace("pkce: true", "pkce: true\n  audience: x"),
        &["oauth.audience"],
    );
}

#[test]
fn a_duplicate_yaml_key_is_rejected() {
    rejects(
        &format!("{PAT_HTTP}name: Again\n"),
        &["duplicate key `name`"],
    );
    rejects(
        &PAT_HTTP.replace("type: password,", "type: password, type: text,"),
        &["duplicate key `type`"],
    );
}

#[test]
fn a_wrong_type_is_rejected_naming_the_key() {
    rejects(
        &PAT_HTTP.replace("name: Demo", "name: 12"),
        &["name: expected a string"],
    );
    rejects(
        &PAT_HTTP.replace("required: true", "required: \"yes\""),
        &["fields[0].required: expected a bool"],
    );
    rejects(
        &PAT_HTTP.replace(
            "fields:\n  - {key: token, label: Token, type: password, required: true}",
            "fields: {token: x}",
        ),
        &["fields: expected a list"],
    );
    rejects(
        &SPEC_EXAMPLE.replace(
            r#"args: ["-y", "@modelcontextprotocol/server-postgres", "${derived.dsn}"]"#,
            "args: [x, 5]",
        ),
        &["mcp.args[1]: expected a string"],
    );
    rejects(
        &PAT_HTTP.replace("headers: {Authorization", "headers: {X-N: 1, Authorization"),
        &["mcp.headers.X-N: expected a string"],
    );
    rejects(
        &format!("{PAT_HTTP}docs: hello\n"),
        &["docs: expected a mapping"],
    );
}

#[test]
fn null_values_count_as_absent() {
    let m = manifest(&format!(
        "{PAT_HTTP}description:\ncategory: ~\nverify: null\noauth:\ndocs:\n"
    ));
    assert_eq!(m.description, "");
    assert!(m.verify.is_none() && m.oauth.is_none() && m.docs.is_none());
}

// --- top level --------------------------------------------------------------------------------

#[test]
fn an_id_must_be_lowercase_letters_digits_dashes_and_underscores() {
    for good in ["a", "github", "brave-search", "x_1"] {
        manifest(&PAT_HTTP.replace("id: demo", &format!("id: {good}")));
    }
    for bad in ["GitHub", "1x", "-x", "a b", "\"\"", "a.b", &"a".repeat(65)] {
        rejects(
            &PAT_HTTP.replace("id: demo", &format!("id: {bad}")),
            &["id: "],
        );
    }
    rejects(&PAT_HTTP.replace("id: demo\n", ""), &["id: is required"]);
}

#[test]
fn a_name_is_required_and_non_empty() {
    rejects(
        &PAT_HTTP.replace("name: Demo\n", ""),
        &["name: is required"],
    );
    rejects(
        &PAT_HTTP.replace("name: Demo", "name: \"  \""),
        &["name: must not be empty"],
    );
}

#[test]
fn brand_logo_is_an_icon_key_or_an_https_url_and_color_is_hex() {
    for good in [
        "{logo: github, color: \"#181717\"}",
        "{logo: GitHub, color: \"#181717\"}",
        "{logo: simple-icons/github}",
        "{logo: \"https://cdn.example.com/logo.svg\", color: \"\"}",
        "{logo: \"\"}",
        "{}",
    ] {
        manifest(&format!("{PAT_HTTP}brand: {good}\n"));
    }
    for (bad, path) in [
        ("{logo: \"http://cdn.example.com/x.svg\"}", "brand.logo"),
        ("{logo: \"javascript:alert(1)\"}", "brand.logo"),
        ("{logo: \"data:image/svg+xml,x\"}", "brand.logo"),
        ("{logo: \"/etc/passwd\"}", "brand.logo"),
        ("{logo: \"Git Hub\"}", "brand.logo"),
        ("{logo: \"https://user:pw@x.example/x.png\"}", "brand.logo"),
        ("{color: red}", "brand.color"),
        ("{color: \"#12345\"}", "brand.color"),
        ("{color: \"#12345g\"}", "brand.color"),
    ] {
        rejects(&format!("{PAT_HTTP}brand: {bad}\n"), &[path]);
    }
}

#[test]
fn an_unquoted_colour_is_rejected_with_a_hint_to_quote_it() {
    rejects(
        &format!("{PAT_HTTP}brand:\n  logo: x\n  color: #336791\n"),
        &["brand.color", "quote"],
    );
}

#[test]
fn auth_mode_is_required_and_one_of_five() {
    rejects(
        &PAT_HTTP.replace("auth_mode: pat\n", ""),
        &["auth_mode: is required"],
    );
    rejects(
        &PAT_HTTP.replace("auth_mode: pat", "auth_mode: oauth"),
        &["auth_mode: unknown auth mode `oauth`"],
    );
    for mode in AuthMode::ALL {
        assert_eq!(AuthMode::parse(mode.as_str()), Some(mode));
        assert_eq!(
            serde_json::to_value(mode).unwrap(),
            serde_json::json!(mode.as_str())
        );
    }
}

#[test]
fn mcp_is_required() {
    let text = PAT_HTTP.split("mcp:").next().unwrap().to_owned();
    rejects(&text, &["mcp: is required"]);
}

// --- fields -----------------------------------------------------------------------------------

const FIELD: &str = "{key: token, label: Token, type: password, required: true}";

fn with_fields(extra: &str) -> String {
    PAT_HTTP.replace(FIELD, &format!("{FIELD}\n{extra}"))
}

#[test]
fn a_field_key_is_required_unique_and_an_identifier() {
    rejects(
        &with_fields("  - {label: X, type: text}"),
        &["fields[1].key: is required"],
    );
    rejects(
        &with_fields("  - {key: token, type: text}"),
        &["fields[1].key", "duplicate field key `token`"],
    );
    for bad in ["-a", "1a", "a.b", "\"\""] {
        rejects(
            &with_fields(&format!("  - {{key: {bad}, type: text}}")),
            &["fields[1].key", "not a valid field key"],
        );
    }
    let m = manifest(&with_fields("  - {key: _org_2, type: text}"));
    assert_eq!(m.field("_org_2").unwrap().label, "_org_2");
    // Hyphenated keys (common in other platforms' catalogs) load and can be referenced.
    let m = manifest(&with_fields("  - {key: api-key, type: text}"));
    assert!(m.field("api-key").is_some());
}

#[test]
fn a_field_type_is_required_and_one_of_five() {
    rejects(
        &with_fields("  - {key: a}"),
        &["fields[1].type: is required"],
    );
    rejects(
        &with_fields("  - {key: a, type: passwd}"),
        &["fields[1].type", "unknown field type `passwd`"],
    );
    let m = manifest(&with_fields(
        "  - {key: a, type: text}\n  - {key: b, type: number}\n  - {key: c, type: bool}\n  - {key: d, type: select, choices: [x]}",
    ));
    let types: Vec<&str> = m.fields.iter().map(|f| f.field_type.as_str()).collect();
    assert_eq!(types, ["password", "text", "number", "bool", "select"]);
}

#[test]
fn a_select_field_needs_non_empty_unique_choices_and_others_take_none() {
    rejects(
        &with_fields("  - {key: a, type: select}"),
        &["fields[1].choices", "non-empty list of choices"],
    );
    rejects(
        &with_fields("  - {key: a, type: select, choices: []}"),
        &["fields[1].choices"],
    );
    rejects(
        &with_fields("  - {key: a, type: select, choices: [x, x]}"),
        &["fields[1].choices[1]", "duplicate choice"],
    );
    rejects(
        &with_fields("  - {key: a, type: text, choices: [x]}"),
        &["fields[1].choices", "only allowed on select"],
    );
    manifest(&with_fields("  - {key: a, type: text, choices: []}"));
}

#[test]
fn a_default_must_satisfy_the_fields_own_rules() {
    for (field, needle) in [
        ("{key: a, type: number, default: abc}", "must be a number"),
        ("{key: a, type: number, default: .inf}", "fields[1].default"),
        (
            "{key: a, type: bool, default: \"yes\"}",
            "must be `true` or `false`",
        ),
        (
            "{key: a, type: select, choices: [eu, us], default: asia}",
            "must be one of: eu, us",
        ),
        (
            "{key: a, type: text, default: abc, validation: {pattern: \"[0-9]+\"}}",
            "does not match the pattern",
        ),
        (
            "{key: a, type: number, default: \"70000\", validation: {max: 65535}}",
            "must be at most 65535",
        ),
        (
            "{key: a, type: text, default: ab, validation: {min_length: 3}}",
            "at least 3 characters",
        ),
        (
            "{key: a, type: text, default: [x]}",
            "fields[1].default: expected a string",
        ),
    ] {
        rejects(
            &with_fields(&format!("  - {field}")),
            &["fields[1].default", needle],
        );
    }
    let m = manifest(&with_fields(
        "  - {key: p, type: number, default: 5432}\n  - {key: b, type: bool, default: true}\n  - {key: s, type: select, choices: [eu, us], default: us}",
    ));
    assert_eq!(m.field("p").unwrap().default.as_deref(), Some("5432"));
    assert_eq!(m.field("b").unwrap().default.as_deref(), Some("true"));
    assert_eq!(m.field("s").unwrap().default.as_deref(), Some("us"));
}

#[test]
fn a_validation_pattern_must_compile_and_anchors_mean_what_they_say() {
    rejects(
        &with_fields("  - {key: a, type: text, validation: {pattern: \"([a-z\"}}"),
        &["fields[1].validation.pattern", "does not compile"],
    );
    rejects(
        &with_fields(&format!(
            "  - {{key: a, type: text, validation: {{pattern: \"{}\"}}}}",
            "a".repeat(2000)
        )),
        &["fields[1].validation.pattern", "too long"],
    );
    rejects(
        &with_fields("  - {key: a, type: text, validation: {pattern: \"(\\\\w{50}){50}\"}}"),
        &["fields[1].validation.pattern", "too complex"],
    );
    let m = manifest(&with_fields(
        "  - {key: a, type: text, validation: {pattern: \"^(ghp_[a-z]+|x)$\"}}",
    ));
    let p = m
        .field("a")
        .unwrap()
        .validation
        .as_ref()
        .unwrap()
        .pattern
        .as_ref()
        .unwrap();
    assert_eq!(p.as_str(), "^(ghp_[a-z]+|x)$");
    assert!(p.is_match("ghp_abc"));
    assert!(p.is_match("x"));
    assert!(!p.is_match("ghp_abc!"));
    assert!(!p.is_match("xx"));
    assert!(!p.is_match("a ghp_abc"));
}

#[test]
fn validation_bounds_must_be_ordered_and_fit_the_field_type() {
    rejects(
        &with_fields("  - {key: a, type: number, validation: {min: 5, max: 1}}"),
        &["fields[1].validation", "min is greater than max"],
    );
    rejects(
        &with_fields("  - {key: a, type: text, validation: {min_length: 5, max_length: 1}}"),
        &[
            "fields[1].validation",
            "min_length is greater than max_length",
        ],
    );
    rejects(
        &with_fields("  - {key: a, type: text, validation: {min: 1}}"),
        &["fields[1].validation.min", "only applies to number fields"],
    );
    rejects(
        &with_fields("  - {key: a, type: bool, validation: {min_length: 1}}"),
        &["fields[1].validation", "not supported on bool fields"],
    );
    rejects(
        &with_fields("  - {key: a, type: select, choices: [x], validation: {pattern: x}}"),
        &["fields[1].validation", "not supported on select fields"],
    );
    rejects(
        &with_fields("  - {key: a, type: text, validation: {min_length: -1}}"),
        &[
            "fields[1].validation.min_length",
            "non-negative whole number",
        ],
    );
    rejects(
        &with_fields("  - {key: a, type: text, validation: {max_length: 2.5}}"),
        &["fields[1].validation.max_length"],
    );
    rejects(
        &with_fields("  - {key: a, type: number, validation: {min: \"1\"}}"),
        &["fields[1].validation.min", "expected a number"],
    );
    let m = manifest(&with_fields(
        "  - {key: a, type: number, validation: {min: 1, max: 65535, pattern: \"[0-9]+\"}}",
    ));
    let v = m.field("a").unwrap().validation.clone().unwrap();
    assert_eq!((v.min, v.max), (Some(1.0), Some(65535.0)));
}

#[test]
fn secret_defaults_to_true_for_passwords_and_false_otherwise_unless_written() {
    let m = manifest(&with_fields(
        "  - {key: a, type: text}\n  - {key: b, type: text, secret: true}\n  - {key: c, type: password, secret: false}",
    ));
    let secret: Vec<(&str, bool)> = m
        .fields
        .iter()
        .map(|f| (f.key.as_str(), f.secret))
        .collect();
    assert_eq!(
        secret,
        [("token", true), ("a", false), ("b", true), ("c", false)]
    );
    assert_eq!(m.secret_keys().collect::<Vec<_>>(), ["token", "b"]);
}

// --- per auth mode ----------------------------------------------------------------------------

pub(crate) fn byo_oauth() -> String {
    r#"id: gh-app
name: GitHub (own app)
auth_mode: byo_oauth
fields:
  - {key: client_id, label: Client ID, type: text, required: true}
  - {key: client_secret, label: Client secret, type: password, required: true}
mcp:
  transport: streamable-http
  endpoint: https://api.githubcopilot.com/mcp/
  headers: {Authorization: "Bearer ${oauth.access_token}"}
oauth:
  authorization_url: https://github.com/login/oauth/authorize
  token_url: https://github.com/login/oauth/access_token
  scopes: [repo, read:org]
  pkce: true
"#
    .to_owned()
}

const MCP_OAUTH: &str = r#"id: notion-hosted
name: Notion
auth_mode: mcp_oauth
mcp:
  transport: streamable-http
  endpoint: https://mcp.notion.com/mcp
  headers: {Authorization: "Bearer ${oauth.access_token}"}
"#;

const NONE: &str = r#"id: time
name: Time
auth_mode: none
mcp: {transport: stdio, command: uvx, args: [mcp-server-time]}
"#;

#[test]
fn a_pat_manifest_needs_a_password_or_secret_field() {
    rejects(
        &PAT_HTTP.replace("type: password", "type: text"),
        &["fields: auth_mode pat needs at least one password"],
    );
    let m = manifest(&PAT_HTTP.replace("type: password", "type: text, secret: true"));
    assert_eq!(m.auth_mode, AuthMode::Pat);
    let no_fields = PAT_HTTP
        .replace(&format!("fields:\n  - {FIELD}\n"), "")
        .replace("Bearer ${field.token}", "x");
    rejects(&no_fields, &["auth_mode pat needs at least one password"]);
}

#[test]
fn a_conn_string_manifest_needs_a_field() {
    rejects(
        "id: c\nname: C\nauth_mode: conn_string\nmcp: {transport: stdio, command: x}\n",
        &["fields: auth_mode conn_string needs at least one field"],
    );
}

#[test]
fn a_byo_oauth_manifest_needs_client_id_client_secret_and_an_oauth_block() {
    let m = manifest(&byo_oauth());
    let o = m.oauth.as_ref().unwrap();
    assert_eq!(o.scopes, ["repo", "read:org"]);
    assert!(o.pkce);
    assert_eq!(o.scope_separator, " ");
    assert_eq!(o.scope_string(), "repo read:org");
    assert_eq!(o.token_auth, TokenAuth::ClientSecretPost);
    assert!(o.authorize_params.is_empty() && o.token_params.is_empty());
    rejects(
        &byo_oauth().replace("key: client_secret", "key: secret"),
        &["fields: auth_mode byo_oauth needs a `client_secret` field"],
    );
    rejects(
        &byo_oauth().replace("key: client_id", "key: app_id"),
        &["needs a `client_id` field"],
    );
    let without_oauth = byo_oauth().split("oauth:\n").next().unwrap().to_owned();
    rejects(
        &without_oauth,
        &["oauth: is required for auth_mode byo_oauth"],
    );
}

#[test]
fn an_oauth_block_is_rejected_outside_byo_oauth() {
    let block = byo_oauth().split("oauth:\n").nth(1).unwrap().to_owned();
    rejects(
        &format!("{PAT_HTTP}oauth:\n{block}"),
        &["oauth: is only allowed for auth_mode byo_oauth"],
    );
}

#[test]
fn an_mcp_oauth_manifest_has_no_fields_and_needs_streamable_http() {
    let m = manifest(MCP_OAUTH);
    assert_eq!(m.auth_mode, AuthMode::McpOauth);
    assert!(m.fields.is_empty());
    rejects(
        &MCP_OAUTH.replace("mcp:\n", "fields:\n  - {key: a, type: text}\nmcp:\n"),
        &["fields: auth_mode mcp_oauth takes no fields"],
    );
    rejects(
        &MCP_OAUTH.replace("streamable-http", "sse"),
        &["mcp.transport", "needs transport streamable-http"],
    );
    rejects(
        "id: x\nname: X\nauth_mode: mcp_oauth\nmcp: {transport: stdio, command: x}\n",
        &["mcp_oauth needs transport streamable-http"],
    );
}

#[test]
fn a_none_manifest_loads_with_or_without_fields() {
    manifest(NONE);
    manifest(&NONE.replace("mcp:", "fields:\n  - {key: tz, type: text}\nmcp:"));
}

#[test]
fn verify_on_oauth_and_none_manifests_is_accepted_but_checked() {
    let m = manifest(&format!("{MCP_OAUTH}verify: {{mcp_method: tools/list}}\n"));
    assert!(m.auth_mode.skips_verify());
    assert_eq!(m.verify, Some(Verify::McpMethod("tools/list".into())));
    manifest(&format!(
        "{}verify: {{http: {{url: \"https://api.github.com/user\"}}}}\n",
        byo_oauth()
    ));
    rejects(
        &format!("{NONE}verify: {{http: {{url: \"https://x/${{field.nope}}\"}}}}\n"),
        &["verify.http.url", "unknown field `nope`"],
    );
    assert!(!AuthMode::Pat.skips_verify() && !AuthMode::ConnString.skips_verify());
}

// --- mcp --------------------------------------------------------------------------------------

#[test]
fn a_stdio_server_needs_a_literal_command_and_takes_no_endpoint_or_headers() {
    rejects(
        "id: x\nname: X\nauth_mode: none\nmcp: {transport: stdio, args: [a]}\n",
        &["mcp.command: is required for transport stdio"],
    );
    rejects(
        "id: x\nname: X\nauth_mode: none\nmcp: {transport: stdio, command: \"\"}\n",
        &["mcp.command: is required"],
    );
    rejects(
        &SPEC_EXAMPLE.replace("command: npx", "command: \"${field.host}\""),
        &["mcp.command", "no placeholders"],
    );
    rejects(
        &NONE.replace("command: uvx", "command: uvx, endpoint: \"https://x\""),
        &["mcp.endpoint: is not allowed for transport stdio"],
    );
    rejects(
        &NONE.replace("command: uvx", "command: uvx, headers: {A: b}"),
        &["mcp.headers: is not allowed for transport stdio"],
    );
    let m = manifest(&NONE.replace("command: uvx", "command: uvx, env: {TZ: UTC, A_1: x}"));
    assert_eq!(m.mcp.env.keys().collect::<Vec<_>>(), ["TZ", "A_1"]);
}

#[test]
fn an_http_server_needs_an_endpoint_and_takes_no_command_args_or_env() {
    rejects(
        &PAT_HTTP.replace("  endpoint: https://mcp.example.com/mcp\n", ""),
        &["mcp.endpoint: is required for transport streamable-http"],
    );
    let sse = PAT_HTTP.replace("streamable-http", "sse");
    assert_eq!(manifest(&sse).mcp.transport, Transport::Sse);
    for (extra, path) in [
        ("command: npx", "mcp.command"),
        ("args: [a]", "mcp.args"),
        ("env: {A: b}", "mcp.env"),
    ] {
        rejects(
            &PAT_HTTP.replace("  headers:", &format!("  {extra}\n  headers:")),
            &[path, "is not allowed for transport streamable-http"],
        );
    }
    // Empty lists and maps are as good as absent (generated JSON often has them).
    manifest(&PAT_HTTP.replace("  headers:", "  args: []\n  env: {}\n  headers:"));
}

#[test]
fn an_unknown_transport_is_rejected() {
    rejects(
        &PAT_HTTP.replace("streamable-http", "websocket"),
        &["mcp.transport", "unknown transport `websocket`"],
    );
    for t in Transport::ALL {
        assert_eq!(Transport::parse(t.as_str()), Some(t));
    }
}

#[test]
fn an_endpoint_with_a_literal_scheme_must_be_http_or_https() {
    rejects(
        &PAT_HTTP.replace("https://mcp.example.com/mcp", "ftp://mcp.example.com/mcp"),
        &["mcp.endpoint", "http:// or https://"],
    );
    rejects(
        &PAT_HTTP.replace("https://mcp.example.com/mcp", "mcp.example.com"),
        &["mcp.endpoint"],
    );
    manifest(
        &with_fields("  - {key: base, type: text}")
            .replace("https://mcp.example.com/mcp", "\"${field.base}/mcp\""),
    );
}

#[test]
fn env_and_header_names_must_be_valid_and_framing_headers_are_refused() {
    rejects(
        &NONE.replace("command: uvx", "command: uvx, env: {\"A-B\": x}"),
        &["mcp.env.A-B", "not a valid environment variable name"],
    );
    rejects(
        &PAT_HTTP.replace(
            "headers: {Authorization",
            "headers: {\"X Key\": x, Authorization",
        ),
        &["mcp.headers[\"X Key\"]", "not a valid HTTP header name"],
    );
    rejects(
        &PAT_HTTP.replace(
            "headers: {Authorization",
            "headers: {host: x, Authorization",
        ),
        &["mcp.headers.host", "may not be set"],
    );
}

// --- verify -----------------------------------------------------------------------------------

fn with_verify(verify: &str) -> String {
    format!("{PAT_HTTP}verify: {verify}\n")
}

#[test]
fn verify_needs_exactly_one_of_http_sql_and_mcp_method() {
    rejects(
        &with_verify("{}"),
        &["verify: needs one of http, sql, mcp_method"],
    );
    rejects(
        &with_verify("{mcp_method: tools/list, http: {url: \"https://x\"}}"),
        &["verify: needs exactly one", "http and mcp_method"],
    );
}

#[test]
fn an_http_verify_defaults_to_get_and_200() {
    let m = manifest(&with_verify(
        "{http: {url: \"https://api.example.com/me\", headers: {Authorization: \"Bearer ${field.token}\"}}}",
    ));
    let Some(Verify::Http(h)) = &m.verify else {
        panic!("{:?}", m.verify)
    };
    assert_eq!(h.method, "GET");
    assert_eq!(h.expect_status, [200]);
    assert!(h.body.is_none() && h.expect_json_field.is_none());
    assert_eq!(
        h.headers["Authorization"].field_refs().collect::<Vec<_>>(),
        ["token"]
    );
}

#[test]
fn an_http_verify_takes_a_method_body_status_list_and_json_field() {
    let m = manifest(&with_verify(
        "{http: {method: post, url: \"https://slack.com/api/auth.test\", body: \"{\\\"t\\\": \\\"${field.token}\\\"}\", expect_status: [200, 201], expect_json_field: ok}}",
    ));
    let Some(Verify::Http(h)) = &m.verify else {
        panic!()
    };
    assert_eq!(h.method, "POST");
    assert_eq!(h.expect_status, [200, 201]);
    assert_eq!(h.expect_json_field.as_deref(), Some("ok"));
    assert_eq!(h.body.as_ref().unwrap().field_refs().count(), 1);
    let m = manifest(&with_verify(
        "{http: {url: \"https://x\", expect_status: 204}}",
    ));
    let Some(Verify::Http(h)) = &m.verify else {
        panic!()
    };
    assert_eq!(h.expect_status, [204]);
}

#[test]
fn an_http_verify_rejects_bad_methods_statuses_and_urls() {
    for (v, needle) in [
        (
            "{http: {method: TRACE, url: \"https://x\"}}",
            "verify.http.method",
        ),
        (
            "{http: {url: \"https://x\", expect_status: 99}}",
            "verify.http.expect_status",
        ),
        (
            "{http: {url: \"https://x\", expect_status: 600}}",
            "verify.http.expect_status",
        ),
        (
            "{http: {url: \"https://x\", expect_status: [200, 70000]}}",
            "verify.http.expect_status[1]",
        ),
        (
            "{http: {url: \"https://x\", expect_status: []}}",
            "must not be an empty list",
        ),
        (
            "{http: {url: \"https://x\", expect_status: \"200\"}}",
            "verify.http.expect_status",
        ),
        (
            "{http: {url: \"https://x\", expect_json_field: \"\"}}",
            "verify.http.expect_json_field",
        ),
        ("{http: {method: GET}}", "verify.http.url: is required"),
        ("{http: {url: \"file:///etc/passwd\"}}", "verify.http.url"),
        (
            "{http: {url: \"https://x\", headers: {Content-Length: \"1\"}}}",
            "verify.http.headers.Content-Length",
        ),
    ] {
        rejects(&with_verify(v), &[needle]);
    }
}

#[test]
fn a_sql_verify_needs_a_known_driver_and_a_dsn() {
    let m = manifest(&SPEC_EXAMPLE.replace("driver: postgres", "driver: mysql"));
    assert!(matches!(&m.verify, Some(Verify::Sql(s)) if s.driver == SqlDriver::Mysql));
    rejects(
        &SPEC_EXAMPLE.replace("driver: postgres", "driver: sqlite"),
        &["verify.sql.driver", "unknown driver `sqlite`"],
    );
    rejects(
        &SPEC_EXAMPLE.replace(", dsn: \"${derived.dsn}\"", ""),
        &["verify.sql.dsn: is required"],
    );
}

#[test]
fn an_mcp_method_verify_loads_on_every_transport() {
    let m = manifest(&with_verify("{mcp_method: tools/list}"));
    assert_eq!(m.verify, Some(Verify::McpMethod("tools/list".into())));
    rejects(
        &with_verify("{mcp_method: \"tools list\"}"),
        &["verify.mcp_method", "MCP method name"],
    );
}

#[test]
fn a_stdio_manifest_written_for_another_platform_with_an_mcp_method_verify_loads() {
    // The shape other platforms' catalogs use: a stdio server started with npx, a hyphenated field key, and
    // `verify: {mcp_method: tools/list}`.
    let m = manifest(
        r#"id: acme-notes
name: Acme Notes
description: Notes for agents
category: productivity
auth_mode: pat
fields:
  - {key: api-key, label: API key, type: password, required: true}
mcp:
  transport: stdio
  command: npx
  args: ["-y", "@acme/notes-mcp@1.2.3"]
  env: {ACME_API_KEY: "${field.api-key}"}
verify:
  mcp_method: tools/list
"#,
    );
    assert_eq!(m.mcp.transport, Transport::Stdio);
    assert_eq!(m.verify, Some(Verify::McpMethod("tools/list".into())));
    // The spec example with its sql verify swapped for an mcp_method one loads too.
    let m = manifest(&SPEC_EXAMPLE.replace(
        "  sql: {driver: postgres, dsn: \"${derived.dsn}\"}",
        "  mcp_method: tools/list",
    ));
    assert_eq!(m.verify, Some(Verify::McpMethod("tools/list".into())));
    // Still exactly one verify kind, and still a method name.
    rejects(
        &SPEC_EXAMPLE.replace(
            "  sql: {driver: postgres, dsn: \"${derived.dsn}\"}",
            "  mcp_method: \"tools/list; rm\"",
        ),
        &["verify.mcp_method", "MCP method name"],
    );
}

// --- templates in manifests -------------------------------------------------------------------

#[test]
fn an_unknown_field_in_a_template_is_rejected_naming_where_it_sits() {
    rejects(
        &SPEC_EXAMPLE.replace(r#""${derived.dsn}"]"#, r#""${field.pasword}"]"#),
        &[
            "mcp.args[2]",
            "unknown field `pasword`",
            "declared fields: host, port",
        ],
    );
    rejects(
        &SPEC_EXAMPLE.replace("${field.host}", "${field.hostname}"),
        &["derived.dsn", "unknown field `hostname`"],
    );
}

#[test]
fn an_unknown_derived_key_in_a_template_is_rejected() {
    rejects(
        &SPEC_EXAMPLE.replace(r#"dsn: "${derived.dsn}"}"#, r#"dsn: "${derived.url}"}"#),
        &["verify.sql.dsn", "unknown derived key `url`"],
    );
}

#[test]
fn a_malformed_template_is_rejected_naming_where_it_sits() {
    rejects(
        &PAT_HTTP.replace("Bearer ${field.token}", "Bearer ${field.token"),
        &["mcp.headers.Authorization", "unclosed `${`"],
    );
    rejects(
        &PAT_HTTP.replace("Bearer ${field.token}", "Bearer ${secret.token}"),
        &[
            "mcp.headers.Authorization",
            "unknown placeholder `${secret.token}`",
        ],
    );
    rejects(
        &PAT_HTTP.replace("Bearer ${field.token}", "Bearer ${field.token|b64}"),
        &["mcp.headers.Authorization", "unknown filter `b64`"],
    );
}

#[test]
fn the_oauth_token_placeholder_is_only_allowed_inside_mcp_of_oauth_manifests() {
    manifest(&byo_oauth());
    manifest(MCP_OAUTH);
    rejects(
        &PAT_HTTP.replace("${field.token}", "${oauth.access_token}"),
        &["mcp.headers.Authorization", "byo_oauth or mcp_oauth"],
    );
    rejects(
        &format!("{}verify: {{http: {{url: \"https://x\", headers: {{A: \"${{oauth.access_token}}\"}}}}}}\n", byo_oauth()),
        &["verify.http.headers.A", "only be used inside `mcp`"],
    );
    rejects(
        &byo_oauth().replace("mcp:\n", "derived: {t: \"${oauth.access_token}\"}\nmcp:\n"),
        &["derived.t"],
    );
}

#[test]
fn instance_url_is_allowed_everywhere_and_oauth_urls_may_use_fields() {
    let m = manifest(&byo_oauth().replace(
        "https://github.com/login/oauth/authorize",
        "\"https://${field.client_id}.example.com/authorize?r=${instance_url|url}\"",
    ));
    let t = &m.oauth.as_ref().unwrap().authorization_url;
    assert_eq!(t.field_refs().collect::<Vec<_>>(), ["client_id"]);
}

#[test]
fn derived_values_may_reference_each_other_transitively() {
    let m = manifest(&SPEC_EXAMPLE.replace(
        "derived:\n",
        "derived:\n  url: \"${derived.dsn}?sslmode=require\"\n  hostport: \"${field.host}:${field.port}\"\n",
    ).replace("@${field.host}:${field.port}", "@${derived.hostport}"));
    let fields = m
        .validate_submission(
            serde_json::json!({"host": "h", "database": "d", "user": "u", "password": "p"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
    let d = m.resolve_derived(&fields, "https://pb").unwrap();
    assert_eq!(d["hostport"], "h:5432");
    assert_eq!(d["dsn"], "postgres://u:p@h:5432/d");
    assert_eq!(d["url"], "postgres://u:p@h:5432/d?sslmode=require");
}

#[test]
fn a_derived_cycle_is_rejected_naming_the_cycle() {
    rejects(
        &SPEC_EXAMPLE.replace(
            "derived:\n",
            "derived:\n  a: \"${derived.b}\"\n  b: \"x${derived.c}\"\n  c: \"${derived.a}\"\n",
        ),
        &["derived.a", "cycle: a -> b -> c -> a"],
    );
    rejects(
        &SPEC_EXAMPLE.replace("derived:\n", "derived:\n  self: \"${derived.self}\"\n"),
        &["cycle: self -> self"],
    );
}

#[test]
fn a_derived_key_must_be_an_identifier_and_a_string() {
    rejects(
        &SPEC_EXAMPLE.replace("derived:\n", "derived:\n  \"a.b\": x\n"),
        &["derived[\"a.b\"]", "not a valid derived key"],
    );
    rejects(
        &SPEC_EXAMPLE.replace("derived:\n", "derived:\n  n: 5\n"),
        &["derived.n: expected a string"],
    );
}

#[test]
fn resolve_derived_reports_an_unresolvable_hand_built_manifest_instead_of_looping() {
    let mut m = manifest(SPEC_EXAMPLE);
    m.derived
        .insert("loop".into(), Template::parse("${derived.loop}").unwrap());
    let err = m
        .resolve_derived(&Default::default(), "https://pb")
        .unwrap_err();
    assert!(err.to_string().contains("loop"), "{err}");
}

// --- oauth ------------------------------------------------------------------------------------

#[test]
fn oauth_extensions_load_and_reserved_parameters_are_refused() {
    let m = manifest(&byo_oauth().replace(
        "  pkce: true\n",
        "  pkce: false\n  scope_separator: \",\"\n  token_auth: client_secret_basic\n  authorize_params: {access_type: offline, prompt: consent}\n  token_params: {audience: \"${field.client_id}\"}\n",
    ));
    let o = m.oauth.unwrap();
    assert!(!o.pkce);
    assert_eq!(o.scope_string(), "repo,read:org");
    assert_eq!(o.token_auth, TokenAuth::ClientSecretBasic);
    assert_eq!(
        o.authorize_params.keys().collect::<Vec<_>>(),
        ["access_type", "prompt"]
    );
    assert_eq!(o.token_params["audience"].source(), "${field.client_id}");
    rejects(
        &byo_oauth().replace(
            "pkce: true",
            "pkce: true\n  authorize_params: {redirect_uri: \"https://evil\"}",
        ),
        &[
            "oauth.authorize_params.redirect_uri",
            "set by the OAuth flow",
        ],
    );
    rejects(
        &byo_oauth().replace(
            "pkce: true",
            "pkce: true\n  token_params: {grant_type: password}",
        ),
        &["oauth.token_params.grant_type"],
    );
    rejects(
        &byo_oauth().replace("pkce: true", "pkce: true\n  token_auth: private_key_jwt"),
        &["oauth.token_auth", "unknown token_auth `private_key_jwt`"],
    );
    rejects(
        &byo_oauth().replace("pkce: true", "pkce: \"yes\""),
        &["oauth.pkce: expected a bool"],
    );
    rejects(
        &byo_oauth().replace("scopes: [repo, read:org]", "scopes: [\"repo user\"]"),
        &["oauth.scopes[0]"],
    );
    rejects(
        &byo_oauth().replace(
            "  token_url: https://github.com/login/oauth/access_token\n",
            "",
        ),
        &["oauth.token_url: is required"],
    );
    rejects(
        &byo_oauth().replace("https://github.com/login/oauth/access_token", "ldap://x"),
        &["oauth.token_url", "http:// or https://"],
    );
}

// --- errors never panic on odd documents ------------------------------------------------------

#[test]
fn odd_but_valid_yaml_shapes_give_errors_not_panics() {
    for text in [
        "id: [a]\n",
        "fields: [1, 2]\nid: x\nname: x\nauth_mode: pat\nmcp: {transport: stdio, command: x}\n",
        "id: x\nname: x\nauth_mode: pat\nmcp: [1]\n",
        "id: x\nname: x\nauth_mode: pat\nmcp: {transport: stdio, command: x}\nverify: {http: [1]}\n",
        "id: x\nname: x\nauth_mode: pat\nmcp: {transport: stdio, command: x}\nverify: {sql: 1}\n",
        "id: x\nname: x\nauth_mode: none\nmcp: {transport: stdio, command: x}\nbrand: [1]\n",
        "id: x\nname: x\nauth_mode: none\nmcp: {transport: 5, command: x}\n",
    ] {
        assert!(parse_manifest("t.yaml", text).is_err(), "{text}");
    }
}

#[test]
fn a_pattern_is_a_search_as_in_json_schema() {
    for good in [
        "^xoxb-",
        "^[a-z]+",
        "\\\\.com$",
        "^xoxb-.*$",
        "price\\\\$",
        "^$",
    ] {
        manifest(&with_fields(&format!(
            "  - {{key: a, type: text, validation: {{pattern: \"{good}\"}}}}"
        )));
    }
    let p = plugboard_catalog_pattern("^xoxb-");
    assert!(p.is_match("xoxb-123-abc"));
    assert!(!p.is_match("xoxp-123"));
    assert!(!p.is_match(" xoxb-1"));
}

fn plugboard_catalog_pattern(source: &str) -> crate::Pattern {
    crate::Pattern::new(source).unwrap()
}

#[test]
fn a_hyphenated_field_key_can_be_used_in_templates() {
    let m = manifest(
        "id: hy\nname: Hy\nauth_mode: pat\nfields:\n  - {key: api-key, type: password, required: true}\nmcp:\n  transport: stdio\n  command: npx\n  env: {API_KEY: \"${field.api-key}\"}\n",
    );
    let fields = m
        .validate_submission(serde_json::json!({"api-key": "k-123"}).as_object().unwrap())
        .unwrap();
    let derived = m.resolve_derived(&fields, "http://x").unwrap();
    let ctx = crate::RenderContext {
        fields: &fields,
        derived: &derived,
        instance_url: "http://x",
        oauth_access_token: None,
    };
    assert_eq!(m.mcp.env["API_KEY"].render(&ctx).unwrap(), "k-123");
}
