//! A trivial MCP server for `bench/run.sh`: one tool, `echo {text}`, over streamable HTTP at `/mcp` on the given
//! address, with sessions (`Mcp-Session-Id`) and SSE answers, as most MCP servers of 2025 answer. Built with `rmcp`,
//! like the gateway tests' upstreams.

use std::sync::Arc;

use axum::serve::ListenerExt;
use clap::Parser;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::json;

#[derive(Parser)]
#[command(about = "An MCP server with one tool, echo, on streamable HTTP at /mcp")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:18090")]
    listen: std::net::SocketAddr,
    /// Worker threads (default: tokio's, one per core).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Clone)]
struct Echo {
    tools: Arc<Vec<Tool>>,
}

impl ServerHandler for Echo {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools.as_ref().clone()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if request.name != "echo" {
            return Err(ErrorData::invalid_params(
                format!("no tool named {}: this server has only echo", request.name),
                None,
            ));
        }
        let text = request
            .arguments
            .as_ref()
            .and_then(|a| a.get("text"))
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned();
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]).into())
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        rt.worker_threads(n);
    }
    rt.enable_all().build()?.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let echo: Tool = serde_json::from_value(json!({
        "name": "echo",
        "description": "Answers with its text",
        "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}},
    }))?;
    let tools = Arc::new(vec![echo]);
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(true)
        .with_sse_keep_alive(None);
    let service = StreamableHttpService::new(
        move || {
            Ok(Echo {
                tools: Arc::clone(&tools),
            })
        },
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let router = axum::Router::new().nest_service("/mcp", service);
    // TCP_NODELAY, as Plugboard's own listener sets: an SSE answer is written in pieces, and without it the last
    // piece waits for the client's delayed ACK (about 40 ms on Linux).
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await?
        .tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
    eprintln!("mcp-echo-server listening on http://{}/mcp", args.listen);
    axum::serve(listener, router).await?;
    Ok(())
}
