//! The aggregated MCP server: `tools/list` merges, `tools/call` routes.

use std::borrow::Cow;
use std::sync::{Arc, Weak};
use std::time::Instant;

use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CallToolResult, ErrorCode, Implementation,
    ListToolsResult, PaginatedRequestParams, ProtocolVersion, ServerCapabilities, ServerConfig,
    ServerResult, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

use super::CallScope;
use crate::jsonrpc::code;
use crate::policy;
use crate::ports::{IntegrationInfo, Outcome, Via};
use crate::record::CallSite;
use crate::upstream::Prepared;
use crate::Inner;

const VERSIONS: &[ProtocolVersion] = &[
    ProtocolVersion::V_2025_03_26,
    ProtocolVersion::V_2025_06_18,
    ProtocolVersion::V_2025_11_25,
    ProtocolVersion::V_2026_07_28,
];

#[derive(Clone)]
pub(crate) struct AggregateServer {
    gw: Weak<Inner>,
}

fn error(
    code: i64,
    message: impl Into<Cow<'static, str>>,
    data: Option<serde_json::Value>,
) -> ErrorData {
    ErrorData::new(ErrorCode(code as i32), message, data)
}

fn internal(message: &'static str) -> ErrorData {
    error(-32603, message, None)
}

/// `value` with the integration's secrets redacted wherever they appear; an answer that no longer parses after
/// redaction is withheld.
fn redacted<T: Serialize + DeserializeOwned>(
    prepared: &Prepared,
    value: T,
) -> Result<T, ErrorData> {
    let Ok(text) = serde_json::to_string(&value) else {
        return Ok(value);
    };
    let clean = prepared.redactor.redact(&text);
    if clean == text {
        return Ok(value);
    }
    serde_json::from_str(&clean).map_err(|_| {
        error(
            code::UPSTREAM,
            "the MCP server's answer held one of the integration's credentials and was withheld",
            None,
        )
    })
}

impl AggregateServer {
    pub(crate) fn new(gw: Weak<Inner>) -> Self {
        AggregateServer { gw }
    }

