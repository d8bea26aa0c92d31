//! Shared helpers for the OAuth tests: a fake authorization server / MCP resource server on loopback (real HTTP,
//! axum on 127.0.0.1:0) that records what it received, test catalogs, apps, and a log capture.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use plugboard_catalog::{parse_manifest, Catalog};
use plugboard_server::testing::{Db, TestApp};
use plugboard_store::{IntegrationId, Workspace};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const CALLBACK: &str = "http://127.0.0.1:8080/api/v1/connectors/oauth/callback";

/// How the MCP endpoint answers an unauthenticated request.
#[derive(Clone, Debug, PartialEq)]
pub enum ChallengeMode {
    /// 401 with `WWW-Authenticate: Bearer resource_metadata="<base><path>"`.
    MetadataUrl(String),
    /// 401 with a bare `WWW-Authenticate: Bearer`.
    Bare,
}

#[derive(Clone, Debug)]
pub struct FakeConfig {
    // --- the MCP resource server role ---
    pub mcp_path: String,
    pub challenge: ChallengeMode,
    /// Paths where the protected resource metadata is served.
    pub prm_at: Vec<String>,
    /// `resource` in the metadata (default: this server's MCP endpoint).
    pub prm_resource: Option<String>,
    /// `authorization_servers` (default: this server's issuer).
    pub prm_auth_servers: Option<Vec<String>>,
    pub prm_scopes: Vec<String>,
    // --- the authorization server role ---
    pub issuer_path: String,
    /// `issuer` in the metadata (default: base + issuer_path).
    pub issuer_override: Option<String>,
    /// Paths where the authorization server metadata is served.
    pub as_metadata_at: Vec<String>,
    pub s256: bool,
    pub registration: bool,
    pub register_confidential: bool,
    pub auth_methods: Option<Vec<String>>,
    /// RFC 9207 `authorization_response_iss_parameter_supported`.
    pub iss_supported: bool,
    // --- tokens ---
    pub expires_in: Option<i64>,
    pub issue_refresh: bool,
    pub rotate_refresh: bool,
    pub refresh_delay: Duration,
    pub form_encoded: bool,
    /// Answer to every authorization_code request instead of tokens: (status, body, content type).
    pub code_failure: Option<(u16, String)>,
    pub refresh_failure: Option<(u16, String)>,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            mcp_path: "/mcp".into(),
            challenge: ChallengeMode::Bare,
            prm_at: vec!["/.well-known/oauth-protected-resource/mcp".into()],
            prm_resource: None,
            prm_auth_servers: None,
            prm_scopes: vec![],
            issuer_path: String::new(),
            issuer_override: None,
            as_metadata_at: vec!["/.well-known/oauth-authorization-server".into()],
            s256: true,
            registration: true,
            register_confidential: false,
            auth_methods: None,
            iss_supported: false,
            expires_in: Some(3600),
            issue_refresh: true,
            rotate_refresh: true,
            refresh_delay: Duration::ZERO,
            form_encoded: false,
            code_failure: None,
            refresh_failure: None,
        }
    }
}

/// A client the fake knows: how it authenticates and its secret.
#[derive(Clone, Debug)]
pub struct KnownClient {
    pub method: String,
    pub secret: Option<String>,
}

#[derive(Clone, Debug)]
pub struct CodeGrant {
    pub client_id: String,
    pub redirect_uri: String,
    pub challenge: Option<String>,
    pub resource: Option<String>,
}

/// One request to the token endpoint as received.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    pub form: BTreeMap<String, String>,
    pub authorization: Option<String>,
    pub accept: Option<String>,
    pub content_type: Option<String>,
}

#[derive(Default, Debug)]
pub struct Records {
    /// (method, path) of every request.
    pub hits: Vec<(String, String)>,
    pub token_requests: Vec<TokenRequest>,
    pub registrations: Vec<Value>,
    pub codes: HashMap<String, CodeGrant>,
    pub refresh_tokens: HashSet<String>,
    pub access_tokens: Vec<String>,
    pub clients: HashMap<String, KnownClient>,
    pub mcp_probes: usize,
}

