//! `POST /api/v1/connectors/{id}/install`: every auth mode of the built-in catalog, the contract's check order and
//! errors, crews, the byo_oauth authorization URL (state and PKCE), and idempotent retries. On both backends.

// clippy.toml lets `#[test]` functions unwrap, expect and panic; the helpers and `test_on_both_backends!` bodies of
// an integration test crate are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod integration_support;

use axum::http::Method;
use base64::Engine;
use integration_support::*;
use plugboard_server::testing::{test_on_both_backends, Db, TestApp};
use plugboard_store::{now_ms, IntegrationId, Role};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

test_on_both_backends! {
    a_pat_install_vaults_the_token_and_is_active_at_once => pat_install;
    a_pat_install_over_stdio_vaults_every_env_value => pat_stdio_install;
    a_conn_string_install_keeps_the_dsn_template_and_vaults_every_part => conn_string_install;
    the_builtin_postgres_install_passes_every_credential_through_env_only => builtin_postgres_install;
    an_mcp_oauth_install_is_pending_and_hands_off_to_mcp_oauth => mcp_oauth_install;
    a_byo_oauth_install_returns_an_authorization_url_with_state_and_pkce => byo_oauth_install;
    a_none_install_keeps_plain_settings_visible_and_needs_no_body => none_install;
    install_checks_run_in_the_contract_order => check_order;
    field_errors_are_400_naming_the_field_and_never_echo_the_value => field_errors;
    body_errors_are_400 => body_errors;
    a_crew_install_needs_a_crew_of_the_same_workspace => crews;
    a_failed_install_writes_nothing => nothing_written_on_failure;
    a_retry_with_the_same_idempotency_key_returns_the_first_response => idempotent_retry;
    the_same_idempotency_key_with_another_request_is_422 => idempotency_reuse;
    concurrent_retries_with_one_idempotency_key_create_one_integration => idempotency_race;
    a_malformed_idempotency_key_is_400 => idempotency_key_syntax;
}

async fn get_integration(app: &TestApp, token: &str, id: &str) -> Value {
    let res = app
        .get(&format!("/api/v1/integrations/{id}"), Some(token))
        .await;
    res.assert_status(200);
    res.json()
}

async fn pat_install(db: Db) {
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    let manager = app.member(&ws, Role::Manager).await;
    let pat = github_token(&canary());
    let body = install(
        &app,
        &manager,
        &ws,
        "github",
        json!({"name": "GitHub (org)", "fields": {"token": pat}}),
    )
    .await;
    assert_eq!(body["next_step"], "");
    assert!(body.get("oauth_url").is_none(), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 2);
    let id = body["integration_id"].as_str().unwrap();

    let got = get_integration(&app, &manager, id).await;
    assert_eq!(got["name"], "GitHub (org)");
    assert_eq!(got["auth_mode"], "pat");
    assert_eq!(got["status"], "active");
    assert_eq!(got["connector_id"], "github");
    assert_eq!(got["crew_id"], Value::Null);
    assert_eq!(got["enabled"], true);
    assert_eq!(
        got["mcp"],
        json!({"transport": "streamable-http", "endpoint": "https://api.githubcopilot.com/mcp/",
               "headers": {"Authorization": "Bearer ********"}})
    );
    assert!(!got.to_string().contains(&pat));

    // The value is in the vault, one sealed entry per field, and nowhere in the stored MCP block.
    let secrets = app
        .db
        .store
        .integration_secrets(&IntegrationId::from(id))
        .await
        .unwrap();
    assert_eq!(
        secrets.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["field.token"]
    );
    let row = app
        .db
        .store
        .get_integration(&IntegrationId::from(id))
        .await
        .unwrap()
        .unwrap();
    assert!(
        !row.mcp.contains(&pat) && row.mcp.contains("${field.token}"),
        "{}",
        row.mcp
    );

    let rt = runtime(&app, &owner, id).await;
    rt.assert_status(200);
    assert_eq!(rt.headers["cache-control"], "no-store");
    assert_eq!(
        rt.json()["mcp"]["headers"]["Authorization"],
        format!("Bearer {pat}")
    );
}

