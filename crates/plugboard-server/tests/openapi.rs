//! `/api/openapi.json` against the router that serves it: unique operationIds, every documented operation served and
//! every API route documented, the statuses of the layers around the handlers, and request bodies closed exactly as
//! their parsers are. (CI also validates the document with openapi-spec-validator and runs schemathesis against a
//! running server: `.ci/openapi`.)

// clippy.toml lets `#[test]` functions unwrap, expect and panic; the helpers of an integration test crate are test
// code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use axum::http::Method;
use plugboard_server::testing::{Db, TestApp};
use serde_json::Value;

async fn app() -> TestApp {
    TestApp::new(
        Db::new(plugboard_server::testing::Backend::Sqlite)
            .await
            .unwrap(),
    )
    .await
}

async fn document(app: &TestApp) -> Value {
    let res = app.get("/api/openapi.json", None).await;
    res.assert_status(200);
    res.json()
}

/// Every `(method, path, operation)` of the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if [
                "get", "put", "post", "delete", "options", "head", "patch", "trace",
            ]
            .contains(&method.as_str())
            {
                out.push((method.clone(), path.clone(), op.clone()));
            }
        }
    }
    out
}

/// Every API route the server has, by method and path template (what the contract lists).
const API_ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/api/openapi.json"),
    ("get", "/api/v1/connectors"),
    ("get", "/api/v1/connectors/{connector_id}"),
    ("post", "/api/v1/connectors/{connector_id}/verify"),
    ("post", "/api/v1/connectors/{connector_id}/install"),
    ("get", "/api/v1/connectors/oauth/callback"),
    ("get", "/api/v1/integrations"),
    ("post", "/api/v1/integrations"),
    ("get", "/api/v1/integrations/{integration_id}"),
    ("patch", "/api/v1/integrations/{integration_id}"),
    ("delete", "/api/v1/integrations/{integration_id}"),
    ("get", "/api/v1/integrations/{integration_id}/runtime"),
    ("post", "/api/v1/integrations/{integration_id}/oauth/start"),
    ("get", "/api/v1/audit"),
    ("get", "/api/v1/me"),
    ("get", "/api/v1/workspaces"),
    ("post", "/api/v1/workspaces"),
    ("get", "/api/v1/workspaces/{id}"),
    ("patch", "/api/v1/workspaces/{id}"),
    ("delete", "/api/v1/workspaces/{id}"),
    ("get", "/api/v1/workspaces/{id}/members"),
    ("post", "/api/v1/workspaces/{id}/members"),
    ("patch", "/api/v1/workspaces/{id}/members/{user_id}"),
    ("delete", "/api/v1/workspaces/{id}/members/{user_id}"),
    ("get", "/api/v1/workspaces/{id}/crews"),
    ("post", "/api/v1/workspaces/{id}/crews"),
    ("patch", "/api/v1/crews/{crew_id}"),
    ("delete", "/api/v1/crews/{crew_id}"),
    ("get", "/api/v1/tokens"),
    ("post", "/api/v1/tokens"),
    ("delete", "/api/v1/tokens/{id}"),
    ("get", "/api/v1/workspaces/{id}/agent-tokens"),
    ("post", "/api/v1/workspaces/{id}/agent-tokens"),
    ("delete", "/api/v1/agent-tokens/{id}"),
    ("get", "/auth/link/{secret}"),
    ("post", "/auth/logout"),
    ("get", "/auth/oidc/login"),
    ("get", "/auth/oidc/callback"),
];

#[tokio::test]
async fn operation_ids_are_unique_and_every_api_route_is_documented() {
    let app = app().await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"].as_str().unwrap(), "3.1.0");
    let ops = operations(&doc);
    let mut ids = BTreeSet::new();
    for (method, path, op) in &ops {
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
        assert!(ids.insert(id.to_string()), "operationId {id} repeats");
    }
    let documented: BTreeSet<(String, String)> =
        ops.iter().map(|(m, p, _)| (m.clone(), p.clone())).collect();
    let expected: BTreeSet<(String, String)> = API_ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, expected);
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    let app = app().await;
    let doc = document(&app).await;
    for (method, path, _) in operations(&doc) {
        // Any value for the path parameters: the route must match (a handler's own 404 names what is missing).
        let uri = regex_free_fill(&path);
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let res = app.raw(method.clone(), &uri, None, &[], None).await;
        assert_ne!(res.status.as_u16(), 405, "{method} {uri}");
        if res.status.as_u16() == 404 {
            let body = res.text();
            assert!(
                !body.contains("endpoint not found"),
                "{method} {uri} is not routed: {body}"
            );
        }
    }
}