pub struct Fake {
    pub base: String,
    pub cfg: Mutex<FakeConfig>,
    pub rec: Mutex<Records>,
    counter: AtomicU64,
}

/// The result of "the person approved" at the fake's authorization endpoint.
#[derive(Clone, Debug)]
pub struct Approved {
    pub code: String,
    pub state: String,
    pub params: BTreeMap<String, String>,
}

pub fn s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

pub fn query_of(url: &str) -> BTreeMap<String, String> {
    url::Url::parse(url)
        .expect("url")
        .query_pairs()
        .into_owned()
        .collect()
}

impl Fake {
    pub async fn spawn(cfg: FakeConfig) -> Arc<Fake> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let fake = Arc::new(Fake {
            base: format!("http://{addr}"),
            cfg: Mutex::new(cfg),
            rec: Mutex::new(Records::default()),
            counter: AtomicU64::new(1),
        });
        let app = Router::new().fallback(handle).with_state(fake.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        fake
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn cfg(&self) -> FakeConfig {
        self.cfg.lock().unwrap().clone()
    }

    pub fn set(&self, f: impl FnOnce(&mut FakeConfig)) {
        f(&mut self.cfg.lock().unwrap());
    }

    pub fn issuer(&self) -> String {
        let cfg = self.cfg();
        cfg.issuer_override
            .unwrap_or_else(|| format!("{}{}", self.base, cfg.issuer_path))
    }

    pub fn mcp_endpoint(&self) -> String {
        self.url(&self.cfg().mcp_path)
    }

    /// Registers a byo client.
    pub fn add_client(&self, id: &str, method: &str, secret: Option<&str>) {
        self.rec.lock().unwrap().clients.insert(
            id.to_string(),
            KnownClient {
                method: method.into(),
                secret: secret.map(str::to_string),
            },
        );
    }

    pub fn token_requests(&self) -> Vec<TokenRequest> {
        self.rec.lock().unwrap().token_requests.clone()
    }

    pub fn refresh_requests(&self) -> usize {
        self.token_requests()
            .iter()
            .filter(|r| r.form.get("grant_type").map(String::as_str) == Some("refresh_token"))
            .count()
    }

    pub fn hits(&self) -> Vec<String> {
        self.rec
            .lock()
            .unwrap()
            .hits
            .iter()
            .map(|(m, p)| format!("{m} {p}"))
            .collect()
    }

    pub fn registrations(&self) -> Vec<Value> {
        self.rec.lock().unwrap().registrations.clone()
    }

    pub fn last_access_token(&self) -> Option<String> {
        self.rec.lock().unwrap().access_tokens.last().cloned()
    }

    fn next(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::SeqCst)
    }

    /// The person approves at the authorization endpoint `oauth_url` points to: checks the request as an
    /// authorization server would and issues a code.
    pub fn approve(&self, oauth_url: &str) -> Approved {
        let params = query_of(oauth_url);
        assert!(
            oauth_url.starts_with(&self.url("/authorize")),
            "authorization URL {oauth_url} is not this server's"
        );
        assert_eq!(
            params.get("response_type").map(String::as_str),
            Some("code")
        );
        let client_id = params.get("client_id").expect("client_id").clone();
        assert!(
            self.rec.lock().unwrap().clients.contains_key(&client_id),
            "unknown client {client_id}"
        );
        let redirect_uri = params.get("redirect_uri").expect("redirect_uri").clone();
        let state = params.get("state").expect("state").clone();
        let challenge = params.get("code_challenge").cloned();
        if challenge.is_some() {
            assert_eq!(
                params.get("code_challenge_method").map(String::as_str),
                Some("S256")
            );
        }
        let code = format!("code-{}-{}", self.next(), plugboard_store::new_id());
        self.rec.lock().unwrap().codes.insert(
            code.clone(),
            CodeGrant {
                client_id,
                redirect_uri,
                challenge,
                resource: params.get("resource").cloned(),
            },
        );
        Approved {
            code,
            state,
            params,
        }
    }

