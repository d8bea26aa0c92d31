//! mcp_oauth: MCP authorization as the MCP specification describes it.
//!
//! 1. Protected resource metadata (RFC 9728): an unauthenticated request to the MCP endpoint; its 401
//!    `WWW-Authenticate: Bearer resource_metadata="…"` names the metadata document, else the well-known URIs are tried
//!    (path form, then root). Its `resource` must be the MCP endpoint (or, same origin, a path prefix of it).
//! 2. Authorization server metadata (RFC 8414, OpenID Connect Discovery, with the path-insertion forms); its `issuer`
//!    must be the one asked for, and it must support PKCE with S256.
//! 3. A client: reused when one is registered for this authorization server and redirect URI, else registered
//!    (RFC 7591). A confidential client's secret is a vault entry of the integration that registered it.
//! 4. The authorization URL with PKCE S256, a single-use state and `resource` (RFC 8707).
//!
//! Every call goes through the egress guard, redirects off.

use axum::http::StatusCode;
use plugboard_catalog::{RenderContext, Template};
use plugboard_store::{
    now_ms, Integration, IntegrationPatch, IntegrationStatus, NewAudit, NewOAuthGrant,
    OAuthClientRow, OAuthFlow, OAuthFlowStart, OAuthGrant, UserId,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Map, Value};
use url::Url;

use super::authorize::{AuthorizationParams, AuthorizationRequest};
use super::token_endpoint::{Client, ClientAuthMethod, Target, TargetError};
use super::{error_code, sanitize};
use crate::error::ApiError;
use crate::state::App;
use crate::vault::names;

/// The MCP protocol revision announced on discovery requests.
const MCP_PROTOCOL_VERSION: &str = "2025-06-18";
/// At most this many authorization servers of a resource are tried.
const MAX_AUTH_SERVERS: usize = 3;
/// Discovery and registration together take at most the egress timeout plus this (below the request timeout).
const START_MARGIN: std::time::Duration = std::time::Duration::from_secs(15);
/// Longest identifier (client id, URL) taken from a metadata document.
const MAX_ID_BYTES: usize = 2048;

/// Why a flow could not start. The message is for people and names what was wrong where.
#[derive(Debug)]
pub enum StartError {
    /// The integration is not one this endpoint starts a flow for.
    NotApplicable(String),
    /// Discovery or registration failed (unreachable, refused, malformed, mismatching).
    Discovery(String),
    /// The authorization server lacks something Plugboard requires (PKCE S256, dynamic registration).
    Unsupported(String),
    /// The database could not be reached (logged): 503 `database_unavailable`.
    DatabaseUnavailable,
    Internal,
}

impl StartError {
    pub fn message(&self) -> String {
        match self {
            StartError::NotApplicable(m)
            | StartError::Discovery(m)
            | StartError::Unsupported(m) => m.clone(),
            StartError::DatabaseUnavailable => {
                "the database is unavailable right now: retry in a few seconds".into()
            }
            StartError::Internal => "internal server error".into(),
        }
    }
}

impl From<StartError> for ApiError {
    fn from(e: StartError) -> Self {
        match e {
            StartError::NotApplicable(m) => ApiError::bad_request(m),
            StartError::Discovery(m) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "oauth_discovery_failed",
                m,
            ),
            StartError::Unsupported(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "oauth_unsupported", m)
            }
            StartError::DatabaseUnavailable => {
                ApiError::database_unavailable("oauth start: see the warning logged before")
            }
            StartError::Internal => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal server error",
            ),
        }
    }
}

fn internal(cause: impl std::fmt::Display) -> StartError {
    tracing::error!(error = %cause, "mcp oauth start failed");
    StartError::Internal
}

/// A store failure: [`StartError::DatabaseUnavailable`] when the database cannot be reached, else internal.
fn store_err(e: plugboard_store::StoreError) -> StartError {
    if e.is_unavailable() {
        tracing::warn!(error = %e, "mcp oauth start: database unavailable");
        return StartError::DatabaseUnavailable;
    }
    internal(e)
}

fn discovery(m: impl Into<String>) -> StartError {
    StartError::Discovery(m.into())
}

