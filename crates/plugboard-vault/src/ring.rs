//! The key ring of unwrapped data keys, and the values sealed under them.

use std::collections::BTreeMap;
use std::fmt;

use secrecy::SecretString;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::cipher::{self, DOMAIN};
use crate::error::VaultError;
use crate::keys::DataKey;

/// A value sealed under a data key: what the database stores. Ciphertext, so `Debug` is fine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The id of the data key that sealed the value.
    pub key_id: String,
    /// `format version (1 byte) || nonce (12 bytes) || ciphertext || tag (16 bytes)`.
    pub blob: Vec<u8>,
}

/// Decrypted bytes. Zeroized on drop; `Debug` prints `Plaintext(**redacted**)`.
pub struct Plaintext(Vec<u8>);

impl Plaintext {
    /// The decrypted bytes. Do not copy them anywhere that outlives this value without care.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the plaintext is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The plaintext as a secret string. [`VaultError::NotUtf8`] if it is not UTF-8 (the bytes
    /// are wiped either way).
    pub fn into_string(self) -> Result<SecretString, VaultError> {
        let text = std::str::from_utf8(&self.0).map_err(|_| VaultError::NotUtf8)?;
        // Copy into an allocation of exactly the right size: `SecretString::from(String)` calls
        // `into_boxed_str`, which would otherwise reallocate and leave an unwiped copy.
        let mut exact = String::with_capacity(text.len());
        exact.push_str(text);
        Ok(SecretString::from(exact))
        // `self` drops here and wipes the original buffer.
    }
}

impl Drop for Plaintext {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ZeroizeOnDrop for Plaintext {}

impl fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Plaintext(**redacted**)")
    }
}

/// Unwrapped data keys by id, and the id of the active one (which new values are sealed under).
///
/// The active key is always in the ring. `Debug` lists ids only.
pub struct KeyRing {
    keys: BTreeMap<String, DataKey>,
    active: String,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("active", &self.active)
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl KeyRing {
    /// A ring holding one key, which is active.
    pub fn new(active: DataKey) -> Self {
        let id = active.id().to_owned();
        let mut keys = BTreeMap::new();
        keys.insert(id.clone(), active);
        Self { keys, active: id }
    }

    /// Adds a key (replacing one with the same id). Does not change the active key.
    pub fn insert(&mut self, key: DataKey) {
        self.keys.insert(key.id().to_owned(), key);
    }

    /// Makes the key with this id the one [`KeyRing::seal`] uses. [`VaultError::UnknownKey`] (and
    /// no change) if it is not in the ring.
    pub fn set_active(&mut self, id: &str) -> Result<(), VaultError> {
        if !self.keys.contains_key(id) {
            return Err(VaultError::UnknownKey(id.to_owned()));
        }
        id.clone_into(&mut self.active);
        Ok(())
    }

    /// The id of the key new values are sealed under.
    pub fn active_id(&self) -> &str {
        &self.active
    }

    /// Whether a key with this id is in the ring.
    pub fn contains(&self, id: &str) -> bool {
        self.keys.contains_key(id)
    }

    /// The ids of all keys in the ring, in sorted order.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Number of keys in the ring (at least one).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always `false`: a ring holds at least its active key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn key(&self, id: &str) -> Result<&DataKey, VaultError> {
        self.keys
            .get(id)
            .ok_or_else(|| VaultError::UnknownKey(id.to_owned()))
    }

    /// Seals `plaintext` under the active key. `aad` should name where the value lives (see
    /// [`crate::secret_aad`]), so a value moved to another row or field fails to open.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Sealed, VaultError> {
        self.seal_with(&self.active, plaintext, aad)
    }

    /// Seals `plaintext` under the key with this id.
    pub fn seal_with(
        &self,
        key_id: &str,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Sealed, VaultError> {
        let key = self.key(key_id)?;
        let blob = cipher::seal(key.bytes(), plaintext, &value_aad(key_id, aad))?;
        Ok(Sealed {
            key_id: key_id.to_owned(),
            blob,
        })
    }

    /// Opens a sealed value. [`VaultError::UnknownKey`] if its key is not in the ring;
    /// [`VaultError::Malformed`] if the blob is too short or has an unknown format version;
    /// [`VaultError::Decrypt`] if authentication fails (tampered or truncated blob, wrong `aad`,
    /// wrong key id).
    pub fn open(&self, sealed: &Sealed, aad: &[u8]) -> Result<Plaintext, VaultError> {
        let key = self.key(&sealed.key_id)?;
        cipher::open(key.bytes(), &sealed.blob, &value_aad(&sealed.key_id, aad)).map(Plaintext)
    }
}

/// The associated data the AEAD actually sees: the caller's, plus the key id, in a domain of its own.
fn value_aad(key_id: &str, aad: &[u8]) -> Vec<u8> {
    cipher::encode_parts(&[DOMAIN, b"sealed-value", key_id.as_bytes(), aad])
}

/// Re-encrypts a value under `to_key_id` (key rotation): opens it with the key it names, seals it
/// again with the same `aad` and a fresh nonce. The plaintext is wiped before returning.
pub fn rewrap(
    ring: &KeyRing,
    sealed: &Sealed,
    aad: &[u8],
    to_key_id: &str,
) -> Result<Sealed, VaultError> {
    if !ring.contains(to_key_id) {
        return Err(VaultError::UnknownKey(to_key_id.to_owned()));
    }
    let plaintext = ring.open(sealed, aad)?;
    ring.seal_with(to_key_id, plaintext.expose(), aad)
}
