//! The credential vault as the server uses it: the master key, the ring of unwrapped data keys kept in the
//! database, sealing and opening of secret values bound to their integration and field, and online rotation.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use plugboard_store::{IntegrationId, NewSecret, SecretRow, Store, StoreError};
use plugboard_vault::{secret_aad, KeyRing, MasterKey, Plaintext, Sealed, VaultError, WrappedKey};
use secrecy::ExposeSecret;

use crate::config::Config;

/// The names of an integration's vault entries: every one is written here, nowhere else.
pub mod names {
    /// Prefix of the submitted form values (`field.token`, `field.client_id`, …) and a custom server's secret
    /// header / env values (`field.header_<n>`, `field.env_<n>`).
    pub const FIELD_PREFIX: &str = "field.";
    pub const ACCESS_TOKEN: &str = "oauth.access_token";
    pub const REFRESH_TOKEN: &str = "oauth.refresh_token";
    /// The PKCE code verifier of a pending authorization, for the callback to consume.
    pub const PKCE_VERIFIER: &str = "oauth.pkce_verifier";
    /// The client secret of a dynamically registered confidential client (mcp_oauth).
    pub const CLIENT_SECRET: &str = "oauth.client_secret";
    /// The authorization URL of a byo_oauth install made with an `Idempotency-Key`, kept for replays: it carries
    /// the client id and the state, so it is sealed rather than stored with the replayable response.
    pub const AUTHORIZE_URL: &str = "oauth.authorize_url";
}

