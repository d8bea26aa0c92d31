//! `/mcp/i/{integration_id}`: one integration, relayed.
//!
//! - `POST`: the agent's JSON-RPC body is read (bounded), checked (tool policy on every `tools/call`; a denied call
//!   is answered here with a JSON-RPC error and never sent), and sent upstream with the integration's materialised
//!   headers instead of the agent's. A JSON answer is one message: it is read (bounded), redacted, filtered and
//!   answered. An SSE answer is relayed event by event as the events arrive; the upstream is read only as fast as
//!   the agent reads (backpressure).
//! - `GET` (the server's stream) and `DELETE` (end the session) are relayed the same way.
//! - Only MCP headers go upstream (`Accept`, `Content-Type`, `MCP-Protocol-Version`, `Mcp-*`, `Last-Event-ID`):
//!   never the agent's `Authorization`, cookies or hop-by-hop headers. The upstream's `Mcp-Session-Id` is sealed
//!   to the caller's token and the integration ([`crate::sealed`]).
//! - Everything that comes back is redacted with the integration's secrets, `tools/list` results are filtered by
//!   the policy wherever they appear, and every `tools/call` is recorded (audit and metrics) when its answer passes.
//! - Upstream failures (unreachable, refused credentials, redirects, silence beyond the timeout, a connection cut
//!   mid-stream) become JSON-RPC errors for every request still waiting, so no agent hangs.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use plugboard_egress::{EgressError, StreamRequest, StreamResponse};
use serde_json::{json, Value};

use crate::jsonrpc::{self, code};
use crate::limits::Slots;
use crate::policy::ToolPolicy;
use crate::ports::{
    AccessError, Caller, IntegrationInfo, IntegrationStatus, Outcome, Transport, Via,
};
use crate::record::CallSite;
use crate::reply::{self, EVENT_STREAM, JSON};
use crate::sealed;
use crate::sse::{self, Framer};
use crate::upstream::Prepared;
use crate::Inner;

const SESSION_HEADER: &str = "mcp-session-id";
/// Non-2xx bodies relayed at most this long (they are diagnostics).
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Events without data an answer to a POST waits for, at most, before it starts (see `relay_stream`).
const PRIME_EVENTS: usize = 2;
/// How long the rest of an upstream stream is read after every request it carried was answered.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

/// The answer before MCP starts, for an integration that cannot be used.
pub(crate) fn access_refusal(err: &AccessError, what: &str) -> Response<Body> {
    match err {
        AccessError::NotFound => reply::refusal(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no such {what}, or it is not visible to this token"),
        ),
        AccessError::Forbidden => reply::refusal(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!("this token may not use this {what}"),
        ),
        AccessError::Unavailable(cause) => {
            tracing::error!(error = %cause, "gateway: the integration lookup failed");
            let mut resp = reply::refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                "the database is unavailable; retry shortly",
            );
            resp.headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
            resp
        }
    }
}

/// Why the passthrough does not serve `info` (the refusals of [`handle`] aside from access), if it does not.
pub(crate) fn unusable(info: &IntegrationInfo) -> Option<crate::Lost> {
    if !matches!(info.transport, Transport::StreamableHttp) {
        Some(crate::Lost::NotProxyable)
    } else if !info.enabled {
        Some(crate::Lost::Disabled)
    } else if info.status == IntegrationStatus::PendingOauth {
        Some(crate::Lost::OauthPending)
    } else {
        None
    }
}

/// The answer to a request for an integration the passthrough does not serve, by [`unusable`]'s reason.
fn unusable_refusal(reason: crate::Lost, transport: &Transport) -> Response<Body> {
    match reason {
        crate::Lost::NotProxyable if matches!(transport, Transport::Stdio) => reply::refusal(
            StatusCode::CONFLICT,
            "not_proxyable",
            "this integration runs over stdio: the agent runtime starts it, so the gateway cannot reach it; \
             use GET /api/v1/integrations/{id}/runtime",
        ),
        crate::Lost::NotProxyable => {
            let name = match transport {
                Transport::Sse => "sse (the legacy HTTP+SSE transport)".to_owned(),
                Transport::Other(t) => t.chars().take(32).collect(),
                _ => String::new(),
            };
            reply::refusal(
                StatusCode::CONFLICT,
                "not_proxyable",
                &format!("this integration's transport is {name}; the gateway relays streamable-http only"),
            )
        }
        crate::Lost::Disabled => reply::refusal(
            StatusCode::CONFLICT,
            "integration_disabled",
            "this integration is disabled; enable it (PATCH `enabled`: true) to use it",
        ),
        crate::Lost::OauthPending => reply::refusal(
            StatusCode::CONFLICT,
            "oauth_pending",
            "this integration is waiting for its OAuth authorization to complete",
        ),
        // Not reasons `unusable` gives: access refusals come from `access_refusal`.
        crate::Lost::NotFound => access_refusal(&AccessError::NotFound, "integration"),
        crate::Lost::Forbidden => access_refusal(&AccessError::Forbidden, "integration"),
    }
}

