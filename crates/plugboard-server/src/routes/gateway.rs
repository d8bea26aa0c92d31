//! The MCP gateway's endpoints (MCP streamable HTTP, not part of the JSON API's OpenAPI document):
//! `/mcp/i/{integration_id}` (passthrough), `/mcp/crew/{crew_id}` and `/mcp/workspace/{workspace_id}` (aggregated).
//!
//! The caller authenticates with an agent token (`Authorization: Bearer pba_…`), or as a person (a `pb_…` token or
//! the session cookie, exactly as on the JSON API, `Origin` check included); who reaches what is decided by the
//! gateway's `Integrations` port ([`crate::gateway_wiring`]). Errors before MCP starts are the contract's error body.
//!
//! What a request has open (an answer not yet started, an event stream being relayed: an SSE answer to a POST, a
//! server's stream to a GET) lives as long as the credential that opened it and its access to what it opened: a
//! [`Watch`] checks the credential again every [`RECHECK`] while the request is open, and the access too (at once
//! after a change through this instance, otherwise every [`ACCESS_RECHECK`]). A revoked or expired credential turns
//! an answer not yet started into its 401, lost access (on `/mcp/i/…` the integration deleted or disabled; a person
//! removed from the workspace, a crew token's crew gone) into the refusal a new request would get (404, 403, 409),
//! and either cuts a stream, so revoking a token or someone's access also cuts what they are still reading.
//!
//! A graceful stop ends (cleanly) every server stream relayed to a `GET` as it begins
//! ([`crate::state::App::stopping`]): those streams never finish on their own, and the stop would otherwise wait for
//! them until its drain deadline. Answers to POSTs (also event streams) are left to finish within it.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use futures_util::StreamExt;
use plugboard_gateway::{Caller, Lost, Scope, StillAllowed, Target};

use crate::agent_tokens::{looks_like_agent_token, AgentTokenCheck};
use crate::auth::{Credential, Principal};
use crate::error::ApiError;
use crate::gateway_wiring::gateway;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/mcp/i/{integration_id}", any(passthrough))
        .route("/mcp/crew/{crew_id}", any(crew))
        .route("/mcp/workspace/{workspace_id}", any(workspace))
}

/// The bearer token when it is an agent token.
fn agent_bearer(parts: &Parts) -> Option<String> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && looks_like_agent_token(token))
        .then(|| token.to_owned())
}

/// How often what a request has open checks the credential that opened it again.
const RECHECK: Duration = Duration::from_millis(500);
/// How often the access of what a request has open is checked again when this instance changed nothing since the
/// last check (a change made through this instance is checked at the next [`RECHECK`]; one made by another instance
/// or an admin command within this). The credential itself is checked every [`RECHECK`], which costs no query while
/// no credential changes; an access check reads the integration or scope, cached a second.
const ACCESS_RECHECK: Duration = Duration::from_secs(5);
/// The longest wait between checks while the database cannot answer them (the wait doubles from [`RECHECK`]).
const RECHECK_BACKOFF_MAX: Duration = Duration::from_secs(8);

/// What it takes to check a request's credential again later: the agent token, or a person's request head.
enum Recheck {
    Agent(String),
    Person {
        method: Method,
        uri: Uri,
        headers: HeaderMap,
    },
}

/// The refusal for an open request whose access ended: what a new request would get, said for a request that
/// was open.
fn lost_access(lost: Lost, target: &Target) -> ApiError {
    let what = match target {
        Target::Integration(_) => "integration",
        Target::Scope(Scope::Crew(_)) => "crew",
        Target::Scope(Scope::Workspace(_)) => "workspace",
    };
    match lost {
        Lost::NotFound => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("this {what} was deleted while the request was open, or is no longer visible to this token"),
        ),
        Lost::Forbidden => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this caller may no longer use this {what}: its access ended while the request was open (removed \
                 from the workspace, made VIEWER, or the token's crew no longer reaches it)"
            ),
        ),
        Lost::Disabled => ApiError::new(
            StatusCode::CONFLICT,
            "integration_disabled",
            "this integration was disabled while the request was open; enable it (PATCH `enabled`: true) to use it",
        ),
        Lost::OauthPending => ApiError::new(
            StatusCode::CONFLICT,
            "oauth_pending",
            "this integration started waiting for its OAuth authorization again while the request was open",
        ),
        Lost::NotProxyable => ApiError::new(
            StatusCode::CONFLICT,
            "not_proxyable",
            "this integration can no longer be reached through the gateway",
        ),
    }
}

/// What a check found.
enum Checked {
    Valid,
    /// The refusal a new request with the credential would get (401, 403).
    Refused(ApiError),
    /// The database could not answer: nothing is decided.
    Unknown,
}

