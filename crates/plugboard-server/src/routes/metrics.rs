//! `GET /metrics`: the Prometheus page of [`crate::metrics`] (not part of the OpenAPI document: it is not JSON API).
//!
//! Who may read it: with `PLUGBOARD_METRICS_TOKEN` set, a caller sending `Authorization: Bearer <it>` (compared in
//! constant time); without it, loopback callers only, and not through a reverse proxy (a request carrying
//! `Forwarded` or `X-Forwarded-For` is refused, since a proxy on this machine itself calls from loopback).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;

/// `GET /metrics`.
pub async fn page(State(app): State<AppState>, req: Request) -> Response {
    if let Err(e) = may_read(&app, req.headers(), req.extensions().get()) {
        return e.into_response();
    }
    match app.metrics.render(app.store.pool_stats()) {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
            )],
            body,
        )
            .into_response(),
        Err(e) => ApiError::internal(format!("encoding the metrics failed: {e}")).into_response(),
    }
}

/// Whether this caller may read the page (see the module).
fn may_read(
    app: &crate::App,
    headers: &HeaderMap,
    peer: Option<&ConnectInfo<SocketAddr>>,
) -> Result<(), ApiError> {
    if let Some(expected) = &app.config.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        let ok = given.is_some_and(|g| {
            let a = Sha256::digest(g.as_bytes());
            let b = Sha256::digest(expected.expose_secret().as_bytes());
            bool::from(a.ct_eq(&b))
        });
        return if ok {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "send the metrics token (PLUGBOARD_METRICS_TOKEN) as `Authorization: Bearer <token>`",
            ))
        };
    }
    let proxied = headers.contains_key("forwarded") || headers.contains_key("x-forwarded-for");
    let loopback = peer.is_some_and(|ConnectInfo(addr)| addr.ip().to_canonical().is_loopback());
    if loopback && !proxied {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "/metrics is served only to callers on this machine (loopback) while PLUGBOARD_METRICS_TOKEN is \
             unset: set PLUGBOARD_METRICS_TOKEN and scrape with `Authorization: Bearer <token>`",
        ))
    }
}
