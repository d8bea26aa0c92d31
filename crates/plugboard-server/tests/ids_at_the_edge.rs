//! Ids have one shape, checked at the edge: on every endpoint that takes an id (in the path, the query or the
//! body), an id of another shape (a NUL byte, a path trick, a near miss) is answered exactly as an unknown id of
//! the right shape, and never reaches the database. No string with a NUL reaches the database either: bodies that
//! hold one are a 400 naming the field. On both backends (PostgreSQL refuses NUL in text).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::http::Method;
use plugboard_server::testing::{test_on_both_backends, Db, TestApp};
use plugboard_store::{CrewId, IntegrationId, TokenId, UserId, WorkspaceId};
use serde_json::json;

test_on_both_backends! {
    a_malformed_id_is_answered_exactly_as_an_unknown_id_on_every_endpoint => malformed_ids;
    a_nul_character_in_a_stored_string_is_a_400_naming_the_field => nul_strings;
}

/// Ids of the wrong shape, percent-encoded for a URI.
const MALFORMED: &[&str] = &[
    "%00",
    "c%00",
    "nope",
    "..%2F..%2Fetc",
    "c0000000000000000000000%00",
    "C000000000000000000000000",
    "%E2%80%8Bc00000000000000000000000",
];

async fn malformed_ids(db: Db) {
    let app = TestApp::new(db).await;
    let team = app.team().await;
    let ws = team.id().clone();
    let owner = &team.owner;
    // A real crew, so that the second id of a two-id route is the only unknown one.
    let crew = owner
        .post(
            &format!("/api/v1/workspaces/{ws}/crews"),
            json!({"name": "ops"}),
        )
        .await;
    crew.assert_status(201);
    let member = team.as_member().await.user_id().await;
    // Each route with `{}` where the id under test goes, and a body when it takes one.
    let unknown_ws = WorkspaceId::generate().to_string();
    let unknown_int = IntegrationId::generate().to_string();
    let unknown_crew = CrewId::generate().to_string();
    let unknown_user = UserId::generate().to_string();
    let unknown_token = TokenId::generate().to_string();
    let name = json!({"name": "x"});
    let custom = json!({"name": "c", "transport": "stdio", "command": "x"});
    let routes: Vec<(Method, String, Option<serde_json::Value>, &str)> = vec![
        (
            Method::GET,
            "/api/v1/integrations?workspace_id={}".into(),
            None,
            &unknown_ws,
        ),
        (
            Method::POST,
            "/api/v1/integrations?workspace_id={}".into(),
            Some(custom.clone()),
            &unknown_ws,
        ),
        (
            Method::GET,
            "/api/v1/audit?workspace_id={}".into(),
            None,
            &unknown_ws,
        ),
        (
            Method::POST,
            "/api/v1/connectors/github/install?workspace_id={}".into(),
            Some(json!({"fields": {"token": "x"}})),
            &unknown_ws,
        ),
        (
            Method::POST,
            "/api/v1/connectors/github/verify?workspace_id={}".into(),
            Some(json!({"fields": {"token": "x"}})),
            &unknown_ws,
        ),
        (
            Method::GET,
            format!("/api/v1/integrations?workspace_id={ws}&crew_id={{}}"),
            None,
            &unknown_crew,
        ),
        (
            Method::GET,
            "/api/v1/integrations/{}".into(),
            None,
            &unknown_int,
        ),
        (
            Method::PATCH,
            "/api/v1/integrations/{}".into(),
            Some(json!({"enabled": false})),
            &unknown_int,
        ),
        (
            Method::DELETE,
            "/api/v1/integrations/{}".into(),
            None,
            &unknown_int,
        ),
        (
            Method::POST,
            "/api/v1/integrations/{}/oauth/start".into(),
            None,
            &unknown_int,
        ),
        (
            Method::GET,
            "/api/v1/integrations/{}/runtime".into(),
            None,
            &unknown_int,
        ),
        (
            Method::GET,
            "/api/v1/workspaces/{}".into(),
            None,
            &unknown_ws,
        ),
        (
            Method::PATCH,
            "/api/v1/workspaces/{}".into(),
            Some(name.clone()),
            &unknown_ws,
        ),
        (
            Method::DELETE,
            "/api/v1/workspaces/{}".into(),
            None,
            &unknown_ws,
        ),
        (
            Method::GET,
            "/api/v1/workspaces/{}/members".into(),
            None,
            &unknown_ws,
        ),
        (
            Method::POST,
            "/api/v1/workspaces/{}/members".into(),
            Some(json!({"email": "n@example.com", "role": "VIEWER"})),
            &unknown_ws,
        ),
        (
            Method::PATCH,
            format!("/api/v1/workspaces/{{}}/members/{member}"),
            Some(json!({"role": "VIEWER"})),
            &unknown_ws,
        ),
        (
            Method::PATCH,
            format!("/api/v1/workspaces/{ws}/members/{{}}"),
            Some(json!({"role": "VIEWER"})),
            &unknown_user,
        ),
        (
            Method::DELETE,
            format!("/api/v1/workspaces/{{}}/members/{member}"),
            None,
            &unknown_ws,
        ),
        (
            Method::DELETE,
            format!("/api/v1/workspaces/{ws}/members/{{}}"),
            None,
            &unknown_user,
        ),
        (
            Method::GET,
            "/api/v1/workspaces/{}/crews".into(),
            None,
            &unknown_ws,
        ),
        (
            Method::POST,
            "/api/v1/workspaces/{}/crews".into(),
            Some(name.clone()),
            &unknown_ws,
        ),
        (
            Method::PATCH,
            "/api/v1/crews/{}".into(),
            Some(name.clone()),
            &unknown_crew,
        ),
        (
            Method::DELETE,
            "/api/v1/crews/{}".into(),
            None,
            &unknown_crew,
        ),
        (
            Method::DELETE,
            "/api/v1/tokens/{}".into(),
            None,
            &unknown_token,
        ),
    ];
    for (method, template, body, unknown) in &routes {
        let expected = owner
            .send(
                method.clone(),
                &template.replace("{}", unknown),
                body.clone(),
            )
            .await;
        assert!(
            expected.status.is_client_error(),
            "{method} {template} with an unknown id: {} {}",
            expected.status,
            expected.text()
        );
        for bad in MALFORMED {
            let uri = template.replace("{}", bad);
            let res = owner.send(method.clone(), &uri, body.clone()).await;
            assert_eq!(
                (res.status, res.json()["code"].clone()),
                (expected.status, expected.json()["code"].clone()),
                "{method} {uri}: {}",
                res.text()
            );
        }
    }
    // In a body: a crew id of the wrong shape is refused as an unknown crew.
    let unknown = owner
        .post(
            &format!("/api/v1/integrations?workspace_id={ws}"),
            json!({"name": "c", "transport": "stdio", "command": "x", "crew_id": unknown_crew}),
        )
        .await;
    let bad = owner
        .post(
            &format!("/api/v1/integrations?workspace_id={ws}"),
            json!({"name": "c", "transport": "stdio", "command": "x", "crew_id": "c-nope/../x"}),
        )
        .await;
    assert_eq!(bad.status, unknown.status, "{}", bad.text());
    assert_eq!(bad.json(), unknown.json());
}

