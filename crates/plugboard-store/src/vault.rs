//! The vault's storage: wrapped data keys and sealed secrets (ciphertext only).

use async_trait::async_trait;

use crate::{IntegrationId, Result};

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
    pub integration_id: IntegrationId,
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

#[derive(Clone, Debug)]
pub struct NewSecret {
    pub name: String,
    pub key_id: String,
    pub ciphertext: Vec<u8>,
}

/// Data keys and the secrets sealed under them (rotation reads and rewraps them).
#[async_trait]
pub trait VaultStore: Send + Sync {
    async fn data_keys(&self) -> Result<Vec<DataKeyRow>>;
    /// Inserts a wrapped data key; when `active`, it becomes the only active key in the same transaction.
    async fn insert_data_key(&self, id: &str, wrapped: &[u8], active: bool) -> Result<()>;
    async fn active_data_key_id(&self) -> Result<Option<String>>;
    /// Up to `limit` secrets sealed under any key other than `key_id`.
    async fn secrets_not_under(&self, key_id: &str, limit: i64) -> Result<Vec<SecretRow>>;
    /// Compare-and-set: replaces a secret's ciphertext only if it still holds `old`. Returns whether it did.
    async fn rewrap_secret(
        &self,
        old: &SecretRow,
        new_key_id: &str,
        new_ciphertext: &[u8],
    ) -> Result<bool>;
    /// Deletes data keys that are neither active nor used by any secret; returns how many.
    async fn delete_unused_data_keys(&self) -> Result<u64>;
    async fn count_secrets(&self) -> Result<i64>;
}
