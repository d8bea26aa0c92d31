//! The catalog read API, authentication and the HTTP conventions, through the router.

// clippy.toml lets `#[test]` functions unwrap, expect and panic; the helpers and `test_on_both_backends!` bodies of
// an integration test crate are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::http::Method;
use plugboard_catalog::{parse_manifest, Catalog};
use plugboard_server::testing::{test_on_both_backends, Db, TestApp};

test_on_both_backends! {
    listing_the_catalog_needs_a_bearer_token => list_needs_token;
    unknown_malformed_and_revoked_tokens_are_refused => bad_tokens;
    a_token_revoked_elsewhere_fails_within_one_second => revoked_elsewhere;
    the_list_has_exactly_the_seven_tile_fields_in_catalog_order => list_shape;
    get_returns_the_manifest_verbatim => get_verbatim;
    an_unknown_connector_is_404_with_the_error_body => get_unknown;
    etags_let_clients_skip_unchanged_bodies => etags;
    readyz_reports_the_database => readyz;
}

async fn list_needs_token(db: Db) {
    let app = TestApp::new(db).await;
    let res = app.get("/api/v1/connectors", None).await;
    res.assert_status(401);
    assert_eq!(res.json()["code"], "unauthenticated");
    assert_eq!(res.headers["www-authenticate"], "Bearer");
    let res = app.get("/api/v1/connectors/github", None).await;
    res.assert_status(401);
}

async fn bad_tokens(db: Db) {
    let app = TestApp::new(db).await;
    let (user, token) = app.user("ada@example.com").await;
    app.get("/api/v1/connectors", Some(&token))
        .await
        .assert_status(200);
    for bad in [
        "",
        "pb_",
        "nonsense",
        "pb_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        &format!("{token}x"),
    ] {
        app.get("/api/v1/connectors", Some(bad))
            .await
            .assert_status(401);
    }
    for header in ["Basic abc", "Bearer", "bearer", "Token pb_x", "Bearer  "] {
        let res = app
            .raw(
                Method::GET,
                "/api/v1/connectors",
                None,
                &[("authorization", header)],
                None,
            )
            .await;
        res.assert_status(401);
    }
    // Scheme is case-insensitive.
    let lower = format!("bearer {token}");
    let res = app
        .raw(
            Method::GET,
            "/api/v1/connectors",
            None,
            &[("authorization", &lower)],
            None,
        )
        .await;
    res.assert_status(200);
    let _ = user;
}

async fn revoked_elsewhere(db: Db) {
    let app = TestApp::new(db).await;
    let (user, token) = app.user("ada@example.com").await;
    app.get("/api/v1/connectors", Some(&token))
        .await
        .assert_status(200);
    // A second token: created directly in the database, as the CLI in another process would.
    let (second, hash) = plugboard_server::auth::generate_token();
    let rec = app
        .db
        .store
        .create_token(&user.id, "cli", &hash)
        .await
        .unwrap();
    app.get("/api/v1/connectors", Some(&second))
        .await
        .assert_status(200);
    app.db.store.revoke_token(&rec.id).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    app.get("/api/v1/connectors", Some(&second))
        .await
        .assert_status(401);
    app.get("/api/v1/connectors", Some(&token))
        .await
        .assert_status(200);
}

async fn list_shape(db: Db) {
    let app = TestApp::new(db).await;
    let (_, token) = app.user("ada@example.com").await;
    let res = app.get("/api/v1/connectors", Some(&token)).await;
    res.assert_status(200);
    assert_eq!(res.headers["content-type"], "application/json");
    let items = res.json();
    let items = items.as_array().unwrap();
    let builtin = Catalog::builtin().unwrap();
    assert_eq!(items.len(), builtin.len());
    for (item, entry) in items.iter().zip(builtin.entries()) {
        let obj = item.as_object().unwrap();
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "id",
                "name",
                "description",
                "category",
                "auth_mode",
                "brand_logo",
                "brand_color"
            ]
        );
        assert!(obj.values().all(|v| v.is_string()));
        assert_eq!(item["id"], entry.id());
    }
    let modes: std::collections::BTreeSet<&str> = items
        .iter()
        .map(|i| i["auth_mode"].as_str().unwrap())
        .collect();
    assert_eq!(modes.len(), 5, "{modes:?}");
}

