//! Assembly and serving: the router (every route module's routes and their OpenAPI description, from one list),
//! the middleware around it, and [`Application`], which binds the listener before it serves (so tests know the
//! port).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::IntoResponse;
use tower::ServiceExt;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::{Extension, Router};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;

use crate::config::Config;
use crate::error::{code_for_status, error_body};
use crate::oidc::Oidc;
use crate::openapi::OpenApiJson;
use crate::routes;
use crate::routes::auth::OidcHandle;
use crate::state::{load_catalog, open_database, App, AppState, OpenError, StartupError};

/// Request bodies above this get 413.
pub const BODY_LIMIT: usize = 1024 * 1024;
/// Bound on one request end to end (a verify probe is bounded tighter by `PLUGBOARD_PROBE_TIMEOUT_MS`).
const REQUEST_TIMEOUT_MARGIN: Duration = Duration::from_secs(20);

#[derive(Clone, Default)]
struct MakeId;

impl MakeRequestId for MakeId {
    fn make_request_id<B>(&mut self, _req: &http::Request<B>) -> Option<RequestId> {
        crate::edge::new_request_id().map(RequestId::new)
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
        StatusCode::SERVICE_UNAVAILABLE => {
            "the request took too long to complete: retry in a few seconds"
        }
        s if s.is_server_error() => "internal server error",
        s => s.canonical_reason().unwrap_or("request failed"),
    };
    let (mut parts, _) = res.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        parts.headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from(crate::error::DATABASE_RETRY_AFTER_SECS),
        );
    }
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(
        parts,
        Body::from(error_body(code_for_status(status), message)),
    )
}

/// Every route with its OpenAPI description: what is served and what is documented come from this one list.
pub fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(crate::openapi::base())
        .merge(routes::health::routes())
        .merge(routes::connectors::routes())
        .merge(routes::verify::routes())
        .merge(routes::install::routes())
        .merge(routes::integrations::routes())
        .merge(routes::audit::routes())
        .merge(routes::oauth::routes())
        .merge(routes::people::routes())
        .merge(routes::auth::routes())
        .merge(routes::agent_tokens::routes())
}

/// The OpenAPI document of [`api_routes`], as served at `/api/openapi.json`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let mut doc = api_routes().into_openapi();
    crate::openapi::finish(&mut doc);
    doc
}

/// The whole service: [`api_routes`] and the web console ([`crate::console::routes`]) with the middleware (body
/// limit, timeout, request id, tracing by matched route, the JSON error body for errors produced below the
/// handlers, the security headers of pages).
pub fn router(state: AppState) -> Router {
    let timeout = state.config.probe_timeout + REQUEST_TIMEOUT_MARGIN;
    let trace = TraceLayer::new_for_http().make_span_with(request_span);
    // The MCP gateway: outside the JSON API's body limit and request timeout (it bounds its own requests, and its
    // answers stream for as long as the upstream's do), its request id and tracing in one layer of its own.
    let gateway = routes::gateway::routes()
        .layer(crate::edge::GatewayEdgeLayer)
        .with_state(state.clone());
    let oidc = oidc_of(&state);
    let metrics = state.metrics.clone();
    let (api, mut openapi) = api_routes().split_for_parts();
    crate::openapi::finish(&mut openapi);
    api.merge(crate::console::routes())
        .route("/metrics", axum::routing::get(routes::metrics::page))
        .fallback(crate::console::fallback)
        .layer(Extension(OpenApiJson::new(&openapi)))
        .layer(Extension(OidcHandle(oidc)))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(|req: Request, next: Next| {
            crate::edge::body_checks(BODY_LIMIT, req, next)
        }))
        // A server-side timeout is the server's failure: 503, never 408.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .layer(trace)
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeId))
        .layer(middleware::from_fn(crate::edge::bound_request_id))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(crate::console::security_headers))
        .layer(middleware::from_fn_with_state(
            metrics,
            crate::metrics::track,
        ))
        .with_state(state)
        .merge(gateway)
}

/// The tracing span of a request, with the request id [`SetRequestIdLayer`] put in (see [`crate::edge::span_of`]).
fn request_span(req: &Request) -> tracing::Span {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    crate::edge::span_of(req, request_id)
}

/// The OpenID Connect relying party of the configuration, if any. The configuration was validated at start, so
/// this cannot fail but for a broken TLS set-up; then sign-in with OpenID Connect answers that it is not set up
/// (and the error is logged), the rest of the service runs.
fn oidc_of(state: &AppState) -> Option<Oidc> {
    match Oidc::from_config(&state.config, &state.vault) {
        Ok(oidc) => oidc,
        Err(e) => {
            tracing::error!(error = %e, "OpenID Connect sign-in cannot be set up");
            None
        }
    }
}

