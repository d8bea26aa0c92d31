//! The audit log: who did what, when. Entries never hold a secret value.

use async_trait::async_trait;
use serde::Serialize;

use crate::{Result, UserId, WorkspaceId};

#[derive(Clone, Debug)]
pub struct NewAudit {
    pub workspace_id: Option<WorkspaceId>,
    pub actor_id: Option<UserId>,
    pub action: String,
    pub target: Option<String>,
    /// JSON object; never holds a secret value.
    pub detail: serde_json::Value,
}

#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct AuditRow {
    pub id: String,
    pub workspace_id: Option<WorkspaceId>,
    pub actor_id: Option<UserId>,
    pub action: String,
    pub target: Option<String>,
    pub detail: String,
    pub created_at: i64,
}

/// Appending to and reading the audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn append_audit(&self, entry: NewAudit) -> Result<()>;
    /// Appends several entries in one transaction: all of them or none (one commit, one sync to disk).
    async fn append_audit_batch(&self, entries: &[NewAudit]) -> Result<()>;
    async fn list_audit(
        &self,
        workspace_id: &WorkspaceId,
        limit: i64,
        before: Option<i64>,
    ) -> Result<Vec<AuditRow>>;
    /// Up to `limit` entries of a workspace strictly older than the cursor `(created_at, id)` (newest first, ties
    /// broken by id descending), so a page boundary never skips entries written in the same millisecond.
    async fn list_audit_page(
        &self,
        workspace_id: &WorkspaceId,
        limit: i64,
        before: Option<(i64, &str)>,
    ) -> Result<Vec<AuditRow>>;
}