async fn get_verbatim(db: Db) {
    let app = TestApp::new(db).await;
    let (_, token) = app.user("ada@example.com").await;
    let builtin = Catalog::builtin().unwrap();
    for entry in builtin.entries() {
        let res = app
            .get(&format!("/api/v1/connectors/{}", entry.id()), Some(&token))
            .await;
        res.assert_status(200);
        assert_eq!(res.json(), entry.raw());
        // Key order is the author's.
        assert_eq!(res.body, serde_json::to_vec(&entry.raw()).unwrap());
    }
}

async fn get_unknown(db: Db) {
    let app = TestApp::new(db).await;
    let (_, token) = app.user("ada@example.com").await;
    for id in ["nope", "GitHub", "%00", "a%2Fb", &"x".repeat(5000)] {
        let res = app
            .get(&format!("/api/v1/connectors/{id}"), Some(&token))
            .await;
        res.assert_status(404);
    }
    let res = app.get("/api/v1/nothing-here", Some(&token)).await;
    res.assert_status(404);
}

async fn etags(db: Db) {
    let app = TestApp::new(db).await;
    let (_, token) = app.user("ada@example.com").await;
    for uri in ["/api/v1/connectors", "/api/v1/connectors/github"] {
        let first = app.get(uri, Some(&token)).await;
        first.assert_status(200);
        let etag = first.headers["etag"].to_str().unwrap().to_string();
        let again = app
            .raw(
                Method::GET,
                uri,
                Some(&token),
                &[("if-none-match", &etag)],
                None,
            )
            .await;
        assert_eq!(again.status.as_u16(), 304);
        assert!(again.body.is_empty());
        let weak = format!("\"other\", W/{etag}");
        let again = app
            .raw(
                Method::GET,
                uri,
                Some(&token),
                &[("if-none-match", &weak)],
                None,
            )
            .await;
        assert_eq!(again.status.as_u16(), 304);
        let other = app
            .raw(
                Method::GET,
                uri,
                Some(&token),
                &[("if-none-match", "\"nope\"")],
                None,
            )
            .await;
        other.assert_status(200);
        // Authentication still comes first.
        let anon = app
            .raw(Method::GET, uri, None, &[("if-none-match", &etag)], None)
            .await;
        anon.assert_status(401);
    }
}

async fn readyz(db: Db) {
    let app = TestApp::new(db).await;
    let res = app.get("/readyz", None).await;
    res.assert_status(200);
    assert_eq!(res.json()["status"], "ready");
    app.get("/healthz", None).await.assert_status(200);
}

fn one_manifest_catalog() -> Catalog {
    let yaml = "id: only\nname: Only\nauth_mode: none\nmcp: {transport: stdio, command: npx}\n";
    Catalog::from_entries(vec![parse_manifest("only.yaml", yaml).unwrap()]).unwrap()
}

#[tokio::test]
async fn an_empty_catalog_lists_as_an_empty_array() {
    let db = Db::new(plugboard_server::testing::Backend::Sqlite)
        .await
        .unwrap();
    let app = TestApp::with_catalog(db, Catalog::empty()).await;
    let (_, token) = app.user("ada@example.com").await;
    let res = app.get("/api/v1/connectors", Some(&token)).await;
    res.assert_status(200);
    assert_eq!(res.text(), "[]");
}

#[tokio::test]
async fn a_custom_catalog_replaces_the_built_in_one() {
    let db = Db::new(plugboard_server::testing::Backend::Sqlite)
        .await
        .unwrap();
    let app = TestApp::with_catalog(db, one_manifest_catalog()).await;
    let (_, token) = app.user("ada@example.com").await;
    let res = app.get("/api/v1/connectors", Some(&token)).await;
    assert_eq!(res.json().as_array().unwrap().len(), 1);
    assert_eq!(res.json()[0]["brand_color"], "");
    app.get("/api/v1/connectors/github", Some(&token))
        .await
        .assert_status(404);
}

