//! The integrations endpoints: list, get, patch, delete, the custom MCP server, the runtime view, the audit log and
//! the authorization matrix. On both backends.

// clippy.toml lets `#[test]` functions unwrap, expect and panic; the helpers and `test_on_both_backends!` bodies of
// an integration test crate are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod integration_support;

use axum::body::Body;
use axum::http::{Method, Request};
use integration_support::*;
use plugboard_catalog::Catalog;
use plugboard_server::testing::{test_on_both_backends, Db, TestApp, TestResponse};
use plugboard_server::{App, Config};
use plugboard_store::{IntegrationId, Role, Workspace};
use serde_json::{json, Value};
use tower::ServiceExt;

test_on_both_backends! {
    an_integration_has_exactly_the_contract_fields => integration_shape;
    listing_needs_a_workspace_and_filters_by_crew => listing;
    an_unknown_integration_is_404 => unknown_integration;
    patch_renames_and_disables => patch_name_enabled;
    patching_fields_merges_validates_and_reseals => patch_fields;
    a_rejected_field_patch_changes_nothing => patch_rejected;
    patch_body_errors_are_400 => patch_body_errors;
    delete_removes_the_integration_and_its_vault_entries => delete_destroys;
    a_custom_http_server_vaults_its_secret_headers => custom_http;
    a_custom_stdio_server_vaults_its_secret_env => custom_stdio;
    a_custom_server_seals_credentials_sent_without_the_secret_mark => custom_unmarked;
    custom_servers_made_before_that_rule_have_such_values_sealed_once_and_later_ones_are_left_as_chosen => custom_old;
    custom_server_bodies_are_validated_strictly => custom_validation;
    the_runtime_view_is_refused_for_disabled_integrations => runtime_disabled;
    every_write_and_every_runtime_read_is_audited_without_values => audit_log;
    the_audit_log_pages_newest_first => audit_pages;
    every_endpoint_answers_every_role_as_specified => authorization_matrix;
    an_integration_whose_connector_left_the_catalog_still_runs => connector_left;
    the_openapi_document_describes_every_integrations_endpoint => openapi_paths;
}

fn list_uri(ws: &Workspace) -> String {
    format!("/api/v1/integrations?workspace_id={}", ws.id)
}

fn custom_uri(ws: &Workspace) -> String {
    format!("/api/v1/integrations?workspace_id={}", ws.id)
}

async fn create_custom(app: &TestApp, token: &str, ws: &Workspace, body: Value) -> TestResponse {
    app.post(&custom_uri(ws), Some(token), body).await
}

/// A custom server made through the API (201); its id.
async fn custom_id(app: &TestApp, token: &str, ws: &Workspace, body: Value) -> String {
    let res = create_custom(app, token, ws, body).await;
    res.assert_status(201);
    res.json()["integration_id"].as_str().unwrap().to_string()
}

async fn integration_shape(db: Db) {
    let app = TestApp::new(db).await;
    let team = app.team().await;
    let owner = team.owner.token().unwrap();
    let id = install_github(&app, owner, &team.ws, &github_token("shape")).await;
    let v = team
        .owner
        .get(&format!("/api/v1/integrations/{id}"))
        .await
        .json();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "auth_mode",
            "connector_id",
            "created_at",
            "created_by",
            "crew_id",
            "enabled",
            "id",
            "mcp",
            "name",
            "status",
            "tool_prefix",
            "tools",
            "updated_at",
            "workspace_id"
        ]
    );
    assert_eq!(v["id"], id);
    assert_eq!(v["workspace_id"], *team.id());
    assert!(
        v["created_at"].as_i64().unwrap() > 1_600_000_000_000,
        "epoch ms"
    );
    assert_eq!(v["created_at"], v["updated_at"]);
    let list = team.owner.get(&list_uri(&team.ws)).await.json();
    assert_eq!(list, json!([v]));
}

async fn listing(db: Db) {
    let app = TestApp::new(db).await;
    let team = app.team().await;
    let other = app.team().await;
    let foreign_crew = app.db.store.create_crew(other.id(), "x").await.unwrap();
    team.owner
        .get("/api/v1/integrations")
        .await
        .assert_status(400);
    let empty = team.owner.get(&list_uri(&team.ws)).await;
    empty.assert_status(200);
    assert_eq!(empty.json(), json!([]));
    let res = team
        .owner
        .get(&format!(
            "{}&crew_id={}",
            list_uri(&team.ws),
            foreign_crew.id
        ))
        .await;
    res.assert_status(400);
    assert!(res.json()["error"].as_str().unwrap().contains("crew_id"));
}

