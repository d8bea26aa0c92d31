//! MCP servers built with `rmcp` for the tests, on 127.0.0.1: the third-party providers the gateway relays to.
//!
//! Tools: `echo {text}`, `add {a, b}`, `whoami` (answers with the `Authorization` header it received),
//! `counter` (a count per upstream session), `slow {steps}` (one progress notification per step, each step waiting
//! for the test to release it), `fail` (an error result), `delete_everything` (denied by the tests' policies: any
//! call to it is counted), `hang` (never answers).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, ProtocolVersion, ServerCapabilities,
    ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::json;
use tokio::sync::Semaphore;

/// What the upstream saw, for the tests' assertions.
#[derive(Default)]
pub struct Seen {
    /// Every HTTP request's headers (lower-case names).
    pub requests: Mutex<Vec<HashMap<String, String>>>,
    /// Every HTTP request's body, as text.
    pub bodies: Mutex<Vec<String>>,
    /// Every tool called, in order.
    pub calls: Mutex<Vec<String>>,
    /// Tool calls that have started (`slow`, `hang`), so a test can wait for them.
    pub started: tokio::sync::Notify,
    pub started_count: AtomicU64,
}

impl Seen {
    pub fn calls_of(&self, tool: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| *c == tool)
            .count()
    }

    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter_map(|h| h.get(name).cloned())
            .collect()
    }

    pub async fn wait_started(&self, n: u64) {
        loop {
            let notified = self.started.notified();
            if self.started_count.load(Ordering::SeqCst) >= n {
                return;
            }
            notified.await;
        }
    }
}

/// Shared by every session of one upstream.
pub struct UpstreamState {
    pub seen: Seen,
    /// `slow` waits for one permit per step.
    pub steps: Semaphore,
}

impl UpstreamState {
    pub fn release_steps(&self, n: usize) {
        self.steps.add_permits(n);
    }
}

#[derive(Clone)]
struct TestServer {
    state: Arc<UpstreamState>,
    /// Per upstream session (the factory makes one handler per session).
    counter: Arc<AtomicU64>,
    /// Speaks only the protocol versions with sessions (up to 2025-11-25).
    legacy_only: bool,
}

fn tool(name: &str, description: &str, properties: serde_json::Value) -> Tool {
    serde_json::from_value(json!({
        "name": name,
        "description": description,
        "inputSchema": {"type": "object", "properties": properties},
    }))
    .expect("tool")
}

fn text(result: impl Into<String>) -> CallToolResponse {
    CallToolResult::success(vec![ContentBlock::text(result)]).into()
}

impl ServerHandler for TestServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    fn supported_protocol_versions(&self) -> std::borrow::Cow<'static, [ProtocolVersion]> {
        if self.legacy_only {
            std::borrow::Cow::Borrowed(ProtocolVersion::known_up_to(&ProtocolVersion::V_2025_11_25))
        } else {
            std::borrow::Cow::Borrowed(ProtocolVersion::KNOWN_VERSIONS)
        }
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(vec![
            tool(
                "echo",
                "Echoes its text",
                json!({"text": {"type": "string"}}),
            ),
            tool(
                "add",
                "Adds two numbers",
                json!({"a": {"type": "number"}, "b": {"type": "number"}}),
            ),
            tool("whoami", "The Authorization header it received", json!({})),
            tool("counter", "Counts calls in this session", json!({})),
            tool(
                "slow",
                "Steps with progress",
                json!({"steps": {"type": "integer"}}),
            ),
            tool("fail", "Always fails", json!({})),
            tool("delete_everything", "Dangerous", json!({})),
            tool("hang", "Never answers", json!({})),
        ]))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name.to_string();
        self.state.seen.calls.lock().unwrap().push(name.clone());
        let args = request.arguments.unwrap_or_default();
        match name.as_str() {
            "echo" => Ok(text(
                args.get("text").and_then(|v| v.as_str()).unwrap_or(""),
            )),
            "add" => {
                let a = args.get("a").and_then(|v| v.as_f64()).unwrap_or(0.0);
                let b = args.get("b").and_then(|v| v.as_f64()).unwrap_or(0.0);
                Ok(text((a + b).to_string()))
            }
            "whoami" => {
                let auth = context
                    .extensions
                    .get::<http::request::Parts>()
                    .and_then(|p| p.headers.get("authorization"))
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("none")
                    .to_owned();
                Ok(text(format!("you sent: {auth}")))
            }
            "counter" => {
                let n = self.counter.fetch_add(1, Ordering::SeqCst) + 1;
                Ok(text(n.to_string()))
            }
            "slow" => {
                let steps = args.get("steps").and_then(|v| v.as_u64()).unwrap_or(3);
                self.state.seen.started_count.fetch_add(1, Ordering::SeqCst);
                self.state.seen.started.notify_waiters();
                let token = context.meta.get_progress_token();
                for i in 1..=steps {
                    let permit = self.state.steps.acquire().await.expect("steps");
                    permit.forget();
                    if let Some(token) = &token {
                        let _ = context
                            .peer
                            .notify_progress(
                                ProgressNotificationParam::new(token.clone(), i as f64)
                                    .with_total(steps as f64)
                                    .with_message(format!("step {i}")),
                            )
                            .await;
                    }
                }
                Ok(text("slow done"))
            }
            "fail" => Ok(CallToolResult::error(vec![ContentBlock::text("it failed")]).into()),
            "delete_everything" => Ok(text("deleted everything")),
            "hang" => {
                self.state.seen.started_count.fetch_add(1, Ordering::SeqCst);
                self.state.seen.started.notify_waiters();
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(text("never"))
            }
            other => Err(ErrorData::invalid_params(format!("no tool {other}"), None)),
        }
    }
}