    fn prm(&self) -> Value {
        let cfg = self.cfg();
        json!({
            "resource": cfg.prm_resource.clone().unwrap_or_else(|| self.mcp_endpoint()),
            "authorization_servers": cfg.prm_auth_servers.clone().unwrap_or_else(|| vec![self.issuer()]),
            "scopes_supported": cfg.prm_scopes,
        })
    }

    fn as_metadata(&self) -> Value {
        let cfg = self.cfg();
        let mut m = json!({
            "issuer": self.issuer(),
            "authorization_endpoint": self.url("/authorize"),
            "token_endpoint": self.url("/token"),
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": if cfg.s256 { json!(["S256"]) } else { json!(["plain"]) },
        });
        if cfg.registration {
            m["registration_endpoint"] = json!(self.url("/register"));
        }
        if let Some(methods) = cfg.auth_methods {
            m["token_endpoint_auth_methods_supported"] = json!(methods);
        }
        if cfg.iss_supported {
            m["authorization_response_iss_parameter_supported"] = json!(true);
        }
        m
    }

    fn register(&self, body: &[u8]) -> Response {
        let cfg = self.cfg();
        if !cfg.registration {
            return StatusCode::NOT_FOUND.into_response();
        }
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let n = self.next();
        let id = format!("dyn-client-{n}");
        let (method, secret) = if cfg.register_confidential {
            (
                "client_secret_post",
                Some(format!("dyn-secret-{n}-{}", plugboard_store::new_id())),
            )
        } else {
            ("none", None)
        };
        let mut rec = self.rec.lock().unwrap();
        rec.registrations.push(v.clone());
        rec.clients.insert(
            id.clone(),
            KnownClient {
                method: method.into(),
                secret: secret.clone(),
            },
        );
        let mut out = json!({
            "client_id": id,
            "redirect_uris": v.get("redirect_uris").cloned().unwrap_or(json!([])),
            "token_endpoint_auth_method": method,
        });
        if let Some(s) = secret {
            out["client_secret"] = json!(s);
            out["client_secret_expires_at"] = json!(0);
        }
        (StatusCode::CREATED, axum::Json(out)).into_response()
    }

    /// The client a token request authenticates as, checked against its registered method.
    fn authenticate(&self, req: &TokenRequest) -> Option<String> {
        let (id, secret, used) = match &req.authorization {
            Some(h) => {
                let b64 = h.strip_prefix("Basic ")?;
                let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
                let raw = String::from_utf8(raw).ok()?;
                let (i, s) = raw.split_once(':')?;
                let dec = |x: &str| -> String {
                    url::form_urlencoded::parse(format!("v={x}").as_bytes())
                        .next()
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default()
                };
                if req.form.contains_key("client_secret") {
                    return None;
                }
                (dec(i), Some(dec(s)), "client_secret_basic")
            }
            None => {
                let id = req.form.get("client_id").cloned()?;
                match req.form.get("client_secret") {
                    Some(s) => (id, Some(s.clone()), "client_secret_post"),
                    None => (id, None, "none"),
                }
            }
        };
        let known = self.rec.lock().unwrap().clients.get(&id).cloned()?;
        (known.method == used && known.secret == secret).then_some(id)
    }

