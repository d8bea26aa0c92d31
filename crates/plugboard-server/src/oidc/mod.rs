//! OpenID Connect sign-in (the relying party), with the `openidconnect` crate for the protocol.
//!
//! - [`Oidc::start_login`]: the authorization URL (code flow, PKCE S256, `state`, `nonce`) and a [`PendingLogin`]
//!   cookie that binds the sign-in to the browser (see [`pending`] for why a sealed cookie).
//! - [`Oidc::finish_login`]: the callback's values and that cookie → a [`VerifiedIdentity`], after the code
//!   exchange and the ID token's validation: signature against the provider's JWKS (an unknown `kid` fetches the
//!   JWKS once more, for key rotation), `iss`, `aud`, `exp`, `nonce`, an algorithm the provider advertises (never
//!   `none`, never a shared-secret HS*), then `email_verified` must be true. Email and name come from the ID token,
//!   or from the userinfo endpoint (with the same `sub`) when the ID token does not carry them — the certified
//!   default for the code flow.
//! - Discovery (`/.well-known/openid-configuration`) happens on first use, is kept for an hour, and is dropped when
//!   the provider could not be reached, so the next sign-in discovers again.
//! - [`web`]: the two routes, `/auth/oidc/login` and `/auth/oidc/callback`, with HTML error pages; what happens
//!   with a verified identity (user, session cookie, redirect) is a [`web::SignInCompletion`] given by the caller.
//!
//! Every call to the provider uses a client without proxy and redirects, with the configured timeouts (`transport`).
//! Errors ([`OidcError`]) are outcomes with readable messages; none contains a code, token, state or secret.

mod error;
pub mod pending;
mod transport;
pub mod web;

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthenticationFlow, CoreClaimName, CoreClaimType, CoreClient,
    CoreClientAuthMethod, CoreErrorResponseType, CoreGenderClaim, CoreGrantType, CoreIdToken,
    CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm,
    CoreJwsSigningAlgorithm, CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalProviderMetadata, AuthType, AuthorizationCode, ClaimsVerificationError, ClientId,
    ClientSecret, CsrfToken, DiscoveryError, EmptyAdditionalClaims, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IdTokenClaims, IdTokenVerifier, IssuerUrl, JsonWebKeySet, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, ProviderMetadata, RedirectUrl,
    RequestTokenError, Scope, SignatureVerificationError, TokenResponse, UserInfoError,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use error::{IdTokenProblem, OidcError};
pub use pending::{clear_pending_cookie, pending_from_headers, PendingLogin, PENDING_COOKIE};
use pending::{PendingData, Sealer, PENDING_TTL_MS};
use transport::{Http, HttpError};

/// Discovery is repeated after this long.
const DISCOVERY_MAX_AGE: Duration = Duration::from_secs(3600);
/// Most states remembered as spent per instance (they expire with the pending cookie anyway).
const MAX_SPENT: usize = 100_000;

/// The settings of the relying party.
#[derive(Clone)]
pub struct OidcSettings {
    pub issuer: String,
    pub client_id: String,
    /// `None`: a public client (PKCE only).
    pub client_secret: Option<SecretString>,
    /// Always contains `openid`.
    pub scopes: Vec<String>,
    /// `$PLUGBOARD_PUBLIC_URL/auth/oidc/callback`.
    pub redirect_uri: String,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    /// Whether the pending cookie is `Secure` (the public URL is https).
    pub secure_cookies: bool,
}

impl std::fmt::Debug for OidcSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSettings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("scopes", &self.scopes)
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

impl OidcSettings {
    /// From the validated configuration; `None` when OpenID Connect is not configured. The timeouts are the
    /// egress guard's: `PLUGBOARD_PROBE_TIMEOUT_MS` in total, connecting within at most 5 s of it.
    pub fn from_config(config: &crate::Config) -> Option<OidcSettings> {
        let oidc = config.oidc.as_ref()?;
        Some(OidcSettings {
            issuer: oidc.issuer.clone(),
            client_id: oidc.client_id.clone(),
            client_secret: oidc.client_secret.clone(),
            scopes: oidc.scopes.clone(),
            redirect_uri: config.oidc_redirect_uri(),
            connect_timeout: config.probe_timeout.min(Duration::from_secs(5)),
            timeout: config.probe_timeout,
            secure_cookies: config.public_url.starts_with("https://"),
        })
    }
}