async fn pat_stdio_install(db: Db) {
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    let body = install(
        &app,
        &owner,
        &ws,
        "circleci",
        json!({"fields": {"token": "CCIPAT_1234abcd"}}),
    )
    .await;
    let id = body["integration_id"].as_str().unwrap();
    let got = get_integration(&app, &owner, id).await;
    assert_eq!(
        got["name"], "CircleCI",
        "the name defaults to the manifest's"
    );
    assert_eq!(
        got["mcp"],
        json!({"transport": "stdio", "command": "npx", "args": ["-y", "@circleci/mcp-server-circleci@0.20.0"],
               "env": {"CIRCLECI_TOKEN": "********", "CIRCLECI_BASE_URL": ""}})
    );
    let names: Vec<String> = app
        .db
        .store
        .integration_secrets(&IntegrationId::from(id))
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(
        names,
        ["field.token"],
        "an optional field left blank has no value to store"
    );
    let rt = runtime(&app, &owner, id).await.json();
    assert_eq!(rt["mcp"]["env"]["CIRCLECI_TOKEN"], "CCIPAT_1234abcd");
    assert_eq!(rt["mcp"]["env"]["CIRCLECI_BASE_URL"], "");
}

/// The example of `spec/manifest.md`: a DSN built from fields and passed as an argument.
const DSN_MANIFEST: &str = r##"id: pg-dsn
name: PostgreSQL (DSN)
auth_mode: conn_string
fields:
  - {key: host, label: Host, type: text, required: true}
  - {key: port, label: Port, type: number, required: true, default: "5432"}
  - {key: database, label: Database, type: text, required: true}
  - {key: user, label: User, type: text, required: true}
  - {key: password, label: Password, type: password, required: true}
derived:
  dsn: "postgres://${field.user|url}:${field.password|url}@${field.host}:${field.port}/${field.database}"
mcp:
  transport: stdio
  command: npx
  args: ["-y", "@modelcontextprotocol/server-postgres", "${derived.dsn}"]
"##;

async fn conn_string_install(db: Db) {
    let catalog =
        plugboard_catalog::Catalog::from_entries(vec![plugboard_catalog::parse_manifest(
            "pg-dsn.yaml",
            DSN_MANIFEST,
        )
        .unwrap()])
        .unwrap();
    let app = TestApp::build(db, Some(catalog), |_| {}).await;
    let (ws, owner) = app.workspace().await;
    let fields =
        json!({"host": "db.example.com", "database": "app", "user": "ro", "password": "p@ss/w:rd"});
    let body = install(&app, &owner, &ws, "pg-dsn", json!({"fields": fields})).await;
    assert_eq!(body["next_step"], "");
    let id = body["integration_id"].as_str().unwrap();
    let got = get_integration(&app, &owner, id).await;
    assert_eq!(got["status"], "active");
    assert_eq!(
        got["mcp"]["args"],
        json!([
            "-y",
            "@modelcontextprotocol/server-postgres",
            "postgres://********:********@********:********/********"
        ])
    );
    let row = app
        .db
        .store
        .get_integration(&IntegrationId::from(id))
        .await
        .unwrap()
        .unwrap();
    assert!(row.mcp.contains("${derived.dsn}"), "{}", row.mcp);
    for v in ["db.example.com", "p@ss", "postgres://ro"] {
        assert!(!row.mcp.contains(v), "{v} stored in the MCP block");
    }
    assert_eq!(
        app.db
            .store
            .integration_secrets(&IntegrationId::from(id))
            .await
            .unwrap()
            .len(),
        5
    );
    let rt = runtime(&app, &owner, id).await.json();
    assert_eq!(
        rt["mcp"]["args"][2],
        "postgres://ro:p%40ss%2Fw%3Ard@db.example.com:5432/app"
    );
}