    async fn token(&self, headers: &HeaderMap, body: &[u8]) -> Response {
        let form: BTreeMap<String, String> =
            url::form_urlencoded::parse(body).into_owned().collect();
        let h = |k: &str| {
            headers
                .get(k)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let req = TokenRequest {
            form: form.clone(),
            authorization: h("authorization"),
            accept: h("accept"),
            content_type: h("content-type"),
        };
        self.rec.lock().unwrap().token_requests.push(req.clone());
        let cfg = self.cfg();
        match form.get("grant_type").map(String::as_str) {
            Some("authorization_code") => {
                if let Some((status, body)) = cfg.code_failure {
                    return raw_json(status, body);
                }
                let Some(client) = self.authenticate(&req) else {
                    return invalid_client();
                };
                let code = form.get("code").cloned().unwrap_or_default();
                let Some(grant) = self.rec.lock().unwrap().codes.remove(&code) else {
                    return oauth_error(400, "invalid_grant", "unknown or used code");
                };
                if grant.client_id != client
                    || Some(&grant.redirect_uri) != form.get("redirect_uri")
                {
                    return oauth_error(400, "invalid_grant", "redirect_uri or client mismatch");
                }
                if let Some(ch) = &grant.challenge {
                    match form.get("code_verifier") {
                        Some(v) if &s256(v) == ch => {}
                        _ => return oauth_error(400, "invalid_grant", "PKCE verification failed"),
                    }
                }
                if grant.resource.is_some() && grant.resource.as_ref() != form.get("resource") {
                    return oauth_error(400, "invalid_target", "resource mismatch");
                }
                self.issue(&cfg, true)
            }
            Some("refresh_token") => {
                if !cfg.refresh_delay.is_zero() {
                    tokio::time::sleep(cfg.refresh_delay).await;
                }
                if let Some((status, body)) = cfg.refresh_failure {
                    return raw_json(status, body);
                }
                if self.authenticate(&req).is_none() {
                    return invalid_client();
                }
                let rt = form.get("refresh_token").cloned().unwrap_or_default();
                if !self.rec.lock().unwrap().refresh_tokens.contains(&rt) {
                    return oauth_error(400, "invalid_grant", "unknown refresh token");
                }
                if cfg.rotate_refresh {
                    self.rec.lock().unwrap().refresh_tokens.remove(&rt);
                }
                self.issue(&cfg, cfg.rotate_refresh)
            }
            _ => oauth_error(400, "unsupported_grant_type", "nope"),
        }
    }

    fn issue(&self, cfg: &FakeConfig, with_refresh: bool) -> Response {
        let n = self.next();
        let at = format!("fake-at-{n}-{}", plugboard_store::new_id());
        let rt = format!("fake-rt-{n}-{}", plugboard_store::new_id());
        let mut rec = self.rec.lock().unwrap();
        rec.access_tokens.push(at.clone());
        let mut pairs = vec![("access_token", json!(at)), ("token_type", json!("Bearer"))];
        if let Some(e) = cfg.expires_in {
            pairs.push(("expires_in", json!(e)));
        }
        if with_refresh && cfg.issue_refresh {
            rec.refresh_tokens.insert(rt.clone());
            pairs.push(("refresh_token", json!(rt)));
        }
        drop(rec);
        if cfg.form_encoded {
            let mut s = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in &pairs {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                s.append_pair(k, &text);
            }
            (
                [(
                    "content-type",
                    "application/x-www-form-urlencoded; charset=utf-8",
                )],
                s.finish(),
            )
                .into_response()
        } else {
            let obj: serde_json::Map<String, Value> =
                pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            axum::Json(Value::Object(obj)).into_response()
        }
    }
}

fn invalid_client() -> Response {
    oauth_error(401, "invalid_client", "client authentication failed")
}

fn oauth_error(status: u16, code: &str, description: &str) -> Response {
    raw_json(
        status,
        json!({"error": code, "error_description": description}).to_string(),
    )
}

fn raw_json(status: u16, body: String) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        [("content-type", "application/json")],
        body,
    )
        .into_response()
}

