//! Signing in and out: sessions (a new secret at every sign-in), single-use sign-in links, and the completion of an
//! OpenID Connect sign-in (the user found by verified email, or created).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use plugboard_store::{LinkUse, NewSession, SessionId, Store, StoreError, UserId};
use serde_json::json;

use super::audit;
use crate::error::ApiError;
use crate::oidc::web::{page, SignInCompletion};
use crate::oidc::VerifiedIdentity;
use crate::sessions::{hash_secret, new_secret, set_cookie, ABSOLUTE_TIMEOUT_MS, IDLE_TIMEOUT_MS};
use crate::state::{App, AppState};

/// A sign-in link works this long after it was made: 15 minutes.
pub const LINK_TTL_MS: i64 = 15 * 60 * 1000;

/// A sign-in link for a person: `{public URL}/auth/link/<secret>`; only the secret's hash is stored.
pub struct SignInLink {
    pub url: String,
    /// Milliseconds since the Unix epoch.
    pub expires_at: i64,
}

impl std::fmt::Debug for SignInLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInLink")
            .field("url", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Makes a sign-in link for `user_id`, valid [`LINK_TTL_MS`] from `now`, once. Used by the operator command
/// (which has a store and the configuration, not a running server); `NotFound("user")` for an unknown user.
pub async fn create_sign_in_link(
    store: &dyn Store,
    public_url: &str,
    user_id: &UserId,
    now: i64,
) -> Result<SignInLink, StoreError> {
    let (secret, hash) = new_secret();
    let expires_at = now.saturating_add(LINK_TTL_MS);
    store
        .create_sign_in_link(&hash, user_id, now, expires_at)
        .await?;
    Ok(SignInLink {
        url: format!("{}/auth/link/{secret}", public_url.trim_end_matches('/')),
        expires_at,
    })
}

/// A session just started: set `set_cookie` on the answer.
pub struct StartedSession {
    pub id: SessionId,
    /// The `Set-Cookie` value (it holds the session's secret: never log it).
    pub set_cookie: String,
}

impl std::fmt::Debug for StartedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartedSession")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl StartedSession {
    /// The answer to a completed sign-in: 303 to `/` with the session cookie.
    pub fn redirect_home(&self) -> Response {
        let mut res = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
        let h = res.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        if let Ok(v) = HeaderValue::from_str(&self.set_cookie) {
            h.append(header::SET_COOKIE, v);
        }
        res
    }
}

/// Starts a session for `user_id` with a new secret (never one the browser brought: no session fixation).
/// `replaces`: the secret of a session the browser presented, ended at the same time. `method` (`link`, `oidc`) is
/// recorded in the `signed_in` audit entry.
pub async fn start_session(
    app: &App,
    user_id: &UserId,
    replaces: Option<&str>,
    method: &str,
) -> Result<StartedSession, ApiError> {
    let now = app.clock.now_ms();
    let (secret, hash) = new_secret();
    let session = NewSession {
        id: SessionId::generate(),
        secret_hash: hash.to_vec(),
        user_id: user_id.clone(),
        created_at: now,
        expires_at: now.saturating_add(ABSOLUTE_TIMEOUT_MS),
    };
    let entry = audit(
        None,
        user_id,
        "signed_in",
        Some(session.id.to_string()),
        json!({"method": method}),
    );
    let old = replaces.map(hash_secret);
    app.store
        .create_session(
            &session,
            old.as_ref().map(|h| h.as_slice()),
            now.saturating_sub(IDLE_TIMEOUT_MS),
            Some(entry),
        )
        .await?;
    if old.is_some() {
        app.revocations.poll_once().await;
    }
    Ok(StartedSession {
        id: session.id,
        set_cookie: set_cookie(&secret, ABSOLUTE_TIMEOUT_MS, secure_cookies(app)),
    })
}

/// Whether cookies are `Secure` (the public URL is https).
pub(crate) fn secure_cookies(app: &App) -> bool {
    app.config.public_url.starts_with("https://")
}

