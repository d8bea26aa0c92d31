//! The vault's storage: wrapped data keys and the sealed secrets, with the compare-and-set rewrap of rotation.

use super::*;

for_both_backends! {
    impl VaultStore {
        async fn data_keys(&self) -> Result<Vec<DataKeyRow>> {
            Ok(sqlx::query_as::<_, DataKeyRow>(
                "SELECT id, wrapped, active, created_at FROM data_keys ORDER BY created_at, id",
            )
            .fetch_all(&self.pool)
            .await?)
        }

        async fn insert_data_key(&self, id: &str, wrapped: &[u8], active: bool) -> Result<()> {
            let mut tx = begin!(self);
            if active {
                sqlx::query("UPDATE data_keys SET active = $1 WHERE active = $2")
                    .bind(false)
                    .bind(true)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("INSERT INTO data_keys (id, wrapped, active, created_at) VALUES ($1, $2, $3, $4)")
                .bind(id)
                .bind(wrapped)
                .bind(active)
                .bind(now_ms())
                .execute(&mut *tx)
                .await
                .map_err(|e| map_err(e, "a data key with this id"))?;
            commit!(tx);
            Ok(())
        }

        async fn active_data_key_id(&self) -> Result<Option<String>> {
            let row: Option<(String,)> = sqlx::query_as("SELECT id FROM data_keys WHERE active = $1")
                .bind(true)
                .fetch_optional(&self.pool)
                .await?;
            Ok(row.map(|(id,)| id))
        }

        async fn secrets_not_under(&self, key_id: &str, limit: i64) -> Result<Vec<SecretRow>> {
            Ok(sqlx::query_as::<_, SecretRow>(
                "SELECT integration_id, name, key_id, ciphertext FROM secrets WHERE key_id <> $1 \
                 ORDER BY integration_id, name LIMIT $2",
            )
            .bind(key_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
        }

        async fn rewrap_secret(&self, old: &SecretRow, new_key_id: &str, new_ciphertext: &[u8]) -> Result<bool> {
            let done = sqlx::query(
                "UPDATE secrets SET key_id = $1, ciphertext = $2 \
                 WHERE integration_id = $3 AND name = $4 AND key_id = $5 AND ciphertext = $6",
            )
            .bind(new_key_id)
            .bind(new_ciphertext)
            .bind(&old.integration_id)
            .bind(&old.name)
            .bind(&old.key_id)
            .bind(&old.ciphertext)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        }

        async fn delete_unused_data_keys(&self) -> Result<u64> {
            let done = sqlx::query(
                "DELETE FROM data_keys WHERE active = $1 \
                 AND NOT EXISTS (SELECT 1 FROM secrets s WHERE s.key_id = data_keys.id)",
            )
            .bind(false)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected())
        }

        async fn count_secrets(&self) -> Result<i64> {
            let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM secrets").fetch_one(&self.pool).await?;
            Ok(n)
        }
    }
}