impl Recheck {
    fn of(parts: &Parts) -> Recheck {
        match agent_bearer(parts) {
            Some(token) => Recheck::Agent(token),
            None => Recheck::Person {
                method: parts.method.clone(),
                uri: parts.uri.clone(),
                headers: parts.headers.clone(),
            },
        }
    }

    /// Whether the credential still authenticates `caller` and, when `target` is given, whether `caller` may still
    /// use it. Only a definite refusal (401, 403, access lost) says no.
    async fn check(&self, app: &AppState, caller: &Caller, target: Option<&Target>) -> Checked {
        match self.authenticates(app, &caller.token_id).await {
            Checked::Valid => {}
            other => return other,
        }
        let Some(target) = target else {
            return Checked::Valid;
        };
        match gateway(app).still_allowed(caller, target).await {
            StillAllowed::Yes => Checked::Valid,
            StillAllowed::No(lost) => Checked::Refused(lost_access(lost, target)),
            StillAllowed::Unknown => Checked::Unknown,
        }
    }

    /// Whether the credential still authenticates `token_id`.
    async fn authenticates(&self, app: &AppState, token_id: &str) -> Checked {
        let again = match self {
            Recheck::Agent(token) => agent_caller(app, token).await,
            Recheck::Person {
                method,
                uri,
                headers,
            } => {
                let mut head = Request::new(());
                *head.method_mut() = method.clone();
                *head.uri_mut() = uri.clone();
                *head.headers_mut() = headers.clone();
                let (mut parts, ()) = head.into_parts();
                caller(app, &mut parts).await
            }
        };
        match again {
            Ok(c) if c.token_id == token_id => Checked::Valid,
            Ok(_) => Checked::Refused(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "the credential of this request changed while it was open: send the request again",
            )),
            Err(e) if matches!(e.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
                Checked::Refused(e)
            }
            Err(_) => Checked::Unknown,
        }
    }
}

/// The credential of a request, checked again while the request has something open. The checks run in a task of
/// their own, started only for a request still open [`RECHECK`] after it came in (a quick answer never starts one),
/// so a slow check never holds up the answer or the stream; while the database cannot answer, the checks back off
/// (up to [`RECHECK_BACKOFF_MAX`]) and decide nothing.
enum Watch {
    /// Not started yet: what the checks need, and when they start.
    Waiting {
        start: std::pin::Pin<Box<tokio::time::Sleep>>,
        checks: Option<Box<(AppState, Recheck, Caller, Target)>>,
    },
    /// The checker task (aborted with the watch), and where it sends the refusal.
    Checking {
        _task: AbortOnDrop,
        refusal: tokio::sync::oneshot::Receiver<ApiError>,
    },
}

/// A task aborted when this is dropped (the request is over).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Watch {
    fn new(app: &AppState, recheck: Recheck, caller: Caller, target: Target) -> Watch {
        Watch::Waiting {
            start: Box::pin(tokio::time::sleep(RECHECK)),
            checks: Some(Box::new((app.clone(), recheck, caller, target))),
        }
    }

    /// Resolves, with the refusal, once the credential no longer holds; never while it does. Cancel-safe (for
    /// `select!`): what it waits for is kept in `self`.
    async fn refused(&mut self) -> ApiError {
        if let Watch::Waiting { start, checks } = self {
            start.as_mut().await;
            let Some(checks) = checks.take() else {
                return std::future::pending().await;
            };
            let (app, recheck, caller, target) = *checks;
            let (tx, rx) = tokio::sync::oneshot::channel();
            let task = tokio::spawn(async move {
                let mut wait = RECHECK;
                // When access was last found intact, and the store's write epoch then.
                let mut access_seen: Option<(tokio::time::Instant, u64)> = None;
                loop {
                    let epoch = app.store.write_epoch();
                    let access_due = access_seen
                        .is_none_or(|(at, seen)| seen != epoch || at.elapsed() >= ACCESS_RECHECK);
                    match recheck
                        .check(&app, &caller, access_due.then_some(&target))
                        .await
                    {
                        Checked::Valid => {
                            wait = RECHECK;
                            if access_due {
                                access_seen = Some((tokio::time::Instant::now(), epoch));
                            }
                        }
                        Checked::Refused(e) => {
                            tracing::info!(
                                token_id = %caller.token_id,
                                status = e.status.as_u16(),
                                "ending an open MCP request: the token or session that opened it was revoked or \
                                 has expired (status 401), or lost access to what it opened (404, 403, 409)"
                            );
                            let _ = tx.send(e);
                            return;
                        }
                        Checked::Unknown => wait = (wait * 2).min(RECHECK_BACKOFF_MAX),
                    }
                    tokio::time::sleep(wait).await;
                }
            });
            *self = Watch::Checking {
                _task: AbortOnDrop(task),
                refusal: rx,
            };
        }
        match self {
            Watch::Checking { refusal, .. } => match refusal.await {
                Ok(refusal) => refusal,
                // The checker ended without a refusal (it cannot): nothing more to wait for.
                Err(_) => std::future::pending().await,
            },
            Watch::Waiting { .. } => std::future::pending().await,
        }
    }
}