async fn builtin_postgres_install(db: Db) {
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    let fields = json!({"host": "db.example.com", "database": "app", "user": "ro",
                        "password": "p@ss/w:rd", "sslmode": "require"});
    let body = install(&app, &owner, &ws, "postgres", json!({"fields": fields})).await;
    let id = body["integration_id"].as_str().unwrap();
    let got = get_integration(&app, &owner, id).await;
    assert_eq!(
        got["mcp"]["args"],
        json!([
            "-y",
            "@toolbox-sdk/server@1.12.0",
            "--prebuilt",
            "postgres",
            "--stdio"
        ]),
        "nothing the user typed is on the command line"
    );
    for (k, v) in got["mcp"]["env"].as_object().unwrap() {
        assert!(
            v.as_str().unwrap().contains("********"),
            "{k} is shown: {v}"
        );
    }
    assert_eq!(
        app.db
            .store
            .integration_secrets(&IntegrationId::from(id))
            .await
            .unwrap()
            .len(),
        6
    );
    let rt = runtime(&app, &owner, id).await.json();
    let env = &rt["mcp"]["env"];
    assert_eq!(env["POSTGRES_HOST"], "db.example.com");
    assert_eq!(env["POSTGRES_PORT"], "5432");
    assert_eq!(env["POSTGRES_DATABASE"], "app");
    assert_eq!(env["POSTGRES_USER"], "ro");
    assert_eq!(env["POSTGRES_PASSWORD"], "p@ss/w:rd");
    assert_eq!(env["POSTGRES_QUERY_PARAMS"], "sslmode=require");
}

async fn mcp_oauth_install(db: Db) {
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    let body = install(&app, &owner, &ws, "linear", json!({})).await;
    assert_eq!(body["next_step"], "mcp_oauth");
    assert!(body.get("oauth_url").is_none());
    let id = body["integration_id"].as_str().unwrap();
    let got = get_integration(&app, &owner, id).await;
    assert_eq!(got["status"], "pending_oauth");
    assert_eq!(got["auth_mode"], "mcp_oauth");
    assert_eq!(got["mcp"]["headers"]["Authorization"], "Bearer ********");
    let rt = runtime(&app, &owner, id).await;
    rt.assert_status(409);
    assert_eq!(rt.json()["code"], "oauth_pending");
    // No fields to type.
    let res = app
        .post(
            &install_uri("linear", &ws.id),
            Some(&owner),
            json!({"fields": {"token": "x"}}),
        )
        .await;
    res.assert_status(400);
    assert!(res.json()["error"].as_str().unwrap().contains("token"));
}

async fn byo_oauth_install(db: Db) {
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    let secret = canary();
    let before = now_ms();
    let body = install(
        &app,
        &owner,
        &ws,
        "github-oauth-app",
        json!({"fields": {"client_id": "Iv1.abc&def", "client_secret": secret}}),
    )
    .await;
    assert_eq!(body["next_step"], "oauth");
    let id = body["integration_id"].as_str().unwrap();
    let oauth_url = body["oauth_url"].as_str().unwrap();
    assert!(!oauth_url.contains(&secret));
    let url = url::Url::parse(oauth_url).unwrap();
    assert_eq!(url.scheme(), "https");
    assert_eq!(url.host_str(), Some("github.com"));
    assert_eq!(url.path(), "/login/oauth/authorize");
    let q: std::collections::BTreeMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(
        q["client_id"], "Iv1.abc&def",
        "properly encoded and decoded"
    );
    assert_eq!(q["redirect_uri"], app.state.config.oauth_redirect_uri());
    assert_eq!(q["scope"], "repo read:org");
    assert_eq!(q["code_challenge_method"], "S256");
    let state = &q["state"];
    assert_eq!(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(state)
            .unwrap()
            .len(),
        32
    );
    assert_eq!(q.len(), 7, "{q:?}");

    // The challenge is S256 of the verifier sealed in the vault.
    let secrets = app
        .db
        .store
        .integration_secrets(&IntegrationId::from(id))
        .await
        .unwrap();
    let names: Vec<&str> = secrets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "field.client_id",
            "field.client_secret",
            "oauth.pkce_verifier"
        ]
    );
    let verifier_row = secrets
        .iter()
        .find(|s| s.name == "oauth.pkce_verifier")
        .unwrap();
    let verifier = app.state.vault.open(verifier_row).await.unwrap();
    assert!(verifier.len() >= 43);
    let challenge =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.expose()));
    assert_eq!(q["code_challenge"], challenge);

    // Only the state's hash is stored; it is single-use and lives ten minutes.
    let hash = Sha256::digest(state.as_bytes()).to_vec();
    let st = app
        .db
        .store
        .consume_oauth_state(&hash, now_ms())
        .await
        .unwrap()
        .expect("state stored by hash");
    assert_eq!(st.integration_id, id);
    assert_eq!(st.flow, plugboard_store::OAuthFlow::Byo);
    assert_eq!(st.redirect_uri, app.state.config.oauth_redirect_uri());
    let ttl = st.expires_at - before;
    assert!(
        (10 * 60 * 1000..10 * 60 * 1000 + 60_000).contains(&ttl),
        "{ttl}"
    );
    assert!(app
        .db
        .store
        .consume_oauth_state(&hash, now_ms())
        .await
        .unwrap()
        .is_none());

    let got = get_integration(&app, &owner, id).await;
    assert_eq!(got["status"], "pending_oauth");
    runtime(&app, &owner, id).await.assert_status(409);
}

