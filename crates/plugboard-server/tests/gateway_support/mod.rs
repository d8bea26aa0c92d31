//! Shared by the gateway tests: a Plugboard served on loopback (the real router, egress allowed to 127.0.0.0/8),
//! MCP servers built with `rmcp` standing in for providers ([`upstream`]), and an `rmcp` agent ([`agent`]).

#![allow(dead_code)]

// The agent and the upstream MCP servers are the gateway crate's own test support, shared rather than copied.
#[path = "../../../plugboard-gateway/tests/support/agent.rs"]
pub mod agent;
#[path = "../../../plugboard-gateway/tests/support/upstream.rs"]
pub mod upstream;
// And the MCP server built with the official Python SDK.
#[path = "../../../plugboard-gateway/tests/support/install.rs"]
pub mod install;
#[path = "../../../plugboard-gateway/tests/support/python_sdk.rs"]
pub mod python_sdk;

use std::net::SocketAddr;
use std::time::Duration;

use plugboard_server::testing::{Db, TestApp, TestResponse};
use plugboard_store::Workspace;
use serde_json::{json, Value};

/// A Plugboard instance listening on 127.0.0.1.
pub struct Served {
    pub app: TestApp,
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Served {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
    pub fn passthrough(&self, integration: &str) -> String {
        self.url(&format!("/mcp/i/{integration}"))
    }
    pub fn crew(&self, crew: &str) -> String {
        self.url(&format!("/mcp/crew/{crew}"))
    }
    pub fn workspace(&self, ws: &str) -> String {
        self.url(&format!("/mcp/workspace/{ws}"))
    }
}

pub fn allow_loopback(c: &mut plugboard_server::Config) {
    c.egress_allow_cidrs = plugboard_egress::parse_allow_cidrs("127.0.0.0/8").unwrap();
}

/// Serves `app` on an ephemeral loopback port.
pub async fn serve(app: TestApp) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app.router.clone();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Served { app, addr, task }
}

/// A Plugboard on `db` that may reach loopback upstreams, served.
pub async fn plugboard(db: Db) -> Served {
    serve(TestApp::build(db, None, allow_loopback).await).await
}

/// Another instance on the same database and master key, served.
pub async fn second_instance(first: &Served) -> Served {
    // Opened again, as another process would: its own connections and write epoch.
    let db = first.app.db.reopened().await;
    let key = first.app.master_key();
    serve(
        TestApp::build(db, None, |c| {
            allow_loopback(c);
            c.master_key = Some(key.into());
        })
        .await,
    )
    .await
}

/// A secret only the integration holds (and the upstream checks).
pub fn secret() -> String {
    format!("upstreamsecret{}", plugboard_store::new_id())
}

/// Creates a custom streamable-http integration at `endpoint` sending `Authorization: Bearer <secret>`; its id.
pub async fn custom_http(
    app: &TestApp,
    token: &str,
    ws: &Workspace,
    crew: Option<&str>,
    name: &str,
    endpoint: &str,
    secret: &str,
) -> String {
    let mut body = json!({
        "name": name,
        "transport": "streamable-http",
        "endpoint": endpoint,
        "headers": {"Authorization": {"value": format!("Bearer {secret}"), "secret": true}},
    });
    if let Some(c) = crew {
        body["crew_id"] = json!(c);
    }
    let res = app
        .post(
            &format!("/api/v1/integrations?workspace_id={}", ws.id),
            Some(token),
            body,
        )
        .await;
    res.assert_status(201);
    res.json()["integration_id"].as_str().unwrap().to_owned()
}

/// A crew of `ws`; its id.
pub async fn crew(app: &TestApp, token: &str, ws: &Workspace, name: &str) -> String {
    let res = app
        .post(
            &format!("/api/v1/workspaces/{}/crews", ws.id),
            Some(token),
            json!({"name": name}),
        )
        .await;
    res.assert_status(201);
    res.json()["id"].as_str().unwrap().to_owned()
}

/// An agent token of `ws` (for `crew` when given): `(id, token)`.
pub async fn agent_token(
    app: &TestApp,
    token: &str,
    ws: &Workspace,
    crew: Option<&str>,
    expires_in_days: Option<i64>,
) -> (String, String) {
    let res = app
        .post(
            &format!("/api/v1/workspaces/{}/agent-tokens", ws.id),
            Some(token),
            json!({"name": "agent", "crew_id": crew, "expires_in_days": expires_in_days}),
        )
        .await;
    res.assert_status(201);
    let v = res.json();
    (
        v["id"].as_str().unwrap().to_owned(),
        v["token"].as_str().unwrap().to_owned(),
    )
}

pub async fn patch(app: &TestApp, token: &str, id: &str, body: Value) {
    app.request(
        axum::http::Method::PATCH,
        &format!("/api/v1/integrations/{id}"),
        Some(token),
        Some(body),
    )
    .await
    .assert_status(200);
}

/// An `initialize` request's body.
pub fn initialize_body() -> Vec<u8> {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}})
    .to_string()
    .into_bytes()
}

/// Revokes an agent token through the API (as `owner`, an ADMIN+ of its workspace).
pub async fn revoke(app: &TestApp, owner: &str, token_id: &str) {
    app.request(
        axum::http::Method::DELETE,
        &format!("/api/v1/agent-tokens/{token_id}"),
        Some(owner),
        None,
    )
    .await
    .assert_status(204);
}

/// Fails the test instead of hanging when `f` does not finish (a hang is the bug; this is no timing assertion).
/// An MCP `initialize` POSTed to `uri` of `app` with `token`, as an agent sends it.
pub async fn initialize(app: &TestApp, uri: &str, token: &str) -> TestResponse {
    app.raw(
        axum::http::Method::POST,
        uri,
        Some(token),
        &[
            ("accept", "application/json, text/event-stream"),
            ("host", "127.0.0.1"),
        ],
        Some(initialize_body()),
    )
    .await
}

pub async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .unwrap_or_else(|_| panic!("hung: {what}"))
}

/// Waits until `cond` holds (things written in the background, such as audit entries), failing after 30 s.
pub async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    within(what, async {
        loop {
            if cond().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}
