//! The application: state passed explicitly (`AppState`), the router and its middleware, and start-up.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use plugboard_catalog::Catalog;
use plugboard_store::Store;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::auth::TokenCache;
use crate::config::Config;
use crate::error::{code_for_status, error_body, ApiError};
use crate::prepared::PreparedCatalog;
use crate::routes;
use crate::vault::{resolve_master_key, Vault};

/// Request bodies above this get 413.
pub const BODY_LIMIT: usize = 1024 * 1024;
/// Bound on one request end to end (a verify probe is bounded tighter by `PLUGBOARD_PROBE_TIMEOUT_MS`).
const REQUEST_TIMEOUT_MARGIN: Duration = Duration::from_secs(20);

pub struct App {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub catalog: PreparedCatalog,
    pub tokens: Arc<TokenCache>,
    pub vault: Vault,
    pub egress: plugboard_egress::Guard,
    pub openapi: Bytes,
    pub verify_limits: crate::limits::VerifyLimits,
}

pub type AppState = Arc<App>;

/// A start-up failure, with a message that says how to fix it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartupError(pub String);

fn startup<E: std::fmt::Display>(context: &str) -> impl FnOnce(E) -> StartupError + '_ {
    move |e| StartupError(format!("{context}: {e}"))
}

/// Loads the configured catalog: the folder (bad files logged and skipped) or the built-in one.
pub fn load_catalog(config: &Config) -> Result<Catalog, StartupError> {
    match &config.catalog_dir {
        Some(dir) => {
            let (catalog, bad) = Catalog::load_dir(dir).map_err(|e| {
                StartupError(format!(
                    "PLUGBOARD_CATALOG_DIR {} cannot be read: {e}",
                    dir.display()
                ))
            })?;
            for f in &bad {
                tracing::warn!(file = %f.file, error = %f.error, "skipping invalid manifest");
            }
            tracing::info!(dir = %dir.display(), loaded = catalog.len(), skipped = bad.len(), "catalog loaded");
            Ok(catalog)
        }
        None => {
            let catalog = Catalog::builtin()
                .map_err(|e| StartupError(format!("built-in catalog: {}: {}", e.file, e.error)))?;
            tracing::info!(loaded = catalog.len(), "built-in catalog loaded");
            Ok(catalog)
        }
    }
}

impl App {
    /// Opens the database (migrating it), the vault and the catalog.
    pub async fn build(config: Config) -> Result<AppState, StartupError> {
        let options = plugboard_store::ConnectOptions {
            create: true,
            sqlite_synchronous: config.sqlite_synchronous,
        };
        let store = plugboard_store::connect_with(&config.database_url, options)
            .await
            .map_err(startup(
                "cannot open the database (check PLUGBOARD_DATABASE_URL)",
            ))?;
        let applied = store
            .migrate()
            .await
            .map_err(startup("database migration failed"))?;
        if applied > 0 {
            tracing::info!(applied, "database migrations applied");
        }
        let catalog = load_catalog(&config)?;
        App::with_parts(config, store, catalog).await
    }

    /// Assembles the state from an open, migrated store and a loaded catalog.
    pub async fn with_parts(
        config: Config,
        store: Arc<dyn Store>,
        catalog: Catalog,
    ) -> Result<AppState, StartupError> {
        let master = resolve_master_key(&config).map_err(|e| StartupError(e.to_string()))?;
        let vault = Vault::load(store.clone(), master)
            .await
            .map_err(|e| StartupError(e.to_string()))?;
        let egress = plugboard_egress::Guard::new(plugboard_egress::EgressConfig {
            allow_cidrs: config.egress_allow_cidrs.clone(),
            total_timeout: config.probe_timeout,
            connect_timeout: config.probe_timeout.min(Duration::from_secs(5)),
            ..Default::default()
        })
        .map_err(startup("egress guard"))?;
        let catalog = PreparedCatalog::new(catalog).map_err(startup("catalog"))?;
        let tokens = TokenCache::new(store.clone());
        tokens.poll_once().await;
        tokens.spawn_poller();
        let openapi = Bytes::from(crate::openapi::document());
        tracing::info!(master_key = %vault.master_fingerprint(), "vault open");
        let verify_limits = crate::limits::VerifyLimits::new(
            config.verify_rate_per_minute,
            crate::limits::VerifyLimits::MAX_CONCURRENT,
        );
        Ok(Arc::new(App {
            config,
            store,
            catalog,
            tokens,
            vault,
            egress,
            openapi,
            verify_limits,
        }))
    }
}

#[derive(Clone, Default)]
struct MakeId;

impl MakeRequestId for MakeId {
    fn make_request_id<B>(&mut self, _req: &http::Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&plugboard_store::new_id())
            .ok()
            .map(RequestId::new)
    }
}

/// Gives every 4xx/5xx that left the stack without a JSON body (unknown route, 405, timeout, body limit …) the
/// API's error body. The OAuth callback's HTML pages are left alone.
async fn json_errors(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    if status.as_u16() < 400 {
        return res;
    }
    let is_json_or_html = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json") || ct.starts_with("text/html"));
    if is_json_or_html {
        return res;
    }
    let message = match status {
        StatusCode::NOT_FOUND => "no such endpoint",
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed on this endpoint",
        StatusCode::PAYLOAD_TOO_LARGE => "request body is larger than 1 MiB",
        StatusCode::REQUEST_TIMEOUT => "request timed out",
        s if s.is_server_error() => "internal server error",
        s => s.canonical_reason().unwrap_or("request failed"),
    };
    let (mut parts, _) = res.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(
        parts,
        Body::from(error_body(code_for_status(status), message)),
    )
}

pub fn router(state: AppState) -> Router {
    let timeout = state.config.probe_timeout + REQUEST_TIMEOUT_MARGIN;
    let trace = TraceLayer::new_for_http().make_span_with(|req: &Request| {
        // Only the matched route: raw URIs can carry OAuth codes and states.
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map(|m| m.as_str().to_string())
            .unwrap_or_else(|| "<unmatched>".into());
        let request_id = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        tracing::info_span!("request", method = %req.method(), route = %route, request_id = %request_id)
    });
    Router::new()
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .route("/api/openapi.json", get(routes::health::openapi))
        .merge(routes::connectors::router())
        .merge(routes::verify::router())
        .merge(routes::install::router())
        .merge(routes::integrations::router())
        .merge(routes::audit::router())
        .merge(routes::oauth::router())
        .fallback(|| async { ApiError::not_found("endpoint").into_response() })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(trace)
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeId))
        .layer(middleware::from_fn(json_errors))
        .with_state(state)
}

/// A bound server: `port()` is known before `run`.
pub struct Application {
    listener: tokio::net::TcpListener,
    state: AppState,
}

impl Application {
    pub async fn bind(state: AppState) -> Result<Application, StartupError> {
        let listener = tokio::net::TcpListener::bind(state.config.listen)
            .await
            .map_err(|e| {
                StartupError(format!(
                    "cannot listen on {} (PLUGBOARD_LISTEN): {e}",
                    state.config.listen
                ))
            })?;
        Ok(Application { listener, state })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let addr = self.listener.local_addr()?;
        tracing::info!(%addr, "listening");
        axum::serve(self.listener, router(self.state))
            .with_graceful_shutdown(shutdown)
            .await
    }
}