async fn nul_strings(db: Db) {
    let app = TestApp::new(db).await;
    let team = app.team().await;
    let ws = team.id().clone();
    let owner = &team.owner;
    let cases: Vec<(Method, String, serde_json::Value, &str)> = vec![
        (
            Method::POST,
            "/api/v1/workspaces".into(),
            json!({"name": "a\u{0}b"}),
            "name",
        ),
        (
            Method::PATCH,
            format!("/api/v1/workspaces/{ws}"),
            json!({"name": "a\u{0}"}),
            "name",
        ),
        (
            Method::POST,
            format!("/api/v1/workspaces/{ws}/crews"),
            json!({"name": "\u{0}"}),
            "name",
        ),
        (
            Method::POST,
            format!("/api/v1/workspaces/{ws}/members"),
            json!({"email": "a\u{0}@example.com", "role": "VIEWER"}),
            "email",
        ),
        (
            Method::POST,
            "/api/v1/tokens".into(),
            json!({"name": "t\u{0}"}),
            "name",
        ),
        (
            Method::POST,
            format!("/api/v1/integrations?workspace_id={ws}"),
            json!({"name": "c", "transport": "streamable-http", "endpoint": "https://mcp.example.com/mcp",
                   "headers": {"X-Team": "a\u{0}b"}}),
            "headers.X-Team",
        ),
        (
            Method::POST,
            format!("/api/v1/integrations?workspace_id={ws}"),
            json!({"name": "c", "transport": "stdio", "command": "x", "args": ["ok", "\u{0}"]}),
            "args[1]",
        ),
        (
            Method::POST,
            format!("/api/v1/connectors/github/install?workspace_id={ws}"),
            json!({"name": "gh\u{0}", "fields": {"token": "ghp_x"}}),
            "name",
        ),
    ];
    for (method, uri, body, field) in cases {
        let res = owner.send(method.clone(), &uri, Some(body)).await;
        res.assert_status(400);
        let message = res.json()["error"].as_str().unwrap().to_string();
        assert!(
            message.contains(&format!("`{field}`")) && message.contains("NUL"),
            "{method} {uri}: {message}"
        );
    }
    // Nothing was stored.
    let list = owner
        .get(&format!("/api/v1/integrations?workspace_id={ws}"))
        .await;
    assert_eq!(list.json().as_array().unwrap().len(), 0);
}