async fn unknown_integration(db: Db) {
    let app = TestApp::new(db).await;
    let team = app.team().await;
    // An unknown id, and an id of another shape (answered the same, without a lookup).
    for id in ["cnosuchintegration000000", "not-an-id"] {
        let uri = format!("/api/v1/integrations/{id}");
        for (what, res) in [
            ("GET", team.owner.get(&uri).await),
            ("PATCH", team.owner.patch(&uri, json!({"name": "x"})).await),
            ("DELETE", team.owner.delete(&uri).await),
            (
                "GET runtime",
                team.owner.get(&format!("{uri}/runtime")).await,
            ),
        ] {
            res.assert_status(404);
            assert_eq!(res.json()["code"], "not_found", "{what} {id}");
        }
    }
}

async fn patch_name_enabled(db: Db) {
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    let manager = app.member(&ws, Role::Manager).await;
    let id = install_github(&app, &owner, &ws, &github_token("p")).await;
    let before = app
        .db
        .store
        .integration_secrets(&IntegrationId::from(&id))
        .await
        .unwrap();
    let res = patch(
        &app,
        &manager,
        &id,
        json!({"name": "  Renamed  ", "enabled": false}),
    )
    .await;
    res.assert_status(200);
    let v = res.json();
    assert_eq!(v["name"], "Renamed");
    assert_eq!(v["enabled"], false);
    assert!(v["updated_at"].as_i64() >= v["created_at"].as_i64());
    assert_eq!(v["mcp"]["headers"]["Authorization"], "Bearer ********");
    // Secrets untouched by a rename.
    assert_eq!(
        app.db
            .store
            .integration_secrets(&IntegrationId::from(&id))
            .await
            .unwrap(),
        before
    );
    let res = patch(&app, &manager, &id, json!({"enabled": true})).await;
    assert_eq!(res.json()["enabled"], true);
    assert_eq!(res.json()["name"], "Renamed");
}

async fn patch_fields(db: Db) {
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    let old = github_token("old");
    let new = github_token("new");
    let id = install_github(&app, &owner, &ws, &old).await;
    let before = app
        .db
        .store
        .integration_secrets(&IntegrationId::from(&id))
        .await
        .unwrap();
    let res = patch(&app, &owner, &id, json!({"fields": {"token": new}})).await;
    res.assert_status(200);
    assert!(!res.text().contains(&new));
    let after = app
        .db
        .store
        .integration_secrets(&IntegrationId::from(&id))
        .await
        .unwrap();
    assert_eq!(after.len(), 1);
    assert_ne!(after[0].ciphertext, before[0].ciphertext, "re-sealed");
    let rt = runtime(&app, &owner, &id).await.json();
    assert_eq!(
        rt["mcp"]["headers"]["Authorization"],
        format!("Bearer {new}")
    );

    // A partial patch merges over the current values: only the password changes.
    let pg = install(
        &app,
        &owner,
        &ws,
        "postgres",
        json!({"fields": {"host": "db.example.com", "database": "app", "user": "ro", "password": "one"}}),
    )
    .await["integration_id"]
        .as_str()
        .unwrap()
        .to_string();
    patch(
        &app,
        &owner,
        &pg,
        json!({"fields": {"password": "two", "port": 6543}}),
    )
    .await
    .assert_status(200);
    let rt = runtime(&app, &owner, &pg).await.json();
    assert_eq!(rt["mcp"]["env"]["POSTGRES_PASSWORD"], "two");
    assert_eq!(rt["mcp"]["env"]["POSTGRES_PORT"], "6543");
    assert_eq!(rt["mcp"]["env"]["POSTGRES_USER"], "ro");
    assert_eq!(rt["mcp"]["env"]["POSTGRES_QUERY_PARAMS"], "sslmode=prefer");
    // `null` clears a value (the default applies again).
    patch(&app, &owner, &pg, json!({"fields": {"port": null}}))
        .await
        .assert_status(200);
    let rt = runtime(&app, &owner, &pg).await.json();
    assert_eq!(rt["mcp"]["env"]["POSTGRES_PORT"], "5432");
    assert_eq!(rt["mcp"]["env"]["POSTGRES_PASSWORD"], "two");

    // byo_oauth: the field entries are replaced, the PKCE verifier is kept as it was.
    let byo = install(
        &app,
        &owner,
        &ws,
        "github-oauth-app",
        json!({"fields": {"client_id": "a", "client_secret": "b"}}),
    )
    .await["integration_id"]
        .as_str()
        .unwrap()
        .to_string();
    let verifier = |rows: &[plugboard_store::SecretRow]| {
        rows.iter()
            .find(|r| r.name == "oauth.pkce_verifier")
            .cloned()
            .unwrap()
    };
    let v1 = verifier(
        &app.db
            .store
            .integration_secrets(&IntegrationId::from(&byo))
            .await
            .unwrap(),
    );
    patch(
        &app,
        &owner,
        &byo,
        json!({"fields": {"client_secret": "c"}}),
    )
    .await
    .assert_status(200);
    let rows = app
        .db
        .store
        .integration_secrets(&IntegrationId::from(&byo))
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(verifier(&rows), v1);
    let secret_row = rows
        .iter()
        .find(|r| r.name == "field.client_secret")
        .unwrap();
    let opened = app.state.vault.open(secret_row).await.unwrap();
    assert_eq!(opened.expose(), b"c");
}

