//! `/mcp/crew/{crew_id}` and `/mcp/workspace/{workspace_id}`: one MCP server, Plugboard's own, aggregating the
//! tools of every enabled, `active`, `streamable-http` integration the caller can reach in the scope.
//!
//! ## Sessions, and why any instance can serve any request
//!
//! The MCP server is `rmcp`'s streamable-HTTP service run **stateless per request**: nothing of a session lives
//! in memory between requests. Plugboard issues its own session id on `initialize` (`pbg_` + 32 random bytes)
//! and stores its SHA-256 with the caller's token, the scope and the negotiated protocol version through
//! [`SessionStore`](crate::SessionStore) (a table in the server's database). A later request with that id is
//! checked against the store (cached for at most a second, so a `DELETE` on one instance ends the session on
//! every instance within a second): another token, another scope, an unknown or ended id gets 404, and the
//! client starts a new session. The negotiated version is supplied to rmcp when the client omits its header
//! (2025-03-26 clients do). Clients of protocol 2026-07-28 have no sessions at all and are served the same way.
//!
//! Upstream sessions are opened lazily, per Plugboard session and integration, on the instance that needs them,
//! and reused ([`pool`]); another instance opens its own when a request of the same session reaches it. So a load
//! balancer needs no stickiness for the aggregated endpoints (stickiness only saves re-opening upstream sessions).
//!
//! `GET` is 405 (no server-initiated messages are relayed); `DELETE` ends the session everywhere.

