//! The MCP gateway: agents use integrations without ever holding their credentials.
//!
//! Two kinds of endpoint, both MCP over streamable HTTP (protocol versions 2025-03-26 to 2026-07-28):
//!
//! - **Passthrough** ([`Gateway::passthrough`], `/mcp/i/{integration_id}`): one integration, relayed. The MCP session
//!   is the upstream server's; the agent holds it sealed to its token ([`sealed`]). See [`passthrough`].
//! - **Aggregated** ([`Gateway::aggregated`], `/mcp/crew/{id}` and `/mcp/workspace/{id}`): one MCP server that
//!   Plugboard implements with `rmcp`, merging the tools of every enabled, active, streamable-http integration the
//!   caller can reach, named `<prefix>__<tool>`. Its sessions are Plugboard's own, in the server's database, so any
//!   instance continues any session. See [`aggregate`].
//!
//! Both apply the integration's [`ToolPolicy`] before anything reaches the upstream, send every upstream request
//! through the egress guard with the integration's materialised headers (never the agent's `Authorization` or
//! cookies), redact everything that comes back with the integration's secrets, bound concurrency per integration
//! and per token ([`limits`]), bound upstream silence by [`GatewayConfig::timeout`], and record every `tools/call`
//! (audit entry `gateway_call` and metrics, never arguments or results).
//!
//! What the gateway needs from the server is in [`ports`]: small traits over plain data. The server authenticates
//! the caller (agent token or person's token) and hands the gateway a [`Caller`] with the request.

pub mod aggregate;
mod client;
pub mod jsonrpc;
pub mod limits;
pub mod passthrough;
pub mod policy;
pub mod ports;
mod record;
mod reply;
pub mod sealed;
pub mod sse;
mod upstream;

use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::body::Body;
use http::{Request, Response};
use plugboard_egress::Guard;

pub use limits::LimitConfig;
pub use policy::ToolPolicy;
pub use ports::{
    AccessError, AuditLog, Caller, CallerKind, GatewayCall, IntegrationInfo, IntegrationStatus,
    Integrations, MaterializeError, Metrics, Outcome, Scope, SessionRecord, SessionStore,
    Transport, UpstreamTarget, Via,
};

/// What a gateway request is for: one integration (passthrough) or a scope (aggregated).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Integration(String),
    Scope(Scope),
}

/// What [`Gateway::still_allowed`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StillAllowed {
    Yes,
    No(Lost),
    /// The database cannot answer now: nothing is decided.
    Unknown,
}

/// Why a caller may no longer use what it opened a request on: what a new request would be refused for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lost {
    /// The integration, crew or workspace is gone (or no longer visible to the caller).
    NotFound,
    /// The caller may no longer reach it (a person removed from the workspace or made VIEWER, another crew).
    Forbidden,
    /// The integration was disabled.
    Disabled,
    /// The integration waits for its OAuth authorization again.
    OauthPending,
    /// The integration is no longer reachable over streamable HTTP.
    NotProxyable,
}

/// The default bound on upstream silence (`PLUGBOARD_GATEWAY_TIMEOUT_MS`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(60_000);

/// The gateway's settings.
#[derive(Clone)]
pub struct GatewayConfig {
    /// An upstream answer or stream is read within this much silence (`PLUGBOARD_GATEWAY_TIMEOUT_MS`).
    pub timeout: Duration,
    pub limits: LimitConfig,
    /// The largest request body an agent may send.
    pub max_request_bytes: usize,
    /// The largest upstream JSON answer, or single SSE event, relayed.
    pub max_message_bytes: usize,
    /// Seals passthrough session ids (derived by the server from the master key, so every instance has it).
    pub session_key: [u8; 32],
    /// An aggregated session unused this long is deleted.
    pub session_idle: Duration,
    /// A pooled upstream client of the aggregated endpoints unused this long is closed.
    pub upstream_idle: Duration,
    /// How often the janitor runs (prunes pools and caches, closes idle upstreams, expires sessions).
    pub janitor_every: Duration,
}

impl std::fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("timeout", &self.timeout)
            .field("limits", &self.limits)
            .field("max_request_bytes", &self.max_request_bytes)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("session_idle", &self.session_idle)
            .field("upstream_idle", &self.upstream_idle)
            .finish_non_exhaustive()
    }
}

impl GatewayConfig {
    /// The defaults: 60 s timeout, 64 requests per integration, 256 per token, 1024 open streams per token,
    /// 10 s queue wait, 4 MiB requests, 16 MiB answers or events, sessions kept 24 h idle, upstream clients 5 min.
    pub fn new(session_key: [u8; 32]) -> GatewayConfig {
        GatewayConfig {
            timeout: DEFAULT_TIMEOUT,
            limits: LimitConfig {
                per_integration: 64,
                per_token: 256,
                streams_per_token: 1024,
                queue_wait: Duration::from_secs(10),
            },
            max_request_bytes: 4 * 1024 * 1024,
            max_message_bytes: 16 * 1024 * 1024,
            session_key,
            session_idle: Duration::from_secs(24 * 3600),
            upstream_idle: Duration::from_secs(300),
            janitor_every: Duration::from_secs(30),
        }
    }
}