    fn parts(
        &self,
        context: &RequestContext<RoleServer>,
    ) -> Result<(Arc<Inner>, CallScope), ErrorData> {
        let gw = self
            .gw
            .upgrade()
            .ok_or_else(|| internal("the gateway is shutting down"))?;
        let scope = context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.extensions.get::<CallScope>())
            .cloned()
            .ok_or_else(|| {
                internal("the request reached the aggregated server without its scope")
            })?;
        Ok((gw, scope))
    }

    /// The tools of one integration, named and filtered for the agent.
    async fn tools_of(
        gw: &Arc<Inner>,
        scope: &CallScope,
        info: &IntegrationInfo,
    ) -> Result<Vec<Tool>, String> {
        let _slots = gw
            .limits
            .acquire(&scope.caller.token_id, Some(&info.id))
            .await
            .map_err(|r| r.message())?;
        let prepared = gw
            .upstreams
            .get(gw.ports.integrations.as_ref(), info)
            .await
            .map_err(|e| e.message)?;
        let upstream = gw.aggregate.pool.get(&scope.owner, info).await?;
        let listed =
            tokio::time::timeout(gw.config.timeout, upstream.peer().list_all_tools()).await;
        let tools = match listed {
            Ok(Ok(tools)) => tools,
            Ok(Err(e)) => {
                if !matches!(e, ServiceError::McpError(_)) {
                    gw.aggregate.pool.evict(&scope.owner, info);
                }
                return Err(prepared.finish(&e.to_string()));
            }
            Err(_) => {
                gw.aggregate.pool.evict(&scope.owner, info);
                return Err(format!(
                    "the MCP server did not list its tools within {} ms",
                    gw.config.timeout.as_millis()
                ));
            }
        };
        let mut out = Vec::with_capacity(tools.len());
        for mut tool in tools {
            if !info.policy.allows(&tool.name) {
                continue;
            }
            tool.name = Cow::Owned(policy::exposed_name(&info.tool_prefix, &tool.name));
            out.push(tool);
        }
        redacted(&prepared, out).map_err(|e| e.message.into_owned())
    }

    async fn call(
        gw: &Arc<Inner>,
        scope: &CallScope,
        (info, tool): (&IntegrationInfo, &str),
        request: CallToolRequestParams,
        context: &RequestContext<RoleServer>,
        site: &CallSite,
        started: Instant,
    ) -> Result<CallToolResponse, ErrorData> {
        if let Err(denial) = info.policy.check(tool) {
            site.record(tool, Outcome::Denied, started).await;
            return Err(error(
                code::TOOL_DENIED,
                info.policy.denial_message(tool, &denial),
                Some(json!({"reason": "tool_policy", "tool": tool})),
            ));
        }
        let _slots = match gw
            .limits
            .acquire(&scope.caller.token_id, Some(&info.id))
            .await
        {
            Ok(s) => s,
            Err(refused) => {
                site.record(tool, Outcome::Limited, started).await;
                return Err(error(code::BUSY, refused.message(), None));
            }
        };
        let prepared = match gw.upstreams.get(gw.ports.integrations.as_ref(), info).await {
            Ok(p) => p,
            Err(e) => {
                site.record(tool, Outcome::UpstreamError, started).await;
                return Err(error(
                    code::CREDENTIALS,
                    format!(
                        "the integration's credentials are not usable: {}",
                        e.message
                    ),
                    None,
                ));
            }
        };
        let upstream = match gw.aggregate.pool.get(&scope.owner, info).await {
            Ok(u) => u,
            Err(message) => {
                site.record(tool, Outcome::UpstreamError, started).await;
                return Err(error(code::UPSTREAM, message, None));
            }
        };
        let mut params = CallToolRequestParams::new(tool.to_owned());
        params.arguments = request.arguments;
        let progress = context
            .meta
            .get_progress_token()
            .map(|token| (context.peer.clone(), token, Arc::clone(&prepared)));
        let call = upstream.call_tool(params, progress);
        let answer = tokio::select! {
            answer = call => answer,
            () = context.ct.cancelled() => {
                site.record(tool, Outcome::Cancelled, started).await;
                return Err(error(-32800, "the request was cancelled", None));
            }
        };
        let answer = match answer {
            Ok(ServerResult::CallToolResult(result)) => Ok(CallToolResponse::Complete(result)),
            Ok(ServerResult::EmptyResult(_)) => {
                Ok(CallToolResponse::Complete(CallToolResult::success(vec![])))
            }
            Ok(ServerResult::InputRequiredResult(r)) => Ok(CallToolResponse::InputRequired(r)),
            Ok(_) => Err(ServiceError::UnexpectedResponse),
            Err(e) => Err(e),
        };
        match answer {
            Ok(CallToolResponse::Complete(result)) => {
                let outcome = if result.is_error == Some(true) {
                    Outcome::ToolError
                } else {
                    Outcome::Ok
                };
                site.record(tool, outcome, started).await;
                let result: CallToolResult = redacted(&prepared, result)?;
                Ok(CallToolResponse::Complete(result))
            }
            Ok(_) => {
                site.record(tool, Outcome::RpcError, started).await;
                Err(error(
                    code::UPSTREAM,
                    "the tool asked for input or started a task, which the aggregated endpoint does not relay; \
                     call it through /mcp/i/{integration_id}",
                    None,
                ))
            }
            Err(ServiceError::McpError(e)) => {
                site.record(tool, Outcome::RpcError, started).await;
                redacted(&prepared, e.clone()).and_then(Err)
            }
            Err(e) => {
                gw.aggregate.pool.evict(&scope.owner, info);
                let outcome = if e.to_string().contains("did not answer within") {
                    Outcome::Timeout
                } else {
                    Outcome::UpstreamError
                };
                site.record(tool, outcome, started).await;
                Err(error(
                    if outcome == Outcome::Timeout {
                        code::UPSTREAM_TIMEOUT
                    } else {
                        code::UPSTREAM
                    },
                    prepared.finish(&format!("the call to the MCP server failed: {e}")),
                    None,
                ))
            }
        }
    }
}

impl ServerHandler for AggregateServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("plugboard", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Plugboard's aggregated MCP endpoint: the tools of every integration this token can reach in this \
                 scope, each named <prefix>__<tool>.",
            )
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(VERSIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let (gw, scope) = self.parts(&context)?;
        let lists = futures_util::future::join_all(scope.integrations.iter().map(|info| {
            let (gw, scope) = (&gw, &scope);
            async move { (info, Self::tools_of(gw, scope, info).await) }
        }))
        .await;
        let mut tools = Vec::new();
        for (info, listed) in lists {
            match listed {
                Ok(mut t) => tools.append(&mut t),
                Err(message) => tracing::warn!(
                    integration_id = %info.id,
                    "gateway: an integration is left out of the aggregated tools/list: {message}"
                ),
            }
        }
        Ok(ListToolsResult::with_all_items(tools).with_cache_scope(CacheScope::Private))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let started = Instant::now();
        let (gw, scope) = self.parts(&context)?;
        let name = request.name.to_string();
        let found = policy::split_exposed(&name).and_then(|(prefix, tool)| {
            scope
                .integrations
                .iter()
                .find(|i| i.tool_prefix == prefix)
                .map(|i| (i.clone(), tool.to_owned()))
        });
        let Some((info, tool)) = found else {
            let shown: String = name.chars().take(128).collect();
            return Err(error(
                code::INVALID_PARAMS,
                format!(
                    "unknown tool {shown:?}: tools here are named <prefix>__<tool>; see tools/list"
                ),
                None,
            ));
        };
        let site = CallSite {
            caller: scope.caller.clone(),
            workspace_id: info.workspace_id.clone(),
            integration_id: info.id.clone(),
            via: Via::Aggregated(scope.scope.clone()),
            recorder: gw.recorder.clone(),
        };
        Self::call(
            &gw,
            &scope,
            (&info, &tool),
            request,
            &context,
            &site,
            started,
        )
        .await
    }
}
