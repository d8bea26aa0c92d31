//! The agent: an `rmcp` client speaking to the gateway with a bearer token, over a small HTTP adapter (reqwest),
//! that keeps every byte the gateway sends back so a test can search it for credentials.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use http::{HeaderName, HeaderValue};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, ClientJsonRpcMessage,
    Implementation, JsonRpcMessage, ProgressNotificationParam, ProtocolVersion,
    ServerJsonRpcMessage,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpClientTransportConfig, StreamableHttpError,
    StreamableHttpPostResponse,
};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientHandler, ClientLifecycleMode, ClientServiceExt, RoleClient, ServiceError};
use sse_stream::{Sse, SseStream};
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AgentError(String);

/// The HTTP side of the agent.
#[derive(Clone)]
pub struct AgentHttp {
    client: reqwest::Client,
    token: String,
    /// Everything received from the gateway: header values and bodies.
    pub received: Arc<Mutex<Vec<u8>>>,
    /// Every `Mcp-Session-Id` the gateway handed out.
    pub session_ids: Arc<Mutex<Vec<String>>>,
}

type Res<T> = Result<T, StreamableHttpError<AgentError>>;

fn err(e: impl std::fmt::Display) -> StreamableHttpError<AgentError> {
    StreamableHttpError::Client(AgentError(e.to_string()))
}

impl AgentHttp {
    pub fn new(token: &str) -> AgentHttp {
        AgentHttp {
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
            token: token.to_owned(),
            received: Arc::default(),
            session_ids: Arc::default(),
        }
    }

    pub fn received_text(&self) -> String {
        String::from_utf8_lossy(&self.received.lock().unwrap()).into_owned()
    }

    fn keep_headers(&self, resp: &reqwest::Response) {
        let mut r = self.received.lock().unwrap();
        for (n, v) in resp.headers() {
            r.extend_from_slice(n.as_str().as_bytes());
            r.extend_from_slice(b": ");
            r.extend_from_slice(v.as_bytes());
            r.push(b'\n');
        }
        if let Some(sid) = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
        {
            self.session_ids.lock().unwrap().push(sid.to_owned());
        }
    }

    fn request(
        &self,
        method: reqwest::Method,
        uri: &str,
        session: Option<&str>,
        custom: HashMap<HeaderName, HeaderValue>,
    ) -> reqwest::RequestBuilder {
        let mut rb = self
            .client
            .request(method, uri)
            .bearer_auth(&self.token)
            // An agent's own cookies and credentials must never reach the upstream.
            .header("cookie", "agent_session=AGENT_COOKIE_SECRET")
            .header("x-agent-note", "hello")
            .header("accept", "application/json, text/event-stream");
        for (n, v) in custom {
            rb = rb.header(n, v);
        }
        if let Some(s) = session {
            rb = rb.header("mcp-session-id", s);
        }
        rb
    }

    fn sse(&self, resp: reqwest::Response) -> BoxStream<'static, Result<Sse, SseError>> {
        let received = Arc::clone(&self.received);
        let bytes = resp.bytes_stream().map(move |c| {
            if let Ok(c) = &c {
                received.lock().unwrap().extend_from_slice(c);
            }
            c
        });
        SseStream::from_bytes_stream(bytes).boxed()
    }
}