/// `SIGHUP` reloads the catalog folder ([`crate::App::reload_catalog`]) from now on; a failed reload is logged
/// and the catalog in service stays. The handler is in place when this returns (so a `SIGHUP` sent once the
/// server listens never takes the default action, which would end the process).
#[cfg(unix)]
pub fn reload_catalog_on_hangup(state: &AppState) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = signal(SignalKind::hangup())?;
    let state = state.clone();
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the catalog");
            let app = state.clone();
            match tokio::task::spawn_blocking(move || app.reload_catalog()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "catalog reload failed"),
                Err(e) => tracing::error!(error = %e, "catalog reload failed"),
            }
        }
    });
    Ok(())
}

#[cfg(not(unix))]
pub fn reload_catalog_on_hangup(_state: &AppState) -> std::io::Result<()> {
    Ok(())
}

/// What a serving instance starts beside the router: the catalog's compressed copies, its presence for the
/// gateway's shared bounds ([`crate::gateway_wiring::Presence`], returned, to end on a graceful stop), and the sealing
/// of custom servers' credentials stored in the clear before such values were sealed
/// ([`crate::integration::seal_unmarked_credentials`]; once sealed, later starts find nothing to do).
fn start_background_work(state: &AppState) -> crate::gateway_wiring::Presence {
    state.catalog.compress_in_background();
    let presence = crate::gateway_wiring::Presence::new();
    presence.keep(state);
    let app = state.clone();
    tokio::spawn(async move {
        match crate::integration::seal_unmarked_credentials(&app).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                integrations = n,
                "sealed credential values that custom servers held in the clear (each named in the log above and \
                 in its workspace's audit log); the database may still hold the old copies in space it has not \
                 reused yet: to remove them now, run VACUUM (SQLite) or VACUUM FULL integrations (PostgreSQL) at a \
                 quiet moment"
            ),
            Err(e) => tracing::warn!(
                error = %e.message,
                "could not check custom servers for credentials held in the clear; the next start tries again"
            ),
        }
    });
    presence
}

/// How long a graceful shutdown waits for the gateway's audit entries still queued to be written.
const AUDIT_FLUSH: Duration = Duration::from_secs(10);

/// A serving instance's state and what runs beside its router ([`start_background_work`]), for its graceful stop;
/// the same whether it served at once or after waiting for its database.
#[derive(Clone)]
struct Serving {
    state: AppState,
    presence: crate::gateway_wiring::Presence,
}

impl Serving {
    fn start(state: AppState) -> Serving {
        let presence = start_background_work(&state);
        Serving { state, presence }
    }

    /// The stop begins: the gateway ends the server streams it relays (they never finish on their own).
    fn stop_begins(&self) {
        self.state.stopping.send_replace(true);
    }

    /// After the last request: the gateway's audit entries still queued are written, so every `tools/call` that
    /// was answered is in the audit log, and the instance leaves (the others take its share of the shared bounds).
    async fn stopped(&self) {
        if let Some(gateway) = self.state.gateway.get() {
            let left = gateway.flush_audit(AUDIT_FLUSH).await;
            if left > 0 {
                tracing::error!(
                    entries = left,
                    waited_ms = AUDIT_FLUSH.as_millis() as u64,
                    "gateway_call audit entries were still unwritten when the server stopped (the database did not \
                     take them in time); those calls are missing from the audit log"
                );
            }
        }
        self.presence.leave(&self.state).await;
    }
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
        reload_catalog_on_hangup(&self.state)?;
        tracing::info!(%addr, "listening");
        let serving = Serving::start(self.state.clone());
        // The peer address (ConnectInfo, inserted by `serve`) decides whether /metrics may be read without a token.
        let options = serve_options(&self.state.config);
        let stopping = serving.clone();
        let shutdown = async move {
            shutdown.await;
            stopping.stop_begins();
        };
        crate::serve::serve(self.listener, router(self.state), options, shutdown).await;
        serving.stopped().await;
        Ok(())
    }
}