/// A running upstream.
pub struct Upstream {
    pub addr: SocketAddr,
    pub state: Arc<UpstreamState>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How the upstream answers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// Sessions (`Mcp-Session-Id`) and SSE answers, protocol versions up to 2025-11-25 only, as most servers of
    /// 2025.
    Sessions,
    /// No sessions; JSON answers where possible; every protocol version (2026-07-28 included).
    StatelessJson,
}

pub async fn start(mode: Mode) -> Upstream {
    start_with(mode, None).await
}

/// An upstream that answers 401 to every request without `Authorization: <required_auth>` (when given).
pub async fn start_with(mode: Mode, required_auth: Option<String>) -> Upstream {
    let state = Arc::new(UpstreamState {
        seen: Seen::default(),
        steps: Semaphore::new(0),
    });
    let factory_state = Arc::clone(&state);
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(mode == Mode::Sessions)
        .with_json_response(mode == Mode::StatelessJson)
        .with_sse_keep_alive(None);
    let service = StreamableHttpService::new(
        move || {
            Ok(TestServer {
                state: Arc::clone(&factory_state),
                counter: Arc::new(AtomicU64::new(0)),
                legacy_only: mode == Mode::Sessions,
            })
        },
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let record_state = Arc::clone(&state);
    let router =
        axum::Router::new()
            .nest_service("/mcp", service)
            .layer(axum::middleware::from_fn(
                move |req: Request, next: Next| {
                    let state = Arc::clone(&record_state);
                    let required_auth = required_auth.clone();
                    async move {
                        let headers = req
                            .headers()
                            .iter()
                            .map(|(n, v)| {
                                (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())
                            })
                            .collect();
                        state.seen.requests.lock().unwrap().push(headers);
                        let (parts, body) = req.into_parts();
                        let bytes = axum::body::to_bytes(body, 16 << 20)
                            .await
                            .unwrap_or_default();
                        state
                            .seen
                            .bodies
                            .lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&bytes).into_owned());
                        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
                        if let Some(required) = &required_auth {
                            let sent = req
                                .headers()
                                .get("authorization")
                                .and_then(|v| v.to_str().ok());
                            if sent != Some(required.as_str()) {
                                return Response::builder()
                                    .status(401)
                                    .header("www-authenticate", "Bearer")
                                    .body(axum::body::Body::from("missing or wrong bearer token"))
                                    .unwrap();
                            }
                        }
                        let resp: Response = next.run(req).await;
                        resp
                    }
                },
            ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Upstream { addr, state, task }
}

/// A server that answers every request with a redirect to `location`.
pub async fn redirecting(location: String) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let router = axum::Router::new().fallback(move || {
        let location = location.clone();
        async move {
            Response::builder()
                .status(307)
                .header("location", location)
                .body(axum::body::Body::empty())
                .unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (addr, task)
}

/// A TCP relay in front of an upstream whose connections the test can cut all at once (an upstream killed
/// mid-call, as seen from the gateway).
pub struct Cuttable {
    pub addr: SocketAddr,
    conns: Arc<Mutex<tokio::task::JoinSet<()>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Cuttable {
    pub async fn start(target: SocketAddr) -> Cuttable {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns: Arc<Mutex<tokio::task::JoinSet<()>>> = Arc::default();
        let set = Arc::clone(&conns);
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                set.lock().unwrap().spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Cuttable {
            addr,
            conns,
            accept,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// Cuts every connection and stops accepting: the upstream is gone.
    pub fn kill(&self) {
        self.accept.abort();
        self.conns.lock().unwrap().abort_all();
    }
}
