//! OAuth single-use states, grants (token metadata and the refresh lock) and dynamically registered clients.
//! Token values are never here: they are vault entries (`secrets`) of the integration.

use async_trait::async_trait;

use crate::{
    ClientAuthMethod, IntegrationId, IntegrationStatus, NewAudit, NewSecret, OAuthFlow, Result,
};

#[derive(Clone, Debug)]
pub struct NewOAuthState {
    pub state_hash: Vec<u8>,
    pub flow: OAuthFlow,
    pub redirect_uri: String,
    pub issuer: Option<String>,
    /// RFC 9207: the authorization server promised an `iss` parameter, so an answer without one is refused.
    pub iss_required: bool,
    pub expires_at: i64,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct OAuthStateRow {
    pub integration_id: IntegrationId,
    pub flow: OAuthFlow,
    pub redirect_uri: String,
    pub issuer: Option<String>,
    pub iss_required: bool,
    pub expires_at: i64,
}

/// What an integration's OAuth grant needs besides its tokens: where to refresh, for which resource, with which
/// client, when the access token expires, and the refresh lock (a lease: `lock_owner` until `lock_until`).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct OAuthGrant {
    pub integration_id: IntegrationId,
    pub flow: OAuthFlow,
    /// The authorization server's issuer (mcp_oauth).
    pub issuer: Option<String>,
    /// The token endpoint (mcp_oauth; byo_oauth renders the manifest's `token_url`).
    pub token_endpoint: Option<String>,
    /// The RFC 8707 resource (mcp_oauth).
    pub resource: Option<String>,
    /// The registered client's id (mcp_oauth; byo_oauth uses its `client_id` field).
    pub client_id: Option<String>,
    /// How the registered client authenticates (mcp_oauth).
    pub token_auth: Option<ClientAuthMethod>,
    /// When the access token expires (ms since the epoch); `None` when the provider did not say.
    pub expires_at: Option<i64>,
    /// Grows with every token write: a waiter that sees it change knows a refresh happened.
    pub version: i64,
    pub lock_owner: Option<String>,
    pub lock_until: Option<i64>,
    pub updated_at: i64,
}

/// The endpoint metadata of a grant, written when a flow starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewOAuthGrant {
    pub flow: OAuthFlow,
    pub issuer: Option<String>,
    pub token_endpoint: Option<String>,
    pub resource: Option<String>,
    pub client_id: Option<String>,
    pub token_auth: Option<ClientAuthMethod>,
}

/// A flow started: the new single-use state (every other unused state of the integration is dropped), the grant's
/// metadata, vault entries to write (PKCE verifier, client secret) and to destroy, in one transaction.
#[derive(Clone, Debug)]
pub struct OAuthFlowStart {
    pub integration_id: IntegrationId,
    pub state: NewOAuthState,
    pub grant: Option<NewOAuthGrant>,
    pub upsert_secrets: Vec<NewSecret>,
    pub delete_secrets: Vec<String>,
    pub audit: Option<NewAudit>,
}

/// Tokens (or a failure) written for an integration, atomically with its status and audit entry.
#[derive(Clone, Debug)]
pub struct OAuthTokenWrite {
    pub integration_id: IntegrationId,
    /// Used when the grant row does not exist yet.
    pub flow: OAuthFlow,
    pub upsert_secrets: Vec<NewSecret>,
    pub delete_secrets: Vec<String>,
    /// `Some(x)` sets the expiry to `x`; `None` leaves it as it is.
    pub expires_at: Option<Option<i64>>,
    pub status: Option<(IntegrationStatus, Option<String>)>,
    /// When set, nothing is written unless this owner still holds the refresh lock; the lock is released.
    pub lock_owner: Option<String>,
    pub audit: Option<NewAudit>,
    /// The time of the write on the server's clock (ms since the epoch), stored as the grant's `updated_at`: with
    /// `expires_at` computed from the same instant, `expires_at - updated_at` is the access token's lifetime.
    pub written_at: i64,
}

/// A client registered dynamically (RFC 7591) at an authorization server for one redirect URI.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct OAuthClientRow {
    pub issuer: String,
    pub redirect_uri: String,
    pub client_id: String,
    pub token_auth: ClientAuthMethod,
    /// For a confidential client: the integration whose vault entry `oauth.client_secret` holds the secret.
    pub secret_integration_id: Option<IntegrationId>,
    pub client_secret_expires_at: Option<i64>,
    pub created_at: i64,
}

/// OAuth states, grants and registered clients.
#[async_trait]
pub trait OAuthStore: Send + Sync {
    /// Marks an unused, unexpired state as used and returns it; `None` for unknown, expired or already used.
    async fn consume_oauth_state(
        &self,
        state_hash: &[u8],
        now: i64,
    ) -> Result<Option<OAuthStateRow>>;
    /// Starts a flow: drops the integration's other unused states, inserts the new one, upserts the grant's
    /// metadata and writes / destroys vault entries, in one transaction.
    async fn start_oauth_flow(&self, start: OAuthFlowStart) -> Result<()>;
    async fn get_oauth_grant(&self, integration_id: &IntegrationId) -> Result<Option<OAuthGrant>>;
    /// Writes tokens (vault entries), expiry, status and audit in one transaction, bumping the grant's version.
    /// With `lock_owner`, writes only while that owner holds the refresh lock (and releases it); returns whether it
    /// wrote.
    async fn write_oauth_tokens(&self, write: OAuthTokenWrite) -> Result<bool>;
    /// Compare-and-set on the grant row: takes the refresh lock for `owner` until `until` when nobody holds it or
    /// the holder's lease ended before `now`. Returns whether `owner` got it.
    async fn try_lock_oauth_refresh(
        &self,
        integration_id: &IntegrationId,
        owner: &str,
        now: i64,
        until: i64,
    ) -> Result<bool>;
    /// Releases the refresh lock if `owner` holds it.
    async fn release_oauth_refresh(
        &self,
        integration_id: &IntegrationId,
        owner: &str,
    ) -> Result<()>;
    async fn get_oauth_client(
        &self,
        issuer: &str,
        redirect_uri: &str,
    ) -> Result<Option<OAuthClientRow>>;
    /// Inserts or replaces the client registered for `(issuer, redirect_uri)`.
    async fn put_oauth_client(&self, client: OAuthClientRow) -> Result<()>;
    async fn delete_oauth_client(&self, issuer: &str, redirect_uri: &str) -> Result<()>;
}
