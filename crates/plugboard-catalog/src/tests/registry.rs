//! `convert_registry_document` on server entries written from the registry's published schema (2025-09-29 and
//! 2025-12-11: camelCase keys, remotes with headers and URL variables, npm / pypi / oci packages).

use serde_json::json;

use crate::*;

fn convert(doc: serde_json::Value) -> Vec<Result<Converted, Skipped>> {
    convert_registry_document("sample.json", &doc.to_string())
}

/// The one converted manifest of `doc`, loaded with the catalog's rules.
fn one(doc: serde_json::Value) -> (Converted, Manifest, serde_json::Value) {
    let mut results = convert(doc);
    assert_eq!(results.len(), 1, "{results:?}");
    let converted = match results.remove(0) {
        Ok(c) => c,
        Err(s) => panic!("skipped: {s:?}"),
    };
    let entry = parse_manifest(&converted.file_name, &converted.yaml)
        .unwrap_or_else(|e| panic!("{e}\n{}", converted.yaml));
    let raw = entry.raw();
    (converted, (*entry.manifest().unwrap()).clone(), raw)
}

fn skipped(doc: serde_json::Value) -> Skipped {
    let mut results = convert(doc);
    assert_eq!(results.len(), 1, "{results:?}");
    match results.remove(0) {
        Err(s) => s,
        Ok(c) => panic!("expected a skip, got:\n{}", c.yaml),
    }
}

fn field<'a>(m: &'a Manifest, key: &str) -> &'a Field {
    m.field(key)
        .unwrap_or_else(|| panic!("no field {key}: {:?}", m.fields))
}