pub(crate) async fn handle(
    gw: &Arc<Inner>,
    caller: Caller,
    integration_id: &str,
    req: Request<Body>,
) -> Response<Body> {
    let info = match gw
        .ports
        .integrations
        .integration(&caller, integration_id)
        .await
    {
        Ok(info) => info,
        Err(e) => return access_refusal(&e, "integration"),
    };
    if let Some(reason) = unusable(&info) {
        return unusable_refusal(reason, &info.transport);
    }
    let site = CallSite {
        caller,
        workspace_id: info.workspace_id.clone(),
        integration_id: info.id.clone(),
        via: Via::Passthrough,
        recorder: gw.recorder.clone(),
    };
    let method = req.method().clone();
    if method == Method::POST {
        post(gw, site, &info, req).await
    } else if method == Method::GET {
        get(gw, site, &info, req).await
    } else if method == Method::DELETE {
        delete(gw, site, &info, req).await
    } else {
        reply::method_not_allowed("GET, POST, DELETE")
    }
}

/// The requests of one POST that still wait for an answer.
#[derive(Default)]
struct Pending {
    /// Every request id sent upstream, by [`jsonrpc::id_key`].
    ids: HashMap<String, Value>,
    /// The `tools/call`s among them: tool name and start.
    calls: HashMap<String, (String, Instant)>,
}

impl Pending {
    fn ids(&self) -> Vec<Value> {
        self.ids.values().cloned().collect()
    }

    /// Notes an answer; returns the finished call, if it was one.
    fn answered(&mut self, msg: &Value) -> Option<(String, Instant, Outcome)> {
        self.note(jsonrpc::response_id(msg)?, || jsonrpc::outcome(msg))
    }

    /// [`Pending::answered`] for an answer read by [`jsonrpc::answer_heads`].
    fn answered_head(&mut self, head: &jsonrpc::AnswerHead) -> Option<(String, Instant, Outcome)> {
        self.note(head.id.as_ref()?, || head.outcome)
    }

    fn note(
        &mut self,
        id: &Value,
        outcome: impl FnOnce() -> Outcome,
    ) -> Option<(String, Instant, Outcome)> {
        let key = jsonrpc::id_key(id);
        self.ids.remove(&key);
        self.calls
            .remove(&key)
            .map(|(tool, started)| (tool, started, outcome()))
    }
}

