//! The audit log.

use super::*;

/// Audit entries written by one `INSERT` at most (7 values each, within both backends' limits on bound values).
const AUDIT_ROWS_PER_INSERT: usize = 256;

/// The rows of each `INSERT` for `n` entries: powers of two, largest first (13 = 8 + 4 + 1), at most
/// [`AUDIT_ROWS_PER_INSERT`] each. So few statement shapes exist (nine) that each connection keeps them prepared,
/// instead of preparing a statement of another size for nearly every batch.
fn insert_sizes(mut n: usize) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if n == 0 {
            return None;
        }
        let size = (1usize << n.ilog2()).min(AUDIT_ROWS_PER_INSERT);
        n -= size;
        Some(size)
    })
}

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
            // One statement per piece (see insert_sizes): one round trip each, prepared once per connection.
            let mut rest = entries;
            for size in insert_sizes(entries.len()) {
                let (chunk, after) = rest.split_at(size);
                rest = after;
                let mut insert = sqlx::QueryBuilder::new(
                    "INSERT INTO audit_log (id, workspace_id, actor_id, action, target, detail, created_at) ",
                );
                insert.push_values(chunk, |mut row, entry| {
                    row.push_bind(new_time_ordered_id(now))
                        .push_bind(&entry.workspace_id)
                        .push_bind(&entry.actor_id)
                        .push_bind(&entry.action)
                        .push_bind(&entry.target)
                        .push_bind(detail_text(&entry.detail))
                        .push_bind(now);
                });
                insert.build().execute(&mut *tx).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_written_in_pieces_of_a_few_sizes() {
        let sizes = |n| insert_sizes(n).collect::<Vec<_>>();
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(1), [1]);
        assert_eq!(sizes(13), [8, 4, 1]);
        assert_eq!(sizes(256), [256]);
        assert_eq!(sizes(600), [256, 256, 64, 16, 8]);
        for n in 0..1000 {
            assert_eq!(insert_sizes(n).sum::<usize>(), n);
            assert!(insert_sizes(n).all(|s| s.is_power_of_two() && s <= AUDIT_ROWS_PER_INSERT));
        }
    }
}
