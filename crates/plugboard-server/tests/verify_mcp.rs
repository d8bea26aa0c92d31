//! MCP verify probes against a real MCP server (the official Rust SDK, `rmcp`, streamable HTTP) on loopback, behind
//! a bearer-token check.

// clippy.toml lets `#[test]` functions unwrap, expect and panic; the helpers and `test_on_both_backends!` bodies of
// an integration test crate are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod verify_support;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use rmcp::model::{
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::json;
use verify_support::*;

#[derive(Clone)]
struct Tools;

impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let schema = json!({"type": "object", "properties": {"text": {"type": "string"}}});
        let schema = schema.as_object().cloned().unwrap_or_default();
        Ok(ListToolsResult::with_all_items(vec![Tool::new(
            "echo",
            "Echoes its input",
            Arc::new(schema),
        )]))
    }
}

async fn require_good_token(req: Request, next: Next) -> Response {
    let ok = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some("Bearer good");
    if ok {
        next.run(req).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [("www-authenticate", "Bearer")],
            Json(json!({"error": "invalid_token"})),
        )
            .into_response()
    }
}

/// An rmcp server at `/mcp`: sessions and SSE answers (the SDK's defaults), or stateless JSON answers.
async fn mcp_server(json_answers: bool) -> Provider {
    let config = if json_answers {
        StreamableHttpServerConfig::default()
            .with_json_response(true)
            .with_legacy_session_mode(false)
    } else {
        StreamableHttpServerConfig::default()
    };
    let service = StreamableHttpService::new(
        || Ok(Tools),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let router = Router::new()
        .nest_service("/mcp", service)
        .layer(middleware::from_fn(require_good_token));
    serve("127.0.0.1", router).await
}

fn manifest(id: &str, endpoint: &str, method: &str) -> String {
    format!(
        r#"id: {id}
name: MCP {id}
auth_mode: pat
fields:
  - {{key: token, label: Token, type: password, required: true}}
mcp:
  transport: streamable-http
  endpoint: "{endpoint}"
  headers:
    Authorization: "Bearer ${{field.token}}"
verify:
  mcp_method: {method}
"#
    )
}

async fn setup(json_answers: bool, allow: bool) -> (plugboard_server::testing::TestApp, Provider) {
    let server = mcp_server(json_answers).await;
    let endpoint = server.url("/mcp");
    let manifests = vec![
        manifest("tools", &endpoint, "tools/list"),
        manifest("prompts", &endpoint, "prompts/list"),
    ];
    let app = app(
        sqlite().await,
        catalog(&manifests),
        allow,
        Duration::from_secs(10),
    )
    .await;
    (app, server)
}

#[tokio::test]
async fn the_right_token_opens_a_session_and_lists_tools() {
    for json_answers in [false, true] {
        let (app, server) = setup(json_answers, true).await;
        let (ws, token) = manager(&app).await;
        let (ok, message) = verify(&app, &token, "tools", &ws, json!({"token": "good"})).await;
        assert!(ok, "json_answers={json_answers}: {message}");
        assert_eq!(message, "");
        // initialize, notifications/initialized, tools/list, and a DELETE of the session when there is one.
        // The DELETE runs in the background: give it a moment.
        let expected = if json_answers { 3 } else { 4 };
        for _ in 0..100 {
            if server.requests() >= expected {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(server.requests(), expected, "json_answers={json_answers}");
    }
}

#[tokio::test]
async fn a_wrong_token_is_rejected_with_the_status() {
    let (app, _server) = setup(false, true).await;
    let (ws, token) = manager(&app).await;
    let (ok, message) = verify(&app, &token, "tools", &ws, json!({"token": "wrong-token"})).await;
    assert!(!ok);
    assert!(
        message.starts_with("the MCP server rejected the credentials (401)"),
        "{message}"
    );
    assert!(!message.contains("wrong-token"), "{message}");
}

#[tokio::test]
async fn a_method_the_server_does_not_serve_answers_ok_false() {
    let (app, _server) = setup(false, true).await;
    let (ws, token) = manager(&app).await;
    let (ok, message) = verify(&app, &token, "prompts", &ws, json!({"token": "good"})).await;
    assert!(!ok);
    assert!(message.contains("prompts/list"), "{message}");
}

#[tokio::test]
async fn an_mcp_server_outside_allow_cidrs_is_blocked_and_never_contacted() {
    let (app, server) = setup(false, false).await;
    let (ws, token) = manager(&app).await;
    let (ok, message) = verify(&app, &token, "tools", &ws, json!({"token": "good"})).await;
    assert!(!ok);
    assert!(message.starts_with("blocked: "), "{message}");
    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn an_mcp_server_that_never_answers_times_out() {
    let hang = silent("127.0.0.1").await;
    let manifests = vec![manifest(
        "hang",
        &format!("http://{}/mcp", hang.addr),
        "tools/list",
    )];
    let app = app(
        sqlite().await,
        catalog(&manifests),
        true,
        Duration::from_millis(300),
    )
    .await;
    let (ws, token) = manager(&app).await;
    let (ok, message) = verify(&app, &token, "hang", &ws, json!({"token": "good"})).await;
    assert!(!ok);
    assert!(message.contains("timed out"), "{message}");
}

#[tokio::test]
async fn a_stdio_manifest_with_an_mcp_method_verify_answers_ok_saying_no_server_was_started() {
    // The shape of a manifest written for another platform: a stdio server and `verify: {mcp_method: tools/list}`.
    let manifests = vec![r#"id: foreign
name: Foreign stdio
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
"#
    .to_owned()];
    let app = app(
        sqlite().await,
        catalog(&manifests),
        true,
        Duration::from_secs(5),
    )
    .await;
    let (ws, token) = manager(&app).await;
    let (ok, message) = verify(
        &app,
        &token,
        "foreign",
        &ws,
        json!({"api-key": "sk-foreign-secret-1234"}),
    )
    .await;
    assert!(ok, "{message}");
    assert!(
        message.contains("a stdio MCP server is not started by a verify"),
        "{message}"
    );
    assert!(!message.contains("sk-foreign-secret-1234"), "{message}");
    // The form is still checked: a missing required field is a 400 naming it.
    let res = app
        .post(
            &verify_uri("foreign", &ws),
            Some(&token),
            json!({"fields": {}}),
        )
        .await;
    res.assert_status(400);
    assert!(res.json()["error"]
        .as_str()
        .unwrap_or_default()
        .contains("api-key"));
}
