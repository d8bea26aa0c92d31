//! Integrations, written atomically with their sealed secrets, OAuth state, audit entry and idempotency record.

use async_trait::async_trait;
use serde::Serialize;

use crate::{
    CrewId, IntegrationAuthMode, IntegrationId, IntegrationStatus, NewAudit, NewOAuthState,
    NewSecret, Result, SecretRow, UserId, WorkspaceId,
};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Integration {
    pub id: IntegrationId,
    pub workspace_id: WorkspaceId,
    pub crew_id: Option<CrewId>,
    pub connector_id: Option<String>,
    pub name: String,
    pub auth_mode: IntegrationAuthMode,
    pub status: IntegrationStatus,
    pub status_reason: Option<String>,
    pub enabled: bool,
    /// The stored MCP block (JSON): templates and references to vault entries, never a materialised secret.
    pub mcp: String,
    pub created_by: UserId,
    pub created_at: i64,
    pub updated_at: i64,
    /// The tool policy's allow list: a JSON array of glob patterns (empty: every tool).
    pub tool_allow: String,
    /// The tool policy's deny list: a JSON array of glob patterns.
    pub tool_deny: String,
    /// The prefix of its tools on the gateway's aggregated endpoints, unique within the workspace (`None` only for
    /// a row from before tool prefixes existed that has not got its default yet).
    pub tool_prefix: Option<String>,
}

#[derive(Clone, Debug)]
pub struct NewIntegration {
    pub id: IntegrationId,
    pub workspace_id: WorkspaceId,
    pub crew_id: Option<CrewId>,
    pub connector_id: Option<String>,
    pub name: String,
    pub auth_mode: IntegrationAuthMode,
    pub status: IntegrationStatus,
    pub mcp: String,
    pub created_by: UserId,
    pub secrets: Vec<NewSecret>,
    pub oauth_state: Option<NewOAuthState>,
    pub audit: NewAudit,
    pub idempotency: Option<NewIdempotency>,
}

#[derive(Clone, Debug, Default)]
pub struct IntegrationPatch {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub status: Option<(IntegrationStatus, Option<String>)>,
    pub mcp: Option<String>,
    /// `(prefix, secrets)`: every existing secret of the integration whose name starts with `prefix` is destroyed
    /// and these take their place; secrets under other names (OAuth tokens written concurrently) are untouched.
    pub replace_secrets: Option<(String, Vec<NewSecret>)>,
    /// Secrets to add or overwrite, keeping the others.
    pub upsert_secrets: Vec<NewSecret>,
    /// The tool policy: `(allow, deny)` as JSON arrays.
    pub tools: Option<(String, String)>,
    /// A new tool prefix (`Conflict` when another integration of the workspace has it).
    pub tool_prefix: Option<String>,
    /// Back to the default tool prefix instead: the first free one in the workspace for the connector id and the
    /// name this patch leaves, worked out in the transaction as at install (not with `tool_prefix`).
    pub reset_tool_prefix: bool,
    pub audit: Option<NewAudit>,
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

/// Integrations and what belongs to them.
#[async_trait]
pub trait IntegrationStore: Send + Sync {
    /// Inserts the integration, its secrets, its OAuth state (if any), the audit entry and the idempotency record
    /// (if any) in one transaction.
    async fn create_integration(&self, new: NewIntegration) -> Result<Integration>;
    async fn get_integration(&self, id: &IntegrationId) -> Result<Option<Integration>>;
    async fn list_integrations(
        &self,
        workspace_id: &WorkspaceId,
        crew_id: Option<&CrewId>,
    ) -> Result<Vec<Integration>>;
    /// Applies a patch (and replaces secrets when given: old entries destroyed) with its audit entry, atomically.
    async fn update_integration(
        &self,
        id: &IntegrationId,
        patch: IntegrationPatch,
    ) -> Result<Option<Integration>>;
    /// Deletes the integration and (by cascade) its vault entries and OAuth states, with its audit entry.
    async fn delete_integration(&self, id: &IntegrationId, audit: NewAudit) -> Result<bool>;
    async fn integration_secrets(&self, integration_id: &IntegrationId) -> Result<Vec<SecretRow>>;
    /// Custom servers made before unmarked credential values were sealed, not checked yet (oldest first).
    async fn credential_seal_pending(&self) -> Result<Vec<IntegrationId>>;
    /// `id` is checked: it leaves [`IntegrationStore::credential_seal_pending`].
    async fn credential_seal_done(&self, id: &IntegrationId) -> Result<()>;
    async fn idempotency_get(
        &self,
        workspace_id: &WorkspaceId,
        user_id: &UserId,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>>;
}
