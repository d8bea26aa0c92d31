//! The metrics registry and the `GET /metrics` page (Prometheus text format 0.0.4, every name prefixed
//! `plugboard_`).
//!
//! Label values are bounded: HTTP requests are labelled by the route *template* (axum's [`MatchedPath`], never the
//! raw path: ids and OAuth codes stay out), `unmatched` when no route matched, a fixed set of methods (others are
//! `other`); connector ids come from the catalog and integration ids from the gateway, each capped at
//! [`MAX_DYNAMIC_LABELS`] distinct values (later ones are counted as `other`). Label sets of fixed labels are made
//! once at start; a route template or an id is interned once (an `Arc<str>`), so recording a request costs two hash
//! look-ups under read locks and no allocation.
//!
//! The page itself, and who may read it, is [`crate::routes::metrics`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use plugboard_store::IntegrationAuthMode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The `Content-Type` of [`Metrics::render`]'s page.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// How many distinct connector ids, and integration ids, get their own label value; the rest are `other`.
pub const MAX_DYNAMIC_LABELS: usize = 10_000;
/// The label value of a request no route matched.
pub const UNMATCHED: &str = "unmatched";
/// The label value past a cap.
pub const OTHER: &str = "other";

/// Latency buckets, in seconds: from 5 ms to a minute (a verify probe or a gateway call can take many seconds).
const LATENCY_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
];

/// The auth modes an integration can have (installs are counted by these).
const AUTH_MODES: [&str; 6] = [
    "pat",
    "conn_string",
    "mcp_oauth",
    "byo_oauth",
    "none",
    "custom",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: &'static str,
    route: Arc<str>,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerifyLabels {
    connector: Arc<str>,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuthModeLabels {
    auth_mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GatewayLabels {
    integration: Arc<str>,
    outcome: &'static str,
}

/// How a verify ended, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyOutcome {
    /// The provider accepted the credentials (or nothing needed checking).
    Ok,
    /// The provider, or the egress guard, said no (`ok: false`).
    Failed,
    /// Refused by the workspace's rate limit or the instance's probe slots (429).
    RateLimited,
}

impl VerifyOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyOutcome::Ok => "ok",
            VerifyOutcome::Failed => "failed",
            VerifyOutcome::RateLimited => "rate_limited",
        }
    }
}

/// How an OAuth access-token refresh at the provider ended, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// A new access token was stored.
    Ok,
    /// The provider refused (`invalid_grant`, …): the integration needs reconnecting.
    Refused,
    /// The provider could not be reached or answered nonsense; tried again later.
    Failed,
}

impl RefreshOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RefreshOutcome::Ok => "ok",
            RefreshOutcome::Refused => "refused",
            RefreshOutcome::Failed => "failed",
        }
    }

    const ALL: [RefreshOutcome; 3] = [
        RefreshOutcome::Ok,
        RefreshOutcome::Refused,
        RefreshOutcome::Failed,
    ];
}

/// Interns label values: each distinct value is allocated once, up to a cap (then [`OTHER`]).
struct Interner {
    values: RwLock<HashMap<Box<str>, Arc<str>>>,
    cap: usize,
    other: Arc<str>,
}

impl Interner {
    fn new(cap: usize) -> Interner {
        Interner {
            values: RwLock::new(HashMap::new()),
            cap,
            other: Arc::from(OTHER),
        }
    }