/// The MCP endpoint of an integration: the `endpoint` template of its stored MCP block (the snapshot install took),
/// else its connector's manifest, rendered (an mcp_oauth manifest has no fields).
pub fn mcp_endpoint(state: &App, integration: &Integration) -> Result<String, StartError> {
    let stored = serde_json::from_str::<Value>(&integration.mcp)
        .ok()
        .and_then(|v| {
            v.get("endpoint")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .filter(|s| !s.is_empty());
    let template = match stored {
        Some(source) => Some(Template::parse(&source).map_err(|e| {
            StartError::NotApplicable(format!(
                "the stored MCP endpoint is not a valid template: {e}"
            ))
        })?),
        None => integration
            .connector_id
            .as_deref()
            .and_then(|id| state.catalog.manifest(id))
            .and_then(|m| m.mcp.endpoint.clone()),
    };
    let template = template.ok_or_else(|| {
        StartError::NotApplicable(
            "this integration has no MCP endpoint to authorize against".into(),
        )
    })?;
    let empty = Default::default();
    template
        .render(&RenderContext {
            fields: &empty,
            derived: &empty,
            instance_url: &state.config.public_url,
            oauth_access_token: None,
        })
        .ok()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            StartError::NotApplicable(
                "the MCP endpoint cannot be rendered without credential fields".into(),
            )
        })
}

/// `POST /api/v1/integrations/{id}/oauth/start`: discovery, registration, and the authorization URL.
#[tracing::instrument(skip_all, fields(integration_id = %integration.id))]
pub async fn start(
    state: &App,
    integration: &Integration,
    actor_id: &UserId,
) -> Result<String, StartError> {
    if integration.auth_mode.oauth_flow() != Some(OAuthFlow::Mcp) {
        return Err(StartError::NotApplicable(format!(
            "this integration's auth_mode is `{}`: only mcp_oauth integrations start their OAuth flow here",
            integration.auth_mode
        )));
    }
    let endpoint = mcp_endpoint(state, integration)?;
    // Several calls, each bounded by the egress timeout: bound them together below the request timeout.
    let budget = state.config.probe_timeout + START_MARGIN;
    let prepared = tokio::time::timeout(budget, prepare(state, integration, &endpoint, actor_id))
        .await
        .unwrap_or_else(|_| {
            Err(discovery(
                "discovery and registration took too long (the MCP or authorization server is slow or unreachable)",
            ))
        });
    match prepared {
        Ok(url) => Ok(url),
        Err(e) => {
            if let StartError::Discovery(_) | StartError::Unsupported(_) = &e {
                tracing::warn!(error = %e.message(), "mcp oauth discovery failed");
                if integration.status == IntegrationStatus::PendingOauth {
                    let reason = format!("OAuth sign-in could not start: {}", e.message());
                    let patch = IntegrationPatch {
                        status: Some((IntegrationStatus::Error, Some(reason.clone()))),
                        audit: Some(NewAudit {
                            workspace_id: Some(integration.workspace_id.clone()),
                            actor_id: Some(actor_id.clone()),
                            action: "integration.oauth_error".into(),
                            target: Some(integration.id.to_string()),
                            detail: json!({ "reason": reason }),
                        }),
                        ..Default::default()
                    };
                    if let Err(err) = state.store.update_integration(&integration.id, patch).await {
                        tracing::error!(error = %err, "could not record the failed oauth start");
                    }
                }
            }
            Err(e)
        }
    }
}