async fn patch_rejected(db: Db) {
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    let pat = github_token("keep");
    let id = install_github(&app, &owner, &ws, &pat).await;
    let before = app
        .db
        .store
        .get_integration(&IntegrationId::from(&id))
        .await
        .unwrap()
        .unwrap();
    let secrets = app
        .db
        .store
        .integration_secrets(&IntegrationId::from(&id))
        .await
        .unwrap();
    for (body, needle) in [
        (
            json!({"name": "new name", "fields": {"token": "short"}}),
            "`token`",
        ),
        (json!({"fields": {"nope": "x"}}), "`nope`"),
        (json!({"fields": {"token": 5}}), "`token`"),
    ] {
        let res = patch(&app, &owner, &id, body).await;
        res.assert_status(400);
        assert!(
            res.json()["error"].as_str().unwrap().contains(needle),
            "{}",
            res.text()
        );
        assert!(!res.text().contains("short"));
    }
    assert_eq!(
        app.db
            .store
            .get_integration(&IntegrationId::from(&id))
            .await
            .unwrap()
            .unwrap(),
        before
    );
    assert_eq!(
        app.db
            .store
            .integration_secrets(&IntegrationId::from(&id))
            .await
            .unwrap(),
        secrets
    );
    let rt = runtime(&app, &owner, &id).await.json();
    assert_eq!(
        rt["mcp"]["headers"]["Authorization"],
        format!("Bearer {pat}")
    );
}

async fn patch_body_errors(db: Db) {
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    let id = install_github(&app, &owner, &ws, &github_token("b")).await;
    let custom = create_custom(
        &app,
        &owner,
        &ws,
        json!({"name": "c", "transport": "stdio", "command": "x"}),
    )
    .await
    .json()["integration_id"]
        .as_str()
        .unwrap()
        .to_string();
    let linear = install(&app, &owner, &ws, "linear", json!({})).await["integration_id"]
        .as_str()
        .unwrap()
        .to_string();
    for (target, body, needle) in [
        (&id, json!({}), "at least one"),
        (&id, json!({"status": "active"}), "status"),
        (&id, json!({"name": ""}), "name"),
        (&id, json!({"name": "x".repeat(201)}), "name"),
        (&id, json!({"enabled": "yes"}), "enabled"),
        (&id, json!({"fields": []}), "fields"),
        (&custom, json!({"fields": {"a": "b"}}), "fields"),
        (&linear, json!({"fields": {"a": "b"}}), "`a`"),
    ] {
        let res = patch(&app, &owner, target, body.clone()).await;
        res.assert_status(400);
        assert!(
            res.json()["error"].as_str().unwrap().contains(needle),
            "{body}: {}",
            res.text()
        );
    }
    let res = app
        .raw(
            Method::PATCH,
            &format!("/api/v1/integrations/{id}"),
            Some(&owner),
            &[],
            Some(b"{".to_vec()),
        )
        .await;
    res.assert_status(400);
}