mod pool;
mod server;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use axum::body::Body;
use http::header::{HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::Value;

use crate::passthrough::access_refusal;
use crate::ports::{Caller, IntegrationInfo, Scope, SessionRecord};
use crate::reply;
use crate::sealed;
use crate::{now_ms, GatewayConfig, Inner};

pub use pool::Owner;

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
/// A session read from the store is trusted this long before it is read again.
const SESSION_CACHE: Duration = Duration::from_secs(1);
/// `last_seen_at` is written at most this often per session.
const TOUCH_EVERY: i64 = 60_000;
/// Sessions cached at most (beyond it the cache is cleared; entries are re-read on demand).
const MAX_CACHED_SESSIONS: usize = 100_000;

/// What every request of an aggregated endpoint carries into the rmcp handler.
#[derive(Clone)]
pub(crate) struct CallScope {
    pub caller: Caller,
    pub scope: Scope,
    /// The integrations the caller may reach in the scope that the endpoint serves (enabled, active,
    /// streamable-http).
    pub integrations: Arc<Vec<IntegrationInfo>>,
    pub owner: Owner,
}

struct CachedSession {
    record: SessionRecord,
    read: Instant,
}

pub(crate) struct Aggregate {
    service: StreamableHttpService<server::AggregateServer, NeverSessionManager>,
    pool: pool::Pool,
    sessions: Mutex<HashMap<String, CachedSession>>,
}

impl Aggregate {
    pub(crate) fn new(gw: Weak<Inner>, config: &GatewayConfig) -> Aggregate {
        let rmcp_config = StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .disable_allowed_hosts()
            .disable_allowed_origins()
            .with_sse_keep_alive(Some(Duration::from_secs(15)))
            .with_max_request_body_bytes(config.max_request_bytes);
        let factory_gw = gw.clone();
        let service = StreamableHttpService::new(
            move || Ok(server::AggregateServer::new(factory_gw.clone())),
            Arc::new(NeverSessionManager::default()),
            rmcp_config,
        );
        Aggregate {
            service,
            pool: pool::Pool::new(gw),
            sessions: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn pool_len(&self) -> usize {
        self.pool.len()
    }

    pub(crate) fn sweep(&self, idle: Duration) {
        self.pool.close_idle(idle);
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain(|_, s| s.read.elapsed() < SESSION_CACHE);
    }

    fn cached_session(&self, hash: &str) -> Option<SessionRecord> {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions
            .get(hash)
            .filter(|s| s.read.elapsed() < SESSION_CACHE)
            .map(|s| s.record.clone())
    }

    fn cache_session(&self, record: SessionRecord) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if sessions.len() >= MAX_CACHED_SESSIONS {
            sessions.clear();
        }
        sessions.insert(
            record.id_hash.clone(),
            CachedSession {
                record,
                read: Instant::now(),
            },
        );
    }

    fn forget_session(&self, hash: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(hash);
        self.pool.close_owner(&Owner::Session(hash.to_owned()));
    }
}

/// The session a request names, if it belongs to this caller and scope: `Ok(None)` without a session header,
/// `Err` (a 404 or a 503) otherwise.
async fn session_of(
    gw: &Inner,
    caller: &Caller,
    scope: &Scope,
    headers: &http::HeaderMap,
) -> Result<Option<SessionRecord>, Response<Body>> {
    let Some(value) = headers.get(SESSION_HEADER) else {
        return Ok(None);
    };
    let Some(hash) = value.to_str().ok().and_then(sealed::aggregated_id_hash) else {
        return Err(reply::session_not_found());
    };
    let record = match gw.aggregate.cached_session(&hash) {
        Some(r) => r,
        None => match gw.ports.sessions.get(&hash).await {
            Ok(Some(r)) => {
                gw.aggregate.cache_session(r.clone());
                r
            }
            Ok(None) => {
                gw.aggregate.forget_session(&hash);
                return Err(reply::session_not_found());
            }
            Err(e) => {
                tracing::error!(error = %e, "gateway: could not read an aggregated session");
                return Err(unavailable());
            }
        },
    };
    if record.token_id != caller.token_id || &record.scope != scope {
        return Err(reply::session_not_found());
    }
    let now = now_ms();
    if now - record.last_seen_at > TOUCH_EVERY {
        let mut touched = record.clone();
        touched.last_seen_at = now;
        gw.aggregate.cache_session(touched);
        let sessions = Arc::clone(&gw.ports.sessions);
        let hash = record.id_hash.clone();
        tokio::spawn(async move {
            if let Err(e) = sessions.touch(&hash, now).await {
                tracing::warn!(error = %e, "gateway: could not record a session's last use");
            }
        });
    }
    Ok(Some(record))
}

fn unavailable() -> Response<Body> {
    let mut resp = reply::refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        "database_unavailable",
        "the database is unavailable; retry shortly",
    );
    resp.headers_mut()
        .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

fn eligible(info: &IntegrationInfo) -> bool {
    info.enabled
        && info.status == crate::ports::IntegrationStatus::Active
        && info.transport == crate::ports::Transport::StreamableHttp
}

pub(crate) async fn handle(
    gw: &Arc<Inner>,
    caller: Caller,
    scope: Scope,
    req: Request<Body>,
) -> Response<Body> {
    let what = match scope {
        Scope::Crew(_) => "crew",
        Scope::Workspace(_) => "workspace",
    };
    let integrations = match gw.ports.integrations.in_scope(&caller, &scope).await {
        Ok(list) => list,
        Err(e) => return access_refusal(&e, what),
    };
    let method = req.method().clone();
    if method == Method::GET {
        return reply::method_not_allowed("POST, DELETE");
    }
    if method == Method::DELETE {
        return delete(gw, &caller, &scope, req.headers()).await;
    }
    if method != Method::POST {
        return reply::method_not_allowed("POST, DELETE");
    }
    let session = match session_of(gw, &caller, &scope, req.headers()).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let (mut parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, gw.config.max_request_bytes).await {
        Ok(b) => b,
        Err(_) => {
            return reply::json_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                &crate::jsonrpc::error(
                    None,
                    crate::jsonrpc::code::INVALID_REQUEST,
                    &format!(
                        "the request body is larger than {} bytes (or could not be read)",
                        gw.config.max_request_bytes
                    ),
                    None,
                ),
            )
        }
    };
    let initialize_id = initialize_request_id(&bytes);
    let owner = match &session {
        Some(record) => Owner::Session(record.id_hash.clone()),
        None => Owner::Token(caller.token_id.clone()),
    };
    if let Some(record) = &session {
        parts.headers.remove(SESSION_HEADER);
        if !parts.headers.contains_key(VERSION_HEADER) {
            if let Ok(v) = HeaderValue::from_str(&record.protocol_version) {
                parts
                    .headers
                    .insert(HeaderName::from_static(VERSION_HEADER), v);
            }
        }
    }
    parts.extensions.insert(CallScope {
        caller: caller.clone(),
        scope: scope.clone(),
        integrations: Arc::new(integrations.into_iter().filter(eligible).collect()),
        owner,
    });
    let request = Request::from_parts(parts, Body::from(bytes));
    let response = gw.aggregate.service.handle(request).await.map(Body::new);
    match (initialize_id, session) {
        (Some(id), None) if response.status() == StatusCode::OK => {
            open_session(gw, &caller, &scope, id, response).await
        }
        _ => response,
    }
}

/// The id of an `initialize` request, when the body is one (read without building the message when it can be).
fn initialize_request_id(body: &[u8]) -> Option<Value> {
    match crate::jsonrpc::request_heads(body) {
        Some((heads, true)) => {
            return heads
                .into_iter()
                .next()
                .filter(|h| h.method.as_deref() == Some("initialize"))
                .and_then(|h| h.id)
        }
        Some((_, false)) => return None,
        None => {}
    }
    let value: Value = serde_json::from_slice(body).ok()?;
    if value.get("method").and_then(Value::as_str) != Some("initialize") {
        return None;
    }
    value
        .get("id")
        .filter(|id| id.is_string() || id.is_number())
        .cloned()
}

/// After a successful `initialize`: a new session, its id in the answer's `Mcp-Session-Id`.
async fn open_session(
    gw: &Inner,
    caller: &Caller,
    scope: &Scope,
    request_id: Value,
    response: Response<Body>,
) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, gw.config.max_message_bytes).await else {
        return reply::json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &crate::jsonrpc::error(
                Some(&request_id),
                -32603,
                "the session could not be opened",
                None,
            ),
        );
    };
    let version = negotiated_version(&bytes);
    let Some(version) = version else {
        // An error answer (e.g. an unsupported version): no session.
        return Response::from_parts(parts, Body::from(bytes));
    };
    let id = sealed::new_aggregated_id();
    let Some(hash) = sealed::aggregated_id_hash(&id) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    let now = now_ms();
    let record = SessionRecord {
        id_hash: hash,
        token_id: caller.token_id.clone(),
        scope: scope.clone(),
        protocol_version: version,
        created_at: now,
        last_seen_at: now,
    };
    if let Err(e) = gw.ports.sessions.insert(&record).await {
        tracing::error!(error = %e, "gateway: could not store a new aggregated session");
        return reply::json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &crate::jsonrpc::error(
                Some(&request_id),
                crate::jsonrpc::code::SESSION_NOT_FOUND,
                "the session could not be opened because the database is unavailable; retry shortly",
                None,
            ),
        );
    }
    gw.aggregate.cache_session(record);
    if let Ok(v) = HeaderValue::from_str(&id) {
        parts
            .headers
            .insert(HeaderName::from_static(SESSION_HEADER), v);
    }
    parts.headers.remove(http::header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bytes))
}

