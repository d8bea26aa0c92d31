//! Materialised upstreams, cached per integration revision: the endpoint, the headers ready to send, and the
//! redactor for everything the upstream says back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use plugboard_egress::redact::Redactor;
use secrecy::ExposeSecret;

use crate::ports::{IntegrationInfo, Integrations, MaterializeError};

/// A cached answer is used at most this long even when nothing in it expires, so credentials changed without a
/// new revision are picked up.
const MAX_AGE: Duration = Duration::from_secs(60);

/// Header names the gateway sets itself; an integration's copies are dropped.
const OWN_HEADERS: &[&str] = &[
    "accept",
    "content-type",
    "content-length",
    "host",
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
    "connection",
    "transfer-encoding",
    "te",
    "upgrade",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
];

/// An upstream ready to use. Holds secrets: never logged (`Debug` shows no value).
pub struct Prepared {
    endpoint: url::Url,
    headers: HeaderMap,
    pub redactor: Redactor,
    refresh_after: Option<SystemTime>,
    fetched: Instant,
    revision: i64,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("revision", &self.revision)
            .finish_non_exhaustive()
    }
}

impl Prepared {
    pub fn endpoint(&self) -> &url::Url {
        &self.endpoint
    }

    /// The integration's headers (values marked sensitive).
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    fn fresh(&self, revision: i64) -> bool {
        self.revision == revision
            && self.fetched.elapsed() < MAX_AGE
            && self.refresh_after.is_none_or(|t| SystemTime::now() < t)
    }

    /// Redacts and bounds a message for the agent.
    pub fn finish(&self, message: &str) -> String {
        plugboard_egress::redact::finish(&self.redactor, message)
    }
}

/// Turns the server's answer into headers ready to send.
fn prepare(
    target: crate::ports::UpstreamTarget,
    revision: i64,
) -> Result<Prepared, MaterializeError> {
    let redactor = Redactor::new(target.secrets.iter().map(|s| s.expose_secret()));
    let mut headers = HeaderMap::new();
    for (name, value) in &target.headers {
        let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
            MaterializeError::new(
                "the integration has a header whose name is not a valid HTTP header name; fix the integration",
            )
        })?;
        if OWN_HEADERS.contains(&name.as_str()) {
            continue;
        }
        let mut value = HeaderValue::from_str(value.expose_secret()).map_err(|_| {
            MaterializeError::new(format!(
                "the integration's header {name} has a value that is not valid in an HTTP header (a line break \
                 or another control character); fix the integration's credentials"
            ))
        })?;
        value.set_sensitive(true);
        headers.append(name, value);
    }
    let endpoint = url::Url::parse(target.endpoint().trim()).map_err(|_| {
        MaterializeError::new(
            "the integration's MCP endpoint is not a valid URL; fix the integration",
        )
    })?;
    Ok(Prepared {
        endpoint,
        headers,
        redactor,
        refresh_after: target.refresh_after,
        fetched: Instant::now(),
        revision,
    })
}

/// The cache, with one materialisation at a time per integration.
#[derive(Default)]
pub struct Upstreams {
    entries: Mutex<HashMap<String, Arc<Prepared>>>,
    flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Upstreams {
    fn cached(&self, info: &IntegrationInfo) -> Option<Arc<Prepared>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(&info.id)
            .filter(|p| p.fresh(info.revision))
            .cloned()
    }

    /// The prepared upstream of `info`, materialised through `source` when the cache has none that is fresh.
    pub async fn get(
        &self,
        source: &dyn Integrations,
        info: &IntegrationInfo,
    ) -> Result<Arc<Prepared>, MaterializeError> {
        if let Some(p) = self.cached(info) {
            return Ok(p);
        }
        let flight = {
            let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(flights.entry(info.id.clone()).or_default())
        };
        let _one_at_a_time = flight.lock().await;
        if let Some(p) = self.cached(info) {
            return Ok(p);
        }
        let target = source.materialize(info).await?;
        let prepared = Arc::new(prepare(target, info.revision)?);
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(info.id.clone(), Arc::clone(&prepared));
        Ok(prepared)
    }

    /// Forgets entries that are no longer fresh (called by the janitor).
    pub fn prune(&self) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, p| p.fresh(p.revision));
        let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
        flights.retain(|_, f| Arc::strong_count(f) > 1);
    }
}