/// How long a server trusts its idea of the active data key before asking the database again.
const ACTIVE_KEY_RECHECK: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum VaultServiceError {
    #[error("{0}")]
    Config(String),
    #[error("vault: {0}")]
    Vault(#[from] VaultError),
    #[error("vault storage: {0}")]
    Store(#[from] StoreError),
}

/// Finds the master key: `PLUGBOARD_MASTER_KEY`, else (SQLite only) `$PLUGBOARD_DATA_DIR/master.key`, created once
/// with mode 0600.
pub fn resolve_master_key(config: &Config) -> Result<MasterKey, VaultServiceError> {
    if let Some(k) = &config.master_key {
        return MasterKey::from_base64(k.expose_secret())
            .map_err(|e| VaultServiceError::Config(format!("PLUGBOARD_MASTER_KEY: {e}")));
    }
    if !config.is_sqlite() {
        return Err(VaultServiceError::Config(
            "PLUGBOARD_MASTER_KEY is required with PostgreSQL: every instance must share one key. \
             Make one with `openssl rand -base64 32` (or `head -c 32 /dev/urandom | base64`), keep it in your \
             secret store and set PLUGBOARD_MASTER_KEY on every instance."
                .into(),
        ));
    }
    let path = config.data_dir.join("master.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => MasterKey::from_base64(&text)
            .map_err(|e| VaultServiceError::Config(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = MasterKey::generate();
            write_key_file(&path, key.to_base64().expose_secret()).map_err(|e| {
                VaultServiceError::Config(format!(
                    "cannot create the dev key file {}: {e}",
                    path.display()
                ))
            })?;
            tracing::warn!(
                path = %path.display(),
                "PLUGBOARD_MASTER_KEY is unset: created a development master key file. Back it up (losing it loses \
                 every stored secret) and set PLUGBOARD_MASTER_KEY in production"
            );
            Ok(key)
        }
        Err(e) => Err(VaultServiceError::Config(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

fn write_key_file(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

/// Unwraps every stored data key (a wrong master key fails here), creating the first one on an empty database.
async fn load_ring(store: &dyn Store, master: &MasterKey) -> Result<KeyRing, VaultServiceError> {
    let mut rows = store.data_keys().await?;
    if rows.is_empty() {
        let (_, wrapped) = master.new_data_key()?;
        store
            .insert_data_key(&wrapped.id, &wrapped.wrapped, true)
            .await?;
        rows = store.data_keys().await?;
    }
    let mut keys = Vec::with_capacity(rows.len());
    let mut active = None;
    for row in &rows {
        let key = master
            .unwrap(&WrappedKey { id: row.id.clone(), wrapped: row.wrapped.clone() })
            .map_err(|e| match e {
                VaultError::WrongMasterKey => VaultServiceError::Config(format!(
                    "the master key does not open data key {} stored in the database: PLUGBOARD_MASTER_KEY (or \
                     master.key) is not the key this database was created with",
                    row.id
                )),
                other => VaultServiceError::Vault(other),
            })?;
        if row.active {
            active = Some(row.id.clone());
        }
        keys.push(key);
    }
    let mut iter = keys.into_iter();
    let first = iter
        .next()
        .ok_or_else(|| VaultServiceError::Config("no data key".into()))?;
    let mut ring = KeyRing::new(first);
    for k in iter {
        ring.insert(k);
    }
    match active {
        Some(id) => ring.set_active(&id)?,
        None => {
            // Every key was deactivated (should not happen): the newest is used for new values.
            if let Some(last) = rows.last() {
                ring.set_active(&last.id)?;
            }
        }
    }
    Ok(ring)
}

pub struct Vault {
    store: Arc<dyn Store>,
    master: MasterKey,
    ring: RwLock<Arc<KeyRing>>,
    checked: Mutex<Instant>,
}

impl Vault {
    pub async fn load(
        store: Arc<dyn Store>,
        master: MasterKey,
    ) -> Result<Vault, VaultServiceError> {
        let ring = load_ring(store.as_ref(), &master).await?;
        Ok(Vault {
            store,
            master,
            ring: RwLock::new(Arc::new(ring)),
            checked: Mutex::new(Instant::now()),
        })
    }

    /// A keyed hash under the master key (see [`MasterKey::keyed_hash`]).
    pub fn keyed_hash(&self, purpose: &str, data: &[u8]) -> [u8; 32] {
        self.master.keyed_hash(purpose, data)
    }

    pub fn master_fingerprint(&self) -> String {
        self.master.fingerprint()
    }

    fn ring(&self) -> Arc<KeyRing> {
        self.ring.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub async fn reload(&self) -> Result<(), VaultServiceError> {
        let ring = load_ring(self.store.as_ref(), &self.master).await?;
        *self.ring.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(ring);
        *self.checked.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        Ok(())
    }

    /// Before sealing: makes sure new values go under the key the database calls active (after a rotation by
    /// another process), asking at most once a second.
    async fn ensure_current(&self) -> Result<(), VaultServiceError> {
        let due = self
            .checked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
            >= ACTIVE_KEY_RECHECK;
        if !due {
            return Ok(());
        }
        let active = self.store.active_data_key_id().await?;
        if active
            .as_deref()
            .is_some_and(|id| id != self.ring().active_id())
        {
            self.reload().await
        } else {
            *self.checked.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
            Ok(())
        }
    }

    /// Seals `plaintext` as secret `name` of `integration_id`.
    pub async fn seal(
        &self,
        integration_id: &IntegrationId,
        name: &str,
        plaintext: &[u8],
    ) -> Result<NewSecret, VaultServiceError> {
        self.ensure_current().await?;
        let sealed = self
            .ring()
            .seal(plaintext, &secret_aad(integration_id, name))?;
        Ok(NewSecret {
            name: name.to_string(),
            key_id: sealed.key_id,
            ciphertext: sealed.blob,
        })
    }

    /// Opens a stored secret (reloading the ring once if another process added a key).
    pub async fn open(&self, row: &SecretRow) -> Result<Plaintext, VaultServiceError> {
        let sealed = Sealed {
            key_id: row.key_id.clone(),
            blob: row.ciphertext.clone(),
        };
        let aad = secret_aad(&row.integration_id, &row.name);
        if !self.ring().contains(&row.key_id) {
            self.reload().await?;
        }
        Ok(self.ring().open(&sealed, &aad)?)
    }
}

/// `plugboard vault rotate`: a new active data key, every secret re-encrypted under it (compare-and-set per value,
/// so concurrent writers are never overwritten), then the keys nothing uses any more are deleted.
/// Servers keep serving throughout: old keys stay until no secret uses them.
pub async fn rotate(
    store: Arc<dyn Store>,
    master: &MasterKey,
) -> Result<(String, u64), VaultServiceError> {
    // Opening the ring first proves the master key is right before anything changes.
    load_ring(store.as_ref(), master).await?;
    let (_, wrapped) = master.new_data_key()?;
    store
        .insert_data_key(&wrapped.id, &wrapped.wrapped, true)
        .await?;
    let new_id = wrapped.id.clone();
    let mut rewrapped = 0u64;
    // Two passes: the second after servers have had time to notice the new active key.
    for pass in 0..2 {
        if pass == 1 {
            tokio::time::sleep(ACTIVE_KEY_RECHECK + Duration::from_millis(500)).await;
        }
        loop {
            let ring = load_ring(store.as_ref(), master).await?;
            let batch = store.secrets_not_under(&new_id, 500).await?;
            if batch.is_empty() {
                break;
            }
            let mut progressed = false;
            for row in &batch {
                let sealed = Sealed {
                    key_id: row.key_id.clone(),
                    blob: row.ciphertext.clone(),
                };
                let moved = plugboard_vault::rewrap(
                    &ring,
                    &sealed,
                    &secret_aad(&row.integration_id, &row.name),
                    &new_id,
                )?;
                if store.rewrap_secret(row, &moved.key_id, &moved.blob).await? {
                    rewrapped += 1;
                    progressed = true;
                }
            }
            if !progressed {
                // Every value changed under us (concurrent writes): read again.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    store.delete_unused_data_keys().await?;
    Ok((new_id, rewrapped))
}
