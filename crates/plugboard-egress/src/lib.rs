//! The one SSRF guard for every outbound connection Plugboard makes on a user's behalf.
//!
//! - [`classify`] sorts an address into the IANA special-purpose ranges (IPv4-mapped, IPv4-compatible, NAT64 and
//!   6to4 forms are unwrapped; Teredo is refused outright).
//! - [`Guard::check_url`] refuses schemes other than http/https, userinfo, cloud-metadata names and refused
//!   addresses, literal or resolved (a name is refused if any of its addresses is).
//! - [`Guard::send`] goes through one reqwest client built per guard: no proxies, no automatic redirects, and a DNS
//!   resolver that checks every answer, so the connection only ever goes to an address that was checked. Redirects
//!   are followed by hand, each hop re-checked; timeouts and a body cap bound the work.
//! - [`Guard::connect_tcp`] is the guarded dialer for non-HTTP protocols.

mod classify;
mod config;
mod error;
mod guard;

pub use classify::{classify, BlockedAddr, Category, Embedding};
pub use config::{parse_allow_cidrs, EgressConfig};
pub use error::EgressError;
pub use guard::{Guard, Request, Resolve, Response, SystemResolver};
pub use ipnet::IpNet;
