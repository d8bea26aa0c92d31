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
//! - [`Guard::send_stream`] is the relay's request: the same checks, the body read as a stream under a silence bound.
//! - [`redact`] removes secrets, in every encoding a provider could echo them in, from what comes back.

mod classify;
mod config;
mod error;
mod guard;
pub mod redact;
mod stream;

pub use classify::{classify, BlockedAddr, Category, Embedding};
pub use config::{parse_allow_cidrs, EgressConfig};
pub use error::EgressError;
pub use guard::{Guard, RefusalObserver, Request, Resolve, Response, SystemResolver};
pub use ipnet::IpNet;
pub use stream::{BodyStream, StreamRequest, StreamResponse};