/// What the gateway uses of the server.
#[derive(Clone)]
pub struct Ports {
    pub integrations: Arc<dyn Integrations>,
    pub audit: Arc<dyn AuditLog>,
    pub metrics: Arc<dyn Metrics>,
    pub sessions: Arc<dyn SessionStore>,
}

pub(crate) struct Inner {
    pub(crate) config: GatewayConfig,
    pub(crate) ports: Ports,
    pub(crate) guard: Guard,
    pub(crate) limits: limits::Limits,
    pub(crate) sealer: sealed::Sealer,
    pub(crate) upstreams: upstream::Upstreams,
    pub(crate) recorder: record::Recorder,
    pub(crate) aggregate: aggregate::Aggregate,
}

/// The gateway. Cheap to clone; one per process.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway over the server's `ports`, connecting through `guard`. Starts its audit writers and its janitor,
    /// so it must be called inside a Tokio runtime; both stop when the last clone is dropped.
    pub fn new(config: GatewayConfig, ports: Ports, guard: Guard) -> Gateway {
        let recorder =
            record::Recorder::start(Arc::clone(&ports.audit), Arc::clone(&ports.metrics));
        let inner = Arc::new_cyclic(|weak: &Weak<Inner>| Inner {
            limits: limits::Limits::new(config.limits),
            sealer: sealed::Sealer::new(&config.session_key),
            upstreams: upstream::Upstreams::default(),
            aggregate: aggregate::Aggregate::new(weak.clone(), &config),
            recorder,
            guard,
            ports,
            config,
        });
        spawn_janitor(Arc::downgrade(&inner));
        Gateway { inner }
    }

    /// `/mcp/i/{integration_id}` (POST, GET, DELETE) for an authenticated caller.
    pub async fn passthrough(
        &self,
        caller: Caller,
        integration_id: &str,
        request: Request<Body>,
    ) -> Response<Body> {
        passthrough::handle(&self.inner, caller, integration_id, request).await
    }

    /// `/mcp/crew/{crew_id}` or `/mcp/workspace/{workspace_id}` for an authenticated caller.
    pub async fn aggregated(
        &self,
        caller: Caller,
        scope: Scope,
        request: Request<Body>,
    ) -> Response<Body> {
        aggregate::handle(&self.inner, caller, scope, request).await
    }

    /// Tells the gateway how many instances are running (this one included): each takes an equal share of every
    /// integration's bound on concurrent upstream requests ([`LimitConfig::per_integration`]), so that together
    /// they keep to it.
    pub fn set_instances(&self, instances: usize) {
        self.inner.limits.set_instances(instances);
    }

    /// This instance's share of every integration's bound on concurrent upstream requests, and the instances it is
    /// shared with.
    pub fn integration_share(&self) -> (usize, usize) {
        self.inner.limits.integration_share()
    }

    /// Whether `caller` may still use what it opened a request on, for the server to check while the request has
    /// something open (an answer not yet started, an event stream), and why not. Reads through the same cached
    /// access decisions as a new request, so it costs no query most of the time.
    pub async fn still_allowed(&self, caller: &Caller, target: &Target) -> StillAllowed {
        let integrations = &self.inner.ports.integrations;
        let found = match target {
            Target::Integration(id) => integrations
                .integration(caller, id)
                .await
                .map(|info| passthrough::unusable(&info)),
            Target::Scope(scope) => integrations.in_scope(caller, scope).await.map(|_| None),
        };
        match found {
            Ok(None) => StillAllowed::Yes,
            Ok(Some(lost)) => StillAllowed::No(lost),
            Err(AccessError::NotFound) => StillAllowed::No(Lost::NotFound),
            Err(AccessError::Forbidden) => StillAllowed::No(Lost::Forbidden),
            Err(AccessError::Unavailable(_)) => StillAllowed::Unknown,
        }
    }

    /// Waits, at most `within`, until the audit entry of every `tools/call` recorded so far is written (entries are
    /// written in batches, up to a few tens of milliseconds after the call). For a graceful shutdown, once the last
    /// request is over. Returns how many entries are still unwritten (0: all).
    pub async fn flush_audit(&self, within: Duration) -> usize {
        self.inner.recorder.flush(within).await
    }

    /// Upstream clients the aggregated endpoints hold open on this instance (for tests and metrics).
    pub fn open_upstream_clients(&self) -> usize {
        self.inner.aggregate.pool_len()
    }

    /// Runs the janitor's work once, now.
    pub async fn sweep(&self) {
        sweep(&self.inner).await;
    }
}

async fn sweep(inner: &Inner) {
    inner.limits.prune();
    inner.upstreams.prune();
    inner.aggregate.sweep(inner.config.upstream_idle);
    let idle_before = now_ms() - inner.config.session_idle.as_millis() as i64;
    match inner.ports.sessions.delete_idle(idle_before).await {
        Ok(0) => {}
        Ok(n) => tracing::debug!(sessions = n, "gateway: expired idle aggregated sessions"),
        Err(e) => tracing::warn!(error = %e, "gateway: could not expire idle sessions; will retry"),
    }
}

fn spawn_janitor(weak: Weak<Inner>) {
    tokio::spawn(async move {
        let every = match weak.upgrade() {
            Some(inner) => inner.config.janitor_every,
            None => return,
        };
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(inner) = weak.upgrade() else { break };
            sweep(&inner).await;
        }
    });
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