/// The agent's headers that go upstream: MCP's own, nothing else.
fn forwarded_headers(agent: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in agent {
        let n = name.as_str();
        let keep = matches!(
            n,
            "accept" | "content-type" | "last-event-id" | "mcp-protocol-version"
        ) || (n.starts_with("mcp-") && n != SESSION_HEADER);
        if keep {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// The full header set for the upstream: the agent's MCP headers, the integration's (which win), the session.
fn upstream_headers(agent: &HeaderMap, prepared: &Prepared, session: Option<&str>) -> HeaderMap {
    let mut headers = forwarded_headers(agent);
    for name in prepared.headers().keys() {
        headers.remove(name);
    }
    for (name, value) in prepared.headers() {
        headers.append(name.clone(), value.clone());
    }
    if let Some(sid) = session.and_then(|s| HeaderValue::from_str(s).ok()) {
        headers.insert(HeaderName::from_static(SESSION_HEADER), sid);
    }
    headers
}

/// A session id that does not open for this caller (answered with a 404).
struct UnknownSession;

/// The upstream session for the agent's `Mcp-Session-Id`.
fn upstream_session(
    gw: &Inner,
    site: &CallSite,
    agent: &HeaderMap,
) -> Result<Option<String>, UnknownSession> {
    let Some(value) = agent.get(SESSION_HEADER) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| {
            gw.sealer
                .open(v, &site.caller.token_id, &site.integration_id)
        })
        .map(Some)
        .ok_or(UnknownSession)
}

/// What went wrong upstream, for the agent (redacted) and for the record.
fn egress_failure(
    gw: &Inner,
    prepared: Option<&Prepared>,
    err: &EgressError,
) -> (i64, String, Outcome) {
    let (code, text, outcome) = match err {
        EgressError::Timeout => (
            code::UPSTREAM_TIMEOUT,
            format!(
                "the MCP server did not answer within {} ms; retry later",
                gw.config.timeout.as_millis()
            ),
            Outcome::Timeout,
        ),
        EgressError::Blocked(_) => (
            code::UPSTREAM,
            format!("the gateway may not connect to this integration's MCP server ({err})"),
            Outcome::UpstreamError,
        ),
        EgressError::Redirected(_) => (
            code::UPSTREAM,
            format!("the MCP server {err}; fix the integration's endpoint"),
            Outcome::UpstreamError,
        ),
        _ => (
            code::UPSTREAM,
            format!("could not reach the MCP server: {err}"),
            Outcome::UpstreamError,
        ),
    };
    let text = match prepared {
        Some(p) => p.finish(&text),
        None => text,
    };
    (code, text, outcome)
}

async fn post(
    gw: &Arc<Inner>,
    site: CallSite,
    info: &IntegrationInfo,
    req: Request<Body>,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let raw = match axum::body::to_bytes(body, gw.config.max_request_bytes).await {
        Ok(b) => b,
        Err(_) => {
            return reply::json_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                &jsonrpc::error(
                    None,
                    code::INVALID_REQUEST,
                    &format!(
                        "the request body is larger than {} bytes (or could not be read)",
                        gw.config.max_request_bytes
                    ),
                    None,
                ),
            )
        }
    };
    let policy = &info.policy;
    let (single, pending, denied, body) = match open_policy_heads(policy, &raw) {
        Some((single, pending)) => (single, pending, Vec::new(), raw),
        None => match check_in_full(&site, policy, raw).await {
            Ok(checked) => checked,
            Err(answer) => return answer,
        },
    };

    let slots = match gw
        .limits
        .acquire(&site.caller.token_id, Some(&info.id))
        .await
    {
        Ok(s) => s,
        Err(refused) => {
            for (tool, started) in pending.calls.values() {
                site.record(tool, Outcome::Limited, *started).await;
            }
            let ids = pending.ids();
            let msg = refused.message();
            return with_denials(
                reply::rpc_errors(
                    &ids,
                    single,
                    code::BUSY,
                    &msg,
                    None,
                    StatusCode::SERVICE_UNAVAILABLE,
                ),
                denied,
                &ids,
                code::BUSY,
                &msg,
            );
        }
    };
    let session = match upstream_session(gw, &site, &parts.headers) {
        Ok(s) => s,
        Err(UnknownSession) => return reply::session_not_found(),
    };
    let prepared = match gw.upstreams.get(gw.ports.integrations.as_ref(), info).await {
        Ok(p) => p,
        Err(e) => {
            for (tool, started) in pending.calls.values() {
                site.record(tool, Outcome::UpstreamError, *started).await;
            }
            let ids = pending.ids();
            let msg = format!(
                "the integration's credentials are not usable: {}",
                e.message
            );
            return with_denials(
                reply::rpc_errors(
                    &ids,
                    single,
                    code::CREDENTIALS,
                    &msg,
                    None,
                    StatusCode::BAD_GATEWAY,
                ),
                denied,
                &ids,
                code::CREDENTIALS,
                &msg,
            );
        }
    };
    let request = StreamRequest {
        method: Method::POST,
        url: prepared.endpoint().clone(),
        headers: upstream_headers(&parts.headers, &prepared, session.as_deref()),
        body: Some(body),
        idle_timeout: gw.config.timeout,
    };
    let exchange = Exchange {
        gw: Arc::clone(gw),
        site,
        policy: info.policy.clone(),
        prepared,
        pending,
        denied,
        single,
        _slots: slots,
    };
    match gw.guard.send_stream(request).await {
        Ok(resp) => exchange.relay(resp).await,
        Err(e) => exchange.fail_before_answer(&e).await,
    }
}

/// The requests of a body that an open policy lets through as it is, read without building the messages: whether it
/// is a single message, and what waits for an answer. `None` when the body needs the full parse (a policy that can
/// deny, a `tools/call` without a name to refuse, an empty batch, or a body not plain enough to read that way).
fn open_policy_heads(policy: &ToolPolicy, raw: &[u8]) -> Option<(bool, Pending)> {
    if !policy.is_open() {
        return None;
    }
    let (heads, single) = jsonrpc::request_heads(raw)?;
    let nameless_call = |h: &jsonrpc::RequestHead| {
        h.id.is_some() && h.method.as_deref() == Some("tools/call") && h.tool.is_none()
    };
    if heads.is_empty() || heads.iter().any(nameless_call) {
        return None;
    }
    let mut pending = Pending::default();
    for head in heads {
        let Some(id) = head.id else { continue };
        let key = jsonrpc::id_key(&id);
        if let (Some("tools/call"), Some(tool)) = (head.method.as_deref(), head.tool) {
            pending.calls.insert(key.clone(), (tool, Instant::now()));
        }
        pending.ids.insert(key, id);
    }
    Some((single, pending))
}

/// The body parsed in full and checked against the policy: whether it is a single message, what waits for an
/// answer, the denials (answered by the gateway), and the body to send (the gateway's serialisation whenever the
/// policy could deny anything or decided something). `Err` is the whole answer: the body is not JSON-RPC, or nothing
/// is left to send.
///
/// Every `tools/call` is checked, also one that cannot be answered (sent as a notification, or with an id that is
/// not a string or a number): a denied or nameless one of those is dropped (and a denied one recorded), never sent.
async fn check_in_full(
    site: &CallSite,
    policy: &ToolPolicy,
    raw: Bytes,
) -> Result<(bool, Pending, Vec<Value>, Bytes), Response<Body>> {
    let Some(parsed) = jsonrpc::Body::parse(&raw) else {
        return Err(reply::json_response(
            StatusCode::BAD_REQUEST,
            &jsonrpc::error(
                None,
                code::PARSE_ERROR,
                "the request body is not a JSON-RPC message or batch",
                None,
            ),
        ));
    };
    let single = matches!(parsed, jsonrpc::Body::Single(_));
    if parsed.messages().is_empty() {
        return Err(reply::json_response(
            StatusCode::BAD_REQUEST,
            &jsonrpc::error(None, code::INVALID_REQUEST, "the batch is empty", None),
        ));
    }
    let mut pending = Pending::default();
    let mut denied: Vec<Value> = Vec::new();
    let mut forward: Vec<Value> = Vec::new();
    for msg in parsed.into_messages() {
        let id = jsonrpc::request_id(&msg).cloned();
        if jsonrpc::method(&msg) == Some("tools/call") {
            match (jsonrpc::tool_name(&msg).map(str::to_owned), &id) {
                (None, Some(id)) => {
                    denied.push(jsonrpc::error(
                        Some(id),
                        code::INVALID_PARAMS,
                        "tools/call needs params.name",
                        None,
                    ));
                    continue;
                }
                // A call that cannot be answered and names no tool: nothing to check it against.
                (None, None) if !policy.is_open() => continue,
                (None, None) => {}
                (Some(tool), id) => match policy.check(&tool) {
                    Err(denial) => {
                        // A call that cannot be answered is dropped all the same, without an answer.
                        if let Some(id) = id {
                            denied.push(jsonrpc::error(
                                Some(id),
                                code::TOOL_DENIED,
                                &policy.denial_message(&tool, &denial),
                                Some(json!({"reason": "tool_policy", "tool": tool})),
                            ));
                        }
                        site.record(&tool, Outcome::Denied, Instant::now()).await;
                        continue;
                    }
                    Ok(()) => {
                        if let Some(id) = id {
                            pending
                                .calls
                                .insert(jsonrpc::id_key(id), (tool, Instant::now()));
                        }
                    }
                },
            }
        }
        if let Some(id) = id {
            pending.ids.insert(jsonrpc::id_key(&id), id);
        }
        forward.push(msg);
    }
    if forward.is_empty() {
        if denied.is_empty() {
            // Only calls that get no answer, all dropped: accepted, as the upstream would accept notifications.
            let mut accepted = Response::new(Body::empty());
            *accepted.status_mut() = StatusCode::ACCEPTED;
            return Err(accepted);
        }
        return Err(reply::messages_response(StatusCode::OK, denied, single));
    }
    // What was checked is what is sent: when a policy can deny anything, the upstream gets our serialisation (a body
    // with duplicate keys cannot mean one thing here and another there, whichever key either side reads).
    let body = if denied.is_empty() && policy.is_open() {
        raw
    } else {
        let value = if single && forward.len() == 1 {
            forward.pop().unwrap_or(Value::Null)
        } else {
            Value::Array(forward)
        };
        Bytes::from(serde_json::to_vec(&value).unwrap_or_default())
    };
    Ok((single, pending, denied, body))
}

/// A refusal for the forwarded requests, plus the denials decided before (they are answered too).
fn with_denials(
    resp: Response<Body>,
    denied: Vec<Value>,
    ids: &[Value],
    code: i64,
    message: &str,
) -> Response<Body> {
    if denied.is_empty() {
        return resp;
    }
    let mut all: Vec<Value> = ids
        .iter()
        .map(|id| jsonrpc::error(Some(id), code, message, None))
        .collect();
    all.extend(denied);
    // Denials and forwarded requests together: the body was a batch, so is the answer.
    reply::messages_response(StatusCode::OK, all, false)
}

async fn get(
    gw: &Arc<Inner>,
    site: CallSite,
    info: &IntegrationInfo,
    req: Request<Body>,
) -> Response<Body> {
    let slots = match gw.limits.acquire_stream(&site.caller.token_id) {
        Ok(s) => s,
        Err(refused) => {
            return reply::json_response(
                StatusCode::TOO_MANY_REQUESTS,
                &jsonrpc::error(None, code::BUSY, &refused.message(), None),
            )
        }
    };
    bodiless(gw, site, info, req, Method::GET, slots).await
}

async fn delete(
    gw: &Arc<Inner>,
    site: CallSite,
    info: &IntegrationInfo,
    req: Request<Body>,
) -> Response<Body> {
    let slots = match gw
        .limits
        .acquire(&site.caller.token_id, Some(&info.id))
        .await
    {
        Ok(s) => s,
        Err(refused) => {
            return reply::json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &jsonrpc::error(None, code::BUSY, &refused.message(), None),
            )
        }
    };
    bodiless(gw, site, info, req, Method::DELETE, slots).await
}

