//! API tokens: making them, and verifying them through an in-memory cache.
//!
//! Tokens are `pb_` + 43 characters of base64url (32 random bytes). Only their SHA-256 is stored. Verified tokens are
//! cached in memory so a request does not cost a database round-trip; a poller watches the store's revocation count
//! (every [`POLL_INTERVAL`]) and drops the cache when it changes, so a token revoked by another process fails within
//! one second. If the poller has not succeeded recently, the cache is bypassed rather than trusted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use plugboard_store::{Store, TokenOwner};

use crate::error::ApiError;

pub const TOKEN_PREFIX: &str = "pb_";
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Cached entries are trusted only while the last successful poll is younger than this.
const FRESHNESS: Duration = Duration::from_millis(700);
const ENTRY_TTL: Duration = Duration::from_secs(60);
const MAX_ENTRIES: usize = 100_000;

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

struct Cached {
    owner: TokenOwner,
    at: Instant,
}

struct PollState {
    revocations: Option<i64>,
    last_ok: Option<Instant>,
}

pub struct TokenCache {
    store: Arc<dyn Store>,
    entries: RwLock<HashMap<[u8; 32], Cached>>,
    poll: Mutex<PollState>,
}

impl TokenCache {
    pub fn new(store: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(TokenCache {
            store,
            entries: RwLock::new(HashMap::new()),
            poll: Mutex::new(PollState {
                revocations: None,
                last_ok: None,
            }),
        })
    }

    /// Runs the revocation poller until the cache is dropped.
    pub fn spawn_poller(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(cache) = weak.upgrade() else { break };
                cache.poll_once().await;
            }
        });
    }

    pub async fn poll_once(&self) {
        match self.store.revocation_count().await {
            Ok(n) => {
                let changed = {
                    let mut p = self.poll.lock().unwrap_or_else(|e| e.into_inner());
                    let changed = p.revocations != Some(n);
                    p.revocations = Some(n);
                    p.last_ok = Some(Instant::now());
                    changed
                };
                if changed {
                    self.entries
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .clear();
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "token revocation poll failed; bypassing the token cache")
            }
        }
    }

    fn cache_trusted(&self) -> bool {
        let p = self.poll.lock().unwrap_or_else(|e| e.into_inner());
        p.last_ok.is_some_and(|t| t.elapsed() < FRESHNESS)
    }

    /// Whose bearer token this is, or `None` when it is unknown or revoked.
    pub async fn authenticate(&self, token: &str) -> Result<Option<TokenOwner>, ApiError> {
        if !well_formed(token) {
            return Ok(None);
        }
        let hash = hash_token(token);
        if self.cache_trusted() {
            let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = entries.get(&hash) {
                if c.at.elapsed() < ENTRY_TTL {
                    return Ok(Some(c.owner.clone()));
                }
            }
        }
        // Read the revocation generation before the lookup: if a revocation lands in between, the poller sees a
        // change afterwards and drops what we insert.
        let owner = self
            .store
            .token_owner(&hash)
            .await
            .map_err(ApiError::unavailable)?;
        let Some(owner) = owner else { return Ok(None) };
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(
            hash,
            Cached {
                owner: owner.clone(),
                at: Instant::now(),
            },
        );
        Ok(Some(owner))
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