    fn get(&self, value: &str) -> Arc<str> {
        {
            let read = self.values.read().unwrap_or_else(|p| p.into_inner());
            if let Some(v) = read.get(value) {
                return v.clone();
            }
            if read.len() >= self.cap {
                return self.other.clone();
            }
        }
        let mut write = self.values.write().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = write.get(value) {
            return v.clone();
        }
        if write.len() >= self.cap {
            return self.other.clone();
        }
        let v: Arc<str> = Arc::from(value);
        write.insert(Box::from(value), v.clone());
        v
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The registry: every metric the service exports. One per [`crate::App`]; cheap to share (`Arc`).
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<HttpLabels, Histogram, fn() -> Histogram>,
    verifies: Family<VerifyLabels, Counter>,
    installs: Family<AuthModeLabels, Counter>,
    refreshes: Family<OutcomeLabels, Counter>,
    egress_refusals: Family<ReasonLabels, Counter>,
    gateway_calls: Family<GatewayLabels, Counter>,
    gateway_duration: Family<GatewayLabels, Histogram, fn() -> Histogram>,
    pool_size: Gauge,
    pool_idle: Gauge,
    pool_max: Gauge,
    gateway_instances: Gauge,
    routes: Interner,
    connectors: Interner,
    integrations: Interner,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every family registered, the label sets of fixed labels created (so they show as 0 before the first event).
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("plugboard");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            http_requests.clone(),
        );
        let http_duration: Family<HttpLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request (until the response headers), by method, route template and status",
            http_duration.clone(),
        );
        let verifies = Family::<VerifyLabels, Counter>::default();
        registry.register(
            "verify",
            "Credential verifications (POST .../verify), by connector and outcome (ok, failed, rate_limited)",
            verifies.clone(),
        );
        let installs = Family::<AuthModeLabels, Counter>::default();
        registry.register(
            "installs",
            "Integrations created (installs from the catalog and custom servers), by auth mode",
            installs.clone(),
        );
        for auth_mode in AUTH_MODES {
            installs.get_or_create_owned(&AuthModeLabels { auth_mode });
        }
        let refreshes = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "oauth_refreshes",
            "OAuth access-token refreshes at the provider, by outcome (ok, refused, failed)",
            refreshes.clone(),
        );
        for o in RefreshOutcome::ALL {
            refreshes.get_or_create_owned(&OutcomeLabels {
                outcome: o.as_str(),
            });
        }
        let egress_refusals = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "egress_refusals",
            "Outbound connections the egress guard refused, by the kind of address (private, loopback, \
             cloud_metadata, ...)",
            egress_refusals.clone(),
        );
        for c in plugboard_egress::Category::ALL {
            egress_refusals.get_or_create_owned(&ReasonLabels { reason: c.as_str() });
        }
        let gateway_calls = Family::<GatewayLabels, Counter>::default();
        registry.register(
            "gateway_calls",
            "MCP tools/call requests through the gateway, by integration and outcome",
            gateway_calls.clone(),
        );
        let gateway_duration: Family<GatewayLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "gateway_call_duration_seconds",
            "Time of a tools/call through the gateway, by integration and outcome",
            gateway_duration.clone(),
        );
        let pool_size = Gauge::default();
        registry.register(
            "db_pool_connections",
            "Database connections open now (idle or in use)",
            pool_size.clone(),
        );
        let pool_idle = Gauge::default();
        registry.register(
            "db_pool_idle_connections",
            "Database connections open and not in use",
            pool_idle.clone(),
        );
        let pool_max = Gauge::default();
        registry.register(
            "db_pool_max_connections",
            "The most database connections this instance opens",
            pool_max.clone(),
        );
        let gateway_instances = Gauge::default();
        gateway_instances.set(1);
        registry.register(
            "gateway_instances",
            "Instances running as this instance last counted them; each takes an equal share of every \
             integration's bound on concurrent gateway requests",
            gateway_instances.clone(),
        );
        Metrics {
            registry,
            gateway_instances,
            http_requests,
            http_duration,
            verifies,
            installs,
            refreshes,
            egress_refusals,
            gateway_calls,
            gateway_duration,
            pool_size,
            pool_idle,
            pool_max,
            routes: Interner::new(1024),
            connectors: Interner::new(MAX_DYNAMIC_LABELS),
            integrations: Interner::new(MAX_DYNAMIC_LABELS),
        }
    }

    /// One answered HTTP request. `route` is the matched route template (`None`: no route matched).
    pub fn http_request(
        &self,
        method: &Method,
        route: Option<&str>,
        status: StatusCode,
        elapsed: Duration,
    ) {
        let labels = HttpLabels {
            method: method_label(method),
            route: self.routes.get(route.unwrap_or(UNMATCHED)),
            status: status.as_u16(),
        };
        self.http_requests.get_or_create(&labels).inc();
        self.http_duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// One verify of `connector_id`.
    pub fn verify(&self, connector_id: &str, outcome: VerifyOutcome) {
        self.verifies
            .get_or_create(&VerifyLabels {
                connector: self.connectors.get(connector_id),
                outcome: outcome.as_str(),
            })
            .inc();
    }

    /// One integration created.
    pub fn install(&self, auth_mode: IntegrationAuthMode) {
        self.installs
            .get_or_create(&AuthModeLabels {
                auth_mode: auth_mode.as_str(),
            })
            .inc();
    }

    /// One refresh at a provider's token endpoint.
    pub fn oauth_refresh(&self, outcome: RefreshOutcome) {
        self.refreshes
            .get_or_create(&OutcomeLabels {
                outcome: outcome.as_str(),
            })
            .inc();
    }

    /// The instances running, as [`crate::gateway_wiring::Presence`] last counted them.
    pub fn gateway_instances(&self, instances: usize) {
        self.gateway_instances
            .set(i64::try_from(instances).unwrap_or(i64::MAX));
    }

    /// The page (Prometheus text format 0.0.4, [`CONTENT_TYPE`]), with the pool gauges read from `pool` first.
    pub fn render(&self, pool: plugboard_store::PoolStats) -> Result<String, std::fmt::Error> {
        self.pool_size.set(i64::from(pool.size));
        self.pool_idle.set(i64::from(pool.idle));
        self.pool_max.set(i64::from(pool.max));
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

impl plugboard_egress::RefusalObserver for Metrics {
    fn refused(&self, reason: &'static str) {
        self.egress_refusals
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }
}

impl plugboard_gateway::ports::Metrics for Metrics {
    fn gateway_call(
        &self,
        integration_id: &str,
        outcome: plugboard_gateway::ports::Outcome,
        duration: Duration,
    ) {
        let labels = GatewayLabels {
            integration: self.integrations.get(integration_id),
            outcome: outcome.as_str(),
        };
        self.gateway_calls.get_or_create(&labels).inc();
        self.gateway_duration
            .get_or_create(&labels)
            .observe(duration.as_secs_f64());
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => OTHER,
    }
}

/// The middleware that counts every request, by route template and final status (outermost, so it sees what the
/// client gets).
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let res = next.run(req).await;
    metrics.http_request(
        &method,
        route.as_ref().map(MatchedPath::as_str),
        res.status(),
        start.elapsed(),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interned_values_are_capped_and_reused() {
        let i = Interner::new(2);
        let a = i.get("a");
        assert!(Arc::ptr_eq(&a, &i.get("a")));
        assert_eq!(&*i.get("b"), "b");
        assert_eq!(&*i.get("c"), OTHER);
        assert_eq!(&*i.get("a"), "a");
    }

    #[test]
    fn unusual_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        let m = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&m), OTHER);
    }
}