async fn bodiless(
    gw: &Arc<Inner>,
    site: CallSite,
    info: &IntegrationInfo,
    req: Request<Body>,
    method: Method,
    slots: Slots,
) -> Response<Body> {
    let (parts, _) = req.into_parts();
    let session = match upstream_session(gw, &site, &parts.headers) {
        Ok(s) => s,
        Err(UnknownSession) => return reply::session_not_found(),
    };
    let prepared = match gw.upstreams.get(gw.ports.integrations.as_ref(), info).await {
        Ok(p) => p,
        Err(e) => {
            return reply::json_response(
                StatusCode::BAD_GATEWAY,
                &jsonrpc::error(
                    None,
                    code::CREDENTIALS,
                    &format!(
                        "the integration's credentials are not usable: {}",
                        e.message
                    ),
                    None,
                ),
            )
        }
    };
    let request = StreamRequest {
        method,
        url: prepared.endpoint().clone(),
        headers: upstream_headers(&parts.headers, &prepared, session.as_deref()),
        body: None,
        idle_timeout: gw.config.timeout,
    };
    let exchange = Exchange {
        gw: Arc::clone(gw),
        site,
        policy: info.policy.clone(),
        prepared,
        pending: Pending::default(),
        denied: Vec::new(),
        single: true,
        _slots: slots,
    };
    match gw.guard.send_stream(request).await {
        Ok(resp) => exchange.relay(resp).await,
        Err(e) => exchange.fail_before_answer(&e).await,
    }
}

