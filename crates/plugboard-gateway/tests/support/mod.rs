//! Test support: in-memory implementations of the gateway's ports (test doubles of the server, nothing more), an
//! HTTP front end that authenticates bearer tokens like the server will, MCP upstreams built with `rmcp`, an MCP
//! agent (an `rmcp` client), the reference `server-everything` and a server built with the official Python SDK.
#![allow(dead_code)]

pub mod agent;
pub mod everything;
pub mod install;
pub mod python_sdk;
pub mod upstream;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use plugboard_egress::{parse_allow_cidrs, EgressConfig, Guard};
use plugboard_gateway::{
    AccessError, AuditLog, Caller, Gateway, GatewayCall, GatewayConfig, IntegrationInfo,
    IntegrationStatus, Integrations, MaterializeError, Metrics, Outcome, Ports, Scope,
    SessionRecord, SessionStore, ToolPolicy, Transport, UpstreamTarget,
};
use secrecy::SecretString;

pub const WORKSPACE: &str = "ws_1";
pub const CREW: &str = "crew_a";
pub const OTHER_CREW: &str = "crew_b";
/// The integration's credential: it must never reach an agent.
pub const SECRET: &str = "sk_live_integration_SECRET_0123456789";

/// How a token may reach integrations.
#[derive(Clone, Debug)]
pub struct TokenGrant {
    pub caller: Caller,
    pub workspace_id: String,
    /// A crew-scoped agent token.
    pub crew_id: Option<String>,
}

pub struct Registered {
    pub info: IntegrationInfo,
    pub endpoint: String,
    pub headers: Vec<(String, String)>,
    pub secrets: Vec<String>,
}

/// The server's side, in memory.
#[derive(Default)]
pub struct World {
    pub integrations: Mutex<HashMap<String, Registered>>,
    pub tokens: Mutex<HashMap<String, TokenGrant>>,
    pub audit: Mutex<Vec<GatewayCall>>,
    pub metrics: Mutex<Vec<(String, Outcome, Duration)>>,
    pub materialized: Mutex<usize>,
    pub sessions: Mutex<HashMap<String, SessionRecord>>,
}

impl World {
    pub fn new() -> Arc<World> {
        Arc::new(World::default())
    }

    /// Registers a streamable-http integration of the workspace with a bearer credential.
    pub fn add(&self, id: &str, endpoint: &str, crew_id: Option<&str>, prefix: &str) {
        self.add_with(id, endpoint, crew_id, prefix, ToolPolicy::default(), |_| {});
    }

    pub fn add_with(
        &self,
        id: &str,
        endpoint: &str,
        crew_id: Option<&str>,
        prefix: &str,
        policy: ToolPolicy,
        adjust: impl FnOnce(&mut IntegrationInfo),
    ) {
        let mut info = IntegrationInfo {
            id: id.to_owned(),
            workspace_id: WORKSPACE.to_owned(),
            crew_id: crew_id.map(str::to_owned),
            connector_id: Some(prefix.to_owned()),
            name: format!("integration {id}"),
            transport: Transport::StreamableHttp,
            enabled: true,
            status: IntegrationStatus::Active,
            policy,
            tool_prefix: prefix.to_owned(),
            revision: 1,
        };
        adjust(&mut info);
        self.integrations.lock().unwrap().insert(
            id.to_owned(),
            Registered {
                info,
                endpoint: endpoint.to_owned(),
                headers: vec![("Authorization".to_owned(), format!("Bearer {SECRET}"))],
                secrets: vec![SECRET.to_owned()],
            },
        );
    }

    pub fn set_policy(&self, id: &str, policy: ToolPolicy) {
        let mut all = self.integrations.lock().unwrap();
        let r = all.get_mut(id).unwrap();
        r.info.policy = policy;
        r.info.revision += 1;
    }

    pub fn set_endpoint(&self, id: &str, endpoint: &str) {
        let mut all = self.integrations.lock().unwrap();
        let r = all.get_mut(id).unwrap();
        r.endpoint = endpoint.to_owned();
        r.info.revision += 1;
    }

