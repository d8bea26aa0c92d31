//! Concurrency limits: per integration (the upstream is not flooded) and per token (one agent cannot take the
//! gateway for itself). Requests beyond a bound wait, up to `queue_wait`, then are refused.
//!
//! The integration bound is the upstream's, over every instance: with several instances running, each takes an
//! equal share of it ([`Limits::set_instances`], from the instances the server sees in the database), so together
//! they never send more than `per_integration` requests at once to one upstream. The token bounds protect this
//! instance and are its own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The bounds, from [`crate::GatewayConfig`].
#[derive(Clone, Copy, Debug)]
pub struct LimitConfig {
    /// Concurrent upstream requests per integration, over all instances (each takes an equal share).
    pub per_integration: usize,
    /// Concurrent gateway requests per token (and per instance), over all integrations.
    pub per_token: usize,
    /// Open server streams (`GET` on a passthrough endpoint) per token; refused at once beyond it.
    pub streams_per_token: usize,
    /// How long a request waits for a slot before it is refused.
    pub queue_wait: Duration,
}

/// Why a request got no slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The integration had `limit` requests in flight through this instance for the whole wait: its share of
    /// `per_integration` over `instances` running instances.
    Integration {
        limit: usize,
        instances: usize,
        waited: Duration,
    },
    /// The token had `per_token` requests in flight for the whole wait.
    Token { limit: usize, waited: Duration },
    /// The token holds `streams_per_token` open streams.
    Streams { limit: usize },
}

impl Refused {
    pub fn message(&self) -> String {
        match self {
            Refused::Integration {
                limit,
                instances: 1,
                waited,
            } => format!(
                "this integration already has {limit} requests in progress and this one waited {} s for a \
                 free slot; retry later or send fewer requests at once",
                waited.as_secs()
            ),
            Refused::Integration {
                limit,
                instances,
                waited,
            } => format!(
                "this integration already has {limit} requests in progress through this instance (its share of \
                 the integration's bound, shared by the {instances} instances running) and this one waited {} s \
                 for a free slot; retry later or send fewer requests at once",
                waited.as_secs()
            ),
            Refused::Token { limit, waited } => format!(
                "this token already has {limit} gateway requests in progress and this one waited {} s for a \
                 free slot; retry later or send fewer requests at once",
                waited.as_secs()
            ),
            Refused::Streams { limit } => format!(
                "this token already holds {limit} open server streams; close one before opening another"
            ),
        }
    }
}

/// The slots a request holds until its answer is complete (dropping releases them).
#[derive(Debug)]
pub struct Slots {
    _permits: Vec<OwnedSemaphorePermit>,
}

struct Pools {
    integrations: HashMap<String, Arc<Semaphore>>,
    tokens: HashMap<String, Arc<Semaphore>>,
    streams: HashMap<String, Arc<Semaphore>>,
}

/// The limits of this instance.
pub struct Limits {
    config: LimitConfig,
    /// Instances running (this one included), as last seen; at least 1.
    instances: AtomicUsize,
    pools: Mutex<Pools>,
}

fn pool(map: &mut HashMap<String, Arc<Semaphore>>, key: &str, size: usize) -> Arc<Semaphore> {
    if let Some(s) = map.get(key) {
        return Arc::clone(s);
    }
    let s = Arc::new(Semaphore::new(size.max(1)));
    map.insert(key.to_owned(), Arc::clone(&s));
    s
}

/// Drops semaphores nobody holds or waits for (all permits back, no other reference).
fn prune(map: &mut HashMap<String, Arc<Semaphore>>, size: usize) {
    map.retain(|_, s| Arc::strong_count(s) > 1 || s.available_permits() < size.max(1));
}

impl Limits {
    pub fn new(config: LimitConfig) -> Self {
        Limits {
            config,
            instances: AtomicUsize::new(1),
            pools: Mutex::new(Pools {
                integrations: HashMap::new(),
                tokens: HashMap::new(),
                streams: HashMap::new(),
            }),
        }
    }

    pub fn config(&self) -> LimitConfig {
        self.config
    }

    /// Tells how many instances are running (this one included; 0 counts as 1). Each takes an equal share of the
    /// integration bound, at least one request: `per_integration / instances`, rounded down. A change applies to
    /// requests that take a slot from then on (those holding one keep it).
    pub fn set_instances(&self, instances: usize) {
        let instances = instances.max(1);
        // Under the pools' lock, as the share is read where the semaphores are made: every semaphore in the map
        // has the current share's size.
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        if self.instances.swap(instances, Ordering::Relaxed) != instances {
            pools.integrations.clear();
        }
    }

    /// This instance's share of the integration bound, and the instances it is shared with.
    pub fn integration_share(&self) -> (usize, usize) {
        let instances = self.instances.load(Ordering::Relaxed);
        ((self.config.per_integration / instances).max(1), instances)
    }

    fn semaphores(
        &self,
        token_id: &str,
        integration_id: Option<&str>,
    ) -> (Arc<Semaphore>, Option<Arc<Semaphore>>) {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        let (share, _) = self.integration_share();
        let token = pool(&mut pools.tokens, token_id, self.config.per_token);
        let integration = integration_id.map(|id| pool(&mut pools.integrations, id, share));
        (token, integration)
    }

