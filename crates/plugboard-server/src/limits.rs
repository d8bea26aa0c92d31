//! Abuse limits for verify: a token bucket per workspace and a bound on probes running at once.
//!
//! Both live in memory, **per server instance**: with several instances behind a load balancer each one allows
//! [`VerifyLimits::PER_MINUTE`] verifies a minute per workspace and [`VerifyLimits::MAX_CONCURRENT`] probes at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Buckets beyond this many are pruned (the full ones first: a full bucket is the same as no bucket).
const MAX_BUCKETS: usize = 10_000;

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct VerifyLimits {
    capacity: f64,
    per_second: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
    probes: Arc<Semaphore>,
}

impl Default for VerifyLimits {
    fn default() -> Self {
        VerifyLimits::new(Self::PER_MINUTE, Self::MAX_CONCURRENT)
    }
}

impl VerifyLimits {
    /// Verifies a minute per workspace (also the burst).
    pub const PER_MINUTE: u32 = 30;
    /// Outbound probes running at once on this instance.
    pub const MAX_CONCURRENT: usize = 16;

    pub fn new(per_minute: u32, max_concurrent: usize) -> VerifyLimits {
        let capacity = f64::from(per_minute.max(1));
        VerifyLimits {
            capacity,
            per_second: capacity / 60.0,
            buckets: Mutex::new(HashMap::new()),
            probes: Arc::new(Semaphore::new(max_concurrent.max(1))),
        }
    }

    /// Takes one verify from `workspace_id`'s bucket, or says how long until one is available.
    pub fn take(&self, workspace_id: &str) -> Result<(), Duration> {
        self.take_at(workspace_id, Instant::now())
    }

    fn take_at(&self, workspace_id: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(workspace_id) {
            let (capacity, rate) = (self.capacity, self.per_second);
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < capacity
            });
            if buckets.len() >= MAX_BUCKETS {
                buckets.clear();
            }
        }
        let bucket = buckets.entry(workspace_id.to_owned()).or_insert(Bucket {
            tokens: self.capacity,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.per_second;
            Err(Duration::from_secs_f64(wait.clamp(0.0, 3600.0)))
        }
    }

    /// A slot for one outbound probe, waiting at most `wait`; `None` when none came free in time.
    pub async fn probe_slot(&self, wait: Duration) -> Option<OwnedSemaphorePermit> {
        tokio::time::timeout(wait, Arc::clone(&self.probes).acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
    }
}

/// `Retry-After` in whole seconds, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_allows_a_burst_then_refills() {
        let l = VerifyLimits::new(30, 4);
        let t0 = Instant::now();
        for _ in 0..30 {
            assert!(l.take_at("w", t0).is_ok());
        }
        let wait = l.take_at("w", t0).unwrap_err();
        assert!(wait <= Duration::from_secs(2) && wait > Duration::ZERO);
        assert_eq!(retry_after_secs(wait), 2);
        assert!(l.take_at("other", t0).is_ok(), "buckets are per workspace");
        assert!(l.take_at("w", t0 + Duration::from_secs(2)).is_ok());
        assert!(l.take_at("w", t0 + Duration::from_secs(2)).is_err());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    }

    #[tokio::test]
    async fn probe_slots_are_bounded() {
        let l = VerifyLimits::new(30, 1);
        let first = l.probe_slot(Duration::from_millis(10)).await;
        assert!(first.is_some());
        assert!(l.probe_slot(Duration::from_millis(10)).await.is_none());
        drop(first);
        assert!(l.probe_slot(Duration::from_millis(10)).await.is_some());
    }
}