    /// An agent token of the workspace (crew-scoped when `crew` is given).
    pub fn agent(&self, token: &str, crew: Option<&str>) {
        self.tokens.lock().unwrap().insert(
            token.to_owned(),
            TokenGrant {
                caller: Caller::agent(format!("id_{token}")),
                workspace_id: WORKSPACE.to_owned(),
                crew_id: crew.map(str::to_owned),
            },
        );
    }

    pub fn audit(&self) -> Vec<GatewayCall> {
        self.audit.lock().unwrap().clone()
    }

    fn grant_for(&self, caller: &Caller) -> Option<TokenGrant> {
        self.tokens
            .lock()
            .unwrap()
            .values()
            .find(|g| &g.caller == caller)
            .cloned()
    }

    fn reaches(grant: &TokenGrant, info: &IntegrationInfo) -> bool {
        grant.workspace_id == info.workspace_id
            && match &grant.crew_id {
                None => true,
                Some(c) => info.crew_id.is_none() || info.crew_id.as_deref() == Some(c.as_str()),
            }
    }
}

#[async_trait]
impl Integrations for World {
    async fn integration(&self, caller: &Caller, id: &str) -> Result<IntegrationInfo, AccessError> {
        let grant = self.grant_for(caller).ok_or(AccessError::Forbidden)?;
        let all = self.integrations.lock().unwrap();
        let r = all.get(id).ok_or(AccessError::NotFound)?;
        if !Self::reaches(&grant, &r.info) {
            return Err(AccessError::Forbidden);
        }
        Ok(r.info.clone())
    }