#[tokio::test]
async fn bodies_over_one_mebibyte_get_413_with_the_error_body() {
    let db = Db::new(plugboard_server::testing::Backend::Sqlite)
        .await
        .unwrap();
    let app = TestApp::new(db).await;
    let (ws, token) = app.workspace().await;
    let big = format!(
        "{{\"fields\":{{\"token\":\"{}\"}}}}",
        "a".repeat(1024 * 1024 + 10)
    );
    for action in ["verify", "install"] {
        let uri = format!("/api/v1/connectors/github/{action}?workspace_id={}", ws.id);
        let res = app
            .raw(
                Method::POST,
                &uri,
                Some(&token),
                &[],
                Some(big.clone().into_bytes()),
            )
            .await;
        res.assert_status(413);
        assert_eq!(res.json()["code"], "payload_too_large");
    }
}

#[tokio::test]
async fn unsupported_methods_get_405_with_the_error_body() {
    let db = Db::new(plugboard_server::testing::Backend::Sqlite)
        .await
        .unwrap();
    let app = TestApp::new(db).await;
    let res = app
        .request(Method::DELETE, "/api/v1/connectors", None, None)
        .await;
    res.assert_status(405);
}

#[tokio::test]
async fn every_route_is_in_the_openapi_document() {
    let db = Db::new(plugboard_server::testing::Backend::Sqlite)
        .await
        .unwrap();
    let app = TestApp::new(db).await;
    let res = app.get("/api/openapi.json", None).await;
    res.assert_status(200);
    let doc = res.json();
    // Path parameter names are the implementation's; compare with every `{…}` written as `{}`.
    let normalise = |p: &str| regex_lite_braces(p);
    let paths: serde_json::Map<String, serde_json::Value> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (normalise(k), v.clone()))
        .collect();
    for (path, method) in [
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/api/openapi.json", "get"),
        ("/api/v1/connectors", "get"),
        ("/api/v1/connectors/{connector_id}", "get"),
        ("/api/v1/connectors/{connector_id}/verify", "post"),
        ("/api/v1/connectors/{connector_id}/install", "post"),
        ("/api/v1/integrations", "get"),
        ("/api/v1/integrations", "post"),
        ("/api/v1/integrations/{integration_id}", "get"),
        ("/api/v1/integrations/{integration_id}", "patch"),
        ("/api/v1/integrations/{integration_id}", "delete"),
        ("/api/v1/integrations/{integration_id}/runtime", "get"),
        ("/api/v1/audit", "get"),
        ("/api/v1/connectors/oauth/callback", "get"),
        ("/api/v1/integrations/{id}/oauth/start", "post"),
    ] {
        assert!(
            paths
                .get(&normalise(path))
                .and_then(|p| p.get(method))
                .is_some(),
            "{method} {path} missing from OpenAPI"
        );
    }
    // Every operation has its own operationId (generated clients name their methods after them).
    let mut ids: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|p| p.as_object().unwrap().values())
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "repeated operationIds: {ids:?}");
    // 16 before the people routes: 17 management endpoints and 4 sign-in routes; 3 agent-token endpoints.
    assert_eq!(count, 16 + 17 + 4 + 3);
    // The request bodies are described by the structs that parse them.
    for schema in [
        "ErrorBody",
        "InstallRequest",
        "CustomServerRequest",
        "PatchRequest",
        "VerifyRequest",
        "IntegrationBody",
        "InstallBody",
    ] {
        assert!(
            doc["components"]["schemas"].get(schema).is_some(),
            "{schema} missing from the OpenAPI components"
        );
    }
    let install = &doc["components"]["schemas"]["InstallRequest"]["properties"];
    for key in ["crew_id", "name", "fields"] {
        assert!(
            install.get(key).is_some(),
            "InstallRequest.{key}: {install}"
        );
    }
    assert!(install.get("raw").is_none(), "{install}");
    // The list's filters are described by the struct that parses them.
    let params = doc["paths"]["/api/v1/connectors"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let names: Vec<&str> = params.iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["category", "auth_mode", "q"], "{params:?}");
    assert!(params
        .iter()
        .all(|p| p["in"] == "query" && p["required"] != true));
}

/// `/a/{x}/b` -> `/a/{}/b`.
fn regex_lite_braces(path: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for c in path.chars() {
        match c {
            '{' => {
                inside = true;
                out.push_str("{}");
            }
            '}' => inside = false,
            c if !inside => out.push(c),
            _ => {}
        }
    }
    out
}
