//! Assembly and serving: the router (every route module's routes and their OpenAPI description, from one list),
//! the middleware around it, and [`Application`], which binds the listener before it serves (so tests know the
//! port).

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
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

use crate::error::{code_for_status, error_body};
use crate::oidc::Oidc;
use crate::openapi::OpenApiJson;
use crate::routes;
use crate::routes::auth::OidcHandle;
use crate::state::{AppState, StartupError};

/// Request bodies above this get 413.
pub const BODY_LIMIT: usize = 1024 * 1024;
/// Bound on one request end to end (a verify probe is bounded tighter by `PLUGBOARD_PROBE_TIMEOUT_MS`).
const REQUEST_TIMEOUT_MARGIN: Duration = Duration::from_secs(20);

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
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(trace)
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeId))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(crate::console::security_headers))
        .layer(middleware::from_fn_with_state(
            metrics,
            crate::metrics::track,
        ))
        .with_state(state)
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
        // The peer address (ConnectInfo) decides whether /metrics may be read without a token.
        let service = router(self.state).into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, service)
            .with_graceful_shutdown(shutdown)
            .await
    }
}