/// Who signed in, once everything checked out. `email_verified` was true.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedIdentity {
    /// Lower-cased.
    pub email: String,
    /// The `name` claim; else given and family name; else `preferred_username`; else the email address.
    pub name: String,
    /// The provider's `sub`.
    pub subject: String,
    /// The configured issuer (the ID token's `iss`).
    pub issuer: String,
}

/// The query of the callback request (`code`, `state`, `iss`, or `error` and `error_description`).
#[derive(Clone, Default)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

impl std::fmt::Debug for Callback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callback")
            .field("code", &self.code.as_ref().map(|_| "[redacted]"))
            .field("state", &self.state.as_ref().map(|_| "[redacted]"))
            .field("iss", &self.iss)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl Callback {
    /// From decoded query pairs (the first value of each name counts).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Callback {
        let mut cb = Callback::default();
        for (k, v) in pairs {
            let slot = match k {
                "code" => &mut cb.code,
                "state" => &mut cb.state,
                "iss" => &mut cb.iss,
                "error" => &mut cb.error,
                "error_description" => &mut cb.error_description,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(v.to_string());
            }
        }
        cb
    }

    /// From a raw query string (`code=…&state=…`).
    pub fn from_query(query: &str) -> Callback {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        Callback::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

/// A started sign-in: send the browser to `authorization_url` with `pending` set as a cookie.
#[derive(Debug)]
pub struct LoginStart {
    pub authorization_url: String,
    pub pending: PendingLogin,
}

/// Provider metadata fields that `openidconnect`'s core set does not name.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
struct ExtraMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code_challenge_methods_supported: Option<Vec<String>>,
    /// RFC 9207.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    authorization_response_iss_parameter_supported: Option<bool>,
}
impl AdditionalProviderMetadata for ExtraMetadata {}

type Metadata = ProviderMetadata<
    ExtraMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

type Claims = IdTokenClaims<EmptyAdditionalClaims, CoreGenderClaim>;

/// What discovery found.
struct Provider {
    metadata: Metadata,
    client: Client,
    /// The provider's advertised ID token algorithms, without `none` and without HS*.
    allowed_algs: Vec<CoreJwsSigningAlgorithm>,
    iss_param_promised: bool,
    fetched: Instant,
}

/// The OpenID Connect relying party. Cheap to clone.
#[derive(Clone)]
pub struct Oidc {
    inner: Arc<Inner>,
}

struct Inner {
    settings: OidcSettings,
    issuer: IssuerUrl,
    redirect: RedirectUrl,
    http: Http,
    sealer: Sealer,
    provider: tokio::sync::Mutex<Option<Arc<Provider>>>,
    /// SHA-256 of spent states, with when they were spent.
    spent: StdMutex<HashMap<[u8; 32], Instant>>,
}

/// The `state`, `nonce` and PKCE pair of a sign-in, made by `oauth/authorize.rs` (the one place for an OAuth
/// authorization request's random values: 32 bytes from the OS each, base64url) and handed to `openidconnect`, which
/// speaks the protocol. The S256 challenge is `openidconnect`'s computation for the same verifier (equal to
/// `Pkce::challenge`, tested below).
fn authorization_request_values() -> (CsrfToken, Nonce, PkceCodeChallenge, PkceCodeVerifier) {
    use crate::oauth::authorize::{nonce, OAuthStateToken, Pkce};
    let state = OAuthStateToken::new();
    let pkce = Pkce::new();
    let verifier = PkceCodeVerifier::new(pkce.verifier().expose_secret().to_string());
    let challenge = PkceCodeChallenge::from_code_verifier_sha256(&verifier);
    (
        CsrfToken::new(state.secret().to_string()),
        Nonce::new(nonce().expose_secret().to_string()),
        challenge,
        verifier,
    )
}

