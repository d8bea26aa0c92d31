//! Browser sessions: the `plugboard_session` cookie, its secret, and verifying it through an in-memory cache.
//!
//! A session's secret is 32 random bytes (base64url, 43 characters): the cookie's value. Only its SHA-256 is stored.
//! A session ends [`IDLE_TIMEOUT_MS`] after its last use, [`ABSOLUTE_TIMEOUT_MS`] after it started in any case, at
//! sign-out, and when its user is removed. Verified sessions are cached like tokens ([`crate::credentials`]): a
//! sign-out or a removal anywhere fails the session everywhere within a second. A use is written at most once a
//! minute, so the idle timeout counts from the last recorded use (up to a minute before the last request).
//!
//! Starting and ending sessions (the sign-in flows, sign-out) are services in [`crate::people`]; this module is what
//! the authentication extractor needs.

use std::sync::Arc;

use axum::http::{header, HeaderMap};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use plugboard_store::{SessionRecord, Store};

use crate::clock::Clock;
use crate::credentials::{use_due, GenerationCache, RevocationWatch, LAST_USE_INTERVAL_MS};
use crate::error::ApiError;

/// The cookie's name.
pub const SESSION_COOKIE: &str = "plugboard_session";
/// A session ends this long after its last (recorded) use: 12 hours.
pub const IDLE_TIMEOUT_MS: i64 = 12 * 3600 * 1000;
/// A session ends this long after it started, used or not: 7 days.
pub const ABSOLUTE_TIMEOUT_MS: i64 = 7 * 24 * 3600 * 1000;
const SECRET_LEN: usize = 43;

/// A new session secret (the cookie value, shown to the browser only) and the hash to store.
pub fn new_secret() -> (String, [u8; 32]) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_secret(&secret);
    (secret, hash)
}

pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// A syntactically plausible secret: cheap rejection before any lookup.
fn well_formed(secret: &str) -> bool {
    secret.len() == SECRET_LEN
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The `Set-Cookie` value that starts a session: `HttpOnly`, `SameSite=Lax`, `Path=/`, kept by the browser as long
/// as the session can live at most, `Secure` when the public URL is https.
pub fn set_cookie(secret: &str, max_age_ms: i64, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={secret}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{}",
        (max_age_ms / 1000).max(0),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{}",
        if secure { "; Secure" } else { "" }
    )
}

/// What a request's `Cookie` headers say about the session cookie.
#[derive(Clone, PartialEq, Eq)]
pub enum SessionCookie {
    Absent,
    Present(String),
    /// Several different values (for instance one set for a parent domain by someone else): refused.
    Ambiguous,
}

impl std::fmt::Debug for SessionCookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SessionCookie::Absent => "Absent",
            SessionCookie::Present(_) => "Present([secret])",
            SessionCookie::Ambiguous => "Ambiguous",
        })
    }
}

/// Reads the session cookie from a request's headers.
pub fn session_cookie(headers: &HeaderMap) -> SessionCookie {
    let mut found: Option<String> = None;
    for pair in headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
    {
        let Some((name, value)) = pair.trim().split_once('=') else {
            continue;
        };
        if name.trim() != SESSION_COOKIE {
            continue;
        }
        let value = value.trim().trim_matches('"');
        if value.is_empty() {
            continue;
        }
        match &found {
            Some(v) if v != value => return SessionCookie::Ambiguous,
            Some(_) => {}
            None => found = Some(value.to_string()),
        }
    }
    match found {
        Some(v) => SessionCookie::Present(v),
        None => SessionCookie::Absent,
    }
}

/// Whether a session has ended by time at `now`.
pub fn ended(session: &SessionRecord, now: i64) -> bool {
    now >= session.expires_at || now.saturating_sub(session.last_used_at) >= IDLE_TIMEOUT_MS
}

pub struct SessionCache {
    store: Arc<dyn Store>,
    watch: Arc<RevocationWatch>,
    clock: Clock,
    entries: GenerationCache<SessionRecord>,
}

impl SessionCache {
    pub fn new(store: Arc<dyn Store>, watch: Arc<RevocationWatch>, clock: Clock) -> Arc<Self> {
        Arc::new(SessionCache {
            store,
            watch,
            clock,
            entries: GenerationCache::new(),
        })
    }

    /// The live session with this secret (recording its use at most once a minute), or `None` when it is unknown,
    /// ended or malformed.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<SessionRecord>, ApiError> {
        if !well_formed(secret) {
            return Ok(None);
        }
        let hash = hash_secret(secret);
        let now = self.clock.now_ms();
        let generation = self.watch.current();
        let cached = self.entries.get(&hash, generation);
        // A cached copy that looks ended may be behind another instance's record of a use: ask the database.
        let session = match cached.filter(|s| !ended(s, now)) {
            Some(s) => s,
            None => {
                let found = self
                    .store
                    .session_by_hash(&hash)
                    .await
                    .map_err(ApiError::from)?;
                let Some(s) = found else { return Ok(None) };
                self.entries.insert(hash, generation, s.clone());
                s
            }
        };
        if ended(&session, now) {
            return Ok(None);
        }
        if use_due(Some(session.last_used_at), now) {
            match self
                .store
                .touch_session(&session.id, now, LAST_USE_INTERVAL_MS)
                .await
            {
                Ok(_) => self.entries.update(&hash, |s| s.last_used_at = now),
                Err(e) => tracing::warn!(error = %e, "could not record a session's last use"),
            }
        }
        Ok(Some(session))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_43_url_safe_characters_and_only_their_hash_is_kept() {
        let (secret, hash) = new_secret();
        assert!(well_formed(&secret), "{secret}");
        assert_eq!(hash, hash_secret(&secret));
        assert_ne!(new_secret().0, secret);
        assert!(!well_formed("short") && !well_formed(&"a".repeat(44)));
    }

    #[test]
    fn the_cookie_carries_the_specified_attributes() {
        assert_eq!(
            set_cookie("abc", ABSOLUTE_TIMEOUT_MS, true),
            "plugboard_session=abc; Path=/; Max-Age=604800; HttpOnly; SameSite=Lax; Secure"
        );
        assert_eq!(
            clear_cookie(false),
            "plugboard_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"
        );
    }

    #[test]
    fn the_session_cookie_is_read_from_among_others_and_two_values_are_refused() {
        let mut h = HeaderMap::new();
        assert_eq!(session_cookie(&h), SessionCookie::Absent);
        h.append(
            header::COOKIE,
            "a=1; plugboard_session=xyz; b=2".parse().unwrap(),
        );
        assert_eq!(session_cookie(&h), SessionCookie::Present("xyz".into()));
        h.append(header::COOKIE, "plugboard_session=xyz".parse().unwrap());
        assert_eq!(session_cookie(&h), SessionCookie::Present("xyz".into()));
        h.append(header::COOKIE, "plugboard_session=other".parse().unwrap());
        assert_eq!(session_cookie(&h), SessionCookie::Ambiguous);
        assert_eq!(
            format!("{:?}", SessionCookie::Present("s3cret".into())),
            "Present([secret])"
        );
    }
}
