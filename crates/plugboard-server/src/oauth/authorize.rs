//! One OAuth authorization request (RFC 6749 §4.1 with PKCE, RFC 7636): everything an authorization URL carries and
//! what must be kept until the callback. The one place that makes
//!
//! - the `state`: 32 random bytes (base64url, 43 characters), single use, valid [`STATE_TTL_MS`]; only its SHA-256
//!   is stored ([`OAuthStateToken::hash`], [`state_hash`] for the value a callback brings back);
//! - the PKCE verifier (a secret: it is sealed in the vault, never logged) and its S256 challenge;
//! - a `nonce` for OpenID Connect;
//! - the URL parameters, in one order: `response_type=code`, `client_id`, `redirect_uri`, `scope` (when there are
//!   scopes), `state`, `code_challenge` and `code_challenge_method=S256` (with PKCE), then the flow's own extras.
//!
//! Users: the byo_oauth install and reconnect ([`crate::integration`]), the mcp_oauth start ([`super::mcp`]), and the
//! OpenID Connect sign-in, which speaks the protocol with the `openidconnect` crate but takes its state, nonce and
//! PKCE verifier from here (`oidc::authorization_request_values`), so every flow's random values are made the same
//! way. (Its lifetimes are the sign-in's own: the pending sign-in cookie lasts 10 minutes, as a state does here.)

use base64::Engine;
use plugboard_store::{NewOAuthState, OAuthFlow};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use url::Url;

/// A state is valid this long after the authorization URL was made.
pub const STATE_TTL_MS: i64 = 10 * 60 * 1000;

/// 32 random bytes from the OS, base64url without padding (43 characters from the unreserved set).
pub fn random_value() -> SecretString {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let value = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    secrecy::zeroize::Zeroize::zeroize(&mut bytes);
    SecretString::from(value)
}

/// What the database keeps of a state: its SHA-256 (for the value a callback brings back).
pub fn state_hash(state: &str) -> Vec<u8> {
    Sha256::digest(state.as_bytes()).to_vec()
}

/// `BASE64URL(SHA256(verifier))`, the S256 challenge.
pub fn s256_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The single-use `state` of one authorization request.
pub struct OAuthStateToken(SecretString);

impl OAuthStateToken {
    pub fn new() -> Self {
        OAuthStateToken(random_value())
    }

    /// The value that goes into the URL (and nowhere else).
    pub fn secret(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn hash(&self) -> Vec<u8> {
        state_hash(self.secret())
    }

    /// When a state made at `now` stops being valid.
    pub fn expires_at(now: i64) -> i64 {
        now.saturating_add(STATE_TTL_MS)
    }
}

impl Default for OAuthStateToken {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for OAuthStateToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OAuthStateToken(…)")
    }
}

/// A PKCE pair (S256 only): the verifier is a secret, the challenge goes into the URL.
pub struct Pkce {
    verifier: SecretString,
    challenge: String,
}

impl Pkce {
    pub const METHOD: &'static str = "S256";

    pub fn new() -> Self {
        let verifier = random_value();
        let challenge = s256_challenge(verifier.expose_secret());
        Pkce {
            verifier,
            challenge,
        }
    }

    pub fn verifier(&self) -> &SecretString {
        &self.verifier
    }

    pub fn challenge(&self) -> &str {
        &self.challenge
    }
}

impl Default for Pkce {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Pkce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkce")
            .field("challenge", &self.challenge)
            .finish_non_exhaustive()
    }
}

/// An OpenID Connect `nonce` (the sign-in binds the ID token to the request with it).
pub fn nonce() -> SecretString {
    random_value()
}

/// The client side of one authorization request: who asks, where the answer goes, for what.
pub struct AuthorizationParams<'a> {
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    /// Space-separated; omitted from the URL when empty.
    pub scope: Option<&'a str>,
    /// The flow's own parameters (a manifest's `authorize_params`, the RFC 8707 `resource`), after ours.
    pub extra: &'a [(String, String)],
}

/// One authorization request: its state and (when the flow uses it) its PKCE pair.
#[derive(Debug)]
pub struct AuthorizationRequest {
    pub state: OAuthStateToken,
    pub pkce: Option<Pkce>,
}

