//! Checks at the edge of the API, before any handler reads a request: a declared body over the limit (413 at
//! once, without reading it and without `100 Continue`), a request body that is not JSON (415), and a client
//! `x-request-id` that is not a short visible-ASCII token (replaced by a generated one).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use tracing::Instrument;

use crate::error::ApiError;

/// Longest client `x-request-id` kept (longer, or with other than visible ASCII: a new id is generated).
pub const MAX_REQUEST_ID_BYTES: usize = 128;

/// Drops a client `x-request-id` that is not one value of 1 to 128 visible ASCII characters, so that a new one is
/// generated (and echoed) instead.
pub async fn bound_request_id(mut req: Request, next: Next) -> Response {
    let headers = req.headers();
    if headers.contains_key(X_REQUEST_ID) && kept_request_id(headers).is_none() {
        req.headers_mut().remove(X_REQUEST_ID);
    }
    next.run(req).await
}

/// 413 for a declared `Content-Length` over `limit` (nothing of the body is read, so a client that sent
/// `Expect: 100-continue` never gets `100 Continue`), and 415 for a JSON API request whose body is not declared
/// as JSON.
pub async fn body_checks(limit: usize, req: Request, next: Next) -> Response {
    let hint = http_body::Body::size_hint(req.body());
    let declared = declared_length(req.headers()).unwrap_or(hint.lower());
    if declared > limit as u64 {
        return ApiError::payload_too_large().into_response();
    }
    let has_body = declared > 0
        || hint.upper() != Some(0)
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    if has_body && takes_json(req.method(), req.uri().path()) && !is_json(req.headers()) {
        return ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the request body must be JSON: send it with `Content-Type: application/json`",
        )
        .into_response();
    }
    next.run(req).await
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// The JSON API's endpoints that read a body.
fn takes_json(method: &Method, path: &str) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH) && path.starts_with("/api/")
}

/// Every `Content-Type` is JSON: `application/json` or `…/…+json`, parameters allowed.
fn is_json(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(header::CONTENT_TYPE).iter().peekable();
    values.peek().is_some()
        && values.all(|v| {
            let Ok(v) = v.to_str() else { return false };
            let essence = v
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            match essence.split_once('/') {
                Some((_, sub)) => {
                    essence == "application/json" || (sub.ends_with("+json") && !sub.contains(' '))
                }
                None => false,
            }
        })
}

/// The MCP gateway's edge in one layer, where the JSON API has four (request id bound, set, propagated; trace): a
/// request id (the client's `x-request-id` when [`bound_request_id`] would keep it, else a new one), answered in
/// `x-request-id`, and the request's tracing span (method, matched route, request id), built only when INFO is
/// enabled; a 5xx is logged at ERROR and the start and end of each request at DEBUG, as on the API. One boxed
/// future per request instead of four layers' worth, on the path every agent call takes.
#[derive(Clone, Copy, Debug, Default)]
pub struct GatewayEdgeLayer;

impl<S> tower::Layer<S> for GatewayEdgeLayer {
    type Service = GatewayEdge<S>;

    fn layer(&self, inner: S) -> GatewayEdge<S> {
        GatewayEdge { inner }
    }
}

/// See [`GatewayEdgeLayer`].
#[derive(Clone, Debug)]
pub struct GatewayEdge<S> {
    inner: S,
}

/// The client's request id when it is one value of 1 to [`MAX_REQUEST_ID_BYTES`] visible ASCII characters.
fn kept_request_id(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut values = headers.get_all(X_REQUEST_ID).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => {
            let b = v.as_bytes();
            (!b.is_empty()
                && b.len() <= MAX_REQUEST_ID_BYTES
                && b.iter().all(|c| (0x21..=0x7e).contains(c)))
            .then(|| v.clone())
        }
        _ => None,
    }
}

const X_REQUEST_ID: &str = "x-request-id";

/// A new request id (a new store id, as `plugboard_store::is_well_formed_id` accepts).
pub fn new_request_id() -> Option<HeaderValue> {
    HeaderValue::from_str(&plugboard_store::new_id()).ok()
}

/// The tracing span of a request: its method, only the matched route (raw URIs can carry OAuth codes and states),
/// and its request id. Built only when INFO is enabled ([`tracing::Span::none`] otherwise, at no cost).
pub fn span_of(req: &Request, request_id: &str) -> tracing::Span {
    if !tracing::enabled!(tracing::Level::INFO) {
        return tracing::Span::none();
    }
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("<unmatched>", MatchedPath::as_str);
    tracing::info_span!("request", method = %req.method(), route = %route, request_id = %request_id)
}

impl<S> tower::Service<Request> for GatewayEdge<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let id = kept_request_id(req.headers())
            .or_else(new_request_id)
            .unwrap_or_else(|| HeaderValue::from_static("-"));
        let span = span_of(&req, id.to_str().unwrap_or_default());
        let started = Instant::now();
        let fut = {
            let _entered = span.enter();
            tracing::debug!("started processing request");
            self.inner.call(req)
        };
        Box::pin(
            async move {
                let Ok(mut res) = fut.await;
                let latency = started.elapsed().as_millis() as u64;
                let status = res.status();
                if status.is_server_error() {
                    tracing::error!(
                        status = status.as_u16(),
                        latency_ms = latency,
                        "response failed"
                    );
                } else {
                    tracing::debug!(
                        status = status.as_u16(),
                        latency_ms = latency,
                        "finished processing request"
                    );
                }
                res.headers_mut().insert(X_REQUEST_ID, id);
                Ok(res)
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn json_content_types_with_parameters_and_suffixes_are_json() {
        let mut h = HeaderMap::new();
        assert!(!is_json(&h));
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/merge-patch+json",
        ] {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ok));
            assert!(is_json(&h), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "json",
            "application/jsonx",
        ] {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(bad));
            assert!(!is_json(&h), "{bad}");
        }
    }
}
