//! The audit log.

use super::*;

for_both_backends! {
    impl AuditStore {
        async fn append_audit(&self, entry: NewAudit) -> Result<()> {
            insert_audit!(&self.pool, &entry);
            Ok(())
        }

        async fn list_audit(&self, workspace_id: &WorkspaceId, limit: i64, before: Option<i64>) -> Result<Vec<AuditRow>> {
            Ok(sqlx::query_as::<_, AuditRow>(
                "SELECT id, workspace_id, actor_id, action, target, detail, created_at FROM audit_log \
                 WHERE workspace_id = $1 AND created_at < $2 ORDER BY created_at DESC, id DESC LIMIT $3",
            )
            .bind(workspace_id)
            .bind(before.unwrap_or(i64::MAX))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
        }

        async fn list_audit_page(
            &self,
            workspace_id: &WorkspaceId,
            limit: i64,
            before: Option<(i64, &str)>,
        ) -> Result<Vec<AuditRow>> {
            let (at, id) = before.unwrap_or((i64::MAX, ""));
            Ok(sqlx::query_as::<_, AuditRow>(
                "SELECT id, workspace_id, actor_id, action, target, detail, created_at FROM audit_log \
                 WHERE workspace_id = $1 AND (created_at < $2 OR (created_at = $2 AND id < $3)) \
                 ORDER BY created_at DESC, id DESC LIMIT $4",
            )
            .bind(workspace_id)
            .bind(at)
            .bind(id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
        }
    }
}
