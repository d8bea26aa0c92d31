//! API tokens: making them, and verifying them through an in-memory cache.
//!
//! Tokens are `pb_` + 43 characters of base64url (32 random bytes). Only their SHA-256 is stored. Verified tokens are
//! cached in memory so a request does not cost a database round-trip; the cache trusts an entry only while the
//! credential generation it was read under is current (see [`crate::credentials`]), so a token revoked by another
//! process fails within one second. A token past its `expires_at` is refused (by the [`Clock`]); a use is written
//! to `last_used_at` at most once a minute.

use std::sync::Arc;

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use plugboard_store::{Store, TokenOwner};

use crate::clock::Clock;
use crate::credentials::{use_due, GenerationCache, RevocationWatch, LAST_USE_INTERVAL_MS};
use crate::error::ApiError;

pub const TOKEN_PREFIX: &str = "pb_";

/// A new token: the plaintext (shown once) and the hash to store.
pub fn generate_token() -> (String, [u8; 32]) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hash = hash_token(&token);
    (token, hash)
}

pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A syntactically plausible token: cheap rejection before any lookup.
fn well_formed(token: &str) -> bool {
    token.len() == TOKEN_PREFIX.len() + 43
        && token.starts_with(TOKEN_PREFIX)
        && token[TOKEN_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What a presented token is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenCheck {
    Valid(TokenOwner),
    /// Known and unrevoked, but past its `expires_at`.
    Expired,
    /// Malformed, unknown or revoked.
    Unknown,
}

pub struct TokenCache {
    store: Arc<dyn Store>,
    watch: Arc<RevocationWatch>,
    clock: Clock,
    entries: GenerationCache<TokenOwner>,
}

impl TokenCache {
    pub fn new(store: Arc<dyn Store>, watch: Arc<RevocationWatch>, clock: Clock) -> Arc<Self> {
        Arc::new(TokenCache {
            store,
            watch,
            clock,
            entries: GenerationCache::new(),
        })
    }

    /// Whose bearer token this is, or `None` when it is unknown, revoked or expired.
    pub async fn authenticate(&self, token: &str) -> Result<Option<TokenOwner>, ApiError> {
        Ok(match self.check(token).await? {
            TokenCheck::Valid(owner) => Some(owner),
            TokenCheck::Expired | TokenCheck::Unknown => None,
        })
    }

    /// What this bearer token is (recording its use at most once a minute).
    pub async fn check(&self, token: &str) -> Result<TokenCheck, ApiError> {
        if !well_formed(token) {
            return Ok(TokenCheck::Unknown);
        }
        let hash = hash_token(token);
        let generation = self.watch.current();
        let owner = match self.entries.get(&hash, generation) {
            Some(owner) => owner,
            None => {
                // `generation` was read before this lookup: a revocation landing in between makes the entry stale.
                let found = self
                    .store
                    .token_owner(&hash)
                    .await
                    .map_err(ApiError::from)?;
                let Some(owner) = found else {
                    return Ok(TokenCheck::Unknown);
                };
                self.entries.insert(hash, generation, owner.clone());
                owner
            }
        };
        let now = self.clock.now_ms();
        if owner.expires_at.is_some_and(|t| now >= t) {
            return Ok(TokenCheck::Expired);
        }
        if use_due(owner.last_used_at, now) {
            self.record_use(&hash, &owner, now).await;
        }
        Ok(TokenCheck::Valid(owner))
    }

    /// Writes the use down (a conditional update: at most one write a minute per token across instances) and
    /// remembers it. A failed write is logged, never a failed request.
    async fn record_use(&self, hash: &[u8; 32], owner: &TokenOwner, now: i64) {
        if let Err(e) = self
            .store
            .touch_token(&owner.token_id, now, LAST_USE_INTERVAL_MS)
            .await
        {
            tracing::warn!(error = %e, "could not record a token's last use");
            return;
        }
        self.entries
            .update(hash, |owner| owner.last_used_at = Some(now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_have_the_prefix_and_32_random_bytes() {
        let (token, hash) = generate_token();
        assert!(well_formed(&token), "{token}");
        assert_eq!(hash, hash_token(&token));
        let (other, _) = generate_token();
        assert_ne!(token, other);
    }

    #[test]
    fn malformed_tokens_are_rejected_without_a_lookup() {
        for t in [
            "",
            "pb_",
            "pb_short",
            "xx_0123456789012345678901234567890123456789012",
            &"pb_".repeat(100),
        ] {
            assert!(!well_formed(t), "{t}");
        }
    }
}