async fn none_install(db: Db) {
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    let body = install(
        &app,
        &owner,
        &ws,
        "filesystem",
        json!({"fields": {"directory": "/srv/shared"}}),
    )
    .await;
    assert_eq!(body["next_step"], "");
    let id = body["integration_id"].as_str().unwrap();
    let got = get_integration(&app, &owner, id).await;
    assert_eq!(got["status"], "active");
    assert_eq!(
        got["mcp"]["args"],
        json!([
            "-y",
            "@modelcontextprotocol/server-filesystem@2026.8.31",
            "/srv/shared"
        ])
    );
    assert!(app
        .db
        .store
        .integration_secrets(&IntegrationId::from(id))
        .await
        .unwrap()
        .is_empty());
    let rt = runtime(&app, &owner, id).await.json();
    assert_eq!(rt["mcp"]["args"][2], "/srv/shared");

    // No body at all for a connector without fields.
    let res = app
        .raw(
            Method::POST,
            &install_uri("time", &ws.id),
            Some(&owner),
            &[],
            None,
        )
        .await;
    res.assert_status(201);
    let id = res.json()["integration_id"].as_str().unwrap().to_string();
    let got = get_integration(&app, &owner, &id).await;
    assert_eq!(
        got["mcp"],
        json!({"transport": "stdio", "command": "uvx", "args": ["mcp-server-time@2026.10.19"], "env": {}})
    );
}

