//! Session ids the agent holds.
//!
//! - Passthrough: the agent never sees the upstream's `Mcp-Session-Id`. It gets that id sealed (AES-256-GCM, random
//!   nonce) with the token id and the integration id as associated data. Any instance holding the key opens it, so
//!   no table and no sticky load balancing are needed; a session id used with another token or another integration
//!   does not open, and is answered like an unknown session (404). The upstream's id is never confused between
//!   agents because an agent can only ever present ids sealed for its own token.
//! - Aggregated: 32 random bytes; the session table keys it by its SHA-256.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The passthrough id's prefix.
pub const PASSTHROUGH_PREFIX: &str = "pbs_";
/// The aggregated id's prefix.
pub const AGGREGATED_PREFIX: &str = "pbg_";
/// Upstream session ids longer than this are refused (the spec asks for visible ASCII; nobody needs more).
pub const MAX_UPSTREAM_ID: usize = 1024;
const DOMAIN: &[u8] = b"plugboard-gateway-session-v1";
const NONCE_LEN: usize = 12;

/// Seals and opens passthrough session ids.
pub struct Sealer {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(**key**)")
    }
}

/// Length-prefixed parts, so that `("ab", "c")` and `("a", "bc")` never bind the same way.
fn binding(token_id: &str, integration_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(DOMAIN.len() + token_id.len() + integration_id.len() + 24);
    for part in [DOMAIN, token_id.as_bytes(), integration_id.as_bytes()] {
        out.extend_from_slice(&(part.len() as u64).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// An upstream session id the gateway accepts: 1 to [`MAX_UPSTREAM_ID`] visible ASCII characters.
pub fn valid_upstream_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_UPSTREAM_ID && id.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Sealer {
        Sealer {
            cipher: Aes256Gcm::new(key.into()),
        }
    }

    /// The id the agent holds for `upstream_id`, bound to the token and the integration.
    pub fn seal(&self, upstream_id: &str, token_id: &str, integration_id: &str) -> Option<String> {
        if !valid_upstream_id(upstream_id) {
            return None;
        }
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = binding(token_id, integration_id);
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: upstream_id.as_bytes(),
                    aad: &aad,
                },
            )
            .ok()?;
        let mut blob = Vec::with_capacity(NONCE_LEN + ct.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ct);
        Some(format!(
            "{PASSTHROUGH_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(blob)
        ))
    }

    /// The upstream id inside `sealed`, when it was sealed for this token and integration.
    pub fn open(&self, sealed: &str, token_id: &str, integration_id: &str) -> Option<String> {
        let encoded = sealed.trim().strip_prefix(PASSTHROUGH_PREFIX)?;
        if encoded.len() > 2 * MAX_UPSTREAM_ID {
            return None;
        }
        let blob = URL_SAFE_NO_PAD.decode(encoded).ok()?;
        if blob.len() < NONCE_LEN + 16 {
            return None;
        }
        let (nonce, ct) = blob.split_at(NONCE_LEN);
        let aad = binding(token_id, integration_id);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .ok()?;
        let id = String::from_utf8(plain).ok()?;
        valid_upstream_id(&id).then_some(id)
    }
}

/// A new aggregated session id.
pub fn new_aggregated_id() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{AGGREGATED_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The hash the session table keys an aggregated id by; `None` for something that cannot be one of ours.
pub fn aggregated_id_hash(id: &str) -> Option<String> {
    let id = id.trim();
    let rest = id.strip_prefix(AGGREGATED_PREFIX)?;
    if rest.len() != 43
        || !rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    // One string, not one per byte: this runs on every request to an aggregated endpoint.
    Some(hex::encode(Sha256::digest(id.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aggregated_id_is_keyed_by_the_lowercase_hex_of_its_sha256_as_stored_sessions_expect() {
        let id = format!("{AGGREGATED_PREFIX}{}xyz", "Ab-_".repeat(10));
        assert_eq!(
            aggregated_id_hash(&id).as_deref(),
            Some("b694bbe1d5b0ca165a4d90ea5b6a4d2878310424d19d304e5202b82f7aa2d1d4")
        );
        assert_eq!(aggregated_id_hash("pbg_short"), None);
    }

    #[test]
    fn a_sealed_id_opens_only_for_its_token_and_integration() {
        let s = Sealer::new(&[7u8; 32]);
        let sealed = s.seal("upstream-session-1", "tok_a", "int_1").unwrap();
        assert!(sealed.starts_with(PASSTHROUGH_PREFIX));
        assert!(!sealed.contains("upstream-session-1"));
        assert!(
            valid_upstream_id(&sealed),
            "usable as a header value: {sealed}"
        );
        assert_eq!(
            s.open(&sealed, "tok_a", "int_1").as_deref(),
            Some("upstream-session-1")
        );
        assert_eq!(s.open(&sealed, "tok_b", "int_1"), None);
        assert_eq!(s.open(&sealed, "tok_a", "int_2"), None);
        assert_eq!(s.open(&sealed, "tok_ai", "nt_1"), None);
        // Two seals of the same id differ (random nonce), and another key opens neither.
        let again = s.seal("upstream-session-1", "tok_a", "int_1").unwrap();
        assert_ne!(sealed, again);
        assert_eq!(
            Sealer::new(&[8u8; 32]).open(&sealed, "tok_a", "int_1"),
            None
        );
    }

    #[test]
    fn garbage_never_opens_and_never_panics() {
        let s = Sealer::new(&[1u8; 32]);
        for junk in [
            "",
            "pbs_",
            "pbs_!!!",
            "pbs_AAAA",
            "other",
            &"pbs_".repeat(2000),
        ] {
            assert_eq!(s.open(junk, "t", "i"), None, "{junk}");
        }
        let sealed = s.seal("abc", "t", "i").unwrap();
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            s.open(&String::from_utf8(tampered).unwrap(), "t", "i"),
            None
        );
        assert_eq!(s.seal("bad id with spaces", "t", "i"), None);
        assert_eq!(s.seal(&"x".repeat(MAX_UPSTREAM_ID + 1), "t", "i"), None);
    }

    #[test]
    fn aggregated_ids_are_random_and_hashed_for_storage() {
        let a = new_aggregated_id();
        let b = new_aggregated_id();
        assert_ne!(a, b);
        let h = aggregated_id_hash(&a).unwrap();
        assert_eq!(h.len(), 64);
        assert_ne!(h, aggregated_id_hash(&b).unwrap());
        assert_eq!(aggregated_id_hash("pbg_short"), None);
        assert_eq!(aggregated_id_hash(&a.replace("pbg_", "pbs_")), None);
    }
}