/// One upstream exchange: everything needed to turn the upstream's answer into the agent's.
struct Exchange {
    gw: Arc<Inner>,
    site: CallSite,
    policy: ToolPolicy,
    prepared: Arc<Prepared>,
    pending: Pending,
    /// Denials decided before sending: answered along with the upstream's answer.
    denied: Vec<Value>,
    single: bool,
    /// Held (never read) until the exchange, SSE stream included, is over: dropping releases the limits' slots.
    _slots: Slots,
}

impl Exchange {
    /// Every waiting request gets a JSON-RPC error; every waiting call is recorded.
    async fn fail(
        mut self,
        code: i64,
        message: &str,
        outcome: Outcome,
        status_without_ids: StatusCode,
    ) -> Response<Body> {
        for (tool, started) in std::mem::take(&mut self.pending.calls).into_values() {
            self.site.record(&tool, outcome, started).await;
        }
        let ids = self.pending.ids();
        with_denials(
            reply::rpc_errors(&ids, self.single, code, message, None, status_without_ids),
            std::mem::take(&mut self.denied),
            &ids,
            code,
            message,
        )
    }

    async fn fail_before_answer(self, err: &EgressError) -> Response<Body> {
        let (code, message, outcome) = egress_failure(&self.gw, Some(&self.prepared), err);
        let status = if outcome == Outcome::Timeout {
            StatusCode::GATEWAY_TIMEOUT
        } else {
            StatusCode::BAD_GATEWAY
        };
        self.fail(code, &message, outcome, status).await
    }