    async fn in_scope(
        &self,
        caller: &Caller,
        scope: &Scope,
    ) -> Result<Vec<IntegrationInfo>, AccessError> {
        let grant = self.grant_for(caller).ok_or(AccessError::Forbidden)?;
        match scope {
            Scope::Workspace(w) if w != &grant.workspace_id => return Err(AccessError::Forbidden),
            Scope::Crew(c) if c != CREW && c != OTHER_CREW => return Err(AccessError::NotFound),
            Scope::Crew(c) if grant.crew_id.as_ref().is_some_and(|g| g != c) => {
                return Err(AccessError::Forbidden)
            }
            _ => {}
        }
        let all = self.integrations.lock().unwrap();
        let mut out: Vec<IntegrationInfo> = all
            .values()
            .map(|r| r.info.clone())
            .filter(|i| Self::reaches(&grant, i))
            .filter(|i| match scope {
                Scope::Workspace(_) => true,
                Scope::Crew(c) => i.crew_id.is_none() || i.crew_id.as_deref() == Some(c.as_str()),
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn materialize(
        &self,
        info: &IntegrationInfo,
    ) -> Result<UpstreamTarget, MaterializeError> {
        *self.materialized.lock().unwrap() += 1;
        let all = self.integrations.lock().unwrap();
        let r = all
            .get(&info.id)
            .ok_or_else(|| MaterializeError::new("the integration is gone"))?;
        Ok(UpstreamTarget {
            endpoint: SecretString::from(r.endpoint.clone()),
            headers: r
                .headers
                .iter()
                .map(|(n, v)| (n.clone(), SecretString::from(v.clone())))
                .collect(),
            secrets: r
                .secrets
                .iter()
                .map(|s| SecretString::from(s.clone()))
                .collect(),
            refresh_after: Some(SystemTime::now() + Duration::from_secs(600)),
        })
    }
}

#[async_trait]
impl AuditLog for World {
    async fn gateway_calls(&self, calls: &[GatewayCall]) -> Result<(), String> {
        self.audit.lock().unwrap().extend_from_slice(calls);
        Ok(())
    }
}

impl Metrics for World {
    fn gateway_call(&self, integration_id: &str, outcome: Outcome, duration: Duration) {
        self.metrics
            .lock()
            .unwrap()
            .push((integration_id.to_owned(), outcome, duration));
    }
}

#[async_trait]
impl SessionStore for World {
    async fn insert(&self, s: &SessionRecord) -> Result<(), String> {
        self.sessions
            .lock()
            .unwrap()
            .insert(s.id_hash.clone(), s.clone());
        Ok(())
    }
    async fn get(&self, id_hash: &str) -> Result<Option<SessionRecord>, String> {
        Ok(self.sessions.lock().unwrap().get(id_hash).cloned())
    }
    async fn touch(&self, id_hash: &str, now_ms: i64) -> Result<(), String> {
        if let Some(s) = self.sessions.lock().unwrap().get_mut(id_hash) {
            s.last_seen_at = now_ms;
        }
        Ok(())
    }
    async fn delete(&self, id_hash: &str) -> Result<bool, String> {
        Ok(self.sessions.lock().unwrap().remove(id_hash).is_some())
    }
    async fn delete_idle(&self, idle_before_ms: i64) -> Result<u64, String> {
        let mut s = self.sessions.lock().unwrap();
        let before = s.len();
        s.retain(|_, r| r.last_seen_at >= idle_before_ms);
        Ok((before - s.len()) as u64)
    }
}

pub fn config() -> GatewayConfig {
    let mut c = GatewayConfig::new([42u8; 32]);
    c.timeout = Duration::from_secs(10);
    c
}

pub fn guard() -> Guard {
    Guard::new(EgressConfig {
        allow_cidrs: parse_allow_cidrs("127.0.0.0/8").unwrap(),
        ..EgressConfig::default()
    })
    .unwrap()
}

/// A Plugboard instance: the gateway behind the routes the server will mount.
pub struct Instance {
    pub addr: SocketAddr,
    pub gateway: Gateway,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Instance {
    pub fn passthrough_url(&self, integration: &str) -> String {
        format!("http://{}/mcp/i/{integration}", self.addr)
    }
    pub fn crew_url(&self, crew: &str) -> String {
        format!("http://{}/mcp/crew/{crew}", self.addr)
    }
    pub fn workspace_url(&self, workspace: &str) -> String {
        format!("http://{}/mcp/workspace/{workspace}", self.addr)
    }
}

#[derive(Clone)]
struct AppState {
    gateway: Gateway,
    world: Arc<World>,
}

fn authenticate(state: &AppState, req: &Request) -> Option<Caller> {
    let header = req.headers().get("authorization")?.to_str().ok()?;
    let token = header.strip_prefix("Bearer ")?;
    state
        .world
        .tokens
        .lock()
        .unwrap()
        .get(token)
        .map(|g| g.caller.clone())
}

fn unauthorized() -> Response {
    (
        http::StatusCode::UNAUTHORIZED,
        axum::Json(serde_json::json!({"error": "a valid bearer token is required", "code": "unauthorized"})),
    )
        .into_response()
}

async fn passthrough(State(s): State<AppState>, Path(id): Path<String>, req: Request) -> Response {
    let Some(caller) = authenticate(&s, &req) else {
        return unauthorized();
    };
    s.gateway.passthrough(caller, &id, req).await
}

async fn crew(State(s): State<AppState>, Path(id): Path<String>, req: Request) -> Response {
    let Some(caller) = authenticate(&s, &req) else {
        return unauthorized();
    };
    s.gateway.aggregated(caller, Scope::Crew(id), req).await
}

async fn workspace(State(s): State<AppState>, Path(id): Path<String>, req: Request) -> Response {
    let Some(caller) = authenticate(&s, &req) else {
        return unauthorized();
    };
    s.gateway
        .aggregated(caller, Scope::Workspace(id), req)
        .await
}

/// `f`, failing the test as hung after 30 s (a bound on a hang, not a timing assertion).
pub async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .unwrap_or_else(|_| panic!("hung: {what}"))
}

/// The common setup: a workspace integration `id` at `endpoint` with `prefix` and `policy`, the workspace's agent
/// token `pba_agent`, and a gateway serving them with the test configuration.
pub async fn one_integration(
    id: &str,
    endpoint: &str,
    prefix: &str,
    policy: ToolPolicy,
) -> (Arc<World>, Instance) {
    let world = World::new();
    world.add_with(id, endpoint, None, prefix, policy, |_| {});
    world.agent("pba_agent", None);
    let pb = instance(&world, config()).await;
    (world, pb)
}

/// For each endpoint kind (passthrough, then the workspace's aggregated one): a fresh server from `start`, a call of
/// `tool` with `args` that streams progress, and the server killed (SIGKILL) after the first progress: the agent gets
/// the gateway's JSON-RPC upstream error and the call is audited as an upstream error.
pub async fn killed_mid_call_on_both_endpoints<F, Fut>(
    start: F,
    prefix: &str,
    tool: &str,
    args: serde_json::Value,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = install::Server>,
{
    for aggregated in [false, true] {
        let mut server = start().await;
        let (world, pb) =
            one_integration("int_x", &server.url(), prefix, ToolPolicy::default()).await;
        let (url, name) = if aggregated {
            (pb.workspace_url(WORKSPACE), format!("{prefix}__{tool}"))
        } else {
            (pb.passthrough_url("int_x"), tool.to_owned())
        };
        let mut a = agent::connect(&url, "pba_agent").await;
        let mut params = rmcp::model::CallToolRequestParams::new(name);
        params.arguments = args.as_object().cloned();
        let peer = a.service.peer().clone();
        let call = tokio::spawn(async move { peer.call_tool(params).await });
        // Running: the first progress notification came through.
        within("the first progress", a.progress.recv())
            .await
            .unwrap();
        server.kill();
        let err = within("the error after the kill", call)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(
            agent::error_code(&err),
            Some(plugboard_gateway::jsonrpc::code::UPSTREAM as i32),
            "aggregated={aggregated}: {err}"
        );
        eventually("audited", || {
            world
                .audit()
                .iter()
                .any(|c| c.tool == tool && c.outcome == Outcome::UpstreamError)
        })
        .await;
    }
}

pub async fn instance(world: &Arc<World>, config: GatewayConfig) -> Instance {
    let ports = Ports {
        integrations: world.clone(),
        audit: world.clone(),
        metrics: world.clone(),
        sessions: world.clone(),
    };
    let gateway = Gateway::new(config, ports, guard());
    let state = AppState {
        gateway: gateway.clone(),
        world: Arc::clone(world),
    };
    let router = axum::Router::new()
        .route("/mcp/i/{integration_id}", any(passthrough))
        .route("/mcp/crew/{crew_id}", any(crew))
        .route("/mcp/workspace/{workspace_id}", any(workspace))
        .with_state(state);
    let (addr, task) = serve(router).await;
    Instance {
        addr,
        gateway,
        task,
    }
}

/// Serves `router` on a free loopback port until the task is aborted.
pub async fn serve(router: axum::Router) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (addr, task)
}

/// Waits (bounded) until `cond` holds.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// A body as text (for the "no credential" checks).
pub async fn body_text(resp: reqwest::Response) -> String {
    resp.text().await.unwrap_or_default()
}

pub fn policy(allow: &[&str], deny: &[&str]) -> ToolPolicy {
    ToolPolicy {
        allow: allow.iter().map(|s| s.to_string()).collect(),
        deny: deny.iter().map(|s| s.to_string()).collect(),
    }
}

/// A raw MCP POST (for what an rmcp client would not send, or to read the HTTP answer itself).
pub async fn raw_post(
    url: &str,
    token: &str,
    session: Option<&str>,
    body: serde_json::Value,
) -> reqwest::Response {
    let mut rb = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&body);
    if let Some(s) = session {
        rb = rb.header("mcp-session-id", s);
    }
    rb.send().await.unwrap()
}

/// An `initialize` request body.
pub fn initialize_body(id: i64) -> serde_json::Value {
    serde_json::json!({
        "jsonrpc": "2.0", "id": id, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}
    })
}

/// The JSON-RPC messages of an answer, JSON or SSE.
pub async fn messages(resp: reqwest::Response) -> Vec<serde_json::Value> {
    let is_sse = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream"));
    let text = resp.text().await.unwrap();
    if is_sse {
        text.split("\n\n")
            .flat_map(|event| {
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                serde_json::from_str::<serde_json::Value>(&data.join("\n")).ok()
            })
            .collect()
    } else {
        match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Array(items)) => items,
            Ok(v) => vec![v],
            Err(_) => vec![],
        }
    }
}
