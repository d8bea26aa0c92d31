//! Who is calling and what they may do: the authenticated [`Principal`] (an extractor: `Authorization: Bearer`
//! resolved through [`crate::api_tokens::TokenCache`], else the `plugboard_session` cookie resolved through
//! [`crate::sessions::SessionCache`], with the `Origin` check for cookie requests that change anything) and
//! [`require_role`], the one place roles are checked. Both credentials resolve to the same user and the same checks.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use plugboard_store::{Role, SessionId, TokenId, UserId, WorkspaceId};

use crate::api_tokens::TokenCheck;
use crate::config::Config;
use crate::error::ApiError;
use crate::sessions::{session_cookie, SessionCookie};
use crate::state::{App, AppState};

pub use crate::api_tokens::generate_token;

/// The authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub user_id: UserId,
    /// What authenticated this request.
    pub credential: Credential,
}

/// The credential a request was authenticated with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Bearer pb_…`.
    Token(TokenId),
    /// The `plugboard_session` cookie.
    Session(SessionId),
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    /// A bearer token when the request has an `Authorization` header (the cookie is then ignored), else the session
    /// cookie. A cookie request with a method that can change something must come from the public origin.
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
            let header = value.to_str().map_err(|_| ApiError::unauthorized())?;
            let (scheme, token) = header
                .trim()
                .split_once(' ')
                .ok_or_else(ApiError::unauthorized)?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err(ApiError::unauthorized());
            }
            if crate::agent_tokens::looks_like_agent_token(token.trim()) {
                return Err(agent_token_refused(state, token.trim()).await);
            }
            return match state.tokens.check(token.trim()).await? {
                TokenCheck::Valid(owner) => Ok(Principal {
                    user_id: owner.user_id,
                    credential: Credential::Token(owner.token_id),
                }),
                TokenCheck::Expired => Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "token_expired",
                    "this API token has expired: create a new one (POST /api/v1/tokens, or in the console)",
                )),
                TokenCheck::Unknown => Err(ApiError::unauthorized()),
            };
        }
        let secret = match session_cookie(&parts.headers) {
            SessionCookie::Absent => return Err(ApiError::unauthorized()),
            SessionCookie::Ambiguous => {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "the request carries several plugboard_session cookies: clear this site's cookies, then sign in again",
                ))
            }
            SessionCookie::Present(secret) => secret,
        };
        // Before the session is even looked up: a forged request from another site neither acts nor counts as a use.
        if !is_safe(&parts.method) && !from_public_origin(&parts.headers, &state.config) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf_rejected",
                "a request signed in by the session cookie that changes something must carry an Origin header \
                 equal to Plugboard's own origin (PLUGBOARD_PUBLIC_URL); send it from the console, or use an API \
                 token (Authorization: Bearer)",
            ));
        }
        let session = state.sessions.authenticate(&secret).await?.ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "your session has ended (signed out, expired or unknown): sign in again",
            )
        })?;
        Ok(Principal {
            user_id: session.user_id,
            credential: Credential::Session(session.id),
        })
    }
}

/// An agent token on the JSON API: 403 `agent_token_not_allowed` when it is one (valid or expired), else 401.
async fn agent_token_refused(state: &App, token: &str) -> ApiError {
    match state.agent_tokens.check(token).await {
        Ok(crate::agent_tokens::AgentTokenCheck::Unknown) => ApiError::unauthorized(),
        Ok(_) => ApiError::new(
            StatusCode::FORBIDDEN,
            "agent_token_not_allowed",
            "agent tokens (pba_…) reach only the MCP gateway (/mcp/…); use a person's API token (pb_…) or sign in \
             to use /api/v1",
        ),
        Err(e) => e,
    }
}

/// Methods that change nothing (the `Origin` check does not apply to them).
fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// The origin (scheme, host, port) of `PLUGBOARD_PUBLIC_URL`, as browsers write it in `Origin`.
pub fn public_origin(config: &Config) -> String {
    url::Url::parse(&config.public_url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default()
}

/// Whether the request's one `Origin` header names the public origin (default ports and letter case aside).
pub fn from_public_origin(headers: &HeaderMap, config: &Config) -> bool {
    let mut values = headers.get_all(header::ORIGIN).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    let Ok(origin) = value.to_str() else {
        return false;
    };
    let Ok(url) = url::Url::parse(origin.trim()) else {
        return false;
    };
    let expected = public_origin(config);
    url.path() == "/"
        && url.query().is_none()
        && !expected.is_empty()
        && url.origin().ascii_serialization() == expected
}

/// The one place roles are checked: the caller's role on `workspace_id` must be at least `min`.
/// A workspace that does not exist and a caller who is not a member both answer 403.
pub async fn require_role(
    state: &App,
    principal: &Principal,
    workspace_id: &WorkspaceId,
    min: Role,
) -> Result<Role, ApiError> {
    let role = state
        .store
        .member_role(workspace_id, &principal.user_id)
        .await?;
    match role {
        Some(r) if r >= min => Ok(r),
        _ => Err(ApiError::forbidden()),
    }
}

/// [`require_role`] on the workspace a request names (`?workspace_id=`), returning its typed id. An id of the wrong
/// shape is an unknown workspace: 403, without a lookup.
pub async fn require_role_in(
    state: &App,
    principal: &Principal,
    workspace_id: &str,
    min: Role,
) -> Result<WorkspaceId, ApiError> {
    let id = WorkspaceId::parse(workspace_id).ok_or_else(ApiError::forbidden)?;
    require_role(state, principal, &id, min).await?;
    Ok(id)
}