impl StreamableHttpClient for AgentHttp {
    type Error = AgentError;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth: Option<String>,
        custom: HashMap<HeaderName, HeaderValue>,
    ) -> Res<StreamableHttpPostResponse> {
        let resp = self
            .request(reqwest::Method::POST, &uri, session_id.as_deref(), custom)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&message).unwrap())
            .send()
            .await
            .map_err(err)?;
        self.keep_headers(&resp);
        let status = resp.status();
        let sid = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if status == 202 || status == 204 {
            return Ok(StreamableHttpPostResponse::Accepted);
        }
        if status == 404 && session_id.is_some() {
            return Err(StreamableHttpError::SessionExpired);
        }
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        if ct.starts_with("text/event-stream") && status.is_success() {
            return Ok(StreamableHttpPostResponse::Sse(self.sse(resp), sid));
        }
        let body = resp.bytes().await.map_err(err)?;
        self.received.lock().unwrap().extend_from_slice(&body);
        match serde_json::from_slice::<ServerJsonRpcMessage>(&body) {
            Ok(m @ JsonRpcMessage::Error(_)) => Ok(StreamableHttpPostResponse::Json(m, sid)),
            Ok(m) if status.is_success() => Ok(StreamableHttpPostResponse::Json(m, sid)),
            _ if !matches!(message, ClientJsonRpcMessage::Request(_)) && status.is_success() => {
                Ok(StreamableHttpPostResponse::Accepted)
            }
            _ => Err(StreamableHttpError::UnexpectedServerResponse(Cow::Owned(
                format!("HTTP {status}: {}", String::from_utf8_lossy(&body)),
            ))),
        }
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        _auth: Option<String>,
        custom: HashMap<HeaderName, HeaderValue>,
    ) -> Res<()> {
        let resp = self
            .request(reqwest::Method::DELETE, &uri, Some(&session_id), custom)
            .send()
            .await
            .map_err(err)?;
        self.keep_headers(&resp);
        Ok(())
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        _auth: Option<String>,
        custom: HashMap<HeaderName, HeaderValue>,
    ) -> Res<BoxStream<'static, Result<Sse, SseError>>> {
        let mut rb = self.request(reqwest::Method::GET, &uri, session_id.as_deref(), custom);
        if let Some(id) = last_event_id {
            rb = rb.header("last-event-id", id);
        }
        let resp = rb.send().await.map_err(err)?;
        self.keep_headers(&resp);
        if resp.status() == 405 {
            return Err(StreamableHttpError::ServerDoesNotSupportSse);
        }
        if !resp.status().is_success() {
            return Err(StreamableHttpError::UnexpectedServerResponse(Cow::Owned(
                format!("GET answered {}", resp.status()),
            )));
        }
        Ok(self.sse(resp))
    }
}

/// The agent's MCP side: records progress notifications.
#[derive(Clone)]
pub struct AgentHandler {
    progress: mpsc::UnboundedSender<ProgressNotificationParam>,
    version: ProtocolVersion,
}

impl ClientHandler for AgentHandler {
    fn get_info(&self) -> ClientConfig {
        let mut c = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("test-agent", "1.0"),
        );
        c.protocol_version = self.version.clone();
        c
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _c: NotificationContext<RoleClient>,
    ) {
        let _ = self.progress.send(params);
    }
}

pub struct Agent {
    pub service: RunningService<RoleClient, AgentHandler>,
    pub http: AgentHttp,
    pub progress: mpsc::UnboundedReceiver<ProgressNotificationParam>,
}

/// Which protocol era the agent speaks.
#[derive(Clone, Debug)]
pub enum Era {
    /// `initialize` with this version (2025-03-26 … 2025-11-25).
    Legacy(ProtocolVersion),
    /// `server/discover`, protocol 2026-07-28.
    Modern,
}

pub async fn connect(url: &str, token: &str) -> Agent {
    connect_era(
        url,
        token,
        Era::Legacy(ProtocolVersion::LATEST_WITH_INITIALIZE),
    )
    .await
    .expect("the agent connects")
}

pub async fn connect_era(url: &str, token: &str, era: Era) -> Result<Agent, String> {
    let http = AgentHttp::new(token);
    let (tx, rx) = mpsc::unbounded_channel();
    let (version, lifecycle) = match era {
        Era::Legacy(v) => (v, ClientLifecycleMode::Initialize),
        Era::Modern => (
            ProtocolVersion::V_2026_07_28,
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        ),
    };
    let handler = AgentHandler {
        progress: tx,
        version,
    };
    let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_owned());
    config.retry_config = Arc::new(rmcp::transport::common::client_side_sse::NeverRetry::default());
    let transport = StreamableHttpClientTransport::with_client(http.clone(), config);
    let service = handler
        .serve_with_lifecycle(transport, lifecycle)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Agent {
        service,
        http,
        progress: rx,
    })
}

impl Agent {
    pub async fn tool_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .service
            .list_all_tools()
            .await
            .expect("tools/list")
            .into_iter()
            .map(|t| t.name.to_string())
            .collect();
        names.sort();
        names
    }

    pub async fn call(
        &self,
        name: &str,
        args: serde_json::Value,
    ) -> Result<CallToolResult, ServiceError> {
        let mut params = CallToolRequestParams::new(name.to_owned());
        params.arguments = args.as_object().cloned();
        self.service.call_tool(params).await
    }

    pub fn session_id(&self) -> Option<String> {
        self.http.session_ids.lock().unwrap().last().cloned()
    }
}

/// The text of a tool result.
pub fn text_of(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("")
}

/// The JSON-RPC error code of a failed call.
pub fn error_code(e: &ServiceError) -> Option<i32> {
    match e {
        ServiceError::McpError(d) => Some(d.code.0),
        _ => None,
    }
}
