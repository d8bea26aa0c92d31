//! The agent: an `rmcp` client speaking to the gateway with a bearer token, over the benchmark's HTTP adapter
//! (reqwest), which keeps every byte the gateway sends back so a test can search it for credentials.

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation,
    ProgressNotificationParam, ProtocolVersion,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientHandler, ClientLifecycleMode, ClientServiceExt, RoleClient, ServiceError};
use tokio::sync::mpsc;

/// The HTTP side of the agent: the benchmark's client ([`plugboard_bench::BearerHttp`]), recording everything the
/// gateway sends back.
pub type AgentHttp = plugboard_bench::BearerHttp;

fn agent_http(token: &str) -> AgentHttp {
    plugboard_bench::BearerHttp::new(Some(token))
        .expect("an HTTP client")
        // An agent's own cookies and credentials must never reach the upstream.
        .with_header("cookie", "agent_session=AGENT_COOKIE_SECRET")
        .with_header("x-agent-note", "hello")
        .recording()
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
    let http = agent_http(token);
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

    /// [`Agent::call`] running in the background (for calls that wait upstream while the test goes on). `args` that
    /// are not an object (`Value::Null`) send no arguments.
    pub fn spawn_call(
        &self,
        name: &str,
        args: serde_json::Value,
    ) -> tokio::task::JoinHandle<Result<CallToolResult, ServiceError>> {
        let peer = self.service.peer().clone();
        let mut params = CallToolRequestParams::new(name.to_owned());
        params.arguments = args.as_object().cloned();
        tokio::spawn(async move { peer.call_tool(params).await })
    }

    pub fn session_id(&self) -> Option<String> {
        self.http.session_ids().last().cloned()
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