async fn prepare(
    state: &App,
    integration: &Integration,
    endpoint: &str,
    actor_id: &UserId,
) -> Result<String, StartError> {
    let endpoint_url = parse_http_url(endpoint).ok_or_else(|| {
        discovery(format!(
            "the MCP endpoint {} is not an http(s) URL",
            shown(endpoint)
        ))
    })?;
    let resource = protected_resource(state, &endpoint_url).await?;
    let mut errors = Vec::new();
    let mut server = None;
    for issuer in resource.authorization_servers.iter().take(MAX_AUTH_SERVERS) {
        match authorization_server(state, issuer).await {
            Ok(m) => {
                server = Some(m);
                break;
            }
            Err(e @ StartError::Unsupported(_)) => return Err(e),
            Err(e) => errors.push(e.message()),
        }
    }
    let server = server.ok_or_else(|| discovery(errors.join("; ")))?;
    let redirect_uri = state.config.oauth_redirect_uri();
    let now = now_ms();
    let client = client_for(state, integration, &server, &redirect_uri, now).await?;

    let endpoint = Url::parse(&server.authorization_endpoint)
        .map_err(|_| discovery("the authorization endpoint is not a URL"))?;
    let request = AuthorizationRequest::new(true);
    let url = request.url(
        &endpoint,
        &AuthorizationParams {
            client_id: &client.id,
            redirect_uri: &redirect_uri,
            scope: resource.scope.as_deref(),
            extra: &[("resource".to_string(), resource.resource.clone())],
        },
    );
    let verifier = request
        .pkce
        .as_ref()
        .ok_or_else(|| internal("an mcp_oauth request without PKCE"))?
        .verifier();
    let mut upsert = vec![state
        .vault
        .seal(
            &integration.id,
            names::PKCE_VERIFIER,
            verifier.expose_secret().as_bytes(),
        )
        .await
        .map_err(internal)?];
    let mut delete = vec![];
    match &client.secret {
        Some(s) => upsert.push(
            state
                .vault
                .seal(
                    &integration.id,
                    names::CLIENT_SECRET,
                    s.expose_secret().as_bytes(),
                )
                .await
                .map_err(internal)?,
        ),
        None => delete.push(names::CLIENT_SECRET.to_string()),
    }
    state
        .store
        .start_oauth_flow(OAuthFlowStart {
            integration_id: integration.id.clone(),
            state: request.state_record(
                OAuthFlow::Mcp,
                &redirect_uri,
                Some(server.issuer.clone()),
                server.iss_supported,
                now,
            ),
            grant: Some(NewOAuthGrant {
                flow: OAuthFlow::Mcp,
                issuer: Some(server.issuer.clone()),
                token_endpoint: Some(server.token_endpoint.clone()),
                resource: Some(resource.resource.clone()),
                client_id: Some(client.id.clone()),
                token_auth: Some(client.method),
            }),
            upsert_secrets: upsert,
            delete_secrets: delete,
            audit: Some(NewAudit {
                workspace_id: Some(integration.workspace_id.clone()),
                actor_id: Some(actor_id.clone()),
                action: "integration.oauth_start".into(),
                target: Some(integration.id.to_string()),
                detail: json!({
                    "issuer": server.issuer,
                    "client_registered": client.registered,
                }),
            }),
        })
        .await
        .map_err(store_err)?;
    if client.registered {
        let row = OAuthClientRow {
            issuer: server.issuer.clone(),
            redirect_uri: redirect_uri.clone(),
            client_id: client.id.clone(),
            token_auth: client.method,
            secret_integration_id: client.secret.as_ref().map(|_| integration.id.clone()),
            client_secret_expires_at: client.secret_expires_at,
            created_at: now,
        };
        if let Err(e) = state.store.put_oauth_client(row).await {
            // Not fatal: the flow works, the next start registers again.
            tracing::warn!(error = %e, "could not remember the registered client");
        }
    }
    Ok(url.to_string())
}

/// A URL as it may appear in a message: without userinfo, query or fragment.
fn shown(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            sanitize(u.as_str(), 200, &[])
        }
        Err(_) => "(invalid URL)".into(),
    }
}

fn parse_http_url(s: &str) -> Option<Url> {
    if s.len() > MAX_ID_BYTES {
        return None;
    }
    let u = Url::parse(s).ok()?;
    (matches!(u.scheme(), "http" | "https") && u.host_str().is_some() && u.fragment().is_none())
        .then_some(u)
}

/// Fetches a JSON object (GET, redirects off); `what` names it in errors.
async fn get_json(state: &App, url: &Url, what: &str) -> Result<Map<String, Value>, String> {
    let req = plugboard_egress::Request::get(url.as_str())
        .header("Accept", "application/json")
        .header("MCP-Protocol-Version", MCP_PROTOCOL_VERSION)
        .follow_redirects(false);
    let res = state
        .egress
        .send(req)
        .await
        .map_err(|e| format!("{what} at {}: {e}", shown(url.as_str())))?;
    if res.status != 200 {
        return Err(format!(
            "{what} at {} answered HTTP {}",
            shown(url.as_str()),
            res.status
        ));
    }
    if res.truncated {
        return Err(format!("{what} at {} is too large", shown(url.as_str())));
    }
    match serde_json::from_slice::<Value>(&res.body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(format!(
            "{what} at {} is not a JSON object",
            shown(url.as_str())
        )),
    }
}

