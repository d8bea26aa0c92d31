//! The web console: server-rendered pages over the same services the JSON API calls (like lldap's front end over
//! its domain). Handlers here authenticate with the same [`Principal`] extractor (a session cookie, or a bearer
//! token), check roles with the same [`require_role`], call the same service functions (catalog, integrations,
//! audit, people) and render compiled templates (`templates/*.html`, askama: every value escaped). Actions
//! (verify, install, save, delete …) are plain JavaScript (`assets/console.js`) calling the JSON API with the
//! session cookie; no rule is written twice: the form's rules are rendered from the manifest into the page and
//! checked by one generic function, then again by the server.
//!
//! Pages: `/` (sign-in, or the first workspace), `/w/{workspace}/catalog`, `/w/{workspace}/connectors/{id}`,
//! `/w/{workspace}/integrations[/{id}]`, `/w/{workspace}/audit`, `/w/{workspace}/members`, `/w/{workspace}/crews`,
//! `/account/tokens`. Errors of pages are pages ([`PageError`]); the JSON API's errors stay JSON.

mod audit;
mod catalog;
mod connector;
mod form;
mod integrations;
mod logo;
pub mod markdown;
mod people;
mod shell;
mod signin;
mod time;

use axum::extract::{FromRequestParts, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use crate::error::ApiError;
use crate::state::AppState;

pub use shell::Shell;

/// The console's routes (pages and static files). Security headers are added for every response by
/// [`security_headers`], which the router applies to the whole service.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(signin::home))
        .route("/w/{workspace_id}", get(catalog::workspace_home))
        .route("/w/{workspace_id}/catalog", get(catalog::page))
        .route(
            "/w/{workspace_id}/connectors/{connector_id}",
            get(connector::page),
        )
        .route("/w/{workspace_id}/integrations", get(integrations::list))
        .route(
            "/w/{workspace_id}/integrations/{integration_id}",
            get(integrations::detail),
        )
        .route("/w/{workspace_id}/audit", get(audit::page))
        .route("/w/{workspace_id}/members", get(people::members))
        .route("/w/{workspace_id}/crews", get(people::crews))
        .route("/w/{workspace_id}/agent-tokens", get(people::agent_tokens))
        .route("/account/tokens", get(people::tokens))
        .route("/static/{file}", get(crate::assets::serve))
}

/// The Content-Security-Policy of every console page: scripts, styles and requests only from this origin, no
/// inline script, no `eval`, no framing, no `<base>`, forms only to this origin.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Adds the security headers to every response that has not set its own (the OAuth callback and OpenID Connect
/// pages carry stricter ones): CSP, no framing, no sniffing, referrer only to this origin.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let defaults: [(header::HeaderName, &'static str); 4] = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ];
    for (name, value) in defaults {
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    }
    res
}

/// An HTML page's failure: a page that says what happened and what to do, with the API's status. A request
/// without a valid session is sent to the sign-in page instead.
#[derive(Debug)]
pub enum PageError {
    SignIn,
    Page {
        status: StatusCode,
        title: String,
        message: String,
    },
}

impl PageError {
    pub fn new(status: StatusCode, title: &str, message: impl Into<String>) -> Self {
        PageError::Page {
            status,
            title: title.to_string(),
            message: message.into(),
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "Not found",
            format!("There is no {what} at this address. It may have been deleted, or the link is mistyped."),
        )
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        match e.status.as_u16() {
            401 => PageError::SignIn,
            403 => PageError::new(
                StatusCode::FORBIDDEN,
                "You don't have access to this",
                "This workspace does not exist, or your role in it does not allow this page. Ask an admin of the \
                 workspace to add you or to change your role.",
            ),
            404 => PageError::new(StatusCode::NOT_FOUND, "Not found", format!("{}.", capitalise(&e.message))),
            s if s >= 500 => PageError::new(
                e.status,
                "Something went wrong",
                "Plugboard could not show this page. Try again in a moment; if it keeps happening, the server's log \
                 says why.",
            ),
            _ => PageError::new(e.status, "This request could not be served", e.message),
        }
    }
}

impl From<axum::extract::rejection::PathRejection> for PageError {
    fn from(_: axum::extract::rejection::PathRejection) -> Self {
        PageError::not_found("page")
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[derive(askama::Template)]
#[template(path = "error.html")]
struct ErrorTemplate<'a> {
    title: &'a str,
    message: &'a str,
    css: &'static str,
    favicon: &'static str,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::SignIn => Redirect::to("/").into_response(),
            PageError::Page {
                status,
                title,
                message,
            } => {
                let page = ErrorTemplate {
                    title: &title,
                    message: &message,
                    css: crate::assets::url("console.css"),
                    favicon: crate::assets::url("favicon.svg"),
                };
                let mut res = html(&page);
                *res.status_mut() = status;
                res
            }
        }
    }
}

/// A rendered page: `text/html`, never cached (pages carry the person's data).
pub(crate) fn html(page: &impl askama::Template) -> Response {
    match page.render() {
        Ok(body) => {
            let mut res = body.into_response();
            let h = res.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot render a console page");
            let mut res = (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Plugboard could not show this page; the server's log says why.\n",
            )
                .into_response();
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            res
        }
    }
}

/// A path extractor whose rejection is a page.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(PageError))]
pub(crate) struct PagePath<T>(pub T);

/// The answer to a request for an unknown address: an HTML page when a browser asked for one, else the API's JSON.
pub async fn fallback(req: Request) -> Response {
    let wants_html = !req.uri().path().starts_with("/api/")
        && req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
    if wants_html {
        PageError::not_found("page").into_response()
    } else {
        ApiError::not_found("endpoint").into_response()
    }
}
