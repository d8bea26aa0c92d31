//! The pending sign-in: what the callback needs from the start of a sign-in (state, nonce, PKCE verifier), kept in
//! the browser that started it, in a short-lived cookie sealed with a server key.
//!
//! Why a cookie and not a database row: it binds the sign-in to the browser that started it (the callback must
//! present both the cookie and the matching `state`, so a sign-in answer sent to somebody else's browser is useless
//! there: no login CSRF), any instance can finish it without shared storage, and nothing is written for sign-ins
//! that are never finished. The value is AES-256-GCM sealed (the verifier and nonce are secrets; nobody can forge or
//! alter one) under a key derived from the master key, and it carries its creation time: it is refused after
//! [`PENDING_TTL`]. Single use: the callback clears the cookie, each instance refuses a state it has already seen,
//! and the identity provider accepts an authorization code once (a replay on another instance fails there).

use std::time::{SystemTime, UNIX_EPOCH};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// The cookie's name. Its path is `/auth/oidc`, so no other request carries it.
pub const PENDING_COOKIE: &str = "plugboard_oidc";
/// A sign-in must be finished within this long after it started.
pub const PENDING_TTL_MS: u64 = 10 * 60 * 1000;
const AAD: &[u8] = b"plugboard/oidc-pending-login/v1";
/// A sealed value longer than this is not ours (a real one is ~350 characters).
const MAX_SEALED: usize = 4096;

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What the cookie carries (sealed).
#[derive(Serialize, Deserialize)]
pub(crate) struct PendingData {
    /// `state`
    pub s: String,
    /// `nonce`
    pub n: String,
    /// PKCE code verifier
    pub v: String,
    /// issuer and client id the sign-in started with (a configuration change voids it)
    pub i: String,
    pub c: String,
    /// created, epoch ms
    pub t: u64,
}

pub(crate) struct Sealer {
    cipher: Aes256Gcm,
}

impl Sealer {
    pub(crate) fn new(key: &[u8; 32]) -> Sealer {
        Sealer {
            cipher: Aes256Gcm::new(key.into()),
        }
    }

    pub(crate) fn seal(&self, data: &PendingData) -> Option<String> {
        let plain = serde_json::to_vec(data).ok()?;
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: AAD,
                },
            )
            .ok()?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out))
    }

    /// The data, if `value` was sealed by this key and is younger than [`PENDING_TTL_MS`].
    pub(crate) fn open(&self, value: &str, now_ms: u64) -> Option<PendingData> {
        if value.len() > MAX_SEALED {
            return None;
        }
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(value.trim())
            .ok()?;
        if raw.len() < 12 + 16 {
            return None;
        }
        let (nonce, sealed) = raw.split_at(12);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: AAD,
                },
            )
            .ok()?;
        let data: PendingData = serde_json::from_slice(&plain).ok()?;
        // A little tolerance for a clock that stepped back between start and callback.
        let fresh = data.t <= now_ms + 60_000 && now_ms.saturating_sub(data.t) <= PENDING_TTL_MS;
        fresh.then_some(data)
    }
}

/// A started sign-in's cookie: set it on the response that redirects the browser to the identity provider.
pub struct PendingLogin {
    pub(crate) value: String,
    pub(crate) secure: bool,
}

impl std::fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingLogin([sealed])")
    }
}

impl PendingLogin {
    /// The sealed value (what [`super::Oidc::finish_login`] takes back).
    pub fn cookie_value(&self) -> &str {
        &self.value
    }

    /// The `Set-Cookie` header value: `HttpOnly`, `SameSite=Lax` (the identity provider's redirect back is a
    /// top-level GET, which Lax lets through), `Path=/auth/oidc`, ten minutes, `Secure` when the public URL is https.
    pub fn set_cookie(&self) -> String {
        format!(
            "{PENDING_COOKIE}={}; Path=/auth/oidc; Max-Age={}; HttpOnly; SameSite=Lax{}",
            self.value,
            PENDING_TTL_MS / 1000,
            if self.secure { "; Secure" } else { "" }
        )
    }
}

/// The `Set-Cookie` value that removes the pending sign-in cookie (sent with every callback answer).
pub fn clear_pending_cookie(secure: bool) -> String {
    format!(
        "{PENDING_COOKIE}=; Path=/auth/oidc; Max-Age=0; HttpOnly; SameSite=Lax{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The pending sign-in cookie's value from a request's `Cookie` headers.
pub fn pending_from_headers(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == PENDING_COOKIE)
        .map(|(_, value)| value.trim().trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(t: u64) -> PendingData {
        PendingData {
            s: "state".into(),
            n: "nonce".into(),
            v: "verifier".into(),
            i: "https://idp.example".into(),
            c: "client".into(),
            t,
        }
    }

    #[test]
    fn a_sealed_value_opens_with_its_key_only_and_only_while_fresh() {
        let sealer = Sealer::new(&[7u8; 32]);
        let now = now_ms();
        let sealed = sealer.seal(&data(now)).expect("sealed");
        assert!(!sealed.contains("verifier") && !sealed.contains("nonce"));
        let opened = sealer.open(&sealed, now + 1000).expect("opens");
        assert_eq!(
            (opened.s.as_str(), opened.v.as_str()),
            ("state", "verifier")
        );
        assert!(
            sealer.open(&sealed, now + PENDING_TTL_MS + 1).is_none(),
            "expired"
        );
        assert!(
            Sealer::new(&[8u8; 32]).open(&sealed, now).is_none(),
            "other key"
        );
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 5;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(
            sealer
                .open(&String::from_utf8(tampered).unwrap(), now)
                .is_none(),
            "altered"
        );
        assert!(sealer.open("", now).is_none() && sealer.open("%%%", now).is_none());
        assert!(sealer.open(&"A".repeat(10_000), now).is_none());
    }

    #[test]
    fn the_cookie_is_read_back_from_among_others() {
        let mut headers = http::HeaderMap::new();
        headers.append(
            http::header::COOKIE,
            "a=1; plugboard_oidc=abc-_1; b=2".parse().unwrap(),
        );
        assert_eq!(pending_from_headers(&headers).as_deref(), Some("abc-_1"));
        let login = PendingLogin {
            value: "xyz".into(),
            secure: true,
        };
        let set = login.set_cookie();
        assert!(set.starts_with(
            "plugboard_oidc=xyz; Path=/auth/oidc; Max-Age=600; HttpOnly; SameSite=Lax; Secure"
        ));
        assert!(clear_pending_cookie(false).contains("Max-Age=0"));
        assert_eq!(format!("{login:?}"), "PendingLogin([sealed])");
    }
}