fn str_field<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    m.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= MAX_ID_BYTES)
}

fn str_list(m: &Map<String, Value>, key: &str) -> Option<Vec<String>> {
    match m.get(key)? {
        Value::Array(a) => Some(
            a.iter()
                .filter_map(Value::as_str)
                .filter(|s| !s.is_empty() && s.len() <= MAX_ID_BYTES)
                .take(256)
                .map(str::to_string)
                .collect(),
        ),
        _ => None,
    }
}

/// RFC 9728 protected resource metadata, checked.
struct Resource {
    /// The resource identifier to ask tokens for (RFC 8707).
    resource: String,
    authorization_servers: Vec<String>,
    /// From the challenge's `scope`, else the metadata's `scopes_supported`.
    scope: Option<String>,
}

async fn protected_resource(state: &App, endpoint: &Url) -> Result<Resource, StartError> {
    let challenge = probe(state, endpoint).await;
    let mut candidates: Vec<Url> = Vec::new();
    if let Some(u) = challenge
        .resource_metadata
        .as_deref()
        .and_then(|m| endpoint.join(m).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"))
    {
        candidates.push(u);
    } else {
        candidates.extend(well_known(endpoint, "oauth-protected-resource"));
    }
    let mut errors = Vec::new();
    for url in candidates {
        let doc = match get_json(state, &url, "the protected resource metadata").await {
            Ok(d) => d,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let Some(resource) = str_field(&doc, "resource") else {
            errors.push(format!(
                "the protected resource metadata at {} has no `resource`",
                shown(url.as_str())
            ));
            continue;
        };
        if !resource_matches(resource, endpoint) {
            return Err(discovery(format!(
                "the protected resource metadata at {} is for {}, not for this MCP server ({})",
                shown(url.as_str()),
                shown(resource),
                shown(endpoint.as_str())
            )));
        }
        let servers: Vec<String> = str_list(&doc, "authorization_servers")
            .unwrap_or_default()
            .into_iter()
            .filter(|s| parse_http_url(s).is_some())
            .collect();
        if servers.is_empty() {
            return Err(discovery(format!(
                "the protected resource metadata at {} names no authorization server",
                shown(url.as_str())
            )));
        }
        let scope = challenge.scope.clone().or_else(|| {
            str_list(&doc, "scopes_supported")
                .filter(|s| !s.is_empty())
                .map(|s| s.join(" "))
        });
        return Ok(Resource {
            resource: resource.to_string(),
            authorization_servers: servers,
            scope,
        });
    }
    Err(discovery(if errors.is_empty() {
        "no protected resource metadata was found for this MCP server".to_string()
    } else {
        format!(
            "no protected resource metadata was found ({})",
            errors.join("; ")
        )
    }))
}

#[derive(Default)]
struct Challenge {
    resource_metadata: Option<String>,
    scope: Option<String>,
}

/// The unauthenticated request. Anything but a 401 with a Bearer challenge leaves the well-known fallback.
async fn probe(state: &App, endpoint: &Url) -> Challenge {
    let body = json!({
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": MCP_PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "Plugboard", "version": env!("CARGO_PKG_VERSION")}
        }
    });
    let req = plugboard_egress::Request::post(endpoint.as_str(), body.to_string().into_bytes())
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", MCP_PROTOCOL_VERSION)
        .follow_redirects(false);
    // Only the status and headers matter: a server that answers with an endless event stream must not hold us.
    let res = match state.egress.send_streaming(req).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, "mcp probe failed; trying the well-known metadata");
            return Challenge::default();
        }
    };
    if res.status().as_u16() != 401 {
        return Challenge::default();
    }
    let headers = res.headers().clone();
    drop(res);
    let mut out = Challenge::default();
    for value in headers.get_all(http::header::WWW_AUTHENTICATE) {
        let Ok(text) = value.to_str() else { continue };
        for (scheme, name, value) in auth_params(text) {
            if !scheme.eq_ignore_ascii_case("bearer") {
                continue;
            }
            match name.to_ascii_lowercase().as_str() {
                "resource_metadata"
                    if out.resource_metadata.is_none() && value.len() <= MAX_ID_BYTES =>
                {
                    out.resource_metadata = Some(value)
                }
                "scope" if out.scope.is_none() && value.len() <= MAX_ID_BYTES => {
                    out.scope = Some(value).filter(|s| !s.trim().is_empty())
                }
                _ => {}
            }
        }
    }
    out
}