async fn handle(
    State(f): State<Arc<Fake>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    f.rec
        .lock()
        .unwrap()
        .hits
        .push((method.to_string(), path.clone()));
    let cfg = f.cfg();
    if path == cfg.mcp_path {
        f.rec.lock().unwrap().mcp_probes += 1;
        let challenge = match &cfg.challenge {
            ChallengeMode::MetadataUrl(p) => format!(
                "Bearer error=\"invalid_token\", resource_metadata=\"{}\"",
                f.url(p)
            ),
            ChallengeMode::Bare => "Bearer".to_string(),
        };
        return (
            StatusCode::UNAUTHORIZED,
            [("www-authenticate", challenge)],
            "unauthorized",
        )
            .into_response();
    }
    if method == Method::GET && cfg.prm_at.contains(&path) {
        return axum::Json(f.prm()).into_response();
    }
    if method == Method::GET && cfg.as_metadata_at.contains(&path) {
        return axum::Json(f.as_metadata()).into_response();
    }
    match (method.as_str(), path.as_str()) {
        ("POST", "/token") => f.token(&headers, &body).await,
        ("POST", "/register") => f.register(&body),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

// ------------------------------------------------------------------------------------------------
// Catalogs and apps
// ------------------------------------------------------------------------------------------------

pub struct ByoOptions {
    pub pkce: bool,
    pub token_auth: &'static str,
}

pub fn byo_manifest(fake: &Fake, o: &ByoOptions) -> String {
    format!(
        r#"
id: fake-byo
name: Fake BYO
auth_mode: byo_oauth
fields:
  - {{key: client_id, label: Client ID, type: text, required: true}}
  - {{key: client_secret, label: Client secret, type: password, required: true}}
oauth:
  authorization_url: {base}/authorize
  token_url: {base}/token
  scopes: ["read", "write"]
  pkce: {pkce}
  token_auth: {auth}
  token_params:
    audience: "api.example"
mcp:
  transport: streamable-http
  endpoint: {base}/mcp
  headers:
    Authorization: "Bearer ${{oauth.access_token}}"
"#,
        base = fake.base,
        pkce = o.pkce,
        auth = o.token_auth
    )
}

pub fn mcp_manifest(id: &str, endpoint: &str) -> String {
    format!(
        r#"
id: {id}
name: Fake MCP {id}
auth_mode: mcp_oauth
mcp:
  transport: streamable-http
  endpoint: {endpoint}
  headers:
    Authorization: "Bearer ${{oauth.access_token}}"
"#
    )
}

pub fn catalog(manifests: &[String]) -> Catalog {
    Catalog::from_entries(
        manifests
            .iter()
            .enumerate()
            .map(|(i, m)| parse_manifest(&format!("m{i}.yaml"), m).expect("manifest"))
            .collect(),
    )
    .expect("catalog")
}

pub async fn app(db: Db, manifests: &[String]) -> TestApp {
    TestApp::build(db, Some(catalog(manifests)), |cfg| {
        cfg.egress_allow_cidrs = vec!["127.0.0.1/32".parse().unwrap()];
        cfg.probe_timeout = Duration::from_secs(5);
    })
    .await
}

/// Installs a connector; returns (integration id, body).
pub async fn install(
    app: &TestApp,
    ws: &Workspace,
    token: &str,
    connector: &str,
    fields: Value,
) -> (String, Value) {
    let res = app
        .post(
            &format!(
                "/api/v1/connectors/{connector}/install?workspace_id={}",
                ws.id
            ),
            Some(token),
            json!({ "fields": fields }),
        )
        .await;
    res.assert_status(201);
    let body = res.json();
    (body["integration_id"].as_str().unwrap().to_string(), body)
}

pub async fn start_mcp(
    app: &TestApp,
    token: &str,
    id: &str,
) -> plugboard_server::testing::TestResponse {
    app.post(
        &format!("/api/v1/integrations/{id}/oauth/start"),
        Some(token),
        json!({}),
    )
    .await
}

pub fn callback_uri(params: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    format!("/api/v1/connectors/oauth/callback?{}", s.finish())
}

pub async fn status_of(app: &TestApp, id: &str) -> (String, Option<String>) {
    let i = app
        .db
        .store
        .get_integration(&IntegrationId::from(id))
        .await
        .unwrap()
        .expect("integration");
    (i.status.to_string(), i.status_reason)
}

pub async fn secret_names(app: &TestApp, id: &str) -> Vec<String> {
    app.db
        .store
        .integration_secrets(&IntegrationId::from(id))
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect()
}

/// The callback page's checks: HTML, strict headers, no secret in it.
#[track_caller]
pub fn assert_page(
    res: &plugboard_server::testing::TestResponse,
    status: u16,
    secrets: &[&str],
) -> String {
    assert_eq!(res.status.as_u16(), status, "page: {}", res.text());
    let ct = res.headers["content-type"].to_str().unwrap();
    assert!(ct.starts_with("text/html"), "{ct}");
    assert_eq!(res.headers["cache-control"], "no-store");
    let csp = res.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let text = res.text();
    for s in secrets {
        assert!(!text.contains(s), "page contains a secret: {text}");
    }
    // The script that tells the opener is a static file (no inline script), served with a hashed name.
    let script = plugboard_server::assets::url("oauth-callback.js");
    assert!(
        text.contains(&format!("<script src=\"{script}\"></script>")) && !text.contains("<script>"),
        "{text}"
    );
    text
}

// ------------------------------------------------------------------------------------------------
// Log capture
// ------------------------------------------------------------------------------------------------

/// Everything logged (events and span fields, every level) on this thread while the guard lives.
pub struct LogCapture {
    pub buf: Arc<Mutex<String>>,
    _guard: tracing::subscriber::DefaultGuard,
}

impl LogCapture {
    pub fn start() -> LogCapture {
        let buf = Arc::new(Mutex::new(String::new()));
        let sub = CaptureSubscriber {
            buf: buf.clone(),
            ids: AtomicU64::new(1),
        };
        let guard = tracing::subscriber::set_default(sub);
        LogCapture { buf, _guard: guard }
    }

    pub fn text(&self) -> String {
        self.buf.lock().unwrap().clone()
    }
}

struct CaptureSubscriber {
    buf: Arc<Mutex<String>>,
    ids: AtomicU64,
}

struct Visitor<'a>(&'a mut String);

impl tracing::field::Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl tracing::Subscriber for CaptureSubscriber {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut b = self.buf.lock().unwrap();
        let _ = write!(b, "[span {}] ", attrs.metadata().name());
        attrs.record(&mut Visitor(&mut b));
        b.push('\n');
        tracing::span::Id::from_u64(self.ids.fetch_add(1, Ordering::SeqCst))
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut b = self.buf.lock().unwrap();
        values.record(&mut Visitor(&mut b));
        b.push('\n');
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut b = self.buf.lock().unwrap();
        let _ = write!(b, "[{}] ", event.metadata().level());
        event.record(&mut Visitor(&mut b));
        b.push('\n');
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

// ------------------------------------------------------------------------------------------------
// Plaintext scans
// ------------------------------------------------------------------------------------------------

/// Every byte the database holds, as lossy text: the SQLite files (with the WAL), or a `pg_dump` of the test
/// schema. `None` when PostgreSQL cannot be dumped here (no `pg_dump`).
pub fn database_text(app: &TestApp) -> Option<String> {
    if app.db.url.starts_with("sqlite:") {
        let path = app.db.url.trim_start_matches("sqlite://").to_string();
        let mut out = String::new();
        for suffix in ["", "-wal", "-shm", "-journal"] {
            if let Ok(bytes) = std::fs::read(format!("{path}{suffix}")) {
                out.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
        return Some(out);
    }
    let base = plugboard_store::testing::postgres_url()?;
    let schema = app
        .db
        .url
        .split("search_path%3D")
        .nth(1)?
        .split('&')
        .next()?
        .to_string();
    let base = base.split('?').next().unwrap_or(&base).to_string();
    let out = std::process::Command::new("pg_dump")
        .args(["--data-only", "--schema", &schema, &base])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("pg_dump failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}