/// `resp` as it is, unless it is an event stream: then the same stream, cut as soon as the `watch` refuses (the
/// credential revoked or expired, the access to what it opened lost). Cut, not ended: the response stops without its
/// end, as when a server goes away, so the agent's client fails what it was waiting for instead of waiting for it
/// elsewhere.
///
/// A server stream (the answer to a `GET`, `server_stream`) also ends, cleanly, when the server begins a graceful
/// stop (`stopping`): it would never finish on its own, and the agent's client opens it again (on another instance).
fn while_valid(
    watch: Watch,
    resp: Response,
    server_stream: Option<tokio::sync::watch::Receiver<bool>>,
) -> Response {
    let streaming = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/event-stream")
        });
    if !streaming {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let watched = (body.into_data_stream(), watch, server_stream);
    let stream = futures_util::stream::unfold(Some(watched), |watched| async move {
        let (mut data, mut watch, mut stopping) = watched?;
        tokio::select! {
            chunk = data.next() => chunk.map(|c| (c, Some((data, watch, stopping)))),
            _ = watch.refused() => {
                let cut = axum::Error::new("the credential that opened this stream is no longer valid");
                Some((Err(cut), None))
            }
            () = stop_begins(&mut stopping) => None,
        }
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

/// Resolves once a graceful stop has begun; never without a receiver (not a server stream), or when the sender is
/// gone (the app itself is being dropped: nothing to stop for).
async fn stop_begins(stopping: &mut Option<tokio::sync::watch::Receiver<bool>>) {
    let begun = match stopping {
        Some(rx) => rx.wait_for(|stop| *stop).await.is_ok(),
        None => false,
    };
    if !begun {
        std::future::pending::<()>().await;
    }
}

/// The caller an agent token stands for, when it is valid, unexpired and unrevoked.
async fn agent_caller(app: &AppState, token: &str) -> Result<Caller, ApiError> {
    match app.agent_tokens.check(token).await? {
        AgentTokenCheck::Valid(owner) => Ok(Caller::agent(owner.id.to_string())),
        AgentTokenCheck::Expired => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "token_expired",
            "this agent token has expired: an ADMIN of the workspace can create a new one",
        )),
        AgentTokenCheck::Unknown => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "this agent token is unknown or revoked: send a valid one as `Authorization: Bearer pba_…`",
        )),
    }
}

/// Who is calling: an agent token (valid, unexpired, unrevoked) or a person (token or session).
async fn caller(app: &AppState, parts: &mut Parts) -> Result<Caller, ApiError> {
    if let Some(token) = agent_bearer(parts) {
        return agent_caller(app, &token).await;
    }
    let principal = Principal::from_request_parts(parts, app).await?;
    let credential = match principal.credential {
        Credential::Token(id) => id.to_string(),
        Credential::Session(id) => id.to_string(),
    };
    Ok(Caller::person(credential, principal.user_id.to_string()))
}

/// The last path segment (axum's router matched the route, so it is there).
fn last_segment(parts: &Parts) -> String {
    parts
        .uri
        .path()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Authenticates the caller, lets the gateway answer, and keeps an answer not yet started or an event-stream answer
/// only as long as the caller's credential and its access to `target` (made of the last path segment) last.
async fn serve(app: &AppState, target: fn(String) -> Target, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let caller = match caller(app, &mut parts).await {
        Ok(c) => c,
        Err(refused) => return refused.into_response(),
    };
    let recheck = Recheck::of(&parts);
    let target = target(last_segment(&parts));
    let server_stream = (parts.method == Method::GET).then(|| app.stopping.subscribe());
    let request = Request::from_parts(parts, body);
    let mut watch = Watch::new(app, recheck, caller.clone(), target.clone());
    let gw = gateway(app);
    let answer = async move {
        match target {
            Target::Integration(id) => gw.passthrough(caller, &id, request).await,
            Target::Scope(scope) => gw.aggregated(caller, scope, request).await,
        }
    };
    // The answer may take long to start (an upstream that sends nothing yet): the credential is watched meanwhile
    // too, and a refusal drops the exchange (and its upstream request).
    let resp = tokio::select! {
        resp = answer => resp,
        refused = watch.refused() => return refused.into_response(),
    };
    while_valid(watch, resp, server_stream)
}

async fn passthrough(State(app): State<AppState>, request: Request) -> Response {
    serve(&app, Target::Integration, request).await
}

async fn crew(State(app): State<AppState>, request: Request) -> Response {
    serve(&app, |id| Target::Scope(Scope::Crew(id)), request).await
}

async fn workspace(State(app): State<AppState>, request: Request) -> Response {
    serve(&app, |id| Target::Scope(Scope::Workspace(id)), request).await
}
