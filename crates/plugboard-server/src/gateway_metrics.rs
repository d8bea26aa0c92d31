//! The MCP gateway's metrics: `tools/call` counts and latency by integration and outcome, kept in memory per
//! instance for the metrics page (`service-contract.md`, Metrics) to render. This type only counts; rendering is
//! the metrics page's.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use plugboard_gateway::Outcome;

/// Upper bounds of the latency histogram's buckets, in seconds (Prometheus style: cumulative, plus `+Inf`).
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// One (integration, outcome) series.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CallSeries {
    pub count: u64,
    /// Sum of the durations, in seconds.
    pub sum_seconds: f64,
    /// Calls at or under each bound of [`LATENCY_BUCKETS`] (cumulative).
    pub buckets: [u64; LATENCY_BUCKETS.len()],
}

/// Gateway calls by (integration id, outcome).
#[derive(Debug, Default)]
pub struct GatewayMetrics {
    series: Mutex<BTreeMap<(String, &'static str), CallSeries>>,
}

impl GatewayMetrics {
    pub fn new() -> GatewayMetrics {
        GatewayMetrics::default()
    }

    /// Counts one `tools/call` through the gateway and observes its latency.
    pub fn gateway_call(&self, integration_id: &str, outcome: Outcome, duration: Duration) {
        let seconds = duration.as_secs_f64();
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let s = series
            .entry((integration_id.to_owned(), outcome.as_str()))
            .or_default();
        s.count += 1;
        s.sum_seconds += seconds;
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                s.buckets[i] += 1;
            }
        }
    }

    /// Every series so far: `((integration id, outcome), series)`, ordered.
    pub fn snapshot(&self) -> Vec<((String, &'static str), CallSeries)> {
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        series.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

impl plugboard_gateway::Metrics for GatewayMetrics {
    fn gateway_call(&self, integration_id: &str, outcome: Outcome, duration: Duration) {
        GatewayMetrics::gateway_call(self, integration_id, outcome, duration);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_by_integration_and_outcome_with_cumulative_buckets() {
        let m = GatewayMetrics::new();
        m.gateway_call("i1", Outcome::Ok, Duration::from_millis(2));
        m.gateway_call("i1", Outcome::Ok, Duration::from_millis(20));
        m.gateway_call("i1", Outcome::Denied, Duration::ZERO);
        let snap = m.snapshot();
        assert_eq!(snap.len(), 2);
        let ((id, outcome), ok) = &snap[1];
        assert_eq!((id.as_str(), *outcome), ("i1", "ok"));
        assert_eq!(ok.count, 2);
        assert_eq!(ok.buckets[0], 0);
        assert_eq!(ok.buckets[1], 1);
        assert_eq!(ok.buckets[4], 2);
        assert_eq!(snap[0].0 .1, "denied");
    }
}