/// `(scheme, name, value)` of every auth-param in a `WWW-Authenticate` value (RFC 9110 §11.6.1); quoted strings
/// unescaped. Lenient, bounded and panic-free.
pub fn auth_params(header: &str) -> Vec<(String, String, String)> {
    let chars: Vec<char> = header.chars().take(16 * 1024).collect();
    let mut out = Vec::new();
    let mut scheme = String::new();
    let mut i = 0;
    let is_sep = |c: char| c == ',' || c == '=' || c.is_whitespace() || c == '"';
    while i < chars.len() {
        while chars.get(i).is_some_and(|c| c.is_whitespace() || *c == ',') {
            i += 1;
        }
        let start = i;
        while chars.get(i).is_some_and(|c| !is_sep(*c)) {
            i += 1;
        }
        let token: String = chars
            .get(start..i)
            .map(|s| s.iter().collect())
            .unwrap_or_default();
        let mut j = i;
        while chars.get(j).is_some_and(|c| c.is_whitespace()) {
            j += 1;
        }
        if chars.get(j) == Some(&'=') && !token.is_empty() {
            j += 1;
            while chars.get(j).is_some_and(|c| c.is_whitespace()) {
                j += 1;
            }
            let mut value = String::new();
            if chars.get(j) == Some(&'"') {
                j += 1;
                while let Some(&c) = chars.get(j) {
                    j += 1;
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(&n) = chars.get(j) {
                                value.push(n);
                                j += 1;
                            }
                        }
                        c => value.push(c),
                    }
                }
            } else {
                while chars
                    .get(j)
                    .is_some_and(|c| *c != ',' && !c.is_whitespace())
                {
                    if let Some(&c) = chars.get(j) {
                        value.push(c);
                    }
                    j += 1;
                }
            }
            out.push((scheme.clone(), token, value));
            i = j;
        } else if !token.is_empty() {
            scheme = token;
        } else {
            // A stray character (e.g. a lone `"` or `=`): skip it.
            i += 1;
        }
    }
    out
}

/// RFC 9728 / RFC 8414 well-known URIs for `url`: the path-insertion form (when it has a path), then the root.
fn well_known(url: &Url, suffix: &str) -> Vec<Url> {
    let path = url.path().trim_end_matches('/');
    let mut base = url.clone();
    base.set_query(None);
    base.set_fragment(None);
    let mut out = Vec::new();
    if !path.is_empty() {
        let mut u = base.clone();
        u.set_path(&format!("/.well-known/{suffix}{path}"));
        out.push(u);
    }
    let mut u = base;
    u.set_path(&format!("/.well-known/{suffix}"));
    out.push(u);
    out
}