/// Runs `plugboard serve` until `shutdown`: opens and migrates the database, then serves. When the database cannot
/// be reached at start, it listens at once (`/healthz` answers 200, everything else 503 `database_unavailable`)
/// and retries, logging each try, until it can migrate; then it serves normally. Other start-up failures (a bad
/// setting, a failed migration, a wrong master key) end it with their message.
pub async fn serve(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), StartupError> {
    // The catalog loads (reading and parsing files, on threads of its own) while the database opens.
    let catalog_dir = config.catalog_dir.clone();
    let catalog = tokio::task::spawn_blocking(move || load_catalog(catalog_dir.as_deref()));
    let first_error = match open_database(&config).await {
        Ok(store) => {
            let catalog = catalog
                .await
                .map_err(|e| StartupError(format!("loading the catalog stopped: {e}")))??;
            match App::assemble(config.clone(), store, catalog).await {
                Ok(state) => {
                    let app = Application::bind(state).await?;
                    return app
                        .run_until(shutdown)
                        .await
                        .map_err(|e| StartupError(format!("server error: {e}")));
                }
                // The database went away after its migration (while the vault loaded): wait for it as below.
                Err(OpenError::Unavailable(m)) => m,
                Err(OpenError::Fatal(e)) => return Err(e),
            }
        }
        Err(OpenError::Fatal(e)) => return Err(e),
        Err(OpenError::Unavailable(m)) => m,
    };
    let listener = bind(&config).await?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartupError(format!("cannot read the listening address: {e}")))?;
    tracing::info!(%addr, "listening");
    let slot: RouterSlot = Arc::new(std::sync::RwLock::new(None));
    let serving: Arc<std::sync::OnceLock<Serving>> = Arc::default();
    let (fatal_tx, fatal_rx) = tokio::sync::oneshot::channel::<StartupError>();
    let waiting = tokio::spawn(wait_for_database(
        config.clone(),
        first_error,
        slot.clone(),
        Arc::clone(&serving),
        fatal_tx,
    ));
    let options = serve_options(&config);
    let switch = Router::new().fallback(switch).with_state(slot);
    let stopping = Arc::clone(&serving);
    crate::serve::serve(listener, switch, options, async move {
        tokio::select! {
            _ = shutdown => {},
            _ = async { if fatal_rx.await.is_err() { std::future::pending::<()>().await } } => {},
        }
        if let Some(serving) = stopping.get() {
            serving.stop_begins();
        }
    })
    .await;
    waiting.abort();
    if let Some(serving) = serving.get() {
        serving.stopped().await;
    }
    let fatal = match waiting.await {
        Ok(Some(e)) => Some(e),
        _ => None,
    };
    if let Some(e) = fatal {
        return Err(e);
    }
    Ok(())
}

/// How connections are served under `config`: no request can run longer than the request timeout, so that is
/// also the drain deadline at shutdown.
fn serve_options(config: &Config) -> crate::serve::ServeOptions {
    crate::serve::ServeOptions {
        header_timeout: config.header_timeout,
        max_connections: config.max_connections,
        drain_timeout: config.probe_timeout + REQUEST_TIMEOUT_MARGIN,
    }
}

/// The router that serves once the database is up (`None` while `serve` waits for it).
type RouterSlot = Arc<std::sync::RwLock<Option<Router>>>;

async fn bind(config: &Config) -> Result<tokio::net::TcpListener, StartupError> {
    tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| {
            StartupError(format!(
                "cannot listen on {} (PLUGBOARD_LISTEN): {e}",
                config.listen
            ))
        })
}

/// Retries opening the database (backing off from a quarter second to five seconds, logging each try) until it
/// can migrate and load the vault, then puts the full router into `slot` (and what its graceful stop needs into
/// `serving`). A failure that retrying cannot fix is sent on `fatal` (and returned).
async fn wait_for_database(
    config: Config,
    first_error: String,
    slot: RouterSlot,
    serving: Arc<std::sync::OnceLock<Serving>>,
    fatal: tokio::sync::oneshot::Sender<StartupError>,
) -> Option<StartupError> {
    let mut delay = Duration::from_millis(250);
    let mut attempt: u32 = 1;
    let mut error = first_error;
    let result = loop {
        tracing::warn!(attempt, error = %error, retry_in_ms = delay.as_millis() as u64,
            "the database is unavailable; /healthz answers, /readyz and the API answer 503 until it can be reached");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
        attempt += 1;
        let store = match open_database(&config).await {
            Ok(store) => store,
            Err(OpenError::Unavailable(m)) => {
                error = m;
                continue;
            }
            Err(OpenError::Fatal(e)) => break Err(e),
        };
        let catalog = match load_catalog(config.catalog_dir.as_deref()) {
            Ok(catalog) => catalog,
            Err(e) => break Err(e),
        };
        match App::assemble(config.clone(), store, catalog).await {
            Ok(state) => break Ok(state),
            // Reachable for the migration, gone for the vault: keep waiting.
            Err(OpenError::Unavailable(m)) => error = m,
            Err(OpenError::Fatal(e)) => break Err(e),
        }
    };
    match result {
        Ok(state) => {
            tracing::info!(attempt, "the database is reachable: serving");
            let _ = serving.set(Serving::start(state.clone()));
            if let Ok(mut s) = slot.write() {
                *s = Some(router(state));
            }
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            let _ = fatal.send(StartupError(e.0.clone()));
            Some(e)
        }
    }
}

/// While `serve` waits for its database: `/healthz` answers 200, every other request 503 `database_unavailable`
/// with `Retry-After`. Once the database is up, every request goes to the full router.
async fn switch(State(slot): State<RouterSlot>, req: Request) -> Response {
    let current = slot.read().ok().and_then(|s| s.clone());
    if let Some(router) = current {
        return match router.oneshot(req).await {
            Ok(res) => res,
            Err(never) => match never {},
        };
    }
    if req.uri().path() == "/healthz" {
        return axum::Json(serde_json::json!({ "status": "ok" })).into_response();
    }
    crate::error::ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "database_unavailable",
        "Plugboard is starting and waiting for its database: retry in a few seconds",
    )
    .into_response()
}
