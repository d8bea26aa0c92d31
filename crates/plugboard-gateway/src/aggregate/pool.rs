//! Upstream sessions of the aggregated endpoints: one `rmcp` client per (Plugboard session, integration revision),
//! opened on first use and reused; closed when the Plugboard session ends, when unused for
//! [`GatewayConfig::upstream_idle`](crate::GatewayConfig::upstream_idle), or after a transport failure (the next
//! call opens a new one).
//!
//! Progress notifications from an upstream carry the token rmcp gave that call upstream; the gateway routes them to
//! the agent's request with the agent's own token, so two agents' calls can never receive each other's progress.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CancelledNotificationParam, ClientCapabilities,
    ClientConfig, ClientRequest, Implementation, ProgressNotificationParam, ProgressToken,
    ProtocolVersion, RequestId, ServerResult,
};
use rmcp::service::ClientInitializeError;
use rmcp::service::{NotificationContext, PeerRequestOptions, RunningService};
use rmcp::transport::common::client_side_sse::NeverRetry;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{
    ClientHandler, ClientLifecycleMode, ClientServiceExt, Peer, RoleClient, RoleServer,
    ServiceError,
};

use crate::client::GuardedClient;
use crate::ports::IntegrationInfo;
use crate::upstream::Prepared;
use crate::Inner;

/// Whose upstream sessions these are.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Owner {
    /// A Plugboard session (by the hash of its id).
    Session(String),
    /// A caller without a session (protocol 2026-07-28, or a client that never initialised): by token.
    Token(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    owner: Owner,
    integration_id: String,
    revision: i64,
}

/// Where an upstream progress token sends its notifications.
struct Route {
    peer: Peer<RoleServer>,
    agent_token: ProgressToken,
    prepared: Arc<Prepared>,
    /// The highest progress forwarded: rmcp hands each notification to its own task, so two can arrive out of
    /// order; an older one is dropped rather than shown after a newer one.
    last: Mutex<Option<f64>>,
}

#[derive(Default)]
struct Routes {
    map: Mutex<HashMap<ProgressToken, Arc<Route>>>,
    /// Held while a call is sent and its route registered: a notification for it waits for the route.
    sending: tokio::sync::Mutex<()>,
}

/// Removes its route when the call ends.
pub(crate) struct RouteGuard {
    routes: Arc<Routes>,
    token: ProgressToken,
}

impl Drop for RouteGuard {
    fn drop(&mut self) {
        self.routes
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.token);
    }
}

#[derive(Clone)]
struct UpstreamHandler {
    routes: Arc<Routes>,
}

impl ClientHandler for UpstreamHandler {
    fn get_info(&self) -> ClientConfig {
        let mut config = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("plugboard-gateway", env!("CARGO_PKG_VERSION")),
        );
        config.protocol_version = ProtocolVersion::LATEST_WITH_INITIALIZE;
        config
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        // A call being sent registers its route before this lock is free again.
        drop(self.routes.sending.lock().await);
        let route = {
            let map = self.routes.map.lock().unwrap_or_else(|e| e.into_inner());
            map.get(&params.progress_token).cloned()
        };
        let Some(route) = route else {
            return;
        };
        {
            let mut last = route.last.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|l| params.progress <= l) {
                return;
            }
            *last = Some(params.progress);
        }
        let mut forwarded = params;
        forwarded.progress_token = route.agent_token.clone();
        forwarded.message = forwarded
            .message
            .map(|m| route.prepared.redactor.redact(&m));
        forwarded.meta = None;
        if let Err(e) = route.peer.notify_progress(forwarded).await {
            tracing::debug!(error = %e, "gateway: a progress notification could not be forwarded");
        }
    }
}

/// An open upstream session.
pub(crate) struct Upstream {
    service: RunningService<RoleClient, UpstreamHandler>,
    routes: Arc<Routes>,
}

/// Sends `notifications/cancelled` for a call whose answer is no longer awaited (the agent went away).
struct CancelOnDrop {
    peer: Peer<RoleClient>,
    id: Option<RequestId>,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        let peer = self.peer.clone();
        let Ok(params) = serde_json::from_value::<CancelledNotificationParam>(serde_json::json!({
            "requestId": id,
            "reason": "the agent cancelled the call",
        })) else {
            return;
        };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = peer.notify_cancelled(params).await;
            });
        }
    }
}

impl Upstream {
    pub(crate) fn peer(&self) -> &Peer<RoleClient> {
        &self.service
    }

    /// Sends a `tools/call` and waits for its answer. When `progress` is given (the agent's request context and
    /// its progress token), the upstream's progress notifications for this call are forwarded to the agent with
    /// the agent's token. Dropping the future cancels the call upstream.
    pub(crate) async fn call_tool(
        &self,
        params: CallToolRequestParams,
        progress: Option<(Peer<RoleServer>, ProgressToken, Arc<Prepared>)>,
    ) -> Result<ServerResult, ServiceError> {
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        let (handle, _route) = {
            let _sending = self.routes.sending.lock().await;
            let handle = self
                .peer()
                .send_request_with_option(request, PeerRequestOptions::no_options())
                .await?;
            let route = progress.map(|(peer, agent_token, prepared)| {
                let token = handle.progress_token.clone();
                self.routes
                    .map
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(
                        token.clone(),
                        Arc::new(Route {
                            peer,
                            agent_token,
                            prepared,
                            last: Mutex::new(None),
                        }),
                    );
                RouteGuard {
                    routes: Arc::clone(&self.routes),
                    token,
                }
            });
            (handle, route)
        };
        let mut cancel = CancelOnDrop {
            peer: self.peer().clone(),
            id: Some(handle.id.clone()),
        };
        let answer = handle.await_response().await;
        cancel.id = None;
        answer
    }
}