fn same_secret(a: &str, b: &str) -> bool {
    // Compares digests, so the time taken says nothing about where the values differ.
    Sha256::digest(a.as_bytes()) == Sha256::digest(b.as_bytes())
}

/// An OAuth error code or description as safe to show: printable, bounded, without the code or verifier.
fn shown(text: &str, max: usize, secrets: &[&str]) -> String {
    crate::oauth::sanitize(text, max, secrets)
}

fn problem_of(e: &ClaimsVerificationError) -> IdTokenProblem {
    match e {
        ClaimsVerificationError::Expired(_) => IdTokenProblem::Expired,
        ClaimsVerificationError::InvalidAudience(_) => IdTokenProblem::WrongAudience,
        ClaimsVerificationError::InvalidIssuer(_) => IdTokenProblem::WrongIssuer,
        ClaimsVerificationError::InvalidNonce(_) => IdTokenProblem::WrongNonce,
        ClaimsVerificationError::Unsupported(_) => IdTokenProblem::Unsupported,
        ClaimsVerificationError::SignatureVerification(s) => match s {
            SignatureVerificationError::NoMatchingKey
            | SignatureVerificationError::AmbiguousKeyId(_) => IdTokenProblem::UnknownKey,
            SignatureVerificationError::NoSignature => IdTokenProblem::Unsigned,
            SignatureVerificationError::DisallowedAlg(_)
            | SignatureVerificationError::UnsupportedAlg(_) => IdTokenProblem::DisallowedAlgorithm,
            _ => IdTokenProblem::BadSignature,
        },
        _ => IdTokenProblem::Malformed,
    }
}

fn unreachable_or_invalid(status: ::http::StatusCode, what: &str) -> OidcError {
    if status.is_server_error() || status == ::http::StatusCode::TOO_MANY_REQUESTS {
        OidcError::ProviderUnreachable(format!("its {what} answered {status}"))
    } else {
        OidcError::ProviderInvalid(format!("its {what} answered {status}"))
    }
}

fn discovery_error(e: DiscoveryError<HttpError>, what: &str) -> OidcError {
    match e {
        DiscoveryError::Request(e) => OidcError::ProviderUnreachable(e.to_string()),
        DiscoveryError::Response(status, _, _) => unreachable_or_invalid(status, what),
        DiscoveryError::Parse(e) => OidcError::ProviderInvalid(format!(
            "its {what} is not valid (at `{}`)",
            shown(&e.path().to_string(), 200, &[])
        )),
        DiscoveryError::Validation(msg) => OidcError::ProviderInvalid(format!(
            "its {what} is not valid: {}",
            shown(&msg, 300, &[])
        )),
        other => OidcError::ProviderInvalid(format!(
            "its {what} cannot be used ({})",
            shown(&other.to_string(), 200, &[])
        )),
    }
}

/// A plausible email address: one `@` between non-empty parts, no spaces or controls, at most 254 characters.
fn usable_email(email: &str) -> Option<String> {
    let email = email.trim();
    let (local, domain) = email.split_once('@')?;
    let ok = email.len() <= 254
        && !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    ok.then(|| email.to_lowercase())
}

/// The parts of a person's name among the standard claims.
struct NameParts {
    name: Option<String>,
    given: Option<String>,
    family: Option<String>,
    preferred: Option<String>,
}

/// Reads [`NameParts`] from ID token or userinfo claims (same accessors, no common trait).
macro_rules! name_parts {
    ($claims:expr) => {{
        let c = &$claims;
        NameParts {
            name: c
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str().to_string()),
            given: c
                .given_name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str().to_string()),
            family: c
                .family_name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str().to_string()),
            preferred: c.preferred_username().map(|u| u.as_str().to_string()),
        }
    }};
}

impl NameParts {
    /// `name`, else given and family name, else `preferred_username`; printable, at most 200 characters.
    fn display(self) -> Option<String> {
        self.name
            .or(match (self.given, self.family) {
                (Some(g), Some(f)) => Some(format!("{g} {f}")),
                (g, f) => g.or(f),
            })
            .or(self.preferred)
            .map(|n| {
                n.chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .take(200)
                    .collect::<String>()
                    .trim()
                    .to_string()
            })
            .filter(|n| !n.is_empty())
    }
}