impl AuthorizationRequest {
    /// A new request with fresh random values; `pkce` adds a verifier and its S256 challenge.
    pub fn new(pkce: bool) -> Self {
        AuthorizationRequest {
            state: OAuthStateToken::new(),
            pkce: pkce.then(Pkce::new),
        }
    }

    /// The authorization URL: `endpoint` (its own query kept) with the parameters in the module's order.
    pub fn url(&self, endpoint: &Url, params: &AuthorizationParams<'_>) -> Url {
        let mut url = endpoint.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code");
            q.append_pair("client_id", params.client_id);
            q.append_pair("redirect_uri", params.redirect_uri);
            if let Some(scope) = params.scope.filter(|s| !s.is_empty()) {
                q.append_pair("scope", scope);
            }
            q.append_pair("state", self.state.secret());
            if let Some(pkce) = &self.pkce {
                q.append_pair("code_challenge", pkce.challenge());
                q.append_pair("code_challenge_method", Pkce::METHOD);
            }
            for (k, v) in params.extra {
                q.append_pair(k, v);
            }
        }
        url
    }

    /// The record the callback will consume: the state's hash, the flow, the redirect URI, the issuer the answer
    /// must come from (with RFC 9207 `iss_required` when the server promised to name itself) and the expiry.
    pub fn state_record(
        &self,
        flow: OAuthFlow,
        redirect_uri: &str,
        issuer: Option<String>,
        iss_required: bool,
        now: i64,
    ) -> NewOAuthState {
        NewOAuthState {
            state_hash: self.state.hash(),
            flow,
            redirect_uri: redirect_uri.to_string(),
            issuer,
            iss_required,
            expires_at: OAuthStateToken::expires_at(now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_7636_example_challenge() {
        // RFC 7636, appendix B.
        assert_eq!(
            s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let p = Pkce::new();
        assert_eq!(p.challenge(), s256_challenge(p.verifier().expose_secret()));
        assert!(!format!("{p:?}").contains(p.verifier().expose_secret()));
    }

    #[test]
    fn states_are_43_url_safe_characters_and_only_their_hash_is_kept() {
        let s = OAuthStateToken::new();
        assert_eq!(s.secret().len(), 43);
        assert!(s
            .secret()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(OAuthStateToken::new().secret(), s.secret());
        assert_eq!(s.hash(), state_hash(s.secret()));
        assert_eq!(s.hash().len(), 32);
        assert!(!format!("{s:?}").contains(s.secret()));
    }

    #[test]
    fn the_url_carries_the_parameters_in_one_order_after_the_endpoints_own_query() {
        let req = AuthorizationRequest::new(true);
        let endpoint = Url::parse("https://as.example/authorize?tenant=a").unwrap();
        let extra = vec![("resource".to_string(), "https://mcp.example/".to_string())];
        let url = req.url(
            &endpoint,
            &AuthorizationParams {
                client_id: "client&1",
                redirect_uri: "https://pb.example/cb",
                scope: Some("a b"),
                extra: &extra,
            },
        );
        let keys: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
        assert_eq!(
            keys,
            [
                "tenant",
                "response_type",
                "client_id",
                "redirect_uri",
                "scope",
                "state",
                "code_challenge",
                "code_challenge_method",
                "resource"
            ]
        );
        let pairs: std::collections::HashMap<String, String> =
            url.query_pairs().into_owned().collect();
        assert_eq!(pairs["client_id"], "client&1");
        assert_eq!(pairs["state"], req.state.secret());
        let record = req.state_record(OAuthFlow::Mcp, "https://pb.example/cb", None, false, 1000);
        assert_eq!(record.state_hash, state_hash(&pairs["state"]));
        assert_eq!(record.expires_at, 1000 + STATE_TTL_MS);
        let plain = AuthorizationRequest::new(false).url(
            &endpoint,
            &AuthorizationParams {
                client_id: "c",
                redirect_uri: "r",
                scope: Some(""),
                extra: &[],
            },
        );
        assert!(!plain.as_str().contains("code_challenge") && !plain.as_str().contains("scope"));
    }
}
