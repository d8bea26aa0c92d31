//! Records for the vault, integrations, OAuth states and the audit log.

use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct DataKeyRow {
    pub id: String,
    pub wrapped: Vec<u8>,
    pub active: bool,
    pub created_at: i64,
}

/// A sealed secret: ciphertext only, with the id of the data key that sealed it.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SecretRow {
    pub integration_id: String,
    pub name: String,
    pub key_id: String,
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for SecretRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretRow")
            .field("integration_id", &self.integration_id)
            .field("name", &self.name)
            .field("key_id", &self.key_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Integration {
    pub id: String,
    pub workspace_id: String,
    pub crew_id: Option<String>,
    pub connector_id: Option<String>,
    pub name: String,
    pub auth_mode: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub enabled: bool,
    /// The stored MCP block (JSON): templates and references to vault entries, never a materialised secret.
    pub mcp: String,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Clone, Debug)]
pub struct NewSecret {
    pub name: String,
    pub key_id: String,
    pub ciphertext: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct NewOAuthState {
    pub state_hash: Vec<u8>,
    pub flow: String,
    pub redirect_uri: String,
    pub issuer: Option<String>,
    /// RFC 9207: the authorization server promised an `iss` parameter, so an answer without one is refused.
    pub iss_required: bool,
    pub expires_at: i64,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct OAuthStateRow {
    pub integration_id: String,
    pub flow: String,
    pub redirect_uri: String,
    pub issuer: Option<String>,
    pub iss_required: bool,
    pub expires_at: i64,
}

#[derive(Clone, Debug)]
pub struct NewAudit {
    pub workspace_id: Option<String>,
    pub actor_id: Option<String>,
    pub action: String,
    pub target: Option<String>,
    /// JSON object; never holds a secret value.
    pub detail: serde_json::Value,
}

#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct AuditRow {
    pub id: String,
    pub workspace_id: Option<String>,
    pub actor_id: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub detail: String,
    pub created_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct IdempotencyRecord {
    pub fingerprint: Vec<u8>,
    pub status: i64,
    pub response: String,
}

#[derive(Clone, Debug)]
pub struct NewIdempotency {
    pub key: String,
    pub fingerprint: Vec<u8>,
    pub status: i64,
    pub response: String,
}

#[derive(Clone, Debug)]
pub struct NewIntegration {
    pub id: String,
    pub workspace_id: String,
    pub crew_id: Option<String>,
    pub connector_id: Option<String>,
    pub name: String,
    pub auth_mode: String,
    pub status: String,
    pub mcp: String,
    pub created_by: String,
    pub secrets: Vec<NewSecret>,
    pub oauth_state: Option<NewOAuthState>,
    pub audit: NewAudit,
    pub idempotency: Option<NewIdempotency>,
}

#[derive(Clone, Debug, Default)]
pub struct IntegrationPatch {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub status: Option<(String, Option<String>)>,
    pub mcp: Option<String>,
    /// `(prefix, secrets)`: every existing secret of the integration whose name starts with `prefix` is destroyed
    /// and these take their place; secrets under other names (OAuth tokens written concurrently) are untouched.
    pub replace_secrets: Option<(String, Vec<NewSecret>)>,
    /// Secrets to add or overwrite, keeping the others.
    pub upsert_secrets: Vec<NewSecret>,
    pub audit: Option<NewAudit>,
}
