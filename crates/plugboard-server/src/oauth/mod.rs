//! OAuth for integrations: the authorization request, the byo_oauth and mcp_oauth flows, the callback, the token
//! endpoint and refresh.
//!
//! - [`authorize`]: one authorization request (state, PKCE, nonce, URL parameters) for every flow.
//! - [`byo`]: byo_oauth targets from the manifest's `oauth` block and the integration's stored fields.
//! - [`mcp`]: `POST /api/v1/integrations/{id}/oauth/start` for `mcp_oauth` (RFC 9728, RFC 8414 / OpenID discovery,
//!   RFC 7591, PKCE S256, RFC 8707).
//! - [`callback`]: `GET /api/v1/connectors/oauth/callback` completes both flows (the state is looked up in the
//!   database, so any instance can take it); [`page`] renders its HTML answers.
//! - [`token_endpoint`]: the token endpoint client (authorization code and refresh grants, the lenient parser).
//! - [`refresh`]: [`access_token`], which hands out a valid access token and refreshes it first when it expires
//!   within a minute (one refresh per integration at a time, across instances: a compare-and-set lease on the grant
//!   row).
//!
//! Every outbound call goes through the egress guard with redirects off. Provider answers are hostile input: they
//! are size-capped by the guard, parsed leniently (JSON or form-encoded) and never echoed raw. Codes, verifiers,
//! client secrets and tokens never appear in a log line, an error message, a status reason or a page.

pub mod authorize;
pub mod byo;
pub mod callback;
pub mod mcp;
pub mod page;
pub mod refresh;
pub mod token_endpoint;

pub use refresh::{access_token, refresh_at, refresh_margin_ms, TokenError};

/// An access token that expires within this is refreshed before it is handed out (or within half its lifetime,
/// when that is shorter: [`refresh_margin_ms`]).
pub const REFRESH_MARGIN_MS: i64 = 60 * 1000;

/// A provider-supplied text made safe to show: control characters dropped, at most `max` characters, and every
/// occurrence of a known secret (code, verifier, client secret, token) replaced.
pub fn sanitize(text: &str, max: usize, secrets: &[&str]) -> String {
    let mut s: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    // The probe redactor: raw, percent-encoded, JSON-escaped, hex and base64 forms (also inside a Basic header).
    s = crate::probe::redact::Redactor::new(secrets.iter().copied()).redact(&s);
    let s = s.trim();
    if s.chars().count() > max {
        let mut cut: String = s.chars().take(max).collect();
        cut.push('…');
        cut
    } else {
        s.to_string()
    }
}

/// An OAuth `error` code as RFC 6749 allows it (printable ASCII without `"` and `\`), at most 64 characters;
/// anything else becomes `None`.
pub fn error_code(value: &str) -> Option<String> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\');
    ok.then(|| value.to_string())
}

#[cfg(test)]
mod tests {

    #[test]
    fn sanitize_removes_encoded_copies_of_secrets_too() {
        let secret = "cs/with+chars=secret";
        let pct: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        let text = format!("invalid client {secret} ({pct})");
        let out = super::sanitize(&text, 500, &[secret]);
        assert!(!out.contains("with"), "{out}");
    }

    use super::*;

    #[test]
    fn sanitize_drops_controls_cuts_and_redacts_secrets() {
        assert_eq!(
            sanitize("bad code abcd1234\nretry", 100, &["abcd1234"]),
            "bad code [redacted] retry"
        );
        assert_eq!(sanitize("xxxxxxxx", 3, &[]), "xxx…");
        assert_eq!(
            sanitize("  a  ", 10, &["a"]),
            "a",
            "short secrets are not redacted"
        );
    }

    #[test]
    fn error_codes_are_restricted_to_the_rfc_charset() {
        assert_eq!(
            error_code("invalid_grant").as_deref(),
            Some("invalid_grant")
        );
        assert_eq!(error_code("a\"b"), None);
        assert_eq!(error_code(&"x".repeat(65)), None);
        assert_eq!(error_code("tab\there"), None);
    }
}