    /// The agent's copy of the upstream's response headers: content type, the sealed session, the protocol.
    fn agent_headers(&self, upstream: &HeaderMap) -> HeaderMap {
        let mut out = HeaderMap::new();
        if let Some(ct) = upstream.get(CONTENT_TYPE) {
            out.insert(CONTENT_TYPE, ct.clone());
        }
        if let Some(v) = upstream.get("mcp-protocol-version") {
            out.insert(HeaderName::from_static("mcp-protocol-version"), v.clone());
        }
        if let Some(sid) = upstream.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) {
            match self
                .gw
                .sealer
                .seal(sid, &self.site.caller.token_id, &self.site.integration_id)
                .and_then(|s| HeaderValue::from_str(&s).ok())
            {
                Some(sealed) => {
                    out.insert(HeaderName::from_static(SESSION_HEADER), sealed);
                }
                None => tracing::warn!(
                    integration_id = %self.site.integration_id,
                    "the MCP server sent an Mcp-Session-Id that is not visible ASCII of at most {} bytes; it was \
                     not passed on",
                    sealed::MAX_UPSTREAM_ID
                ),
            }
        }
        out
    }

    async fn relay(self, resp: StreamResponse) -> Response<Body> {
        let status = resp.status;
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let message = format!(
                "the MCP server refused this integration's credentials (HTTP {}); reconnect the integration or \
                 update its credentials",
                status.as_u16()
            );
            return self
                .fail(
                    code::UPSTREAM,
                    &message,
                    Outcome::UpstreamError,
                    StatusCode::BAD_GATEWAY,
                )
                .await;
        }
        if status.is_redirection() || status.is_informational() {
            let message = format!(
                "the MCP server answered HTTP {} instead of an MCP answer",
                status.as_u16()
            );
            return self
                .fail(
                    code::UPSTREAM,
                    &message,
                    Outcome::UpstreamError,
                    StatusCode::BAD_GATEWAY,
                )
                .await;
        }
        let headers = self.agent_headers(&resp.headers);
        let content_type = resp
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.trim().to_ascii_lowercase())
            .unwrap_or_default();
        if !status.is_success() {
            return self.relay_error(status, headers, resp).await;
        }
        if status == StatusCode::ACCEPTED || status == StatusCode::NO_CONTENT {
            return self.relay_accepted(status, headers).await;
        }
        if content_type.starts_with(EVENT_STREAM) {
            self.relay_stream(status, headers, resp).await
        } else {
            self.relay_message(status, headers, resp, content_type.starts_with(JSON))
                .await
        }
    }

    /// A 4xx or 5xx: its status and its (bounded, redacted) body, so the agent's client reacts as it would to the
    /// server itself (e.g. a 404 for an expired session starts a new one). The whole POST failed: denials of the
    /// same batch are not answered on their own (an HTTP 200 carrying them would hide the status), the client fails
    /// every request of the POST.
    async fn relay_error(
        mut self,
        status: StatusCode,
        headers: HeaderMap,
        resp: StreamResponse,
    ) -> Response<Body> {
        let body = match read_prefix(resp, MAX_ERROR_BODY).await {
            Ok(b) => b,
            Err(_) => Bytes::new(),
        };
        let text = String::from_utf8_lossy(&body);
        let redacted = self.prepared.redactor.redact(&text);
        for (tool, started) in std::mem::take(&mut self.pending.calls).into_values() {
            self.site
                .record(&tool, Outcome::UpstreamError, started)
                .await;
        }
        let mut out = Response::new(Body::from(redacted));
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        out
    }

    /// 202/204 (the body held no request, or only notifications): the denials, if any, need an answer.
    async fn relay_accepted(mut self, status: StatusCode, headers: HeaderMap) -> Response<Body> {
        for (tool, started) in std::mem::take(&mut self.pending.calls).into_values() {
            self.site.record(&tool, Outcome::Detached, started).await;
        }
        if !self.denied.is_empty() {
            let denied = std::mem::take(&mut self.denied);
            return reply::messages_response(StatusCode::OK, denied, self.single);
        }
        let mut out = Response::new(Body::empty());
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        out
    }

    /// One JSON answer: read (bounded), redacted, filtered, recorded, answered.
    async fn relay_message(
        mut self,
        status: StatusCode,
        mut headers: HeaderMap,
        resp: StreamResponse,
        is_json: bool,
    ) -> Response<Body> {
        let cap = self.gw.config.max_message_bytes;
        let body = match resp.body.collect_capped(cap).await {
            Ok(Some(b)) => b,
            Ok(None) => {
                let message = format!("the MCP server's answer is larger than {cap} bytes");
                return self
                    .fail(
                        code::UPSTREAM,
                        &message,
                        Outcome::UpstreamError,
                        StatusCode::BAD_GATEWAY,
                    )
                    .await;
            }
            Err(e) => {
                let (code, message, outcome) = egress_failure(&self.gw, Some(&self.prepared), &e);
                return self
                    .fail(code, &message, outcome, StatusCode::BAD_GATEWAY)
                    .await;
            }
        };
        let text = String::from_utf8_lossy(&body);
        let redacted = self.prepared.redactor.redact(&text);
        let changed = redacted != text;
        let needs_parse = is_json
            && (changed
                || !self.pending.ids.is_empty()
                || !self.policy.is_open()
                || !self.denied.is_empty());
        if !needs_parse {
            let out = if changed { Bytes::from(redacted) } else { body };
            let mut resp = Response::new(Body::from(out));
            *resp.status_mut() = status;
            *resp.headers_mut() = headers;
            return resp;
        }
        // Nothing to change, only answers to note: read their ids and outcomes, not the whole messages.
        let heads = (!changed && self.policy.is_open() && self.denied.is_empty())
            .then(|| jsonrpc::answer_heads(&text))
            .flatten();
        if let Some(heads) = heads {
            let finished = heads
                .iter()
                .filter_map(|h| self.pending.answered_head(h))
                .collect();
            self.record_answers(finished).await;
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
            let mut resp = Response::new(Body::from(body));
            *resp.status_mut() = status;
            *resp.headers_mut() = headers;
            return resp;
        }
        let mut value: Value = match serde_json::from_str(&redacted) {
            Ok(v) => v,
            Err(_) if changed => {
                let message = "the MCP server's answer held one of this integration's credentials and was withheld";
                return self
                    .fail(
                        code::UPSTREAM,
                        message,
                        Outcome::UpstreamError,
                        StatusCode::BAD_GATEWAY,
                    )
                    .await;
            }
            Err(_) => {
                let message = "the MCP server answered with invalid JSON";
                return self
                    .fail(
                        code::UPSTREAM,
                        message,
                        Outcome::UpstreamError,
                        StatusCode::BAD_GATEWAY,
                    )
                    .await;
            }
        };
        let mut modified = changed;
        let mut finished = Vec::new();
        for msg in messages_mut(&mut value) {
            if let Some(done) = self.pending.answered(msg) {
                finished.push(done);
            }
            if !self.policy.is_open() && jsonrpc::filter_tools(msg, &self.policy) {
                modified = true;
            }
        }
        self.record_answers(finished).await;
        if !self.denied.is_empty() {
            let denied = std::mem::take(&mut self.denied);
            value = match value {
                Value::Array(mut items) => {
                    items.extend(denied);
                    Value::Array(items)
                }
                one => {
                    let mut items = vec![one];
                    items.extend(denied);
                    Value::Array(items)
                }
            };
            modified = true;
        }
        let out = if modified {
            Bytes::from(serde_json::to_vec(&value).unwrap_or_default())
        } else {
            body
        };
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
        let mut resp = Response::new(Body::from(out));
        *resp.status_mut() = status;
        *resp.headers_mut() = headers;
        resp
    }

    /// Records the calls a JSON answer finished, and the calls it did not cover (a partial batch answer) as
    /// failed: they are over as far as this exchange goes.
    async fn record_answers(&mut self, finished: Vec<(String, Instant, Outcome)>) {
        for (tool, started, outcome) in finished {
            self.site.record(&tool, outcome, started).await;
        }
        for (tool, started) in std::mem::take(&mut self.pending.calls).into_values() {
            self.site
                .record(&tool, Outcome::UpstreamError, started)
                .await;
        }
    }

    /// An SSE answer, relayed event by event. The answer to a POST that carried requests starts once its first event
    /// with data is here, or [`PRIME_EVENTS`] events without data (such as the one that gives the client an event
    /// id to resume from, or a keep-alive), so the agent gets the head and a quick answer in one write instead of
    /// waking for the head alone, and a long call that only sends keep-alives still starts answering after the
    /// second one; a server stream (GET) starts at once.
    async fn relay_stream(
        self,
        status: StatusCode,
        mut headers: HeaderMap,
        resp: StreamResponse,
    ) -> Response<Body> {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(EVENT_STREAM));
        headers.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        );
        headers.insert(
            HeaderName::from_static("x-accel-buffering"),
            HeaderValue::from_static("no"),
        );
        let mut queue = VecDeque::new();
        for d in &self.denied {
            queue.push_back(sse::encode(None, None, None, &d.to_string()));
        }
        let waiting = !self.pending.ids.is_empty();
        let mut relay = StreamRelay {
            framer: Framer::new(self.gw.config.max_message_bytes),
            body: Some(resp.body),
            queue,
            resumable: false,
            carried_data: false,
            exchange: self,
        };
        if waiting {
            let denials = relay.queue.len();
            let mut ready = VecDeque::new();
            while !relay.carried_data
                && relay.body.is_some()
                && ready.len() < denials + PRIME_EVENTS
            {
                match relay.next().await {
                    Some(b) => ready.push_back(b),
                    None => break,
                }
            }
            ready.append(&mut relay.queue);
            relay.queue = ready;
        }
        let stream = futures_util::stream::unfold(relay, |mut relay| async move {
            relay
                .next()
                .await
                .map(|b| (Ok::<Bytes, std::convert::Infallible>(b), relay))
        });
        let mut out = Response::new(Body::from_stream(stream));
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        out
    }
}

