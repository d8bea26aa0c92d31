//! Agent tokens: making them, and verifying them through an in-memory cache.
//!
//! Agent tokens are `pba_` + 43 characters of base64url (32 random bytes); only their SHA-256 is stored. They reach
//! only the MCP gateway. Verification works exactly like a person's token ([`crate::api_tokens`]): a cached entry is
//! trusted only while the credential generation it was read under is current ([`crate::credentials`]), so a token
//! revoked on any instance fails on every instance within a second; a token past its `expires_at` is refused; a use
//! is written to `last_used_at` at most once a minute.

use std::sync::Arc;

use base64::Engine;
use rand::RngCore;

use plugboard_store::{AgentTokenOwner, Store};

use crate::api_tokens::hash_token;
use crate::clock::Clock;
use crate::credentials::{use_due, GenerationCache, RevocationWatch, LAST_USE_INTERVAL_MS};
use crate::error::ApiError;

pub const AGENT_TOKEN_PREFIX: &str = "pba_";

/// A new agent token: the plaintext (shown once) and the hash to store.
pub fn generate_agent_token() -> (String, [u8; 32]) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = format!(
        "{AGENT_TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hash = hash_token(&token);
    (token, hash)
}

/// Whether a presented bearer token is meant as an agent token (by its prefix).
pub fn looks_like_agent_token(token: &str) -> bool {
    token.starts_with(AGENT_TOKEN_PREFIX)
}

/// A syntactically plausible agent token: cheap rejection before any lookup.
fn well_formed(token: &str) -> bool {
    token.len() == AGENT_TOKEN_PREFIX.len() + 43
        && token.starts_with(AGENT_TOKEN_PREFIX)
        && token[AGENT_TOKEN_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What a presented agent token is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentTokenCheck {
    Valid(AgentTokenOwner),
    /// Known and unrevoked, but past its `expires_at`.
    Expired,
    /// Malformed, unknown or revoked.
    Unknown,
}

pub struct AgentTokenCache {
    store: Arc<dyn Store>,
    watch: Arc<RevocationWatch>,
    clock: Clock,
    entries: GenerationCache<AgentTokenOwner>,
}

impl AgentTokenCache {
    pub fn new(store: Arc<dyn Store>, watch: Arc<RevocationWatch>, clock: Clock) -> Arc<Self> {
        Arc::new(AgentTokenCache {
            store,
            watch,
            clock,
            entries: GenerationCache::new(),
        })
    }

    /// What this bearer token is (recording its use at most once a minute).
    pub async fn check(&self, token: &str) -> Result<AgentTokenCheck, ApiError> {
        if !well_formed(token) {
            return Ok(AgentTokenCheck::Unknown);
        }
        let hash = hash_token(token);
        let generation = self.watch.current();
        let owner = match self.entries.get(&hash, generation) {
            Some(owner) => owner,
            None => {
                // `generation` was read before this lookup: a revocation landing in between makes the entry stale.
                let found = self
                    .store
                    .agent_token_owner(&hash)
                    .await
                    .map_err(ApiError::from)?;
                let Some(owner) = found else {
                    return Ok(AgentTokenCheck::Unknown);
                };
                self.entries.insert(hash, generation, owner.clone());
                owner
            }
        };
        let now = self.clock.now_ms();
        if owner.expires_at.is_some_and(|t| now >= t) {
            return Ok(AgentTokenCheck::Expired);
        }
        if use_due(owner.last_used_at, now) {
            self.record_use(&hash, &owner, now).await;
        }
        Ok(AgentTokenCheck::Valid(owner))
    }

    /// Writes the use down (at most one write a minute per token across instances) and remembers it. A failed
    /// write is logged, never a failed request.
    async fn record_use(&self, hash: &[u8; 32], owner: &AgentTokenOwner, now: i64) {
        if let Err(e) = self
            .store
            .touch_agent_token(&owner.id, now, LAST_USE_INTERVAL_MS)
            .await
        {
            tracing::warn!(error = %e, "could not record an agent token's last use");
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
    fn generated_agent_tokens_have_their_prefix_and_32_random_bytes() {
        let (token, hash) = generate_agent_token();
        assert!(well_formed(&token), "{token}");
        assert!(looks_like_agent_token(&token));
        assert_eq!(hash, hash_token(&token));
        assert_ne!(token, generate_agent_token().0);
        // A person's token never looks like an agent token.
        assert!(!looks_like_agent_token(
            &crate::api_tokens::generate_token().0
        ));
    }
}
