//! Signing in and out in a browser: OpenID Connect (`/auth/oidc/login`, `/auth/oidc/callback`, the protocol in
//! [`crate::oidc`]), sign-in links (`/auth/link/{secret}`) and sign-out (`POST /auth/logout`). These answer
//! redirects and small HTML pages, never JSON (but for a forged sign-out: 403 `csrf_rejected`).

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::from_public_origin;
use crate::error::ApiError;
use crate::oidc::web::{self, page};
use crate::oidc::Oidc;
use crate::people::{self, PeopleSignIn};
use crate::sessions::{clear_cookie, session_cookie, SessionCookie};
use crate::state::AppState;

/// The OpenID Connect relying party (`None` when `PLUGBOARD_OIDC_ISSUER` is unset), handed to the handlers as an
/// extension by [`crate::startup::router`] (the state knows no sign-in protocol).
#[derive(Clone)]
pub struct OidcHandle(pub Option<Oidc>);

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(oidc_login))
        .routes(routes!(oidc_callback))
        .routes(routes!(sign_in_link))
        .routes(routes!(logout))
}

/// Starts a sign-in with the identity provider: 303 to its authorization endpoint (code flow, PKCE S256, `state`
/// and `nonce` bound to this browser by a short-lived sealed cookie).
#[utoipa::path(get, path = "/auth/oidc/login", tag = "sign-in",
    responses(
        (status = 303, description = "to the identity provider"),
        (status = 404, description = "OpenID Connect is not configured (HTML page)", content_type = "text/html", body = String),
        (status = 502, description = "the identity provider is unreachable or unusable (HTML page)", content_type = "text/html", body = String)))]
pub async fn oidc_login(Extension(OidcHandle(oidc)): Extension<OidcHandle>) -> Response {
    web::login(oidc).await
}

/// Where the identity provider sends the browser back: on success the session cookie is set and the answer is 303
/// to `/`; any failure is an HTML page that says what went wrong, with no session.
#[utoipa::path(get, path = "/auth/oidc/callback", tag = "sign-in",
    params(
        ("code" = Option<String>, Query, description = "the authorization code"),
        ("state" = Option<String>, Query, description = "the state this browser's sign-in sent"),
        ("iss" = Option<String>, Query, description = "the issuer (RFC 9207)"),
        ("error" = Option<String>, Query, description = "the provider's error code")),
    responses(
        (status = 303, description = "signed in: the session cookie is set, to `/`"),
        (status = 400, description = "expired, replayed or foreign sign-in (HTML page)", content_type = "text/html", body = String),
        (status = 403, description = "an unusable or unverified email (HTML page)", content_type = "text/html", body = String),
        (status = 404, description = "OpenID Connect is not configured (HTML page)", content_type = "text/html", body = String),
        (status = 502, description = "the identity provider failed or its ID token was refused (HTML page)", content_type = "text/html", body = String),
        (status = 503, description = "the session could not be recorded (HTML page)", content_type = "text/html", body = String)))]
pub async fn oidc_callback(
    State(app): State<AppState>,
    Extension(OidcHandle(oidc)): Extension<OidcHandle>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let completion = std::sync::Arc::new(PeopleSignIn {
        app,
        replaces: brought_session(&headers),
    });
    web::callback(oidc, completion, query, headers).await
}

/// The session a browser brings to a sign-in (ended by it, so a browser holds one session at a time).
fn brought_session(headers: &HeaderMap) -> Option<String> {
    match session_cookie(headers) {
        SessionCookie::Present(s) => Some(s),
        SessionCookie::Absent | SessionCookie::Ambiguous => None,
    }
}

/// Opens a sign-in link (made by `plugboard admin login-link`): once, within 15 minutes. Sets the session cookie
/// and answers 303 to `/`; a used, expired or unknown link answers an HTML page that says so, with no session. A
/// `HEAD` request (a link checker's) spends nothing.
#[utoipa::path(get, path = "/auth/link/{secret}", tag = "sign-in",
    params(("secret" = String, Path, description = "the link's secret")),
    responses(
        (status = 303, description = "signed in: the session cookie is set, to `/`"),
        (status = 404, description = "an unknown link (HTML page)", content_type = "text/html", body = String),
        (status = 410, description = "a link already used or expired (HTML page)", content_type = "text/html", body = String),
        (status = 503, description = "the session could not be recorded (HTML page)", content_type = "text/html", body = String)))]
pub async fn sign_in_link(
    State(app): State<AppState>,
    method: Method,
    secret: Result<Path<String>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
) -> Response {
    if method == Method::HEAD {
        // Link checkers (mail scanners, chat previews) may look before the person opens it: that spends nothing.
        return page(
            StatusCode::OK,
            "Sign in to Plugboard",
            "Open this link in your browser to sign in.",
            false,
        );
    }
    let secret = secret.map(|Path(s)| s).unwrap_or_default();
    let replaces = brought_session(&headers);
    match people::sign_in_with_link(&app, &secret, replaces.as_deref()).await {
        Ok(Ok(session)) => session.redirect_home(),
        Ok(Err(refusal)) => refusal.page(),
        Err(_) => page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Plugboard could not sign you in",
            "Plugboard could not record your session. Try the link again in a moment (if it was spent, ask your \
             administrator for a new one); if this goes on, ask your administrator to check Plugboard's database.",
            false,
        ),
    }
}

/// Ends the session (the server-side record is deleted, on every instance within a second), clears the cookie and
/// answers 303 to `/`. Signed out already: the same. A sign-out carrying the cookie must come from Plugboard's
/// own origin.
#[utoipa::path(post, path = "/auth/logout", tag = "sign-in",
    responses(
        (status = 303, description = "signed out: the cookie is cleared, to `/`"),
        (status = 403, description = "the session cookie without Plugboard's Origin (`csrf_rejected`)", body = crate::error::ErrorBody),
        (status = 503, description = "the session could not be ended (try again)", body = crate::error::ErrorBody)))]
pub async fn logout(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let secure = people::secure_cookies(&app);
    match session_cookie(&headers) {
        SessionCookie::Absent => {}
        SessionCookie::Present(_) | SessionCookie::Ambiguous
            if !from_public_origin(&headers, &app.config) =>
        {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf_rejected",
                "a sign-out must come from Plugboard's own pages (its Origin header must be PLUGBOARD_PUBLIC_URL's \
                 origin)",
            )
            .into_response();
        }
        SessionCookie::Present(secret) => {
            if let Err(e) = people::end_session(&app, &secret).await {
                return e.into_response();
            }
        }
        SessionCookie::Ambiguous => {}
    }
    let mut res = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&clear_cookie(secure)) {
        h.append(header::SET_COOKIE, v);
    }
    res
}
