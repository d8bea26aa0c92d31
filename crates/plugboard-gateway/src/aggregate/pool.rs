//! Upstream sessions of the aggregated endpoints: one `rmcp` client per (Plugboard session, integration revision),
//! opened on first use and reused; closed when the Plugboard session ends, when unused for
//! [`GatewayConfig::upstream_idle`](crate::GatewayConfig::upstream_idle), or after a transport failure (the next
//! call opens a new one).
//!
//! Progress notifications from an upstream carry a token the gateway made for that call; they are forwarded to the
//! agent's request with the agent's own token, so two agents' calls can never receive each other's progress.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use rmcp::model::{
    ClientCapabilities, ClientConfig, Implementation, NumberOrString, ProgressNotificationParam,
    ProgressToken, ProtocolVersion,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::common::client_side_sse::NeverRetry;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientHandler, ClientLifecycleMode, ClientServiceExt, Peer, RoleClient, RoleServer};

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
}

#[derive(Default)]
struct Routes {
    map: Mutex<HashMap<ProgressToken, Route>>,
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
        let target = {
            let map = self.routes.map.lock().unwrap_or_else(|e| e.into_inner());
            map.get(&params.progress_token).map(|r| {
                (
                    r.peer.clone(),
                    r.agent_token.clone(),
                    Arc::clone(&r.prepared),
                )
            })
        };
        let Some((peer, agent_token, prepared)) = target else {
            return;
        };
        let mut forwarded = params;
        forwarded.progress_token = agent_token;
        forwarded.message = forwarded.message.map(|m| prepared.redactor.redact(&m));
        forwarded.meta = None;
        if let Err(e) = peer.notify_progress(forwarded).await {
            tracing::debug!(error = %e, "gateway: a progress notification could not be forwarded");
        }
    }
}

/// An open upstream session.
pub(crate) struct Upstream {
    service: RunningService<RoleClient, UpstreamHandler>,
    routes: Arc<Routes>,
}

static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

impl Upstream {
    pub(crate) fn peer(&self) -> &Peer<RoleClient> {
        &self.service
    }

    /// A fresh upstream progress token whose notifications go to `peer` as `agent_token`, until the guard drops.
    pub(crate) fn route_progress(
        &self,
        peer: Peer<RoleServer>,
        agent_token: ProgressToken,
        prepared: Arc<Prepared>,
    ) -> (ProgressToken, RouteGuard) {
        let n = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
        let token = ProgressToken(NumberOrString::String(format!("plugboard-{n}").into()));
        self.routes
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                token.clone(),
                Route {
                    peer,
                    agent_token,
                    prepared,
                },
            );
        (
            token.clone(),
            RouteGuard {
                routes: Arc::clone(&self.routes),
                token,
            },
        )
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
    let client = GuardedClient::new(gw.clone(), Arc::new(info.clone()));
    let transport = StreamableHttpClientTransport::with_client(client, config);
    let lifecycle = ClientLifecycleMode::Auto {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        legacy_version: Some(ProtocolVersion::LATEST_WITH_INITIALIZE),
    };
    let timeout = inner.config.timeout;
    drop(inner);
    let service =
        match tokio::time::timeout(timeout, handler.serve_with_lifecycle(transport, lifecycle))
            .await
        {
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
