//! The sign-in routes: `GET /auth/oidc/login` and `GET /auth/oidc/callback`.
//!
//! The seam with sessions: what happens once an identity is verified (find or create the user, set the session
//! cookie, redirect to `/`) is a [`SignInCompletion`] that the caller passes to [`router`]. Everything before it —
//! the pending cookie, the redirect to the identity provider, the callback's validation and the HTML pages that
//! report failures — lives here. Every answer clears the pending cookie, so a sign-in answer works once.

use std::sync::Arc;

use axum::extract::RawQuery;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::{
    clear_pending_cookie, pending_from_headers, Callback, Oidc, OidcError, VerifiedIdentity,
};
use crate::oauth::page::escape;

/// What to do with a verified identity: the people work (users and sessions) implements this.
#[async_trait::async_trait]
pub trait SignInCompletion: Send + Sync + 'static {
    /// The answer to the callback request (typically: set the session cookie and redirect to `/`). The pending
    /// sign-in cookie is cleared on it by the caller.
    async fn complete(&self, identity: VerifiedIdentity) -> Response;
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;\
display:flex;min-height:100vh;align-items:center;justify-content:center;background:#f6f7f9;color:#1f2328}\
main{max-width:32rem;padding:2rem;background:#fff;border-radius:12px;box-shadow:0 1px 4px rgba(0,0,0,.1)}\
h1{font-size:1.25rem;margin:0 0 .75rem}p{line-height:1.5;margin:.5rem 0}a{color:#0969da}";

/// A small HTML page: a title, a message and, when `retry`, a link that starts again. No script.
pub fn page(status: StatusCode, title: &str, message: &str, retry: bool) -> Response {
    let retry = if retry {
        "<p><a href=\"/auth/oidc/login\">Sign in again</a></p>"
    } else {
        "<p><a href=\"/\">Back to Plugboard</a></p>"
    };
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"referrer\" content=\"no-referrer\"><title>{title} · Plugboard</title><style>{STYLE}</style></head>\
<body><main><h1>{title}</h1><p role=\"alert\">{message}</p>{retry}</main></body></html>\n",
        title = escape(title),
        message = escape(message),
    );
    let csp = format!(
        "default-src 'none'; style-src 'sha256-{}'; img-src 'none'; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE.as_bytes()))
    );
    let mut res = (status, html).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    no_store(h);
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    res
}

fn no_store(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// The page that reports a failed sign-in.
pub fn error_page(e: &OidcError) -> Response {
    page(e.status(), e.title(), &e.to_string(), e.retryable())
}

fn not_configured() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Single sign-on is not set up",
        "This Plugboard has no identity provider configured (an administrator sets PLUGBOARD_OIDC_ISSUER and \
         PLUGBOARD_OIDC_CLIENT_ID). Ask your administrator for a sign-in link instead.",
        false,
    )
}

/// A sign-in makes up to five sequential calls to the provider, each bounded by the timeout; the whole is bounded
/// too, within the server's request timeout (`PLUGBOARD_PROBE_TIMEOUT_MS` + 20 s), so the person gets this page
/// rather than a bare timeout.
fn overall_bound(oidc: &Oidc) -> std::time::Duration {
    oidc.settings().timeout + std::time::Duration::from_secs(15)
}

fn too_slow(bound: std::time::Duration) -> OidcError {
    OidcError::ProviderUnreachable(format!(
        "it did not finish the sign-in within {} s",
        bound.as_secs()
    ))
}

fn append_cookie(res: &mut Response, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// `GET /auth/oidc/login`: 303 to the identity provider with the pending sign-in cookie set.
pub async fn login(oidc: Option<Oidc>) -> Response {
    let Some(oidc) = oidc else {
        return not_configured();
    };
    let bound = overall_bound(&oidc);
    let started = match tokio::time::timeout(bound, oidc.start_login()).await {
        Ok(r) => r,
        Err(_) => Err(too_slow(bound)),
    };
    match started {
        Ok(start) => {
            let mut res = StatusCode::SEE_OTHER.into_response();
            match HeaderValue::from_str(&start.authorization_url) {
                Ok(v) => {
                    res.headers_mut().insert(header::LOCATION, v);
                }
                Err(_) => {
                    return error_page(&OidcError::ProviderInvalid(
                        "its authorization endpoint is not a usable URL".into(),
                    ))
                }
            }
            no_store(res.headers_mut());
            append_cookie(&mut res, &start.pending.set_cookie());
            res
        }
        Err(e) => {
            tracing::warn!(code = e.code(), error = %e, "OpenID Connect sign-in could not start");
            error_page(&e)
        }
    }
}

/// `GET /auth/oidc/callback`: validates the answer; on success hands the identity to `completion`.
pub async fn callback(
    oidc: Option<Oidc>,
    completion: Arc<dyn SignInCompletion>,
    query: Option<String>,
    headers: HeaderMap,
) -> Response {
    let Some(oidc) = oidc else {
        return not_configured();
    };
    let cb = Callback::from_query(query.as_deref().unwrap_or(""));
    let pending = pending_from_headers(&headers);
    let clear = clear_pending_cookie(oidc.settings().secure_cookies);
    let bound = overall_bound(&oidc);
    let finished =
        match tokio::time::timeout(bound, oidc.finish_login(&cb, pending.as_deref())).await {
            Ok(r) => r,
            Err(_) => Err(too_slow(bound)),
        };
    let mut res = match finished {
        Ok(identity) => {
            tracing::info!(issuer = %identity.issuer, "OpenID Connect sign-in verified");
            completion.complete(identity).await
        }
        Err(e) => {
            tracing::warn!(code = e.code(), error = %e, "OpenID Connect sign-in refused");
            error_page(&e)
        }
    };
    append_cookie(&mut res, &clear);
    res
}

/// The two routes, for any router state. `oidc` is `None` when OpenID Connect is not configured (both routes
/// then answer a page that says so).
pub fn router<S: Clone + Send + Sync + 'static>(
    oidc: Option<Oidc>,
    completion: Arc<dyn SignInCompletion>,
) -> Router<S> {
    let for_login = oidc.clone();
    Router::new()
        .route(
            "/auth/oidc/login",
            get(move || {
                let oidc = for_login.clone();
                async move { login(oidc).await }
            }),
        )
        .route(
            "/auth/oidc/callback",
            get(move |RawQuery(query): RawQuery, headers: HeaderMap| {
                let oidc = oidc.clone();
                let completion = completion.clone();
                async move { callback(oidc, completion, query, headers).await }
            }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_and_forbid_framing_and_scripts() {
        let res = page(StatusCode::BAD_REQUEST, "<t>", "<script>x</script>", true);
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let h = res.headers();
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && !csp.contains("script-src"));
    }
}