async fn delete_destroys(db: Db) {
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    let byo = install(
        &app,
        &owner,
        &ws,
        "github-oauth-app",
        json!({"fields": {"client_id": "a", "client_secret": "b"}}),
    )
    .await;
    let id = byo["integration_id"].as_str().unwrap().to_string();
    let url = url::Url::parse(byo["oauth_url"].as_str().unwrap()).unwrap();
    let state = url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let keep = install_github(&app, &owner, &ws, &github_token("keep")).await;
    assert_eq!(app.db.store.count_secrets().await.unwrap(), 4);
    let res = app
        .request(
            Method::DELETE,
            &format!("/api/v1/integrations/{id}"),
            Some(&owner),
            None,
        )
        .await;
    res.assert_status(204);
    assert!(res.body.is_empty());
    assert!(app
        .db
        .store
        .integration_secrets(&IntegrationId::from(&id))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(app.db.store.count_secrets().await.unwrap(), 1);
    use sha2::Digest;
    let hash = sha2::Sha256::digest(state.as_bytes()).to_vec();
    assert!(
        app.db
            .store
            .consume_oauth_state(&hash, plugboard_store::now_ms())
            .await
            .unwrap()
            .is_none(),
        "the pending OAuth state went with it"
    );
    app.get(&format!("/api/v1/integrations/{id}"), Some(&owner))
        .await
        .assert_status(404);
    app.request(
        Method::DELETE,
        &format!("/api/v1/integrations/{id}"),
        Some(&owner),
        None,
    )
    .await
    .assert_status(404);
    runtime(&app, &owner, &keep).await.assert_status(200);
}

async fn custom_http(db: Db) {
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    let secret = canary();
    let res = create_custom(
        &app,
        &owner,
        &ws,
        json!({
            "name": "Internal tools",
            "transport": "streamable-http",
            "endpoint": "https://mcp.internal.example.com/mcp?tenant=7",
            "headers": {
                "Authorization": {"value": format!("Bearer {secret}"), "secret": true},
                "X-Team": "platform",
                "X-Literal": "${field.header_0}",
                "X-Plain-Object": {"value": "visible", "secret": false}
            }
        }),
    )
    .await;
    res.assert_status(201);
    let body = res.json();
    assert_eq!(
        body,
        json!({"integration_id": body["integration_id"], "next_step": ""})
    );
    let id = body["integration_id"].as_str().unwrap();
    let v = app
        .get(&format!("/api/v1/integrations/{id}"), Some(&owner))
        .await
        .json();
    assert_eq!(v["connector_id"], Value::Null);
    assert_eq!(v["auth_mode"], "custom");
    assert_eq!(v["status"], "active");
    assert_eq!(
        v["mcp"],
        json!({"transport": "streamable-http", "endpoint": "https://mcp.internal.example.com/mcp?tenant=7",
               "headers": {"Authorization": "********", "X-Team": "platform", "X-Literal": "${field.header_0}",
                           "X-Plain-Object": "visible"}})
    );
    let rows = app
        .db
        .store
        .integration_secrets(&IntegrationId::from(id))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let rt = runtime(&app, &owner, id).await.json();
    assert_eq!(
        rt["mcp"]["headers"],
        json!({"Authorization": format!("Bearer {secret}"), "X-Team": "platform",
               "X-Literal": "${field.header_0}", "X-Plain-Object": "visible"})
    );
    // SSE too.
    create_custom(
        &app,
        &owner,
        &ws,
        json!({"name": "legacy", "transport": "sse", "endpoint": "http://legacy.example.com/sse"}),
    )
    .await
    .assert_status(201);
}

async fn custom_unmarked(db: Db) {
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    let secret = canary();
    let id = custom_id(
        &app,
        &owner,
        &ws,
        json!({
            "name": "Unmarked",
            "transport": "streamable-http",
            "endpoint": "https://mcp.internal.example.com/mcp",
            "headers": {
                "Authorization": format!("Bearer {secret}"),
                "X-Team": "platform",
                "X-Session-Region": {"value": "eu", "secret": false}
            }
        }),
    )
    .await;
    let v = app
        .get(&format!("/api/v1/integrations/{id}"), Some(&owner))
        .await;
    assert!(!v.text().contains(&secret));
    assert_eq!(
        v.json()["mcp"]["headers"],
        json!({"Authorization": "********", "X-Team": "platform", "X-Session-Region": "eu"})
    );
    let rows = app
        .db
        .store
        .integration_secrets(&IntegrationId::from(id.as_str()))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "the Authorization value is a vault entry");
    let rt = runtime(&app, &owner, &id).await.json();
    assert_eq!(
        rt["mcp"]["headers"]["Authorization"],
        format!("Bearer {secret}")
    );

    let id = custom_id(
        &app,
        &owner,
        &ws,
        json!({"name": "Unmarked stdio", "transport": "stdio", "command": "run",
               "env": {"OPENAI_API_KEY": secret, "LOG_LEVEL": "debug"}}),
    )
    .await;
    let v = app
        .get(&format!("/api/v1/integrations/{id}"), Some(&owner))
        .await
        .json();
    assert_eq!(
        v["mcp"]["env"],
        json!({"OPENAI_API_KEY": "********", "LOG_LEVEL": "debug"})
    );
    let rt = runtime(&app, &owner, &id).await.json();
    assert_eq!(rt["mcp"]["env"]["OPENAI_API_KEY"], secret.as_str());
}

