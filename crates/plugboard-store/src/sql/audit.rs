//! The audit log.

use super::*;

/// Audit entries written by one `INSERT` at most (7 values each).
const AUDIT_ROWS_PER_INSERT: usize = 500;

for_both_backends! {
    impl AuditStore {
        async fn append_audit(&self, entry: NewAudit) -> Result<()> {
            insert_audit!(&self.pool, &entry);
            Ok(())
        }

        async fn append_audit_batch(&self, entries: &[NewAudit]) -> Result<()> {
            if entries.is_empty() {
                return Ok(());
            }
            let now = now_ms();
            // Audit entries decide no access: the commit leaves the write epoch alone.
            let mut tx = begin!(self, quiet);
            // One statement per AUDIT_ROWS_PER_INSERT entries: one round trip each, within both backends' limits
            // on bound values.
            for chunk in entries.chunks(AUDIT_ROWS_PER_INSERT) {
                let mut insert = sqlx::QueryBuilder::new(
                    "INSERT INTO audit_log (id, workspace_id, actor_id, action, target, detail, created_at) ",
                );
                insert.push_values(chunk, |mut row, entry| {
                    row.push_bind(new_time_ordered_id(now))
                        .push_bind(&entry.workspace_id)
                        .push_bind(&entry.actor_id)
                        .push_bind(&entry.action)
                        .push_bind(&entry.target)
                        .push_bind(entry.detail.to_string())
                        .push_bind(now);
                });
                // Not kept in the connection's statement cache: every batch size is another statement, and
                // hundreds of large ones held per connection grew the process by tens of MiB under load.
                insert.build().persistent(false).execute(&mut *tx).await?;
            }
            commit!(tx);
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
