//! Removing submitted secrets from everything a probe says back: the redactor lives in
//! [`plugboard_egress::redact`], shared with the MCP gateway, which redacts everything it relays.

pub use plugboard_egress::redact::*;