#[test]
fn a_streamable_http_remote_with_secret_and_plain_headers_and_url_variables_becomes_a_pat_manifest()
{
    let (c, m, raw) = one(json!({
        "$schema": "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json",
        "name": "com.example/crm",
        "title": "Example CRM",
        "description": "Contacts and deals",
        "version": "2.1.0",
        "websiteUrl": "https://example.com/mcp",
        "repository": {"url": "https://github.com/example/crm-mcp", "source": "github"},
        "remotes": [
            {"type": "sse", "url": "https://legacy.example.com/sse"},
            {
                "type": "streamable-http",
                "url": "https://{tenant_id}.api.example.com/mcp",
                "variables": {"tenant_id": {"description": "Your tenant", "isRequired": true}},
                "headers": [
                    {"name": "Authorization", "value": "Bearer {api_key}", "isRequired": true,
                     "variables": {"api_key": {"description": "API key from Settings", "isRequired": true, "isSecret": true}}},
                    {"name": "X-Region", "description": "Region", "default": "eu", "choices": ["eu", "us"]}
                ]
            }
        ]
    }));
    assert_eq!(c.id, "example-crm");
    assert_eq!(c.file_name, "example-crm.yaml");
    assert_eq!(m.name, "Example CRM");
    assert_eq!(m.description, "Contacts and deals");
    assert_eq!(m.auth_mode, AuthMode::Pat);
    assert_eq!(m.mcp.transport, Transport::StreamableHttp);
    assert_eq!(
        m.mcp.endpoint.as_ref().unwrap().source(),
        "https://${field.tenant_id|url}.api.example.com/mcp"
    );
    assert_eq!(
        m.mcp.headers["Authorization"].source(),
        "Bearer ${field.api_key}"
    );
    assert_eq!(m.mcp.headers["X-Region"].source(), "${field.x-region}");
    let key = field(&m, "api_key");
    assert!(key.secret);
    assert_eq!(key.field_type, FieldType::Password);
    assert!(key.required);
    assert_eq!(raw["fields"][1]["secret"], json!(true), "{}", c.yaml);
    let region = field(&m, "x-region");
    assert_eq!(region.field_type, FieldType::Select);
    assert_eq!(region.choices, ["eu", "us"]);
    assert_eq!(region.default.as_deref(), Some("eu"));
    assert!(!region.secret);
    assert!(field(&m, "tenant_id").required);
    assert_eq!(m.verify, Some(Verify::McpMethod("tools/list".into())));
    let notes = &m.docs.as_ref().unwrap().setup_md;
    assert!(notes.contains("`com.example/crm` version 2.1.0"), "{notes}");
    assert!(
        notes.contains("https://github.com/example/crm-mcp"),
        "{notes}"
    );
    assert!(
        notes.contains("`api_key` (secret): API key from Settings"),
        "{notes}"
    );
    // A tenant with a slash cannot move the request elsewhere: it is percent-encoded.
    let fields = m
        .validate_submission(
            json!({"tenant_id": "evil.com/x", "api_key": "k", "x-region": "us"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
    let derived = m.resolve_derived(&fields, "https://pb").unwrap();
    let ctx = RenderContext {
        fields: &fields,
        derived: &derived,
        instance_url: "https://pb",
        oauth_access_token: None,
    };
    assert_eq!(
        m.mcp.endpoint.as_ref().unwrap().render(&ctx).unwrap(),
        "https://evil.com%2Fx.api.example.com/mcp"
    );
}

#[test]
fn an_sse_remote_with_a_plain_header_is_a_none_manifest_without_verify() {
    let (_, m, _) = one(json!({
        "name": "io.github.someone/weather",
        "description": "Weather",
        "version": "0.1.0",
        "remotes": [{"type": "sse", "url": "https://weather.example.com/sse",
                     "headers": [{"name": "X-Units", "default": "metric", "description": "Units"}]}]
    }));
    assert_eq!(m.id, "someone-weather");
    assert_eq!(m.name, "weather");
    assert_eq!(m.auth_mode, AuthMode::None);
    assert_eq!(m.mcp.transport, Transport::Sse);
    assert_eq!(m.mcp.headers["X-Units"].source(), "${field.x-units}");
    assert!(m.verify.is_none());
}

#[test]
fn a_remote_asking_for_nothing_is_an_mcp_oauth_manifest_and_a_base_url_variable_must_be_http() {
    let (_, m, _) = one(json!({
        "name": "app.linear/linear",
        "description": "Linear",
        "version": "1.0.0",
        "remotes": [{"type": "streamable-http", "url": "https://mcp.linear.app/mcp"}]
    }));
    assert_eq!(m.id, "linear");
    assert_eq!(m.auth_mode, AuthMode::McpOauth);
    assert!(m.fields.is_empty());
    assert_eq!(
        m.mcp.headers["Authorization"].source(),
        "Bearer ${oauth.access_token}"
    );
    assert!(m
        .docs
        .unwrap()
        .setup_md
        .contains("change `auth_mode` to `none`"));

    let (_, m, _) = one(json!({
        "name": "com.example/selfhosted",
        "description": "Self-hosted",
        "version": "1.0.0",
        "remotes": [{"type": "streamable-http", "url": "{baseUrl}/mcp",
                     "variables": {"baseUrl": {"description": "Your server", "isRequired": true}}}]
    }));
    assert_eq!(m.auth_mode, AuthMode::None);
    assert_eq!(
        m.mcp.endpoint.as_ref().unwrap().source(),
        "${field.baseurl}/mcp"
    );
    let base = field(&m, "baseurl");
    assert!(base.check_value("https://mcp.example.com").is_ok());
    assert!(base.check_value("file:///etc/passwd").is_err());
}

#[test]
fn an_npm_package_runs_pinned_with_npx_and_its_secrets_go_through_env() {
    let (_, m, _) = one(json!({
        "name": "io.modelcontextprotocol/brave-search",
        "description": "Brave Search",
        "version": "1.0.2",
        "packages": [{
            "registryType": "npm",
            "registryBaseUrl": "https://registry.npmjs.org",
            "identifier": "@modelcontextprotocol/server-brave-search",
            "version": "1.0.2",
            "runtimeHint": "npx",
            "transport": {"type": "stdio"},
            "runtimeArguments": [{"type": "named", "name": "--node-options", "value": "--max-old-space-size=256"}],
            "packageArguments": [
                {"type": "positional", "value": "serve"},
                {"type": "named", "name": "--root", "valueHint": "root", "description": "Root folder", "isRequired": true},
                {"type": "named", "name": "--port", "description": "Port", "format": "number"},
                {"type": "positional", "valueHint": "mode", "default": "fast", "choices": ["fast", "safe"]}
            ],
            "environmentVariables": [
                {"name": "BRAVE_API_KEY", "description": "Brave Search API key", "isRequired": true, "isSecret": true},
                {"name": "LOG_LEVEL", "default": "info"},
                {"name": "OPTIONAL_THING", "description": "never asked"}
            ]
        }]
    }));
    assert_eq!(m.id, "modelcontextprotocol-brave-search");
    assert_eq!(m.auth_mode, AuthMode::Pat);
    assert_eq!(m.mcp.command.as_ref().unwrap().source(), "npx");
    let args: Vec<&str> = m.mcp.args.iter().map(Template::source).collect();
    assert_eq!(
        args,
        [
            "--node-options",
            "--max-old-space-size=256",
            "-y",
            "@modelcontextprotocol/server-brave-search@1.0.2",
            "serve",
            "--root",
            "${field.root}",
            "${field.mode}"
        ]
    );
    assert_eq!(
        m.mcp.env["BRAVE_API_KEY"].source(),
        "${field.brave_api_key}"
    );
    assert_eq!(m.mcp.env["LOG_LEVEL"].source(), "${field.log_level}");
    // An optional environment variable is an optional field (blank renders empty, which servers read as unset).
    assert_eq!(
        m.mcp.env["OPTIONAL_THING"].source(),
        "${field.optional_thing}"
    );
    assert!(!field(&m, "optional_thing").required);
    assert!(field(&m, "brave_api_key").secret);
    assert_eq!(field(&m, "mode").field_type, FieldType::Select);
    // No secret anywhere on the command line.
    for a in &m.mcp.args {
        for p in a.placeholders() {
            if let Var::Field(k) = &p.var {
                assert!(!field(&m, k).secret, "{k} on the command line");
            }
        }
    }
    let notes = m.docs.unwrap().setup_md;
    assert!(
        notes.contains("`--port`") && notes.contains("`OPTIONAL_THING`"),
        "{notes}"
    );
    assert!(m.verify.is_none());
}

#[test]
fn a_pypi_package_runs_pinned_with_uvx() {
    let (_, m, _) = one(json!({
        "name": "io.github.example/weather-mcp",
        "description": "Weather",
        "version": "0.5.0",
        "packages": [{
            "registryType": "pypi",
            "identifier": "weather-mcp-server",
            "version": "0.5.0",
            "runtimeHint": "uvx",
            "transport": {"type": "stdio"},
            "runtimeArguments": [{"type": "named", "name": "--python", "value": "3.12"}],
            "environmentVariables": [
                {"name": "WEATHER_API_KEY", "isRequired": true, "isSecret": true},
                {"name": "WEATHER_UNITS", "default": "celsius", "choices": ["celsius", "fahrenheit"]}
            ]
        }]
    }));
    assert_eq!(m.id, "example-weather-mcp");
    assert_eq!(m.mcp.command.as_ref().unwrap().source(), "uvx");
    let args: Vec<&str> = m.mcp.args.iter().map(Template::source).collect();
    assert_eq!(args, ["--python", "3.12", "weather-mcp-server@0.5.0"]);
    assert_eq!(m.auth_mode, AuthMode::Pat);
    assert_eq!(field(&m, "weather_units").field_type, FieldType::Select);
}

#[test]
fn an_oci_package_runs_with_docker_and_passes_env_by_name() {
    let (_, m, _) = one(json!({
        "name": "io.github.example/database-manager",
        "description": "Databases",
        "version": "3.1.0",
        "packages": [{
            "registryType": "oci",
            "identifier": "ghcr.io/example/database-manager-mcp:3.1.0",
            "transport": {"type": "stdio"},
            "runtimeArguments": [
                {"type": "named", "name": "--network", "value": "host"},
                {"type": "named", "name": "-v", "value": "{data_dir}:/data",
                 "variables": {"data_dir": {"description": "Folder on the host", "isRequired": true}}}
            ],
            "packageArguments": [{"type": "positional", "valueHint": "database_name", "isRequired": true}],
            "environmentVariables": [{"name": "DB_PASSWORD", "isRequired": true, "isSecret": true}]
        }]
    }));
    assert_eq!(m.mcp.command.as_ref().unwrap().source(), "docker");
    let args: Vec<&str> = m.mcp.args.iter().map(Template::source).collect();
    assert_eq!(
        args,
        [
            "run",
            "-i",
            "--rm",
            "-e",
            "DB_PASSWORD",
            "--network",
            "host",
            "-v",
            "${field.data_dir}:/data",
            "ghcr.io/example/database-manager-mcp:3.1.0",
            "${field.database_name}"
        ]
    );
    assert_eq!(m.mcp.env["DB_PASSWORD"].source(), "${field.db_password}");
    // The older form: the tag comes from `version`.
    let (_, m, _) = one(json!({
        "name": "io.github.example/fs", "description": "x", "version": "1.0.2",
        "packages": [{"registryType": "oci", "identifier": "mcp/filesystem", "version": "1.0.2",
                      "transport": {"type": "stdio"}}]
    }));
    assert!(m
        .mcp
        .args
        .iter()
        .any(|a| a.source() == "mcp/filesystem:1.0.2"));
    assert_eq!(m.auth_mode, AuthMode::None);
}

#[test]
fn entries_that_cannot_be_expressed_are_skipped_with_the_reason() {
    let cases = [
        (
            json!({"name": "com.example/nuget", "description": "x", "version": "1",
                   "packages": [{"registryType": "nuget", "identifier": "Example.Server", "version": "1.0.0",
                                 "transport": {"type": "stdio"}},
                                {"registryType": "mcpb", "identifier": "https://example.com/x.mcpb",
                                 "fileSha256": "00", "transport": {"type": "stdio"}}]}),
            "package type `nuget` is not supported",
        ),
        (
            json!({"name": "com.example/nothing", "description": "x", "version": "1"}),
            "no remote and no npm, pypi or oci package",
        ),
        (
            json!({"name": "com.example/local-http", "description": "x", "version": "1",
                   "packages": [{"registryType": "npm", "identifier": "local-http", "version": "1.0.0",
                                 "transport": {"type": "streamable-http", "url": "http://localhost:{port}/mcp"}}]}),
            "uses transport `streamable-http`",
        ),
        (
            json!({"name": "###/!!!", "description": "x", "version": "1",
                   "remotes": [{"type": "streamable-http", "url": "https://x.example.com/mcp"}]}),
            "cannot become a manifest id",
        ),
        (
            json!({"name": "no-slash", "description": "x", "version": "1",
                   "remotes": [{"type": "streamable-http", "url": "https://x.example.com/mcp"}]}),
            "cannot become a manifest id",
        ),
        (
            json!({"name": "com.example/ranged", "description": "x", "version": "1",
                   "packages": [{"registryType": "npm", "identifier": "ranged", "version": "^1.2.0",
                                 "transport": {"type": "stdio"}}]}),
            "is not an exact version",
        ),
        (
            json!({"name": "com.example/latest", "description": "x", "version": "1",
                   "packages": [{"registryType": "pypi", "identifier": "latest-mcp", "version": "latest",
                                 "transport": {"type": "stdio"}}]}),
            "is not an exact version",
        ),
        (
            json!({"name": "com.example/untagged", "description": "x", "version": "1",
                   "packages": [{"registryType": "oci", "identifier": "example/untagged",
                                 "transport": {"type": "stdio"}}]}),
            "has no tag or digest",
        ),
        (
            json!({"name": "com.example/argsecret", "description": "x", "version": "1",
                   "packages": [{"registryType": "npm", "identifier": "argsecret", "version": "1.0.0",
                                 "transport": {"type": "stdio"},
                                 "packageArguments": [{"type": "named", "name": "--token", "isRequired": true,
                                                       "isSecret": true}]}]}),
            "secret passed on the command line",
        ),
        (
            json!({"name": "com.example/badheader", "description": "x", "version": "1",
                   "remotes": [{"type": "streamable-http", "url": "https://x.example.com/mcp",
                                "headers": [{"name": "Host", "value": "evil.example.com"}]}]}),
            "header name `Host` cannot be expressed",
        ),
        (
            json!({"name": "com.example/badscheme", "description": "x", "version": "1",
                   "remotes": [{"type": "streamable-http", "url": "ftp://x.example.com/mcp"}]}),
            "does not pass the catalog rules",
        ),
    ];
    for (doc, reason) in cases {
        let name = doc["name"].as_str().unwrap().to_owned();
        let s = skipped(doc);
        assert_eq!(s.name, name);
        assert!(s.reason.contains(reason), "{name}: {}", s.reason);
    }
}

#[test]
fn registry_api_answers_lists_and_bad_documents_are_read() {
    let entry = |n: &str| {
        json!({"name": format!("com.example/{n}"), "description": "x", "version": "1",
               "remotes": [{"type": "streamable-http", "url": "https://x.example.com/mcp"}]})
    };
    let list = json!({"servers": [
        {"server": entry("one"), "_meta": {"io.modelcontextprotocol.registry/official": {"status": "active"}}},
        {"server": entry("two")},
        {"server": entry("one")}
    ], "metadata": {"count": 3}});
    let results = convert(list);
    assert_eq!(results.len(), 3);
    assert_eq!(results[0].as_ref().unwrap().id, "example-one");
    assert_eq!(results[1].as_ref().unwrap().id, "example-two");
    let dup = results[2].as_ref().unwrap_err();
    assert!(
        dup.reason.contains("already became the id `example-one`"),
        "{dup:?}"
    );
    assert_eq!(convert(json!([entry("a"), entry("b")])).len(), 2);

    let bad = convert_registry_document("broken.json", "{ not json");
    assert_eq!(bad.len(), 1);
    let s = bad[0].as_ref().unwrap_err();
    assert_eq!(s.name, "broken.json");
    assert!(s.reason.contains("invalid JSON"), "{s:?}");
    let none = convert_registry_document("other.json", r#"{"hello": "world"}"#);
    assert!(none[0]
        .as_ref()
        .unwrap_err()
        .reason
        .contains("no server entry"));
}

#[test]
fn ids_come_from_the_namespace_label_and_the_server_part() {
    assert_eq!(registry_id("com.stripe/mcp").as_deref(), Some("stripe-mcp"));
    assert_eq!(registry_id("com.notion/notion").as_deref(), Some("notion"));
    assert_eq!(
        registry_id("io.github.makenotion/notion-mcp-server").as_deref(),
        Some("makenotion-notion-mcp-server")
    );
    assert_eq!(
        registry_id("io.github.User/My.Server").as_deref(),
        Some("user-my-server")
    );
    assert_eq!(registry_id("ai.x/9lives").as_deref(), Some("x-9lives"));
    assert_eq!(
        registry_id("com.example/___").as_deref(),
        Some("example-___")
    );
    // A namespace label that cannot lead an id gives way to the server part.
    assert_eq!(
        registry_id("io.github.21st-dev/magic-mcp").as_deref(),
        Some("magic-mcp")
    );
    assert_eq!(registry_id("123/456"), None);
    assert_eq!(registry_id("nothing"), None);
    let long = format!("com.example/{}", "a".repeat(200));
    assert_eq!(registry_id(&long).unwrap().len(), 64);
}

#[test]
fn every_converted_file_passes_lint() {
    let docs = [
        json!({"name": "com.example/crm", "description": "x", "version": "1",
               "remotes": [{"type": "streamable-http", "url": "https://{t}.example.com/mcp",
                            "variables": {"t": {"isRequired": true}},
                            "headers": [{"name": "X-Key", "isSecret": true, "isRequired": true}]}]}),
        json!({"name": "com.example/pkg", "description": "x", "version": "1",
               "packages": [{"registryType": "npm", "identifier": "pkg", "version": "1.0.0",
                             "transport": {"type": "stdio"},
                             "environmentVariables": [{"name": "KEY", "isSecret": true}]}]}),
    ];
    let dir = tempfile::tempdir().unwrap();
    for doc in docs {
        for r in convert(doc) {
            let c = r.unwrap();
            std::fs::write(dir.path().join(&c.file_name), &c.yaml).unwrap();
        }
    }
    let report = lint_paths(&[dir.path().to_path_buf()]);
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.valid, 2);
}

#[test]
fn hostile_documents_never_panic() {
    let docs = [
        "null",
        "[]",
        "[[[[[[[[[[]]]]]]]]]]",
        r#"{"servers": {"server": 1}}"#,
        r#"{"name": 5, "remotes": "x"}"#,
        r#"{"name": "a.b/c", "remotes": [{"type": "streamable-http", "url": "{"}]}"#,
        r#"{"name": "a.b/c", "remotes": [{"type": "streamable-http", "url": "https://x/${field.y}{"}]}"#,
        r#"{"name": "a.b/c", "packages": [{"registryType": "npm", "identifier": "-rf", "version": "1.0.0"}]}"#,
        r#"{"name": "a.b/c", "packages": [{"registryType": "npm", "identifier": "x", "version": "1.0.0",
            "packageArguments": [1, {"type": "weird"}]}]}"#,
    ];
    for d in docs {
        for c in convert_registry_document("h.json", d).into_iter().flatten() {
            parse_manifest(&c.file_name, &c.yaml).unwrap();
        }
    }
}