impl Oidc {
    /// A relying party for `settings`; `pending_key` seals the pending sign-in cookie (derive it from the master
    /// key: [`Oidc::pending_key`]).
    pub fn new(settings: OidcSettings, pending_key: &[u8; 32]) -> Result<Oidc, OidcError> {
        let issuer = IssuerUrl::new(settings.issuer.clone()).map_err(|e| {
            OidcError::ProviderInvalid(format!("PLUGBOARD_OIDC_ISSUER is not a URL ({e})"))
        })?;
        let redirect = RedirectUrl::new(settings.redirect_uri.clone()).map_err(|e| {
            OidcError::ProviderInvalid(format!("the redirect URI is not a URL ({e})"))
        })?;
        let http = Http::new(settings.connect_timeout, settings.timeout)
            .map_err(OidcError::ProviderInvalid)?;
        Ok(Oidc {
            inner: Arc::new(Inner {
                settings,
                issuer,
                redirect,
                http,
                sealer: Sealer::new(pending_key),
                provider: tokio::sync::Mutex::new(None),
                spent: StdMutex::new(HashMap::new()),
            }),
        })
    }

    /// The key that seals pending sign-ins, derived from the vault's master key (so every instance of one
    /// deployment shares it, and it is never stored).
    pub fn pending_key(vault: &crate::vault::Vault) -> [u8; 32] {
        vault.keyed_hash("oidc-pending-login", b"aes-256-gcm key v1")
    }

    /// The relying party of a configuration, or `None` when `PLUGBOARD_OIDC_ISSUER` is unset.
    pub fn from_config(
        config: &crate::Config,
        vault: &crate::vault::Vault,
    ) -> Result<Option<Oidc>, OidcError> {
        match OidcSettings::from_config(config) {
            None => Ok(None),
            Some(settings) => Oidc::new(settings, &Oidc::pending_key(vault)).map(Some),
        }
    }

    pub fn settings(&self) -> &OidcSettings {
        &self.inner.settings
    }

    fn client_secret(&self) -> Option<ClientSecret> {
        self.inner
            .settings
            .client_secret
            .as_ref()
            .map(|s| ClientSecret::new(s.expose_secret().to_string()))
    }

    async fn discover(&self) -> Result<Provider, OidcError> {
        let metadata = Metadata::discover_async(self.inner.issuer.clone(), &self.inner.http)
            .await
            .map_err(|e| discovery_error(e, "discovery document or JWKS"))?;
        self.provider_from(metadata)
    }