    /// A slot of the token and, when given, of the integration; waits at most `queue_wait` for both together.
    pub async fn acquire(
        &self,
        token_id: &str,
        integration_id: Option<&str>,
    ) -> Result<Slots, Refused> {
        let (token, integration) = self.semaphores(token_id, integration_id);
        let wait = self.config.queue_wait;
        let deadline = Instant::now() + wait;
        let mut permits = Vec::with_capacity(2);
        match tokio::time::timeout_at(deadline, token.acquire_owned()).await {
            Ok(Ok(p)) => permits.push(p),
            _ => {
                return Err(Refused::Token {
                    limit: self.config.per_token,
                    waited: wait,
                })
            }
        }
        if let Some(integration) = integration {
            match tokio::time::timeout_at(deadline, integration.acquire_owned()).await {
                Ok(Ok(p)) => permits.push(p),
                _ => {
                    let (limit, instances) = self.integration_share();
                    return Err(Refused::Integration {
                        limit,
                        instances,
                        waited: wait,
                    });
                }
            }
        }
        Ok(Slots { _permits: permits })
    }

    /// A stream slot of the token, without waiting.
    pub fn acquire_stream(&self, token_id: &str) -> Result<Slots, Refused> {
        let s = {
            let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
            pool(&mut pools.streams, token_id, self.config.streams_per_token)
        };
        s.try_acquire_owned()
            .map(|p| Slots { _permits: vec![p] })
            .map_err(|_| Refused::Streams {
                limit: self.config.streams_per_token,
            })
    }

    /// Forgets the semaphores of idle tokens and integrations (called by the gateway's janitor).
    pub fn prune(&self) {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        let (share, _) = self.integration_share();
        prune(&mut pools.integrations, share);
        prune(&mut pools.tokens, self.config.per_token);
        prune(&mut pools.streams, self.config.streams_per_token);
    }

    /// How many semaphores are kept (for tests of the pruning).
    pub fn tracked(&self) -> usize {
        let pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools.integrations.len() + pools.tokens.len() + pools.streams.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_integration: usize, per_token: usize) -> Limits {
        Limits::new(LimitConfig {
            per_integration,
            per_token,
            streams_per_token: 2,
            queue_wait: Duration::from_millis(100),
        })
    }

    #[tokio::test]
    async fn requests_beyond_the_integration_bound_wait_and_then_are_refused() {
        let l = limits(2, 100);
        let a = l.acquire("t1", Some("i")).await.unwrap();
        let _b = l.acquire("t2", Some("i")).await.unwrap();
        let refused = l.acquire("t3", Some("i")).await.unwrap_err();
        assert!(matches!(refused, Refused::Integration { limit: 2, .. }));
        assert!(refused.message().contains("2 requests in progress"));
        // Another integration is not affected.
        assert!(l.acquire("t3", Some("other")).await.is_ok());
        // A waiting request gets the slot as soon as one is released.
        let waiter = l.acquire("t3", Some("i"));
        let release = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(a);
        };
        let (got, ()) = tokio::join!(waiter, release);
        assert!(got.is_ok());
    }

    #[tokio::test]
    async fn with_several_instances_each_takes_an_equal_share_of_the_integration_bound() {
        let l = limits(5, 100);
        l.set_instances(2);
        assert_eq!(l.integration_share(), (2, 2));
        let _a = l.acquire("t1", Some("i")).await.unwrap();
        let b = l.acquire("t1", Some("i")).await.unwrap();
        let refused = l.acquire("t1", Some("i")).await.unwrap_err();
        assert!(matches!(
            refused,
            Refused::Integration {
                limit: 2,
                instances: 2,
                ..
            }
        ));
        assert!(
            refused
                .message()
                .contains("2 requests in progress through this instance"),
            "{}",
            refused.message()
        );
        // One instance left: the whole bound again, for the requests that come next.
        l.set_instances(1);
        assert_eq!(l.integration_share(), (5, 1));
        let more: Vec<_> =
            futures_util::future::join_all((0..5).map(|_| l.acquire("t1", Some("i"))))
                .await
                .into_iter()
                .collect::<Result<_, _>>()
                .unwrap();
        assert_eq!(more.len(), 5);
        drop(b);
        // More instances than the bound: each still gets one request at a time; 0 counts as one instance.
        l.set_instances(9);
        assert_eq!(l.integration_share(), (1, 9));
        l.set_instances(0);
        assert_eq!(l.integration_share(), (5, 1));
    }

    #[tokio::test]
    async fn one_token_cannot_take_more_than_its_bound() {
        let l = limits(100, 1);
        let _a = l.acquire("t1", Some("i1")).await.unwrap();
        let refused = l.acquire("t1", Some("i2")).await.unwrap_err();
        assert!(matches!(refused, Refused::Token { limit: 1, .. }));
        assert!(l.acquire("t2", Some("i2")).await.is_ok());
    }

    #[tokio::test]
    async fn streams_are_refused_at_once_beyond_the_bound_and_idle_pools_are_forgotten() {
        let l = limits(1, 1);
        let s1 = l.acquire_stream("t").unwrap();
        let s2 = l.acquire_stream("t").unwrap();
        assert!(matches!(
            l.acquire_stream("t"),
            Err(Refused::Streams { limit: 2 })
        ));
        drop(s1);
        assert!(l.acquire_stream("t").is_ok());
        {
            let _held = l.acquire("t", Some("i")).await.unwrap();
            l.prune();
            assert!(l.tracked() >= 2, "held pools are kept");
        }
        drop(s2);
        l.prune();
        assert_eq!(l.tracked(), 0);
    }
}
