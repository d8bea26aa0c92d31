//! PKCE (RFC 7636), S256 only.

use base64::Engine;
use sha2::{Digest, Sha256};

/// A new code verifier: 32 random bytes, base64url (43 characters from the unreserved set).
pub fn verifier() -> String {
    super::random_token()
}

/// `BASE64URL(SHA256(verifier))`, the S256 challenge.
pub fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_7636_example_challenge() {
        // RFC 7636, appendix B.
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let v = verifier();
        assert!((43..=128).contains(&v.len()));
    }
}