    fn provider_from(&self, metadata: Metadata) -> Result<Provider, OidcError> {
        let extra = metadata.additional_metadata();
        if let Some(methods) = &extra.code_challenge_methods_supported {
            if !methods.iter().any(|m| m == "S256") {
                return Err(OidcError::ProviderInvalid(
                    "it does not support PKCE with S256 (code_challenge_methods_supported)".into(),
                ));
            }
        }
        let iss_param_promised = extra
            .authorization_response_iss_parameter_supported
            .unwrap_or(false);
        if metadata.token_endpoint().is_none() {
            return Err(OidcError::ProviderInvalid(
                "it names no token endpoint".into(),
            ));
        }
        let allowed_algs: Vec<CoreJwsSigningAlgorithm> = metadata
            .id_token_signing_alg_values_supported()
            .iter()
            .filter(|alg| {
                !matches!(
                    alg,
                    CoreJwsSigningAlgorithm::None
                        | CoreJwsSigningAlgorithm::HmacSha256
                        | CoreJwsSigningAlgorithm::HmacSha384
                        | CoreJwsSigningAlgorithm::HmacSha512
                )
            })
            .cloned()
            .collect();
        if allowed_algs.is_empty() {
            return Err(OidcError::ProviderInvalid(
                "it signs ID tokens only with `none` or a shared secret, which Plugboard does not accept".into(),
            ));
        }
        let secret = self.client_secret();
        // client_secret_basic is the default; client_secret_post when the provider lists only that.
        let auth_type = match (&secret, metadata.token_endpoint_auth_methods_supported()) {
            (Some(_), Some(methods))
                if !methods.contains(&CoreClientAuthMethod::ClientSecretBasic)
                    && methods.contains(&CoreClientAuthMethod::ClientSecretPost) =>
            {
                AuthType::RequestBody
            }
            _ => AuthType::BasicAuth,
        };
        let client = CoreClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(self.inner.settings.client_id.clone()),
            secret,
        )
        .set_redirect_uri(self.inner.redirect.clone())
        .set_auth_type(auth_type);
        Ok(Provider {
            metadata,
            client,
            allowed_algs,
            iss_param_promised,
            fetched: Instant::now(),
        })
    }

    /// The discovered provider: cached, discovered again after an hour or after it could not be reached.
    async fn provider(&self) -> Result<Arc<Provider>, OidcError> {
        let mut cached = self.inner.provider.lock().await;
        if let Some(p) = cached.as_ref() {
            if p.fetched.elapsed() < DISCOVERY_MAX_AGE {
                return Ok(p.clone());
            }
        }
        match self.discover().await {
            Ok(p) => {
                let p = Arc::new(p);
                *cached = Some(p.clone());
                Ok(p)
            }
            Err(e) => {
                *cached = None;
                tracing::warn!(code = e.code(), error = %e, "OpenID Connect discovery failed");
                Err(e)
            }
        }
    }

    /// Forgets the discovered provider after it could not be reached, so the next sign-in discovers again.
    async fn forget_provider(&self) {
        *self.inner.provider.lock().await = None;
    }

    /// Fetches the JWKS again (an ID token named a key the cached set lacks) and caches the result.
    async fn refetch_jwks(&self, old: &Provider) -> Result<Arc<Provider>, OidcError> {
        let jwks = JsonWebKeySet::fetch_async(old.metadata.jwks_uri(), &self.inner.http)
            .await
            .map_err(|e| discovery_error(e, "JWKS"))?;
        let fresh = Arc::new(self.provider_from(old.metadata.clone().set_jwks(jwks))?);
        *self.inner.provider.lock().await = Some(fresh.clone());
        tracing::info!(
            "OpenID Connect: fetched the provider's keys again (an ID token named a new key)"
        );
        Ok(fresh)
    }

    /// Starts a sign-in: the authorization URL and the pending sign-in to set as a cookie.
    pub async fn start_login(&self) -> Result<LoginStart, OidcError> {
        let provider = self.provider().await?;
        let (state, nonce, challenge, verifier) = authorization_request_values();
        let (state_c, nonce_c) = (state.clone(), nonce.clone());
        let mut request = provider.client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            move || state_c,
            move || nonce_c,
        );
        for scope in &self.inner.settings.scopes {
            // `openid` is always sent by the client.
            if scope != "openid" {
                request = request.add_scope(Scope::new(scope.clone()));
            }
        }
        let (url, _, _) = request.set_pkce_challenge(challenge).url();
        let data = PendingData {
            s: state.secret().clone(),
            n: nonce.secret().clone(),
            v: verifier.secret().clone(),
            i: self.inner.settings.issuer.clone(),
            c: self.inner.settings.client_id.clone(),
            t: pending::now_ms(),
        };
        let value = self.inner.sealer.seal(&data).ok_or(OidcError::Internal)?;
        Ok(LoginStart {
            authorization_url: url.to_string(),
            pending: PendingLogin {
                value,
                secure: self.inner.settings.secure_cookies,
            },
        })
    }

    /// Marks a state as used on this instance; false when it already was.
    fn spend(&self, state: &str) -> bool {
        let key: [u8; 32] = Sha256::digest(state.as_bytes()).into();
        let ttl = Duration::from_millis(PENDING_TTL_MS + 60_000);
        let mut spent = self.inner.spent.lock().unwrap_or_else(|e| e.into_inner());
        if spent.contains_key(&key) {
            return false;
        }
        if spent.len() >= MAX_SPENT {
            spent.retain(|_, at| at.elapsed() < ttl);
            if spent.len() >= MAX_SPENT {
                // Still full of fresh entries: drop the oldest tenth (the code's single use at the provider
                // remains the backstop for those).
                let mut ages: Vec<Instant> = spent.values().copied().collect();
                ages.sort();
                let cut = ages[MAX_SPENT / 10];
                spent.retain(|_, at| *at > cut);
            }
        }
        spent.insert(key, Instant::now());
        true
    }

    fn verify(
        &self,
        provider: &Provider,
        id_token: &CoreIdToken,
        nonce: &Nonce,
    ) -> Result<Claims, ClaimsVerificationError> {
        let verifier = IdTokenVerifier::new_public_client(
            ClientId::new(self.inner.settings.client_id.clone()),
            self.inner.issuer.clone(),
            provider.metadata.jwks().clone(),
        )
        .set_allowed_algs(provider.allowed_algs.clone());
        id_token.claims(&verifier, nonce).cloned()
    }

    /// Finishes a sign-in: the callback's query and the pending cookie's value → the verified identity.
    pub async fn finish_login(
        &self,
        callback: &Callback,
        pending: Option<&str>,
    ) -> Result<VerifiedIdentity, OidcError> {
        let settings = &self.inner.settings;
        let pending = pending
            .and_then(|v| self.inner.sealer.open(v, pending::now_ms()))
            .filter(|p| p.i == settings.issuer && p.c == settings.client_id)
            .ok_or(OidcError::SignInExpired)?;
        let state = callback
            .state
            .as_deref()
            .filter(|s| same_secret(s, &pending.s))
            .ok_or(OidcError::StateMismatch)?;
        if !self.spend(state) {
            return Err(OidcError::Replayed);
        }
        if let Some(error) = &callback.error {
            return Err(OidcError::ProviderDenied {
                code: crate::oauth::error_code(error).unwrap_or_else(|| "error".into()),
                description: callback
                    .error_description
                    .as_deref()
                    .map(|d| shown(d, 300, &[]))
                    .filter(|d| !d.is_empty()),
            });
        }
        let provider = self.provider().await?;
        match &callback.iss {
            Some(iss) if iss != &settings.issuer => return Err(OidcError::IssuerMismatch),
            None if provider.iss_param_promised => return Err(OidcError::IssuerMismatch),
            _ => {}
        }
        let code = callback
            .code
            .as_deref()
            .filter(|c| !c.trim().is_empty())
            .ok_or(OidcError::MissingCode)?;

        let exchange = provider
            .client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|_| OidcError::ProviderInvalid("it names no token endpoint".into()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.v.clone()))
            .request_async(&self.inner.http)
            .await;
        let token = match exchange {
            Ok(t) => t,
            Err(e) => {
                let err = match e {
                    RequestTokenError::ServerResponse(r) => match r.error() {
                        CoreErrorResponseType::InvalidGrant => OidcError::CodeRejected,
                        CoreErrorResponseType::InvalidClient
                        | CoreErrorResponseType::UnauthorizedClient => OidcError::ClientRejected,
                        other => OidcError::TokenRefused(
                            crate::oauth::error_code(other.as_ref())
                                .unwrap_or_else(|| "error".into()),
                        ),
                    },
                    RequestTokenError::Request(e) => OidcError::ProviderUnreachable(e.to_string()),
                    RequestTokenError::Parse(_, body) => {
                        // A token response whose id_token is not a JWT fails here: name that precisely.
                        let has_id_token = serde_json::from_slice::<serde_json::Value>(&body)
                            .ok()
                            .is_some_and(|v| v.get("id_token").is_some());
                        if has_id_token {
                            OidcError::IdToken(IdTokenProblem::Malformed)
                        } else {
                            OidcError::ProviderInvalid(
                                "its token endpoint's answer is not a token response".into(),
                            )
                        }
                    }
                    RequestTokenError::Other(_) => OidcError::ProviderInvalid(
                        "its token endpoint's answer cannot be used".into(),
                    ),
                };
                if matches!(err, OidcError::ProviderUnreachable(_)) {
                    self.forget_provider().await;
                }
                return Err(err);
            }
        };
        let id_token = token
            .id_token()
            .ok_or(OidcError::IdToken(IdTokenProblem::Missing))?;
        let nonce = Nonce::new(pending.n.clone());
        let mut provider = provider;
        let claims = match self.verify(&provider, id_token, &nonce) {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                // Key rotation: fetch the JWKS once more and try again.
                provider = self.refetch_jwks(&provider).await?;
                self.verify(&provider, id_token, &nonce)
            }
            other => other,
        }
        .map_err(|e| OidcError::IdToken(problem_of(&e)))?;

        let subject = claims.subject().as_str().to_string();
        let (email, verified, name) = match (claims.email(), claims.email_verified()) {
            (Some(email), Some(verified)) => {
                let email = usable_email(email.as_str()).ok_or(OidcError::EmailInvalid)?;
                let name = name_parts!(claims)
                    .display()
                    .unwrap_or_else(|| email.clone());
                (email, verified, name)
            }
            _ => {
                let request = provider
                    .client
                    .user_info(token.access_token().clone(), Some(claims.subject().clone()))
                    .map_err(|_| OidcError::EmailMissing)?;
                let info: openidconnect::core::CoreUserInfoClaims =
                    match request.request_async(&self.inner.http).await {
                        Ok(info) => info,
                        Err(UserInfoError::Request(e)) => {
                            self.forget_provider().await;
                            return Err(OidcError::ProviderUnreachable(e.to_string()));
                        }
                        Err(UserInfoError::Response(status, _, _)) => {
                            return Err(unreachable_or_invalid(status, "userinfo endpoint"))
                        }
                        Err(UserInfoError::ClaimsVerification(
                            ClaimsVerificationError::InvalidSubject(_),
                        )) => return Err(OidcError::ProviderInvalid(
                            "its userinfo endpoint answered for another subject than the ID token"
                                .into(),
                        )),
                        Err(_) => {
                            return Err(OidcError::ProviderInvalid(
                                "its userinfo endpoint's answer cannot be used".into(),
                            ))
                        }
                    };
                let email = info.email().ok_or(OidcError::EmailMissing)?;
                let email = usable_email(email.as_str()).ok_or(OidcError::EmailInvalid)?;
                let verified = info.email_verified().unwrap_or(false);
                let name = name_parts!(info)
                    .display()
                    .or_else(|| name_parts!(claims).display())
                    .unwrap_or_else(|| email.clone());
                (email, verified, name)
            }
        };
        if !verified {
            return Err(OidcError::EmailNotVerified);
        }
        Ok(VerifiedIdentity {
            email,
            name,
            subject,
            issuer: settings.issuer.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sign_in_values_come_from_the_shared_authorization_module() {
        let (state, nonce, challenge, verifier) = authorization_request_values();
        for v in [state.secret(), nonce.secret(), verifier.secret()] {
            assert_eq!(v.len(), 43, "32 random bytes, base64url");
        }
        assert_ne!(state.secret(), nonce.secret());
        assert_eq!(
            challenge.as_str(),
            crate::oauth::authorize::s256_challenge(verifier.secret())
        );
        assert_eq!(challenge.method().as_str(), "S256");
    }

    #[test]
    fn emails_are_checked_and_lower_cased() {
        assert_eq!(
            usable_email(" Ada@Example.COM ").as_deref(),
            Some("ada@example.com")
        );
        assert_eq!(usable_email("no-at-sign"), None);
        assert_eq!(usable_email("a@b@c"), None);
        assert_eq!(usable_email("@example.com"), None);
        assert_eq!(usable_email("a b@example.com"), None);
        assert_eq!(
            usable_email(&format!("{}@example.com", "a".repeat(250))),
            None
        );
    }

    #[test]
    fn a_callback_keeps_the_first_value_and_hides_the_code_in_debug() {
        let cb = Callback::from_query("code=c0de&state=s1&state=s2&iss=https%3A%2F%2Fidp");
        assert_eq!(cb.state.as_deref(), Some("s1"));
        assert_eq!(cb.iss.as_deref(), Some("https://idp"));
        let dbg = format!("{cb:?}");
        assert!(!dbg.contains("c0de") && !dbg.contains("s1"), "{dbg}");
    }
}