async fn check_order(db: Db) {
    let app = TestApp::new(db).await;
    let team = app.team().await;
    let other = app.team().await;
    let viewer = team.as_viewer().await;
    let member = team.as_member().await;
    let manager = team.as_manager().await;
    let bad_body = || Some(br#"{"nope": 1"#.to_vec());
    // 401 before everything.
    app.anonymous()
        .raw(
            Method::POST,
            "/api/v1/connectors/nope/install",
            &[],
            bad_body(),
        )
        .await
        .assert_status(401);
    // 400 workspace_id before role and connector.
    let r = viewer
        .raw(
            Method::POST,
            "/api/v1/connectors/nope/install",
            &[],
            bad_body(),
        )
        .await;
    r.assert_status(400);
    assert!(r.json()["error"].as_str().unwrap().contains("workspace_id"));
    // 403 before 404: roles below MANAGER, a member of another workspace, an unknown workspace (also one whose id
    // has another shape).
    for caller in [&viewer, &member, &other.owner] {
        caller
            .raw(
                Method::POST,
                &install_uri("nope", team.id()),
                &[],
                bad_body(),
            )
            .await
            .assert_status(403);
    }
    for unknown in ["cdoesnotexist00000000000", "not-a-workspace"] {
        manager
            .raw(
                Method::POST,
                &install_uri("github", unknown),
                &[],
                bad_body(),
            )
            .await
            .assert_status(403);
    }
    // 404 before the Idempotency-Key and the body.
    manager
        .raw(
            Method::POST,
            &install_uri("nope", team.id()),
            &[("idempotency-key", "")],
            bad_body(),
        )
        .await
        .assert_status(404);
    // Then the body.
    manager
        .raw(
            Method::POST,
            &install_uri("github", team.id()),
            &[],
            bad_body(),
        )
        .await
        .assert_status(400);
}

async fn field_errors(db: Db) {
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    let secret = canary();
    let cases: Vec<(&str, Value, &str)> = vec![
        ("github", json!({}), "token"),
        ("github", json!({"fields": {}}), "token"),
        ("github", json!({"fields": {"token": ""}}), "token"),
        ("github", json!({"fields": {"token": secret}}), "token"),
        ("github", json!({"fields": {"token": 12}}), "token"),
        (
            "github",
            json!({"fields": {"token": github_token(&secret), "extra": secret}}),
            "extra",
        ),
        (
            "postgres",
            json!({"fields": {"host": secret, "database": "d", "user": "u", "password": secret, "sslmode": "bogus"}}),
            "sslmode",
        ),
        (
            "postgres",
            json!({"fields": {"host": secret, "port": "not-a-number", "database": "d", "user": "u", "password": secret}}),
            "port",
        ),
        (
            "postgres",
            json!({"fields": {"host": secret, "port": 70000, "database": "d", "user": "u", "password": secret}}),
            "port",
        ),
        (
            "postgres",
            json!({"fields": {"host": secret, "database": "d", "password": secret}}),
            "user",
        ),
        (
            "slack",
            json!({"fields": {"user_token": secret}}),
            "user_token",
        ),
        (
            "filesystem",
            json!({"fields": {"directory": "relative/path"}}),
            "directory",
        ),
        (
            "github-oauth-app",
            json!({"fields": {"client_secret": secret}}),
            "client_id",
        ),
    ];
    for (connector, body, field) in cases {
        let res = app
            .post(&install_uri(connector, &ws.id), Some(&owner), body.clone())
            .await;
        res.assert_status(400);
        let err = res.json()["error"].as_str().unwrap().to_string();
        assert!(
            err.contains(&format!("`{field}`")),
            "{connector} {body}: {err}"
        );
        assert!(
            !res.text().contains(&secret),
            "{connector}: value echoed: {err}"
        );
    }
}

async fn body_errors(db: Db) {
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    let uri = install_uri("github", &ws.id);
    for (body, needle) in [
        (&b"not json"[..], "JSON"),
        (b"[1, 2]", "object"),
        (br#"{"fields": "token"}"#, "fields"),
        (br#"{"fields": {"token": "ghp_0123456789012345678901234567890123456789"}, "scope": "x"}"#, "scope"),
        (br#"{"name": "", "fields": {"token": "ghp_0123456789012345678901234567890123456789"}}"#, "name"),
        (br#"{"name": 5, "fields": {"token": "ghp_0123456789012345678901234567890123456789"}}"#, "name"),
        (br#"{"crew_id": 5, "fields": {"token": "ghp_0123456789012345678901234567890123456789"}}"#, "crew_id"),
    ] {
        let res = app
            .raw(Method::POST, &uri, Some(&owner), &[], Some(body.to_vec()))
            .await;
        res.assert_status(400);
        assert!(
            res.json()["error"].as_str().unwrap().contains(needle),
            "{}: {}",
            String::from_utf8_lossy(body),
            res.text()
        );
    }
    // A body over 1 MiB.
    let huge = format!(r#"{{"name": "{}"}}"#, "x".repeat(1024 * 1024 + 10));
    app.raw(
        Method::POST,
        &uri,
        Some(&owner),
        &[],
        Some(huge.into_bytes()),
    )
    .await
    .assert_status(413);
}

async fn crews(db: Db) {
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    let (other_ws, _) = app.workspace().await;
    let crew = app.db.store.create_crew(&ws.id, "Support").await.unwrap();
    let foreign = app
        .db
        .store
        .create_crew(&other_ws.id, "Elsewhere")
        .await
        .unwrap();
    let fields = json!({"directory": "/data"});
    for bad in ["cunknowncrew000000000000", foreign.id.as_str(), ""] {
        let res = app
            .post(
                &install_uri("filesystem", &ws.id),
                Some(&owner),
                json!({"crew_id": bad, "fields": fields}),
            )
            .await;
        res.assert_status(400);
        assert!(res.json()["error"].as_str().unwrap().contains("crew_id"));
    }
    let scoped = install(
        &app,
        &owner,
        &ws,
        "filesystem",
        json!({"crew_id": crew.id, "fields": fields}),
    )
    .await;
    let scoped_id = scoped["integration_id"].as_str().unwrap();
    let whole = install(&app, &owner, &ws, "time", json!({})).await;
    assert_eq!(
        get_integration(&app, &owner, scoped_id).await["crew_id"],
        crew.id
    );
    let list = app
        .get(
            &format!(
                "/api/v1/integrations?workspace_id={}&crew_id={}",
                ws.id, crew.id
            ),
            Some(&owner),
        )
        .await
        .json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], scoped_id);
    let all = app
        .get(
            &format!("/api/v1/integrations?workspace_id={}", ws.id),
            Some(&owner),
        )
        .await
        .json();
    assert_eq!(all.as_array().unwrap().len(), 2);
    assert_eq!(all[1]["id"], whole["integration_id"]);
}

async fn nothing_written_on_failure(db: Db) {
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    for body in [
        json!({"fields": {"token": "short"}}),
        json!({"crew_id": "cunknowncrew000000000000", "fields": {"token": github_token("x")}}),
    ] {
        app.post(&install_uri("github", &ws.id), Some(&owner), body)
            .await
            .assert_status(400);
    }
    assert!(app
        .db
        .store
        .list_integrations(&ws.id, None)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(app.db.store.count_secrets().await.unwrap(), 0);
}

async fn post_with_key(
    app: &TestApp,
    token: &str,
    uri: &str,
    key: &str,
    body: &Value,
) -> plugboard_server::testing::TestResponse {
    app.raw(
        Method::POST,
        uri,
        Some(token),
        &[("idempotency-key", key)],
        Some(body.to_string().into_bytes()),
    )
    .await
}

async fn idempotent_retry(db: Db) {
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    let uri = install_uri("github-oauth-app", &ws.id);
    let body =
        json!({"name": "GH", "fields": {"client_id": "client-abc", "client_secret": "s3cret"}});
    let first = post_with_key(&app, &owner, &uri, "retry-1", &body).await;
    first.assert_status(201);
    assert!(first.headers.get("idempotent-replayed").is_none());
    // Same request, keys in another order: the same response, byte for byte.
    let reordered =
        json!({"fields": {"client_secret": "s3cret", "client_id": "client-abc"}, "name": "GH"});
    let second = post_with_key(&app, &owner, &uri, "retry-1", &reordered).await;
    second.assert_status(201);
    assert_eq!(second.body, first.body);
    assert_eq!(second.headers["idempotent-replayed"], "true");
    assert!(second.json()["oauth_url"]
        .as_str()
        .unwrap()
        .contains("state="));
    assert_eq!(
        app.db
            .store
            .list_integrations(&ws.id, None)
            .await
            .unwrap()
            .len(),
        1
    );
    // Another key is another install; another caller's same key is theirs alone.
    post_with_key(&app, &owner, &uri, "retry-2", &body)
        .await
        .assert_status(201);
    let manager = app.member(&ws, Role::Manager).await;
    let theirs = post_with_key(&app, &manager, &uri, "retry-1", &body).await;
    theirs.assert_status(201);
    assert_ne!(
        theirs.json()["integration_id"],
        first.json()["integration_id"]
    );
    assert_eq!(
        app.db
            .store
            .list_integrations(&ws.id, None)
            .await
            .unwrap()
            .len(),
        3
    );
    // The custom server create honours the header too.
    let custom = json!({"name": "c", "transport": "stdio", "command": "echo"});
    let c1 = post_with_key(
        &app,
        &owner,
        &format!("/api/v1/integrations?workspace_id={}", ws.id),
        "c-1",
        &custom,
    )
    .await;
    c1.assert_status(201);
    let c2 = post_with_key(
        &app,
        &owner,
        &format!("/api/v1/integrations?workspace_id={}", ws.id),
        "c-1",
        &custom,
    )
    .await;
    assert_eq!(c1.body, c2.body);
    assert_eq!(
        app.db
            .store
            .list_integrations(&ws.id, None)
            .await
            .unwrap()
            .len(),
        4
    );
    // The replayable record holds no field value: the oauth_url (client id, state) is sealed with the integration.
    let id = first.json()["integration_id"].as_str().unwrap().to_string();
    let names: Vec<String> = app
        .db
        .store
        .integration_secrets(&IntegrationId::from(&id))
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert!(
        names.contains(&"oauth.authorize_url".to_string()),
        "{names:?}"
    );
    let owner_id = app
        .state
        .tokens
        .authenticate(&owner)
        .await
        .unwrap()
        .unwrap()
        .user_id;
    let record = app
        .db
        .store
        .idempotency_get(&ws.id, &owner_id, "retry-1")
        .await
        .unwrap()
        .unwrap();
    assert!(
        !record.response.contains("state") && !record.response.contains("client-abc"),
        "{}",
        record.response
    );
    // Once that integration is deleted, its result cannot be replayed.
    app.request(
        Method::DELETE,
        &format!("/api/v1/integrations/{id}"),
        Some(&owner),
        None,
    )
    .await
    .assert_status(204);
    let gone = post_with_key(&app, &owner, &uri, "retry-1", &body).await;
    gone.assert_status(409);
    assert_eq!(gone.json()["code"], "idempotent_result_gone");
}

async fn idempotency_reuse(db: Db) {
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    let uri = install_uri("github", &ws.id);
    let body = json!({"fields": {"token": github_token("a")}});
    post_with_key(&app, &owner, &uri, "k", &body)
        .await
        .assert_status(201);
    let other = json!({"fields": {"token": github_token("b")}});
    let res = post_with_key(&app, &owner, &uri, "k", &other).await;
    res.assert_status(422);
    assert_eq!(res.json()["code"], "idempotency_key_reused");
    // Same body against another connector is another request too.
    let res = post_with_key(&app, &owner, &install_uri("time", &ws.id), "k", &body).await;
    res.assert_status(422);
    assert_eq!(
        app.db
            .store
            .list_integrations(&ws.id, None)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn idempotency_race(db: Db) {
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    let uri = install_uri("github", &ws.id);
    let body = json!({"fields": {"token": github_token("race")}});
    let (a, b, c) = tokio::join!(
        post_with_key(&app, &owner, &uri, "race", &body),
        post_with_key(&app, &owner, &uri, "race", &body),
        post_with_key(&app, &owner, &uri, "race", &body),
    );
    for r in [&a, &b, &c] {
        r.assert_status(201);
        assert_eq!(r.body, a.body);
    }
    assert_eq!(
        app.db
            .store
            .list_integrations(&ws.id, None)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(app.db.store.count_secrets().await.unwrap(), 1);
}

async fn idempotency_key_syntax(db: Db) {
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    let uri = install_uri("time", &ws.id);
    let long = "k".repeat(256);
    for key in ["", "has space", long.as_str()] {
        let res = post_with_key(&app, &owner, &uri, key, &json!({})).await;
        res.assert_status(400);
        assert!(res.json()["error"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key"));
    }
    post_with_key(&app, &owner, &uri, &"k".repeat(255), &json!({}))
        .await
        .assert_status(201);
}
