//! Guard configuration.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

/// What the guard lets through, and how long and how much it waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressConfig {
    /// Opens private, loopback, CGNAT and ULA ranges (matched against the embedded IPv4 address for mapped forms);
    /// never the hard-blocked ones: link-local and cloud metadata, multicast, reserved, broadcast, unspecified.
    pub allow_cidrs: Vec<IpNet>,
    /// Bound on resolving and connecting; never more than `total_timeout`.
    pub connect_timeout: Duration,
    /// End to end, including redirects and reading the body (`PLUGBOARD_PROBE_TIMEOUT_MS`).
    pub total_timeout: Duration,
    /// Bodies are cut at this size (`Response::truncated`).
    pub max_response_bytes: usize,
    /// Redirects followed at most, when a request asks to follow them.
    pub max_redirects: usize,
}

impl Default for EgressConfig {
    fn default() -> Self {
        Self {
            allow_cidrs: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(10),
            max_response_bytes: 1024 * 1024,
            max_redirects: 5,
        }
    }
}

impl EgressConfig {
    /// `connect_timeout`, capped at `total_timeout`.
    pub fn effective_connect_timeout(&self) -> Duration {
        self.connect_timeout.min(self.total_timeout)
    }
}

/// Parses `PLUGBOARD_EGRESS_ALLOW_CIDRS`: comma-separated CIDRs or bare addresses (a bare address is a /32 or /128),
/// whitespace around items ignored, empty items skipped; an empty string gives an empty list.
pub fn parse_allow_cidrs(s: &str) -> Result<Vec<IpNet>, String> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let net = match item.parse::<IpNet>() {
            Ok(net) => net.trunc(),
            Err(_) => match item.parse::<IpAddr>() {
                Ok(ip) => IpNet::from(ip),
                Err(_) => {
                    let shown: String = item.chars().take(64).collect();
                    return Err(format!(
                        "invalid CIDR {shown:?} in the egress allow list: expected an address or a network \
                         such as 10.0.0.0/8, 192.168.1.10 or fd00::/8, separated by commas"
                    ));
                }
            },
        };
        if !out.contains(&net) {
            out.push(net);
        }
    }
    Ok(out)
}
