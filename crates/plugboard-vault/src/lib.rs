//! Plugboard's vault: envelope encryption, with no database and no I/O.
//!
//! - A [`MasterKey`] (from `PLUGBOARD_MASTER_KEY`, never stored in the database) wraps random
//!   [`DataKey`]s; the database stores them as [`WrappedKey`]s.
//! - A [`KeyRing`] holds the unwrapped data keys and the active one; it seals values into
//!   [`Sealed`] (key id + blob) and opens them into [`Plaintext`].
//! - Every seal binds associated data naming where the value lives ([`secret_aad`], [`aad`]), so a
//!   ciphertext moved to another row or field fails to decrypt.
//! - [`rewrap`] re-encrypts a value under another key, for rotation.
//!
//! Primitive: AES-256-GCM (RustCrypto `aes-gcm`) with a random 96-bit nonce per value. Blob format:
//! `version (1) || nonce (12) || ciphertext || tag (16)`. Keys and plaintexts are zeroized on drop
//! and redacted in `Debug`; errors carry no secret material; no input makes anything panic.
//!
//! ```
//! use plugboard_vault::{secret_aad, KeyRing, MasterKey, VaultError};
//!
//! # fn main() -> Result<(), VaultError> {
//! // First start: make a data key and store `wrapped` (id + bytes) in the database.
//! let master = MasterKey::generate(); // in production: MasterKey::from_base64(&env_value)?
//! let (data_key, wrapped) = master.new_data_key()?;
//! let ring = KeyRing::new(data_key);
//! let sealed = ring.seal(b"ghp_example", &secret_aad("int_123", "token"))?;
//! // store `sealed.key_id` and `sealed.blob` in the row
//!
//! // Next start: unwrap every stored data key (a wrong master key fails here, loudly).
//! let ring = KeyRing::new(master.unwrap(&wrapped)?);
//! let token = ring.open(&sealed, &secret_aad("int_123", "token"))?.into_string()?;
//! # use secrecy::ExposeSecret;
//! # assert_eq!(token.expose_secret(), "ghp_example");
//! # Ok(())
//! # }
//! ```

mod cipher;
mod error;
mod keys;
mod ring;

pub use error::VaultError;
pub use keys::{DataKey, MasterKey, WrappedKey, DATA_KEY_ID_PREFIX, WRAPPED_KEY_LEN};
pub use ring::{rewrap, KeyRing, Plaintext, Sealed};

/// Current format version: the first byte of every blob.
pub const FORMAT_VERSION: u8 = cipher::FORMAT_V1;

/// Bytes a sealed value adds to its plaintext (version, nonce, tag).
pub const SEAL_OVERHEAD: usize = cipher::OVERHEAD;

/// Associated data in the general form: the domain `plugboard/v1`, then each part, every one
/// length-prefixed (u64 big-endian), so different lists never encode the same
/// (`["ab", "c"]` ≠ `["a", "bc"]`, `[]` ≠ `[""]`).
pub fn aad(parts: &[&str]) -> Vec<u8> {
    let mut all: Vec<&[u8]> = Vec::with_capacity(parts.len() + 1);
    all.push(cipher::DOMAIN);
    all.extend(parts.iter().map(|p| p.as_bytes()));
    cipher::encode_parts(&all)
}

/// Associated data for one secret field of one integration: `aad(["integration-secret",
/// integration_id, field])`.
pub fn secret_aad(integration_id: &str, field: &str) -> Vec<u8> {
    aad(&["integration-secret", integration_id, field])
}