/// Ends the session with this secret (sign-out); false when there was none. It fails on every instance within a
/// second.
pub async fn end_session(app: &App, secret: &str) -> Result<bool, ApiError> {
    let hash = hash_secret(secret);
    let Some(session) = app.store.session_by_hash(&hash).await? else {
        return Ok(false);
    };
    let entry = audit(
        None,
        &session.user_id,
        "signed_out",
        Some(session.id.to_string()),
        json!({}),
    );
    let ended = app.store.end_session(&hash, Some(entry)).await?;
    // Other instances notice within a second; this one at once.
    app.revocations.poll_once().await;
    Ok(ended)
}

/// Why a sign-in link did not sign anyone in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkRefusal {
    AlreadyUsed,
    Expired,
    Unknown,
}

impl LinkRefusal {
    pub fn status(self) -> StatusCode {
        match self {
            LinkRefusal::AlreadyUsed | LinkRefusal::Expired => StatusCode::GONE,
            LinkRefusal::Unknown => StatusCode::NOT_FOUND,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            LinkRefusal::AlreadyUsed => "This sign-in link was already used",
            LinkRefusal::Expired => "This sign-in link has expired",
            LinkRefusal::Unknown => "This sign-in link is not valid",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            LinkRefusal::AlreadyUsed => {
                "A sign-in link works only once, and this one has signed someone in already. If that was not you, \
                 tell your administrator. To sign in, ask your administrator for a new link \
                 (plugboard admin login-link --user <your user id>)."
            }
            LinkRefusal::Expired => {
                "A sign-in link works for 15 minutes after it is made, and this one is older. Ask your \
                 administrator for a new link (plugboard admin login-link --user <your user id>)."
            }
            LinkRefusal::Unknown => {
                "Plugboard does not know this link: it may be mistyped or cut short, or its user was removed. Copy \
                 the whole link again, or ask your administrator for a new one \
                 (plugboard admin login-link --user <your user id>)."
            }
        }
    }

    /// The HTML page that says so (no session is set).
    pub fn page(self) -> Response {
        page(self.status(), self.title(), self.message(), false)
    }
}

/// Spends a sign-in link and starts a session for its user. `replaces`: the secret of a session the browser
/// presented (ended at the same time).
pub async fn sign_in_with_link(
    app: &App,
    secret: &str,
    replaces: Option<&str>,
) -> Result<Result<StartedSession, LinkRefusal>, ApiError> {
    let well_formed = secret.len() == 43
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed {
        return Ok(Err(LinkRefusal::Unknown));
    }
    let now = app.clock.now_ms();
    match app
        .store
        .use_sign_in_link(&hash_secret(secret), now)
        .await?
    {
        LinkUse::SignIn(user_id) => Ok(Ok(start_session(app, &user_id, replaces, "link").await?)),
        LinkUse::AlreadyUsed => Ok(Err(LinkRefusal::AlreadyUsed)),
        LinkUse::Expired => Ok(Err(LinkRefusal::Expired)),
        LinkUse::Unknown => Ok(Err(LinkRefusal::Unknown)),
    }
}

/// What an OpenID Connect sign-in ends with: the user with the verified email (created when unknown, named from
/// the identity), a new session, and 303 to `/`. The session the browser brought to the callback, if any, ends at
/// the same time (as with a sign-in link), so a browser holds one session at a time.
pub struct PeopleSignIn {
    pub app: AppState,
    /// The secret of the session cookie the callback request carried.
    pub replaces: Option<String>,
}

#[async_trait::async_trait]
impl SignInCompletion for PeopleSignIn {
    async fn complete(&self, identity: VerifiedIdentity) -> Response {
        let app = &self.app;
        let started = async {
            let (user, created) = app
                .store
                .find_or_create_user(&identity.email, &identity.name)
                .await?;
            if created {
                tracing::info!(user_id = %user.id, "OpenID Connect sign-in created a user");
            }
            start_session(app, &user.id, self.replaces.as_deref(), "oidc").await
        }
        .await;
        match started {
            Ok(session) => session.redirect_home(),
            Err(e) => {
                tracing::error!(
                    code = e.code,
                    "OpenID Connect sign-in verified, but no session could be started"
                );
                page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Plugboard could not start your session",
                    "Your identity provider signed you in, but Plugboard could not record the session. Try again in \
                     a moment; if this goes on, ask your administrator to check Plugboard's database.",
                    true,
                )
            }
        }
    }
}
