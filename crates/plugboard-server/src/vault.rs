//! The credential vault as the server uses it: the master key, the ring of unwrapped data keys kept in the
//! database, sealing and opening of secret values bound to their integration and field, and online rotation.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use plugboard_store::{IntegrationId, NewSecret, SecretRow, Store, StoreError};
use plugboard_vault::{secret_aad, KeyRing, MasterKey, Plaintext, Sealed, VaultError, WrappedKey};
use secrecy::{ExposeSecret, SecretString};

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

/// Finds the master key: `PLUGBOARD_MASTER_KEY`, else the file `PLUGBOARD_MASTER_KEY_FILE` names, else (SQLite
/// only) `$PLUGBOARD_DATA_DIR/master.key`, created once with mode 0600.
pub fn resolve_master_key(config: &Config) -> Result<MasterKey, VaultServiceError> {
    if let Some(k) = &config.master_key {
        return MasterKey::from_base64(k.expose_secret())
            .map_err(|e| VaultServiceError::Config(format!("PLUGBOARD_MASTER_KEY: {e}")));
    }
    if let Some(path) = &config.master_key_file {
        return read_master_key_file(path);
    }
    if !config.is_sqlite() {
        return Err(VaultServiceError::Config(
            "PLUGBOARD_MASTER_KEY (or PLUGBOARD_MASTER_KEY_FILE) is required with PostgreSQL: every instance must \
             share one key. Make one with `openssl rand -base64 32` (or `head -c 32 /dev/urandom | base64`), keep \
             it in your secret store and give it to every instance, in PLUGBOARD_MASTER_KEY or in a file named by \
             PLUGBOARD_MASTER_KEY_FILE."
                .into(),
        ));
    }
    let path = config.data_dir.join("master.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let text = SecretString::from(text);
            #[cfg(unix)]
            if let Ok(meta) = std::fs::metadata(&path) {
                if let Some(problem) = exposure(&path, &meta) {
                    tracing::warn!(
                        path = %path.display(),
                        "the development master key file {problem}: run `chmod 600 {}`",
                        path.display()
                    );
                }
            }
            MasterKey::from_base64(text.expose_secret())
                .map_err(|e| VaultServiceError::Config(format!("{}: {e}", path.display())))
        }
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
                 every stored secret) and set PLUGBOARD_MASTER_KEY or PLUGBOARD_MASTER_KEY_FILE in production"
            );
            Ok(key)
        }
        Err(e) => Err(VaultServiceError::Config(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// A master key file holds one base64 key (44 characters and a newline); anything much longer is not one.
const KEY_FILE_MAX_BYTES: u64 = 1024;

/// Reads `PLUGBOARD_MASTER_KEY_FILE`: a regular file (symbolic links followed, as Kubernetes mounts secrets) that
/// only its owner can read or write, holding the key in base64 with any surrounding whitespace.
fn read_master_key_file(path: &Path) -> Result<MasterKey, VaultServiceError> {
    use std::io::Read;
    let fail = |what: String| {
        VaultServiceError::Config(format!(
            "PLUGBOARD_MASTER_KEY_FILE {}: {what}",
            path.display()
        ))
    };
    let file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => fail("no such file: check the path".into()),
        std::io::ErrorKind::PermissionDenied => fail(
            "permission denied: the file must be readable by the user plugboard runs as".into(),
        ),
        _ => fail(format!("cannot be opened: {e}")),
    })?;
    let meta = file
        .metadata()
        .map_err(|e| fail(format!("cannot be read: {e}")))?;
    if !meta.is_file() {
        return Err(fail(
            "is not a regular file: it must hold the key in base64".into(),
        ));
    }
    #[cfg(unix)]
    if let Some(problem) = exposure(path, &meta) {
        return Err(fail(format!(
            "{problem}. The master key decrypts every stored secret: make the file private to the user plugboard \
             runs as with `chmod 600 {}` (or 400), or hand it over with systemd's LoadCredential=",
            path.display()
        )));
    }
    if meta.len() > KEY_FILE_MAX_BYTES {
        return Err(fail(format!(
            "is {} bytes long: it must hold only the key, base64 of 32 random bytes (make one with \
             `openssl rand -base64 32`)",
            meta.len()
        )));
    }
    let mut text = String::with_capacity(KEY_FILE_MAX_BYTES as usize + 1);
    let read = file.take(KEY_FILE_MAX_BYTES + 1).read_to_string(&mut text);
    let text = SecretString::from(text);
    read.map_err(|_| fail("is not text: it must hold the key in base64".into()))?;
    if text.expose_secret().trim().is_empty() {
        return Err(fail(
            "is empty: write the key into it, base64 of 32 random bytes (`openssl rand -base64 32`)".into(),
        ));
    }
    MasterKey::from_base64(text.expose_secret()).map_err(|e| fail(e.to_string()))
}