async fn custom_old(db: Db) {
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    let secret = canary();
    let create = |body: Value| custom_id(&app, &owner, &ws, body);
    // Both hold a credential in the clear; the first stands for a server made before the rule (the migration lists
    // those), the second was made since with `"secret": false` on purpose.
    let old = create(json!({"name": "Old", "transport": "streamable-http",
        "endpoint": "https://mcp.internal.example.com/mcp",
        "headers": {"Authorization": {"value": format!("Bearer {secret}"), "secret": false}, "X-Team": "platform"}}))
    .await;
    let chosen = create(
        json!({"name": "Chosen", "transport": "stdio", "command": "run",
        "env": {"GITHUB_TOKEN": {"value": secret, "secret": false}}}),
    )
    .await;
    app.db
        .exec(&format!(
            "INSERT INTO credential_seal_pending (integration_id) VALUES ('{old}')"
        ))
        .await;
    let mcp = |id: String| {
        let app = &app;
        async move {
            app.db
                .store
                .get_integration(&IntegrationId::from(id.as_str()))
                .await
                .unwrap()
                .unwrap()
                .mcp
        }
    };
    assert!(mcp(old.clone()).await.contains(&secret));

    // While another instance runs the pass, this one leaves it to that one.
    let now = plugboard_store::now_ms();
    assert!(
        app.db
            .store
            .try_lease("credential_seal", "elsewhere", "", now, now + 60_000)
            .await
            .unwrap()
            .taken
    );
    assert_eq!(
        plugboard_server::integration::seal_unmarked_credentials(&app.state)
            .await
            .unwrap(),
        0
    );
    assert!(mcp(old.clone()).await.contains(&secret));
    app.db
        .store
        .release_lease("credential_seal", "elsewhere")
        .await
        .unwrap();

    let sealed = plugboard_server::integration::seal_unmarked_credentials(&app.state)
        .await
        .unwrap();
    assert_eq!(sealed, 1);
    assert!(!mcp(old.clone()).await.contains(&secret));
    let v = app
        .get(&format!("/api/v1/integrations/{old}"), Some(&owner))
        .await;
    assert!(!v.text().contains(&secret));
    assert_eq!(
        v.json()["mcp"]["headers"],
        json!({"Authorization": "********", "X-Team": "platform"})
    );
    let rt = runtime(&app, &owner, &old).await.json();
    assert_eq!(
        rt["mcp"]["headers"],
        json!({"Authorization": format!("Bearer {secret}"), "X-Team": "platform"})
    );
    let audit = app
        .get(
            &format!("/api/v1/audit?workspace_id={}", ws.id),
            Some(&owner),
        )
        .await;
    assert!(!audit.text().contains(&secret));
    let sealing = audit.json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["target"] == old.as_str() && e["action"] == "integration.update")
        .cloned()
        .unwrap();
    assert_eq!(
        sealing["detail"]["sealed"],
        json!(["headers.Authorization"])
    );

    // The one kept plain on purpose stays so, and a second pass finds nothing to do.
    assert!(mcp(chosen).await.contains(&secret));
    assert_eq!(
        plugboard_server::integration::seal_unmarked_credentials(&app.state)
            .await
            .unwrap(),
        0
    );
}

async fn custom_stdio(db: Db) {
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    let crew = app.db.store.create_crew(&ws.id, "Ops").await.unwrap();
    let secret = canary();
    let res = create_custom(
        &app,
        &owner,
        &ws,
        json!({
            "name": "Local tool",
            "crew_id": crew.id,
            "transport": "stdio",
            "command": "uvx",
            "args": ["my-mcp", "--verbose", "$HOME/${x}"],
            "env": {"API_KEY": {"value": secret, "secret": true}, "LOG_LEVEL": "debug"}
        }),
    )
    .await;
    res.assert_status(201);
    let id = res.json()["integration_id"].as_str().unwrap().to_string();
    let v = app
        .get(&format!("/api/v1/integrations/{id}"), Some(&owner))
        .await
        .json();
    assert_eq!(v["crew_id"], crew.id);
    assert_eq!(
        v["mcp"],
        json!({"transport": "stdio", "command": "uvx", "args": ["my-mcp", "--verbose", "$HOME/${x}"],
               "env": {"API_KEY": "********", "LOG_LEVEL": "debug"}})
    );
    let rt = runtime(&app, &owner, &id).await.json();
    assert_eq!(rt["mcp"]["env"]["API_KEY"], secret.as_str());
    assert_eq!(rt["mcp"]["args"][2], "$HOME/${x}");
}