/// `{name}` segments replaced by a plausible id.
fn regex_free_fill(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.starts_with('{') && seg.ends_with('}') {
                "abcdefghijklmnopqrstuvwx"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn ids_and_bounds_the_server_checks_are_in_the_parameters() {
    let app = app().await;
    let doc = document(&app).await;
    let mut ids = 0;
    for (method, path, op) in operations(&doc) {
        for p in op["parameters"].as_array().cloned().unwrap_or_default() {
            let name = p["name"].as_str().unwrap();
            if ["id", "workspace_id", "crew_id", "user_id", "integration_id"].contains(&name) {
                let expected = match (p["in"].as_str().unwrap(), p["required"].as_bool()) {
                    ("query", Some(true)) => plugboard_server::openapi::QUERY_ID_PATTERN,
                    ("query", _) => plugboard_server::openapi::OPTIONAL_QUERY_ID_PATTERN,
                    _ => plugboard_server::openapi::ID_PATTERN,
                };
                assert_eq!(p["schema"]["pattern"], expected, "{method} {path} {name}");
                ids += 1;
            }
            if path == "/api/v1/audit" && name == "limit" {
                assert_eq!(p["schema"]["minimum"], 1);
                assert_eq!(p["schema"]["maximum"], 200);
            }
        }
    }
    assert!(ids > 20, "{ids}");
    let id = plugboard_store::new_id();
    assert!(plugboard_store::is_well_formed_id(&id));
    // The pattern is the shape `is_well_formed_id` accepts.
    let pattern_ok = |s: &str| {
        s.len() == 24
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    };
    for s in [
        id.as_str(),
        "a23456789012345678901234",
        "1bcdefghijklmnopqrstuvwx",
        "Abcdefghijklmnopqrstuvwx",
        "abc",
    ] {
        assert_eq!(pattern_ok(s), plugboard_store::is_well_formed_id(s), "{s}");
    }
}

#[tokio::test]
async fn every_operation_documents_what_the_layers_around_it_answer() {
    let app = app().await;
    let doc = document(&app).await;
    for (method, path, op) in operations(&doc) {
        let responses = op["responses"].as_object().unwrap();
        let has = |status: &str| responses.contains_key(status);
        assert!(has("500") && has("408"), "{method} {path}");
        if path != "/healthz" && path != "/api/openapi.json" {
            assert!(has("503"), "{method} {path} needs the database");
        }
        if op.get("requestBody").is_some() {
            for status in ["400", "413", "415"] {
                assert!(has(status), "{method} {path} lacks {status}");
            }
        }
        for (status, response) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                let content = &response["content"];
                if content.get("text/html").is_none() {
                    assert_eq!(
                        content["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn request_bodies_refuse_exactly_the_keys_their_parsers_refuse() {
    let app = app().await;
    let doc = document(&app).await;
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let closed = plugboard_server::openapi::closed_request_bodies();
    assert!(closed.len() >= 8);
    for (name, keys) in closed {
        let schema = &schemas[&name];
        assert_eq!(schema["additionalProperties"], false, "{name}");
        let properties: BTreeSet<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let keys: BTreeSet<&str> = keys.iter().copied().collect();
        assert_eq!(properties, keys, "{name}");
    }
    // Every request body of the document is one of them.
    for (method, path, op) in operations(&doc) {
        if let Some(body) = op.get("requestBody") {
            let r = body["content"]["application/json"]["schema"]["$ref"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path}: {body}"));
            let name = r.trim_start_matches("#/components/schemas/");
            assert_eq!(
                schemas[name]["additionalProperties"], false,
                "{method} {path}"
            );
        }
    }
    // Members the server accepts without are not required: a verify or an install without `fields`.
    for name in ["VerifyRequest", "InstallRequest", "PatchRequest"] {
        let required = schemas[name]["required"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(!required.contains(&Value::from("fields")), "{name}");
    }
}

#[tokio::test]
async fn enumerations_are_the_ones_the_server_accepts() {
    let app = app().await;
    let doc = document(&app).await;
    let schemas = &doc["components"]["schemas"];
    let values = |name: &str| -> BTreeSet<String> {
        schemas[name]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} is not an enum: {}", schemas[name]))
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let transports: BTreeSet<String> = plugboard_catalog::Transport::ALL
        .iter()
        .map(|t| t.as_str().to_string())
        .collect();
    assert_eq!(values("TransportName"), transports);
    let roles: BTreeSet<String> = ["VIEWER", "MEMBER", "MANAGER", "ADMIN", "OWNER"]
        .iter()
        .map(|r| {
            let role: plugboard_store::Role = r.parse().unwrap();
            role.as_str().to_string()
        })
        .collect();
    assert_eq!(values("RoleName"), roles);
}