struct Entry {
    cell: tokio::sync::OnceCell<Arc<Upstream>>,
    last_used: Mutex<Instant>,
}

pub(crate) struct Pool {
    gw: Weak<Inner>,
    entries: Mutex<HashMap<Key, Arc<Entry>>>,
}

impl Pool {
    pub(crate) fn new(gw: Weak<Inner>) -> Pool {
        Pool {
            gw,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn key(owner: &Owner, info: &IntegrationInfo) -> Key {
        Key {
            owner: owner.clone(),
            integration_id: info.id.clone(),
            revision: info.revision,
        }
    }

    /// The owner's upstream session with `info`, opened now if there is none.
    pub(crate) async fn get(
        &self,
        owner: &Owner,
        info: &IntegrationInfo,
    ) -> Result<Arc<Upstream>, String> {
        let key = Self::key(owner, info);
        let entry = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(entries.entry(key.clone()).or_insert_with(|| {
                Arc::new(Entry {
                    cell: tokio::sync::OnceCell::new(),
                    last_used: Mutex::new(Instant::now()),
                })
            }))
        };
        *entry.last_used.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        let opened = entry
            .cell
            .get_or_try_init(|| open(self.gw.clone(), info.clone()))
            .await
            .cloned();
        if opened.is_err() {
            self.remove_if(&key, &entry);
        }
        opened
    }

    fn remove_if(&self, key: &Key, entry: &Arc<Entry>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.get(key).is_some_and(|e| Arc::ptr_eq(e, entry)) {
            entries.remove(key);
        }
    }

    /// Forgets the owner's session with `info` after it failed, so the next call opens a new one.
    pub(crate) fn evict(&self, owner: &Owner, info: &IntegrationInfo) {
        let key = Self::key(owner, info);
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
    }

    /// Closes every upstream session of `owner`.
    pub(crate) fn close_owner(&self, owner: &Owner) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| &k.owner != owner);
    }

    /// Closes the sessions unused for `idle`.
    pub(crate) fn close_idle(&self, idle: Duration) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, e| {
                e.last_used
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .elapsed()
                    < idle
            });
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Opens an upstream session: `server/discover` first (protocol 2026-07-28), `initialize` (2025-11-25 and older)
/// when the server is of the earlier era; all within the gateway timeout.
async fn open(gw: Weak<Inner>, info: IntegrationInfo) -> Result<Arc<Upstream>, String> {
    let inner = gw
        .upgrade()
        .ok_or_else(|| "the gateway is shutting down".to_owned())?;
    let prepared = inner
        .upstreams
        .get(inner.ports.integrations.as_ref(), &info)
        .await
        .map_err(|e| {
            format!(
                "the integration's credentials are not usable: {}",
                e.message
            )
        })?;
    let routes = Arc::new(Routes::default());
    let handler = UpstreamHandler {
        routes: Arc::clone(&routes),
    };
    // The transport's URI is never used for a connection (the guarded client takes the materialised endpoint on
    // every request); this one only names the integration in rmcp's logs without any secret.
    let mut config =
        StreamableHttpClientTransportConfig::with_uri(format!("plugboard-integration:{}", info.id))
            .max_concurrent_requests(inner.config.limits.per_integration.max(1));
    config.retry_config = Arc::new(NeverRetry::default());
    let info = Arc::new(info);
    let connect = |lifecycle: ClientLifecycleMode| {
        let transport = StreamableHttpClientTransport::with_client(
            GuardedClient::new(gw.clone(), Arc::clone(&info)),
            config.clone(),
        );
        handler.clone().serve_with_lifecycle(transport, lifecycle)
    };
    let timeout = inner.config.timeout;
    drop(inner);
    let auto = ClientLifecycleMode::Auto {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        legacy_version: Some(ProtocolVersion::LATEST_WITH_INITIALIZE),
    };
    let opened = match tokio::time::timeout(timeout, connect(auto)).await {
        // A server that answers `server/discover` but lists only versions with an `initialize` handshake: rmcp's
        // automatic fallback does not cover that answer, so the handshake is done here.
        Ok(Err(ClientInitializeError::NoCompatibleProtocolVersion {
            server_supported, ..
        })) if server_supported.iter().any(ProtocolVersion::has_initialize) => {
            tokio::time::timeout(timeout, connect(ClientLifecycleMode::Initialize)).await
        }
        other => other,
    };
    let service = match opened {
        Ok(Ok(service)) => service,
        Ok(Err(e)) => {
            return Err(prepared.finish(&format!("the MCP server could not be opened: {e}")))
        }
        Err(_) => {
            return Err(format!(
                "the MCP server did not complete its handshake within {} ms",
                timeout.as_millis()
            ))
        }
    };
    Ok(Arc::new(Upstream { service, routes }))
}
