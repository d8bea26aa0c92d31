//! Records for OAuth grants (token metadata and the refresh lock) and dynamically registered clients.
//! Token values are never here: they are vault entries (`secrets`) of the integration.

use crate::{NewAudit, NewOAuthState, NewSecret};

/// What an integration's OAuth grant needs besides its tokens: where to refresh, for which resource, with which
/// client, when the access token expires, and the refresh lock (a lease: `lock_owner` until `lock_until`).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct OAuthGrant {
    pub integration_id: String,
    /// `byo_oauth` or `mcp_oauth`.
    pub flow: String,
    /// The authorization server's issuer (mcp_oauth).
    pub issuer: Option<String>,
    /// The token endpoint (mcp_oauth; byo_oauth renders the manifest's `token_url`).
    pub token_endpoint: Option<String>,
    /// The RFC 8707 resource (mcp_oauth).
    pub resource: Option<String>,
    /// The registered client's id (mcp_oauth; byo_oauth uses its `client_id` field).
    pub client_id: Option<String>,
    /// `none`, `client_secret_post` or `client_secret_basic` (mcp_oauth).
    pub token_auth: Option<String>,
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
    pub flow: String,
    pub issuer: Option<String>,
    pub token_endpoint: Option<String>,
    pub resource: Option<String>,
    pub client_id: Option<String>,
    pub token_auth: Option<String>,
}

/// A flow started: the new single-use state (every other unused state of the integration is dropped), the grant's
/// metadata, vault entries to write (PKCE verifier, client secret) and to destroy, in one transaction.
#[derive(Clone, Debug)]
pub struct OAuthFlowStart {
    pub integration_id: String,
    pub state: NewOAuthState,
    pub grant: Option<NewOAuthGrant>,
    pub upsert_secrets: Vec<NewSecret>,
    pub delete_secrets: Vec<String>,
    pub audit: Option<NewAudit>,
}

/// Tokens (or a failure) written for an integration, atomically with its status and audit entry.
#[derive(Clone, Debug)]
pub struct OAuthTokenWrite {
    pub integration_id: String,
    /// Used when the grant row does not exist yet.
    pub flow: String,
    pub upsert_secrets: Vec<NewSecret>,
    pub delete_secrets: Vec<String>,
    /// `Some(x)` sets the expiry to `x`; `None` leaves it as it is.
    pub expires_at: Option<Option<i64>>,
    pub status: Option<(String, Option<String>)>,
    /// When set, nothing is written unless this owner still holds the refresh lock; the lock is released.
    pub lock_owner: Option<String>,
    pub audit: Option<NewAudit>,
}

/// A client registered dynamically (RFC 7591) at an authorization server for one redirect URI.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct OAuthClientRow {
    pub issuer: String,
    pub redirect_uri: String,
    pub client_id: String,
    /// `none`, `client_secret_post` or `client_secret_basic`.
    pub token_auth: String,
    /// For a confidential client: the integration whose vault entry `oauth.client_secret` holds the secret.
    pub secret_integration_id: Option<String>,
    pub client_secret_expires_at: Option<i64>,
    pub created_at: i64,
}