#[test]
fn entries_in_the_older_snake_case_schema_are_read_too() {
    // The 2025-07-09 form: snake_case keys, `version_detail`, `transport_type` on remotes, no package transport.
    let (_, m, _) = one(json!({
        "$schema": "https://static.modelcontextprotocol.io/schemas/2025-07-09/server.schema.json",
        "name": "io.modelcontextprotocol/brave-search",
        "description": "Brave",
        "version_detail": {"version": "1.0.2"},
        "packages": [{
            "registry_type": "npm",
            "registry_base_url": "https://registry.npmjs.org",
            "identifier": "@modelcontextprotocol/server-brave-search",
            "version": "1.0.2",
            "environment_variables": [
                {"name": "BRAVE_API_KEY", "description": "Brave Search API Key", "is_required": true, "is_secret": true}
            ]
        }]
    }));
    assert_eq!(m.auth_mode, AuthMode::Pat);
    assert!(field(&m, "brave_api_key").secret && field(&m, "brave_api_key").required);
    assert!(m
        .mcp
        .args
        .iter()
        .any(|a| a.source() == "@modelcontextprotocol/server-brave-search@1.0.2"));
    let (_, m, _) = one(json!({
        "name": "io.example/remote", "description": "x", "version_detail": {"version": "2.0.0"},
        "remotes": [{"transport_type": "sse", "url": "https://mcp.example.com/sse",
                     "headers": [{"name": "X-API-Key", "is_required": true, "is_secret": true}]}]
    }));
    assert_eq!(m.mcp.transport, Transport::Sse);
    assert!(field(&m, "x-api-key").secret);
    // The 2025-05 seed form: `registry_name` and the package `name`; `docker` is the old name of oci.
    let (_, m, _) = one(json!({
        "name": "io.github.example/tool", "description": "x", "version_detail": {"version": "0.0.1-seed"},
        "packages": [{"registry_name": "docker", "name": "example/tool", "version": "1.4.0"}]
    }));
    assert!(m
        .mcp
        .args
        .iter()
        .any(|a| a.source() == "example/tool:1.4.0"));
}