fn messages_mut(value: &mut Value) -> Vec<&mut Value> {
    match value {
        Value::Array(items) => items.iter_mut().collect(),
        one => vec![one],
    }
}

/// Reads at most `cap` bytes of a body (the rest is dropped).
async fn read_prefix(mut resp: StreamResponse, cap: usize) -> Result<Bytes, EgressError> {
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = resp.body.next_chunk().await {
        let chunk = chunk?;
        let room = cap.saturating_sub(buf.len());
        buf.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
        if buf.len() >= cap {
            break;
        }
    }
    Ok(buf.freeze())
}

/// The state of an SSE relay. Dropped when the agent goes away: calls still waiting are recorded as cancelled,
/// and the upstream connection is closed (which, in MCP, cancels the request).
struct StreamRelay {
    exchange: Exchange,
    framer: Framer,
    body: Option<plugboard_egress::BodyStream>,
    queue: VecDeque<Bytes>,
    /// The upstream numbered its events: it may close the stream and let the client resume it.
    resumable: bool,
    /// An event with data (a message, not only an id or a retry time) has been taken from the upstream.
    carried_data: bool,
}

impl StreamRelay {
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(b) = self.queue.pop_front() {
                return Some(b);
            }
            let body = self.body.as_mut()?;
            match body.next_chunk().await {
                Some(Ok(chunk)) => match self.framer.push(&chunk) {
                    Ok(events) => {
                        let waiting = !self.exchange.pending.ids.is_empty();
                        let mut finished = Vec::new();
                        for e in events {
                            if let Some(out) = self.process(e, &mut finished) {
                                self.queue.push_back(out);
                            }
                        }
                        for (tool, started, outcome) in finished {
                            self.exchange.site.record(&tool, outcome, started).await;
                        }
                        if waiting && self.exchange.pending.ids.is_empty() {
                            self.answered_all();
                        }
                    }
                    Err(sse::TooLarge(max)) => {
                        let message =
                            format!("the MCP server sent an event larger than {max} bytes");
                        self.end_with(code::UPSTREAM, &message, Outcome::UpstreamError)
                            .await;
                    }
                },
                Some(Err(e)) => {
                    let (code, message, outcome) =
                        egress_failure(&self.exchange.gw, Some(&self.exchange.prepared), &e);
                    self.end_with(code, &message, outcome).await;
                }
                None => {
                    if self.exchange.pending.ids.is_empty() {
                        self.body = None;
                    } else if self.resumable {
                        // The client may resume this stream with Last-Event-ID; the answer comes there.
                        let calls = std::mem::take(&mut self.exchange.pending.calls);
                        for (tool, started) in calls.into_values() {
                            self.exchange
                                .site
                                .record(&tool, Outcome::Detached, started)
                                .await;
                        }
                        self.exchange.pending.ids.clear();
                        self.body = None;
                    } else {
                        let message = "the MCP server ended the stream without answering";
                        self.end_with(code::UPSTREAM, message, Outcome::UpstreamError)
                            .await;
                    }
                }
            }
        }
    }

    /// Every request of this POST has its answer: the agent's stream ends after it (the server closes a request's
    /// stream once it has answered, in MCP), without waiting for the upstream's end to arrive, so the agent reads
    /// the end of its answer at once and can reuse its connection. What is left of the upstream's stream (its end)
    /// is read in the background, briefly, so that connection can be reused too.
    fn answered_all(&mut self) {
        let Some(mut rest) = self.body.take() else {
            return;
        };
        tokio::spawn(async move {
            let drain = async { while let Some(Ok(_)) = rest.next_chunk().await {} };
            let _ = tokio::time::timeout(DRAIN, drain).await;
        });
    }

    /// Ends the stream: an error event for every request still waiting, each waiting call recorded.
    async fn end_with(&mut self, code: i64, message: &str, outcome: Outcome) {
        self.body = None;
        let calls = std::mem::take(&mut self.exchange.pending.calls);
        for (tool, started) in calls.into_values() {
            self.exchange.site.record(&tool, outcome, started).await;
        }
        for id in std::mem::take(&mut self.exchange.pending.ids).into_values() {
            let err = jsonrpc::error(Some(&id), code, message, None);
            self.queue
                .push_back(sse::encode(None, None, None, &err.to_string()));
        }
        if self.queue.is_empty() {
            tracing::debug!(
                integration_id = %self.exchange.site.integration_id,
                "gateway: an upstream stream ended: {message}"
            );
        }
    }

    /// One event: redacted, answers noted, `tools/list` results filtered; `None` drops it.
    fn process(
        &mut self,
        e: sse::Event,
        finished: &mut Vec<(String, Instant, Outcome)>,
    ) -> Option<Bytes> {
        if e.id.is_some() {
            self.resumable = true;
        }
        let Some(data) = e.data.as_deref() else {
            return Some(e.raw);
        };
        if data.is_empty() {
            // Nothing to clean or read (e.g. the event that only gives the client an id to resume from).
            return Some(e.raw);
        }
        self.carried_data = true;
        let redactor = &self.exchange.prepared.redactor;
        let redacted = redactor.redact(data);
        let changed = redacted != data;
        let pending = &mut self.exchange.pending;
        let policy = &self.exchange.policy;
        if !e.is_message() || (!changed && pending.ids.is_empty() && policy.is_open()) {
            return Some(if changed {
                e.with_data(&redacted)
            } else {
                e.raw
            });
        }
        if !changed && policy.is_open() {
            // Only answers to note: their ids and outcomes, not the whole messages.
            if let Some(heads) = jsonrpc::answer_heads(data) {
                finished.extend(heads.iter().filter_map(|h| pending.answered_head(h)));
                return Some(e.raw);
            }
        }
        let mut value: Value = match serde_json::from_str(&redacted) {
            Ok(v) => v,
            Err(_) if changed => {
                tracing::warn!(
                    integration_id = %self.exchange.site.integration_id,
                    "gateway: an event held one of the integration's credentials and could not be cleaned; it was \
                     withheld"
                );
                return None;
            }
            Err(_) => return Some(e.raw),
        };
        let mut modified = changed;
        for msg in messages_mut(&mut value) {
            if let Some(done) = pending.answered(msg) {
                finished.push(done);
            }
            if !policy.is_open() && jsonrpc::filter_tools(msg, policy) {
                modified = true;
            }
        }
        Some(if modified {
            e.with_data(&value.to_string())
        } else {
            e.raw
        })
    }
}

impl Drop for StreamRelay {
    fn drop(&mut self) {
        for (tool, started) in std::mem::take(&mut self.exchange.pending.calls).into_values() {
            self.exchange
                .site
                .record_now(&tool, Outcome::Cancelled, started);
        }
    }
}