async fn custom_validation(db: Db) {
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    let (other, _) = app.workspace().await;
    let foreign = app.db.store.create_crew(&other.id, "x").await.unwrap();
    let http = |extra: Value| {
        let mut b = json!({"name": "n", "transport": "streamable-http", "endpoint": "https://x.example.com/mcp"});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let stdio = |extra: Value| {
        let mut b = json!({"name": "n", "transport": "stdio", "command": "npx"});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let many: serde_json::Map<String, Value> =
        (0..65).map(|i| (format!("X-H{i}"), json!("v"))).collect();
    let many_env: serde_json::Map<String, Value> =
        (0..65).map(|i| (format!("E{i}"), json!("v"))).collect();
    let cases: Vec<(Value, &str)> = vec![
        (json!({"transport": "stdio", "command": "x"}), "name"),
        (http(json!({"name": "  "})), "name"),
        (http(json!({"name": "bad\nname"})), "name"),
        (json!({"name": "n"}), "transport"),
        (http(json!({"transport": "websocket"})), "transport"),
        (http(json!({"endpoint": null})), "endpoint"),
        (
            http(json!({"endpoint": "ftp://x.example.com/"})),
            "endpoint",
        ),
        (http(json!({"endpoint": "not a url"})), "endpoint"),
        (
            http(json!({"endpoint": "https://user:pw@x.example.com/"})),
            "endpoint",
        ),
        (
            http(json!({"endpoint": "https://x.example.com/#frag"})),
            "endpoint",
        ),
        (
            http(json!({"endpoint": format!("https://x.example.com/{}", "a".repeat(2100))})),
            "endpoint",
        ),
        (http(json!({"command": "npx"})), "command"),
        (http(json!({"env": {"A": "b"}})), "env"),
        (http(json!({"headers": []})), "headers"),
        (http(json!({"headers": {"Bad Header": "v"}})), "Bad Header"),
        (http(json!({"headers": {"Host": "evil"}})), "Host"),
        (
            http(json!({"headers": {"Content-Length": "1"}})),
            "Content-Length",
        ),
        (http(json!({"headers": {"X-A": "line\r\nbreak"}})), "X-A"),
        (http(json!({"headers": {"X-A": 5}})), "X-A"),
        (
            http(json!({"headers": {"X-A": {"value": "v", "secret": "yes"}}})),
            "secret",
        ),
        (
            http(json!({"headers": {"X-A": {"value": "v", "extra": 1}}})),
            "extra",
        ),
        (http(json!({"headers": {"X-A": {"secret": true}}})), "value"),
        (http(json!({"headers": {"X-A": "a", "x-a": "b"}})), "x-a"),
        (http(json!({"headers": many})), "headers"),
        (
            http(json!({"headers": {"X-A": "v".repeat(16 * 1024 + 1)}})),
            "X-A",
        ),
        (stdio(json!({"command": ""})), "command"),
        (stdio(json!({"command": "a\u{0}b"})), "command"),
        (stdio(json!({"command": "x".repeat(1025)})), "command"),
        (
            stdio(json!({"endpoint": "https://x.example.com"})),
            "endpoint",
        ),
        (stdio(json!({"headers": {"A": "b"}})), "headers"),
        (stdio(json!({"args": "a b"})), "args"),
        (stdio(json!({"args": [1]})), "args[0]"),
        (stdio(json!({"args": vec!["a"; 65]})), "args"),
        (stdio(json!({"env": {"1BAD": "v"}})), "1BAD"),
        (stdio(json!({"env": {"A-B": "v"}})), "A-B"),
        (stdio(json!({"env": {"A": "nul\u{0}"}})), "NUL"),
        (stdio(json!({"env": many_env})), "env"),
        (stdio(json!({"crew_id": foreign.id})), "crew_id"),
        (stdio(json!({"surprise": 1})), "surprise"),
    ];
    for (body, needle) in cases {
        let res = create_custom(&app, &owner, &ws, body.clone()).await;
        res.assert_status(400);
        let text = res.text();
        assert!(
            res.json()["error"].as_str().unwrap().contains(needle),
            "{}: {text}",
            body.to_string().chars().take(200).collect::<String>()
        );
    }
    let res = app
        .raw(Method::POST, &custom_uri(&ws), Some(&owner), &[], None)
        .await;
    res.assert_status(400);
    assert!(app
        .db
        .store
        .list_integrations(&ws.id, None)
        .await
        .unwrap()
        .is_empty());
}

async fn runtime_disabled(db: Db) {
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    let id = install_github(&app, &owner, &ws, &github_token("d")).await;
    patch(&app, &owner, &id, json!({"enabled": false}))
        .await
        .assert_status(200);
    let res = runtime(&app, &owner, &id).await;
    res.assert_status(409);
    assert_eq!(res.json()["code"], "integration_disabled");
}

async fn audit_log(db: Db) {
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    let (other, other_owner) = app.workspace().await;
    let pat = github_token(&canary());
    let id = install_github(&app, &owner, &ws, &pat).await;
    patch(
        &app,
        &owner,
        &id,
        json!({"name": "n", "fields": {"token": pat}}),
    )
    .await
    .assert_status(200);
    runtime(&app, &owner, &id).await.assert_status(200);
    let custom = create_custom(
        &app,
        &owner,
        &ws,
        json!({"name": "c", "transport": "stdio", "command": "x", "env": {"K": {"value": pat, "secret": true}}}),
    )
    .await
    .json()["integration_id"]
        .as_str()
        .unwrap()
        .to_string();
    app.request(
        Method::DELETE,
        &format!("/api/v1/integrations/{custom}"),
        Some(&owner),
        None,
    )
    .await
    .assert_status(204);
    install_github(&app, &other_owner, &other, &github_token("other")).await;

    let res = app
        .get(
            &format!("/api/v1/audit?workspace_id={}", ws.id),
            Some(&owner),
        )
        .await;
    res.assert_status(200);
    assert!(!res.text().contains(&pat));
    let page = res.json();
    let entries = page["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "integration.delete",
            "integration.create",
            "integration.runtime_read",
            "integration.update",
            "integration.install"
        ]
    );
    assert_eq!(page["next_before"], Value::Null);
    let install = &entries[4];
    assert_eq!(install["target"], id);
    assert_eq!(install["workspace_id"], ws.id);
    assert!(install["actor_id"].is_string());
    assert_eq!(install["detail"]["connector_id"], "github");
    assert_eq!(install["detail"]["auth_mode"], "pat");
    assert_eq!(entries[3]["detail"]["changed"], json!(["name", "fields"]));
    assert_eq!(entries[3]["detail"]["fields"], json!(["token"]));
    assert_eq!(entries[2]["target"], id);
    assert_eq!(entries[1]["detail"]["connector_id"], Value::Null);
    for w in entries.windows(2) {
        assert!(w[0]["created_at"].as_i64() >= w[1]["created_at"].as_i64());
    }
}

async fn audit_pages(db: Db) {
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    let id = install_github(&app, &owner, &ws, &github_token("pages")).await;
    for _ in 0..6 {
        runtime(&app, &owner, &id).await.assert_status(200);
    }
    let mut seen = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let mut uri = format!("/api/v1/audit?workspace_id={}&limit=3", ws.id);
        if let Some(b) = &before {
            uri.push_str(&format!("&before={b}"));
        }
        let page = app.get(&uri, Some(&owner)).await.json();
        let entries = page["entries"].as_array().unwrap().clone();
        assert!(entries.len() <= 3);
        seen.extend(
            entries
                .into_iter()
                .map(|e| e["id"].as_str().unwrap().to_string()),
        );
        match page["next_before"].as_str() {
            Some(b) => before = Some(b.to_string()),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 7, "{seen:?}");
    assert_eq!(seen.len(), 7);
    for bad in [
        "limit=0",
        "limit=201",
        "limit=x",
        "before=yesterday",
        "before=1.a'b",
    ] {
        app.get(
            &format!("/api/v1/audit?workspace_id={}&{bad}", ws.id),
            Some(&owner),
        )
        .await
        .assert_status(400);
    }
    app.get("/api/v1/audit", Some(&owner))
        .await
        .assert_status(400);
}

#[derive(Clone, Copy, Debug)]
enum Caller {
    Anonymous,
    Outsider,
    Role(Role),
}

#[derive(Clone, Copy, Debug)]
enum Endpoint {
    List,
    Get,
    Patch,
    Delete,
    CreateCustom,
    Runtime,
    Install,
    Audit,
}

/// Who may do what: the minimum role per endpoint (anonymous: 401; a member of another workspace: 403).
fn min_role(e: Endpoint) -> Role {
    match e {
        Endpoint::List | Endpoint::Get => Role::Viewer,
        Endpoint::Patch | Endpoint::Delete | Endpoint::CreateCustom | Endpoint::Install => {
            Role::Manager
        }
        Endpoint::Runtime | Endpoint::Audit => Role::Admin,
    }
}

fn success(e: Endpoint) -> u16 {
    match e {
        Endpoint::Delete => 204,
        Endpoint::CreateCustom | Endpoint::Install => 201,
        _ => 200,
    }
}

async fn authorization_matrix(db: Db) {
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    let (_, outsider) = app.workspace().await;
    let mut tokens = vec![
        (Caller::Anonymous, None),
        (Caller::Outsider, Some(outsider)),
    ];
    for role in Role::ALL {
        let t = if role == Role::Owner {
            owner.clone()
        } else {
            app.member(&ws, role).await
        };
        tokens.push((Caller::Role(role), Some(t)));
    }
    let endpoints = [
        Endpoint::List,
        Endpoint::Get,
        Endpoint::Patch,
        Endpoint::Delete,
        Endpoint::CreateCustom,
        Endpoint::Runtime,
        Endpoint::Install,
        Endpoint::Audit,
    ];
    let shared = install_github(&app, &owner, &ws, &github_token("matrix")).await;
    let mut checked = 0;
    for endpoint in endpoints {
        for (caller, token) in &tokens {
            let expected = match caller {
                Caller::Anonymous => 401,
                Caller::Outsider => 403,
                Caller::Role(r) if *r >= min_role(endpoint) => success(endpoint),
                Caller::Role(_) => 403,
            };
            // Deletes get an integration of their own.
            let target = if matches!(endpoint, Endpoint::Delete) {
                install_github(&app, &owner, &ws, &github_token("victim")).await
            } else {
                shared.clone()
            };
            let (method, uri, body) = match endpoint {
                Endpoint::List => (Method::GET, list_uri(&ws), None),
                Endpoint::Get => (Method::GET, format!("/api/v1/integrations/{target}"), None),
                Endpoint::Patch => (
                    Method::PATCH,
                    format!("/api/v1/integrations/{target}"),
                    Some(json!({"name": "renamed"})),
                ),
                Endpoint::Delete => (
                    Method::DELETE,
                    format!("/api/v1/integrations/{target}"),
                    None,
                ),
                Endpoint::CreateCustom => (
                    Method::POST,
                    custom_uri(&ws),
                    Some(json!({"name": "c", "transport": "stdio", "command": "x"})),
                ),
                Endpoint::Runtime => (
                    Method::GET,
                    format!("/api/v1/integrations/{target}/runtime"),
                    None,
                ),
                Endpoint::Install => (Method::POST, install_uri("time", &ws.id), Some(json!({}))),
                Endpoint::Audit => (
                    Method::GET,
                    format!("/api/v1/audit?workspace_id={}", ws.id),
                    None,
                ),
            };
            let res = app.request(method, &uri, token.as_deref(), body).await;
            assert_eq!(
                res.status.as_u16(),
                expected,
                "{endpoint:?} as {caller:?}: {}",
                res.text()
            );
            if expected >= 400 {
                res.assert_status(expected);
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 8 * 7);
}

/// Sends a request to a second router (another instance on the same database).
async fn send(
    router: &axum::Router,
    method: Method,
    uri: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"));
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(
            body.map(|b| Body::from(b.to_string()))
                .unwrap_or_else(Body::empty),
        )
        .unwrap();
    let res = router.clone().oneshot(req).await.unwrap();
    let status = res.status().as_u16();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn connector_left(db: Db) {
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    let pat = github_token("left");
    let id = install_github(&app, &owner, &ws, &pat).await;
    // Another instance on the same database and master key, whose catalog no longer has `github`.
    let data_dir = app.db.data_dir.clone().unwrap();
    let mut config = Config::for_tests(data_dir, app.db.url.clone());
    config.master_key = Some(app.master_key().into());
    let state = App::with_parts(config, app.db.store.clone(), Catalog::empty())
        .await
        .unwrap();
    let router = plugboard_server::router(state);
    let (status, v) = send(
        &router,
        Method::GET,
        &format!("/api/v1/integrations/{id}"),
        &owner,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["mcp"]["headers"]["Authorization"], "Bearer ********");
    let (status, v) = send(
        &router,
        Method::GET,
        &format!("/api/v1/integrations/{id}/runtime"),
        &owner,
        None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["mcp"]["headers"]["Authorization"],
        format!("Bearer {pat}")
    );
    let (status, v) = send(
        &router,
        Method::PATCH,
        &format!("/api/v1/integrations/{id}"),
        &owner,
        Some(json!({"fields": {"token": github_token("x")}})),
    )
    .await;
    assert_eq!(status, 409, "{v}");
    assert!(v["error"]
        .as_str()
        .unwrap()
        .contains("no longer in the catalog"));
    let (status, _) = send(
        &router,
        Method::PATCH,
        &format!("/api/v1/integrations/{id}"),
        &owner,
        Some(json!({"name": "still renamable"})),
    )
    .await;
    assert_eq!(status, 200);
}

async fn openapi_paths(db: Db) {
    let app = TestApp::new(db).await;
    let doc = app.get("/api/openapi.json", None).await.json();
    let paths = &doc["paths"];
    for (path, method) in [
        ("/api/v1/connectors/{connector_id}/install", "post"),
        ("/api/v1/integrations", "get"),
        ("/api/v1/integrations", "post"),
        ("/api/v1/integrations/{integration_id}", "get"),
        ("/api/v1/integrations/{integration_id}", "patch"),
        ("/api/v1/integrations/{integration_id}", "delete"),
        ("/api/v1/integrations/{integration_id}/runtime", "get"),
        ("/api/v1/audit", "get"),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path} missing");
    }
    for schema in [
        "IntegrationBody",
        "InstallBody",
        "CustomServerRequest",
        "AuditPage",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "{schema} missing"
        );
    }
}