#[test]
fn a_literal_dollar_brace_in_a_value_stays_literal() {
    let (_, m, _) = one(json!({
        "name": "io.github.example/obsidian", "description": "x", "version": "1",
        "packages": [{"registryType": "npm", "identifier": "mcp-obsidian", "version": "1.0.0",
                      "transport": {"type": "stdio"},
                      "packageArguments": [{"type": "positional", "value": "${input:vaultPath}"}]}]
    }));
    let last = m.mcp.args.last().unwrap();
    assert!(last.is_literal(), "{}", last.source());
    let empty = std::collections::BTreeMap::new();
    let ctx = RenderContext {
        fields: &empty,
        derived: &empty,
        instance_url: "",
        oauth_access_token: None,
    };
    assert_eq!(last.render(&ctx).unwrap(), "${input:vaultPath}");
    // A `$` right before a real variable cannot be written as a template: skipped, saying so.
    let s = skipped(json!({
        "name": "io.github.example/dollar", "description": "x", "version": "1",
        "packages": [{"registryType": "npm", "identifier": "dollar", "version": "1.0.0",
                      "transport": {"type": "stdio"},
                      "packageArguments": [{"type": "positional", "value": "${v}",
                                            "variables": {"v": {"isRequired": true}}}]}]
    }));
    assert!(s.reason.contains("a `$` directly before"), "{s:?}");
}