/// Says who besides the owner may read or write a key file, if anyone. Inside systemd's credentials directory
/// (`$CREDENTIALS_DIRECTORY`) group bits are allowed: systemd grants the unit's user read access through an ACL,
/// which shows as group permission, and nobody else can reach that directory.
#[cfg(unix)]
fn exposure(path: &Path, meta: &std::fs::Metadata) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    let systemd_credential = std::env::var_os("CREDENTIALS_DIRECTORY")
        .filter(|dir| !dir.is_empty())
        .is_some_and(|dir| path.starts_with(dir));
    let group = mode & 0o070 != 0 && !systemd_credential;
    let others = mode & 0o007 != 0;
    let who = match (group, others) {
        (true, true) => "its group and other users",
        (true, false) => "its group",
        (false, true) => "other users",
        (false, false) => return None,
    };
    Some(format!("can be read or written by {who} (mode {mode:04o})"))
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
        match store
            .insert_data_key(&wrapped.id, &wrapped.wrapped, true)
            .await
        {
            // Another instance starting on the same empty database made the first key at the same moment: use it.
            Ok(()) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
        rows = store.data_keys().await?;
    }
    let mut keys = Vec::with_capacity(rows.len());
    let mut active = None;
    for row in &rows {
        let key = master
            .unwrap(&WrappedKey { id: row.id.clone(), wrapped: row.wrapped.clone() })
            .map_err(|e| match e {
                VaultError::WrongMasterKey => VaultServiceError::Config(format!(
                    "the master key does not open data key {} stored in the database: the key given \
                     (PLUGBOARD_MASTER_KEY, PLUGBOARD_MASTER_KEY_FILE or master.key) is not the one this database \
                     was created with",
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

/// The lease that serialises rotations across processes and instances.
pub const ROTATION_LEASE: &str = "vault_rotation";
/// How long a rotation's lease lasts unless renewed; a crashed rotation blocks others at most this long.
pub const ROTATION_LEASE_TTL: Duration = Duration::from_secs(30);
/// A rotation renews its lease when this much of it has passed.
const ROTATION_LEASE_RENEW: Duration = Duration::from_secs(10);
/// How often a waiting rotation asks whether the lease is free.
const ROTATION_WAIT_POLL: Duration = Duration::from_millis(500);

/// Who holds a lease (the rotation's, the sealing pass's, an instance's presence), as other processes see it: host,
/// process id and a random suffix.
pub(crate) fn lease_holder() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into());
    let id = plugboard_store::new_id();
    let suffix = id.get(id.len().saturating_sub(6)..).unwrap_or(&id);
    format!("{host} pid {} #{suffix}", std::process::id())
}

fn lease_deadline(now: i64) -> i64 {
    now + i64::try_from(ROTATION_LEASE_TTL.as_millis()).unwrap_or(i64::MAX / 2)
}

/// `plugboard vault rotate`: a new active data key, every secret re-encrypted under it (compare-and-set per value,
/// so concurrent writers are never overwritten), then the keys nothing uses any more are deleted.
/// Servers keep serving throughout: old keys stay until no secret uses them.
///
/// Rotations are serialised by a lease in the database, which names the key each rotation moves the secrets to.
/// A rotation that finds another one running waits for it (saying so in the log); if the key that one rotated to
/// is then active, it only finishes moving what is not under that key yet (nothing, when the other completed)
/// instead of rotating again, so rotations started together do one pass over the secrets between them. A rotation
/// that crashed stops blocking others when its lease expires ([`ROTATION_LEASE_TTL`]).
pub async fn rotate(
    store: Arc<dyn Store>,
    master: &MasterKey,
) -> Result<(String, u64), VaultServiceError> {
    // Opening the ring first proves the master key is right before anything changes.
    load_ring(store.as_ref(), master).await?;
    let holder = lease_holder();
    // The key this rotation would move to; made before the lease so the lease can name it.
    let (_, own_key) = master.new_data_key()?;
    // The keys the rotations seen holding the lease were moving to.
    let mut others_keys: Vec<String> = Vec::new();
    loop {
        let now = plugboard_store::now_ms();
        let lease = store
            .try_lease(
                ROTATION_LEASE,
                &holder,
                &own_key.id,
                now,
                lease_deadline(now),
            )
            .await?;
        if lease.taken {
            break;
        }
        if others_keys.is_empty() {
            tracing::warn!(
                holder = %lease.holder,
                "another `plugboard vault rotate` is running (held by {}): waiting for it to finish instead of \
                 starting a second rotation",
                lease.holder
            );
        }
        if !others_keys.contains(&lease.detail) {
            others_keys.push(lease.detail);
        }
        tokio::time::sleep(ROTATION_WAIT_POLL).await;
    }
    let result = rotate_holding_lease(store.as_ref(), master, &holder, own_key, &others_keys).await;
    // On failure too: a lease left behind would only block the next rotation until it expires.
    if let Err(e) = store.release_lease(ROTATION_LEASE, &holder).await {
        tracing::warn!(error = %e, "could not release the rotation lease: it expires by itself");
    }
    result
}

async fn rotate_holding_lease(
    store: &dyn Store,
    master: &MasterKey,
    holder: &str,
    own_key: WrappedKey,
    others_keys: &[String],
) -> Result<(String, u64), VaultServiceError> {
    let active = store.active_data_key_id().await?;
    let new_id = match active.filter(|id| others_keys.contains(id)) {
        Some(id) => {
            tracing::warn!(
                key_id = %id,
                "the rotation that was running made data key {id} active: finishing its work instead of rotating \
                 again"
            );
            id
        }
        None => {
            store
                .insert_data_key(&own_key.id, &own_key.wrapped, true)
                .await?;
            own_key.id
        }
    };
    let mut renewed = Instant::now();
    let mut rewrapped = 0u64;
    // Two passes: the second after servers have had time to notice the new active key.
    for pass in 0..2 {
        if pass == 1 {
            tokio::time::sleep(ACTIVE_KEY_RECHECK + Duration::from_millis(500)).await;
        }
        loop {
            renew_rotation_lease(store, holder, &new_id, &mut renewed).await?;
            let ring = load_ring(store, master).await?;
            let batch = store.secrets_not_under(&new_id, 500).await?;
            if batch.is_empty() {
                break;
            }
            let mut progressed = false;
            for row in &batch {
                renew_rotation_lease(store, holder, &new_id, &mut renewed).await?;
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

/// Renews the rotation lease when it is due; fails when another process took it over (this one stalled for
/// longer than the lease lasts), so two rotations never work at once.
async fn renew_rotation_lease(
    store: &dyn Store,
    holder: &str,
    key_id: &str,
    renewed: &mut Instant,
) -> Result<(), VaultServiceError> {
    if renewed.elapsed() < ROTATION_LEASE_RENEW {
        return Ok(());
    }
    let now = plugboard_store::now_ms();
    let lease = store
        .try_lease(ROTATION_LEASE, holder, key_id, now, lease_deadline(now))
        .await?;
    if !lease.taken {
        return Err(VaultServiceError::Config(format!(
            "this rotation stalled for longer than its lease ({} s) and {} took over: nothing is lost (every \
             secret is under a key the vault still has); let that rotation finish",
            ROTATION_LEASE_TTL.as_secs(),
            lease.holder
        )));
    }
    *renewed = Instant::now();
    Ok(())
}
