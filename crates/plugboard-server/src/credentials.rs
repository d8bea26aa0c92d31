//! What every cached credential (API tokens, browser sessions) shares: the revocation watch, and how often a use is
//! written down.
//!
//! Verified credentials are cached in memory so a request does not cost a database round-trip. One poller per
//! instance reads the store's credential generation every [`POLL_INTERVAL`]; the generation grows in the same
//! transaction as every revocation (a token revoked, a session ended, a user removed), by any process. A cached
//! entry is tagged with the generation seen *before* its lookup and trusted only while that is still the current
//! one, so a revocation anywhere fails everywhere within a second, also when it lands between a lookup and the
//! caching of its answer. If the poller has not succeeded recently, caches are bypassed rather than trusted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use plugboard_store::Store;

pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Cached entries are trusted only while the last successful poll is younger than this.
const FRESHNESS: Duration = Duration::from_millis(700);
/// A credential's last use is written at most this often (the write is a conditional update, so across instances
/// too): never a database write per request.
pub const LAST_USE_INTERVAL_MS: i64 = 60_000;
/// Most entries a cache holds before it starts over.
pub(crate) const MAX_ENTRIES: usize = 100_000;

struct PollState {
    generation: Option<i64>,
    last_ok: Option<Instant>,
}

/// The credential generation as last polled.
pub struct RevocationWatch {
    store: Arc<dyn Store>,
    state: Mutex<PollState>,
}

impl RevocationWatch {
    pub fn new(store: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(RevocationWatch {
            store,
            state: Mutex::new(PollState {
                generation: None,
                last_ok: None,
            }),
        })
    }

    /// Runs the poller until the watch is dropped.
    pub fn spawn_poller(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(watch) = weak.upgrade() else { break };
                watch.poll_once().await;
            }
        });
    }

    pub async fn poll_once(&self) {
        match self.store.credential_generation().await {
            Ok(n) => {
                let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
                s.generation = Some(n);
                s.last_ok = Some(Instant::now());
            }
            Err(e) => tracing::warn!(
                error = %e,
                "credential revocation poll failed; every request checks its credential in the database until it works again"
            ),
        }
    }

    /// The current generation, or `None` when the last successful poll is too old to trust a cache.
    pub fn current(&self) -> Option<i64> {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match (s.generation, s.last_ok) {
            (Some(g), Some(at)) if at.elapsed() < FRESHNESS => Some(g),
            _ => None,
        }
    }
}

/// Whether a use at `now` should be written down, given the last one recorded.
pub(crate) fn use_due(last_used_at: Option<i64>, now: i64) -> bool {
    last_used_at.is_none_or(|t| now.saturating_sub(t) >= LAST_USE_INTERVAL_MS)
}

/// How long a cached credential is trusted without asking the database again (a revocation reaches it sooner,
/// through the generation).
const ENTRY_TTL: Duration = Duration::from_secs(60);

/// Values by key (credentials by the SHA-256 of their secret; the gateway's access decisions), each entry tagged
/// with the generation read before its lookup: an entry of another generation, or older than the cache's
/// lifetime ([`ENTRY_TTL`] for credentials), is not trusted. Past [`MAX_ENTRIES`] it starts over.
pub(crate) struct GenerationCache<V, K = [u8; 32]> {
    entries: RwLock<HashMap<K, Cached<V>>>,
    ttl: Duration,
}

struct Cached<V> {
    value: V,
    generation: i64,
    at: Instant,
}

impl<V: Clone> GenerationCache<V> {
    /// A credential cache.
    pub(crate) fn new() -> Self {
        GenerationCache::with_ttl(ENTRY_TTL)
    }
}

impl<V: Clone, K: Eq + std::hash::Hash> GenerationCache<V, K> {
    pub(crate) fn with_ttl(ttl: Duration) -> Self {
        GenerationCache {
            entries: RwLock::new(HashMap::new()),
            ttl,
        }
    }

    /// The entry for `key`, if it was stored under `generation` less than the lifetime ago.
    pub(crate) fn get<Q>(&self, key: &Q, generation: Option<i64>) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + std::hash::Hash + ?Sized,
    {
        let g = generation?;
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .filter(|c| c.generation == g && c.at.elapsed() < self.ttl)
            .map(|c| c.value.clone())
    }

    /// Remembers `value`, looked up after `generation` was read (nothing is kept while the generation is unknown).
    pub(crate) fn insert(&self, key: K, generation: Option<i64>, value: V) {
        let Some(g) = generation else { return };
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(
            key,
            Cached {
                value,
                generation: g,
                at: Instant::now(),
            },
        );
    }

    /// Changes the entry for `hash` in place, if there is one.
    pub(crate) fn update(&self, hash: &K, change: impl FnOnce(&mut V)) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = entries.get_mut(hash) {
            change(&mut c.value);
        }
    }
}
