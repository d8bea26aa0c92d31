//! A third-party provider on loopback, as a person meets one: an API that answers a token check (GitHub's
//! `GET /user`: 200 for the good token, 401 "Bad credentials" otherwise), and an OAuth authorization server with a
//! page where the person clicks **Authorize** (the redirect back with a code) or **Deny** (with `access_denied`) and a token endpoint that trades
//! the code for tokens. For `mcp_oauth` it is also the MCP server (`/mcp` answers 401 with a Bearer challenge) and
//! publishes its metadata (RFC 9728, RFC 8414) and a registration endpoint (RFC 7591). Plugboard reaches it through
//! its egress guard, opened for 127.0.0.1 by the test.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use crate::harness::{BoundSite, Site};

/// The token the fake API accepts (40 characters, as GitHub's connector asks for at least 40).
pub const GOOD_TOKEN: &str = "ghp_GoodToken0123456789abcdefghijklmnopqr";
/// A second good token, for replacing a credential.
pub const OTHER_GOOD_TOKEN: &str = "ghp_OtherToken123456789abcdefghijklmnopq";
/// Well-formed but refused.
pub const BAD_TOKEN: &str = "ghp_WrongToken0123456789abcdefghijklmnopq";

#[derive(Default)]
struct Codes {
    issued: HashMap<String, String>,
}

static COUNTER: AtomicU64 = AtomicU64::new(1);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

pub struct Provider {
    pub site: Site,
    codes: Arc<Mutex<Codes>>,
}

fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[derive(Clone)]
struct Shared {
    codes: Arc<Mutex<Codes>>,
    base: String,
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn mcp(State(s): State<Shared>) -> Response {
    let challenge = format!(
        "Bearer resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\"",
        s.base
    );
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, challenge)],
        "",
    )
        .into_response()
}

async fn resource_metadata(State(s): State<Shared>) -> Response {
    json(
        StatusCode::OK,
        serde_json::json!({"resource": format!("{}/mcp", s.base), "authorization_servers": [s.base]}),
    )
}

async fn server_metadata(State(s): State<Shared>) -> Response {
    json(
        StatusCode::OK,
        serde_json::json!({
            "issuer": s.base,
            "authorization_endpoint": format!("{}/authorize", s.base),
            "token_endpoint": format!("{}/token", s.base),
            "registration_endpoint": format!("{}/register", s.base),
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
        }),
    )
}

async fn register() -> Response {
    json(
        StatusCode::CREATED,
        serde_json::json!({"client_id": unique("client"), "token_endpoint_auth_method": "none"}),
    )
}

async fn user(headers: HeaderMap) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth == format!("Bearer {GOOD_TOKEN}") || auth == format!("Bearer {OTHER_GOOD_TOKEN}") {
        (
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"login":"ada"}"#,
        )
            .into_response()
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"message":"Bad credentials"}"#,
        )
            .into_response()
    }
}

async fn authorize_page(RawQuery(query): RawQuery) -> Html<String> {
    let q = form(query.unwrap_or_default().as_bytes());
    let get = |k: &str| escape(q.get(k).map(String::as_str).unwrap_or(""));
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Fake Provider: authorize</title></head>\
<body><main><h1>Allow Plugboard to use your Fake Provider account?</h1>\
<p>Client <code>{client}</code> asks for: {scope}</p>\
<form method=\"post\" action=\"/authorize\">\
<input type=\"hidden\" name=\"redirect_uri\" value=\"{redirect}\"><input type=\"hidden\" name=\"state\" value=\"{state}\">\
<input type=\"hidden\" name=\"client_id\" value=\"{client}\">\
<button type=\"submit\" name=\"decision\" value=\"allow\">Authorize</button> \
<button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form></main></body></html>",
        client = get("client_id"),
        scope = get("scope"),
        redirect = get("redirect_uri"),
        state = get("state"),
    ))
}

async fn approve(State(s): State<Shared>, body: Bytes) -> Response {
    let codes = s.codes;
    let f = form(&body);
    let state = f.get("state").map(String::as_str).unwrap_or("");
    let mut target = url::Url::parse(f.get("redirect_uri").map(String::as_str).unwrap_or(""))
        .expect("a redirect URI");
    if f.get("decision").map(String::as_str) == Some("deny") {
        target
            .query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair("error_description", "The user denied access")
            .append_pair("state", state);
        return Redirect::to(target.as_str()).into_response();
    }
    let code = unique("code");
    let client = f.get("client_id").cloned().unwrap_or_default();
    codes.lock().unwrap().issued.insert(code.clone(), client);
    target
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", state);
    Redirect::to(target.as_str()).into_response()
}

async fn token(State(s): State<Shared>, body: Bytes) -> Response {
    let codes = s.codes;
    let f = form(&body);
    let known = f
        .get("code")
        .and_then(|c| codes.lock().unwrap().issued.remove(c));
    match known {
        Some(_) => (
            [(header::CONTENT_TYPE, "application/json")],
            format!(
                r#"{{"access_token":"{}","token_type":"Bearer","expires_in":3600,"refresh_token":"{}"}}"#,
                unique("at"),
                unique("rt")
            ),
        )
            .into_response(),
        None => (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"error":"invalid_grant"}"#,
        )
            .into_response(),
    }
}

impl Provider {
    pub async fn start() -> Provider {
        let codes = Arc::new(Mutex::new(Codes::default()));
        let bound = BoundSite::bind().await;
        let shared = Shared {
            codes: codes.clone(),
            base: bound.origin().to_string(),
        };
        let router = Router::new()
            .route("/user", get(user))
            .route("/authorize", get(authorize_page).post(approve))
            .route("/token", axum::routing::post(token))
            .route("/register", axum::routing::post(register))
            .route("/mcp", get(mcp).post(mcp))
            .route(
                "/.well-known/oauth-protected-resource/mcp",
                get(resource_metadata),
            )
            .route(
                "/.well-known/oauth-authorization-server",
                get(server_metadata),
            )
            .with_state(shared);
        Provider {
            site: bound.serve(router),
            codes,
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.site.url(path)
    }

    /// How many codes were issued and not yet exchanged.
    pub fn pending_codes(&self) -> usize {
        self.codes.lock().unwrap().issued.len()
    }
}