/// RFC 9728 §3.3: the metadata's `resource` must identify this MCP server. Accepted: the endpoint itself (ignoring
/// a trailing slash), or, on the same origin, a path prefix of it (the MCP specification's canonical server URI may
/// be the origin or a parent path).
pub fn resource_matches(resource: &str, endpoint: &Url) -> bool {
    let Some(r) = parse_http_url(resource) else {
        return false;
    };
    if r.origin() != endpoint.origin() || (r.query().is_some() && r.query() != endpoint.query()) {
        return false;
    }
    let rp = r.path().trim_end_matches('/');
    let ep = endpoint.path().trim_end_matches('/');
    rp.is_empty()
        || rp == ep
        || ep
            .strip_prefix(rp)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Authorization server metadata, checked.
struct Server {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    registration_endpoint: Option<String>,
    auth_methods: Option<Vec<String>>,
    /// RFC 9207 `authorization_response_iss_parameter_supported`.
    iss_supported: bool,
}

fn same_issuer(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

async fn authorization_server(state: &App, issuer: &str) -> Result<Server, StartError> {
    let issuer_url = parse_http_url(issuer)
        .filter(|u| u.query().is_none())
        .ok_or_else(|| {
            discovery(format!(
                "the authorization server {} is not a valid issuer",
                shown(issuer)
            ))
        })?;
    let mut candidates = Vec::new();
    let path = issuer_url.path().trim_end_matches('/');
    let mut origin = issuer_url.clone();
    origin.set_path("");
    for suffix in ["oauth-authorization-server", "openid-configuration"] {
        let mut u = origin.clone();
        u.set_path(&format!("/.well-known/{suffix}{path}"));
        candidates.push(u);
    }
    if !path.is_empty() {
        let mut u = origin.clone();
        u.set_path(&format!("{path}/.well-known/openid-configuration"));
        candidates.push(u);
    }
    let mut errors = Vec::new();
    for url in candidates {
        let doc = match get_json(state, &url, "the authorization server metadata").await {
            Ok(d) => d,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let found = str_field(&doc, "issuer").unwrap_or("");
        if !same_issuer(found, issuer) {
            errors.push(format!(
                "the authorization server metadata at {} names issuer {}, not {}",
                shown(url.as_str()),
                if found.is_empty() {
                    "(none)".into()
                } else {
                    shown(found)
                },
                shown(issuer)
            ));
            continue;
        }
        return check_server(&doc, found);
    }
    Err(discovery(format!(
        "no authorization server metadata for {} ({})",
        shown(issuer),
        errors.join("; ")
    )))
}

fn check_server(doc: &Map<String, Value>, issuer: &str) -> Result<Server, StartError> {
    let url_field = |k: &str| -> Result<String, StartError> {
        str_field(doc, k)
            .filter(|s| parse_http_url(s).is_some())
            .map(str::to_string)
            .ok_or_else(|| {
                discovery(format!(
                    "the authorization server {} has no valid `{k}`",
                    shown(issuer)
                ))
            })
    };
    let authorization_endpoint = url_field("authorization_endpoint")?;
    let token_endpoint = url_field("token_endpoint")?;
    let methods = str_list(doc, "code_challenge_methods_supported").unwrap_or_default();
    if !methods.iter().any(|m| m == "S256") {
        return Err(StartError::Unsupported(format!(
            "the authorization server {} does not support PKCE with S256 (code_challenge_methods_supported: {}); \
             Plugboard does not connect without it",
            shown(issuer),
            if methods.is_empty() {
                "absent".to_string()
            } else {
                sanitize(&methods.join(", "), 100, &[])
            }
        )));
    }
    if let Some(types) = str_list(doc, "response_types_supported") {
        if !types.iter().any(|t| t == "code") {
            return Err(StartError::Unsupported(format!(
                "the authorization server {} does not support the authorization code flow",
                shown(issuer)
            )));
        }
    }
    Ok(Server {
        issuer: issuer.to_string(),
        authorization_endpoint,
        token_endpoint,
        registration_endpoint: str_field(doc, "registration_endpoint")
            .filter(|s| parse_http_url(s).is_some())
            .map(str::to_string),
        auth_methods: str_list(doc, "token_endpoint_auth_methods_supported"),
        iss_supported: doc.get("authorization_response_iss_parameter_supported")
            == Some(&Value::Bool(true)),
    })
}

struct ChosenClient {
    id: String,
    secret: Option<SecretString>,
    method: ClientAuthMethod,
    secret_expires_at: Option<i64>,
    /// Newly registered (to be remembered).
    registered: bool,
}

async fn client_for(
    state: &App,
    integration: &Integration,
    server: &Server,
    redirect_uri: &str,
    now: i64,
) -> Result<ChosenClient, StartError> {
    if let Some(c) = state
        .store
        .get_oauth_client(&server.issuer, redirect_uri)
        .await
        .map_err(store_err)?
    {
        if let Some(reused) = reuse(state, &c, now).await? {
            return Ok(reused);
        }
    }
    register(state, integration, server, redirect_uri).await
}

/// A registered client, when still usable: a public one always, a confidential one while its secret can be read
/// and has not expired.
async fn reuse(
    state: &App,
    c: &OAuthClientRow,
    now: i64,
) -> Result<Option<ChosenClient>, StartError> {
    let method = c.token_auth;
    let secret = match &c.secret_integration_id {
        None => None,
        Some(holder) => {
            if c.client_secret_expires_at
                .is_some_and(|t| t != 0 && t.saturating_mul(1000) <= now + 60_000)
            {
                return Ok(None);
            }
            let rows = state
                .store
                .integration_secrets(holder)
                .await
                .map_err(store_err)?;
            let Some(row) = rows.into_iter().find(|r| r.name == names::CLIENT_SECRET) else {
                return Ok(None);
            };
            let s = state
                .vault
                .open(&row)
                .await
                .and_then(|p| p.into_string().map_err(Into::into))
                .map_err(internal)?;
            Some(s)
        }
    };
    if method != ClientAuthMethod::None && secret.is_none() {
        return Ok(None);
    }
    Ok(Some(ChosenClient {
        id: c.client_id.clone(),
        secret,
        method,
        secret_expires_at: c.client_secret_expires_at,
        registered: false,
    }))
}

/// RFC 7591 dynamic client registration.
async fn register(
    state: &App,
    integration: &Integration,
    server: &Server,
    redirect_uri: &str,
) -> Result<ChosenClient, StartError> {
    let Some(endpoint) = &server.registration_endpoint else {
        return Err(StartError::Unsupported(format!(
            "the authorization server {} does not offer dynamic client registration (no registration_endpoint), \
             and no client is registered for it",
            shown(&server.issuer)
        )));
    };
    let requested = match &server.auth_methods {
        None => ClientAuthMethod::None,
        Some(m) if m.iter().any(|x| x == "none") => ClientAuthMethod::None,
        Some(m) if m.iter().any(|x| x == "client_secret_post") => ClientAuthMethod::Post,
        Some(m) if m.iter().any(|x| x == "client_secret_basic") => ClientAuthMethod::Basic,
        Some(_) => ClientAuthMethod::None,
    };
    let body = json!({
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": requested.as_str(),
        "application_type": "web",
        "client_name": "Plugboard",
    });
    let req = plugboard_egress::Request::post(endpoint.as_str(), body.to_string().into_bytes())
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .follow_redirects(false);
    let res = state
        .egress
        .send(req)
        .await
        .map_err(|e| discovery(format!("client registration at {}: {e}", shown(endpoint))))?;
    let doc = match serde_json::from_slice::<Value>(&res.body) {
        Ok(Value::Object(m)) if !res.truncated => Some(m),
        _ => None,
    };
    if !(200..300).contains(&res.status) {
        let detail = doc
            .as_ref()
            .and_then(|d| str_field(d, "error"))
            .and_then(error_code)
            .map(|code| {
                let desc = doc
                    .as_ref()
                    .and_then(|d| str_field(d, "error_description"))
                    .map(|d| format!(": {}", sanitize(d, 200, &[])))
                    .unwrap_or_default();
                format!(" ({code}{desc})")
            })
            .unwrap_or_default();
        return Err(discovery(format!(
            "client registration at {} was refused with HTTP {}{detail}",
            shown(endpoint),
            res.status
        )));
    }
    let doc = doc.ok_or_else(|| {
        discovery(format!(
            "client registration at {} answered something that is not a JSON object",
            shown(endpoint)
        ))
    })?;
    let id = str_field(&doc, "client_id")
        .filter(|s| !s.chars().any(char::is_control))
        .ok_or_else(|| {
            discovery(format!(
                "client registration at {} answered without a client_id",
                shown(endpoint)
            ))
        })?
        .to_string();
    let secret = doc
        .get("client_secret")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= MAX_ID_BYTES)
        .map(|s| SecretString::from(s.to_string()));
    let answered = doc
        .get("token_endpoint_auth_method")
        .and_then(Value::as_str)
        .and_then(ClientAuthMethod::parse);
    let method = match (answered, &secret) {
        (Some(m), Some(_)) => m,
        (Some(ClientAuthMethod::None), None) | (None, None) => ClientAuthMethod::None,
        (Some(m), None) => {
            return Err(discovery(format!(
                "client registration at {} gave a {} client without a client_secret",
                shown(endpoint),
                m.as_str()
            )))
        }
        (None, Some(_)) if requested != ClientAuthMethod::None => requested,
        (None, Some(_)) => ClientAuthMethod::Post,
    };
    let secret_expires_at = doc
        .get("client_secret_expires_at")
        .and_then(Value::as_i64)
        .filter(|_| secret.is_some());
    tracing::info!(
        integration_id = %integration.id,
        method = method.as_str(),
        "registered an oauth client dynamically"
    );
    Ok(ChosenClient {
        id,
        secret: if method == ClientAuthMethod::None {
            None
        } else {
            secret
        },
        method,
        secret_expires_at,
        registered: true,
    })
}

/// Token endpoint and client of an mcp_oauth integration, from its grant row and vault.
pub(crate) async fn token_target(
    state: &App,
    integration: &Integration,
    grant: &OAuthGrant,
) -> Result<Target, TargetError> {
    let endpoint = grant.token_endpoint.clone().ok_or_else(|| {
        TargetError::Config(
            "The integration's token endpoint is unknown: start its OAuth sign-in again.".into(),
        )
    })?;
    let id = grant.client_id.clone().ok_or_else(|| {
        TargetError::Config(
            "The integration's OAuth client is unknown: start its OAuth sign-in again.".into(),
        )
    })?;
    let method = grant.token_auth.unwrap_or(ClientAuthMethod::None);
    let secret = if method == ClientAuthMethod::None {
        None
    } else {
        let rows = state
            .store
            .integration_secrets(&integration.id)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "cannot read the integration's vault entries");
                TargetError::Internal
            })?;
        match rows.into_iter().find(|r| r.name == names::CLIENT_SECRET) {
            Some(row) => Some(
                state
                    .vault
                    .open(&row)
                    .await
                    .and_then(|p| p.into_string().map_err(Into::into))
                    .map_err(|e| {
                        tracing::error!(error = %e, "cannot open a vault entry");
                        TargetError::Internal
                    })?,
            ),
            None => return Err(TargetError::Config(
                "The integration's OAuth client secret is missing: start its OAuth sign-in again."
                    .into(),
            )),
        }
    };
    Ok(Target {
        endpoint,
        client: Client { id, secret, method },
        extra: vec![],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_are_parsed_leniently() {
        let p = auth_params(
            r#"Basic realm="x", Bearer error="invalid_token", resource_metadata="https://r.example/.well-known/oauth-protected-resource/mcp", scope="a b""#,
        );
        assert!(p.contains(&(
            "Bearer".into(),
            "resource_metadata".into(),
            "https://r.example/.well-known/oauth-protected-resource/mcp".into()
        )));
        assert!(p.contains(&("Bearer".into(), "scope".into(), "a b".into())));
        assert!(p.contains(&("Basic".into(), "realm".into(), "x".into())));
        let p = auth_params(r#"Bearer resource_metadata=https://x/y,realm="a\"b""#);
        assert_eq!(p[0].2, "https://x/y");
        assert_eq!(p[1].2, "a\"b");
        for junk in [
            "",
            "=",
            "\"",
            "Bearer =",
            "Bearer a=\"unterminated",
            ",,,",
            "Basic abc==",
            "é=ü",
        ] {
            let _ = auth_params(junk);
        }
    }

    #[test]
    fn resources_match_the_endpoint_or_a_parent_on_the_same_origin() {
        let e = Url::parse("https://mcp.example.com/v1/mcp").unwrap();
        for ok in [
            "https://mcp.example.com/v1/mcp",
            "https://mcp.example.com/v1/mcp/",
            "https://MCP.example.com:443/v1/mcp",
            "https://mcp.example.com",
            "https://mcp.example.com/v1",
        ] {
            assert!(resource_matches(ok, &e), "{ok}");
        }
        for bad in [
            "https://evil.example.com/v1/mcp",
            "http://mcp.example.com/v1/mcp",
            "https://mcp.example.com/v1/mc",
            "https://mcp.example.com/other",
            "https://mcp.example.com:8443/v1/mcp",
            "not a url",
            "",
        ] {
            assert!(!resource_matches(bad, &e), "{bad}");
        }
    }

    #[test]
    fn well_known_uris_insert_the_path() {
        let u = Url::parse("https://h.example/a/mcp?x=1").unwrap();
        let w: Vec<String> = well_known(&u, "oauth-protected-resource")
            .iter()
            .map(|u| u.to_string())
            .collect();
        assert_eq!(
            w,
            vec![
                "https://h.example/.well-known/oauth-protected-resource/a/mcp",
                "https://h.example/.well-known/oauth-protected-resource"
            ]
        );
        let root = Url::parse("https://h.example/").unwrap();
        assert_eq!(well_known(&root, "x").len(), 1);
    }
}