/// `result.protocolVersion` of an initialize answer (JSON, or the first data of an SSE answer).
fn negotiated_version(bytes: &[u8]) -> Option<String> {
    let from_json = |v: &Value| {
        v.get("result")?
            .get("protocolVersion")?
            .as_str()
            .map(str::to_owned)
    };
    if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
        return from_json(&v);
    }
    let mut framer = crate::sse::Framer::new(bytes.len() + 1);
    let mut events = framer.push(bytes).ok()?;
    events.extend(framer.push(b"\n\n").ok()?);
    events
        .iter()
        .filter_map(|e| e.data.as_deref())
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find_map(|v| from_json(&v))
}

async fn delete(
    gw: &Inner,
    caller: &Caller,
    scope: &Scope,
    headers: &http::HeaderMap,
) -> Response<Body> {
    let record = match session_of(gw, caller, scope, headers).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return reply::refusal(
                StatusCode::BAD_REQUEST,
                "session_required",
                "DELETE ends a session: send its Mcp-Session-Id",
            )
        }
        Err(resp) => return resp,
    };
    match gw.ports.sessions.delete(&record.id_hash).await {
        Ok(_) => {
            gw.aggregate.forget_session(&record.id_hash);
            let mut resp = Response::new(Body::empty());
            *resp.status_mut() = StatusCode::NO_CONTENT;
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, "gateway: could not delete an aggregated session");
            unavailable()
        }
    }
}
