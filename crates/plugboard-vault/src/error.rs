//! The one error type of the vault. Messages are for humans and never carry key material or plaintext.

/// What can go wrong in the vault.
///
/// No variant carries secret material: `UnknownKey` holds a data key *id*, which is not secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// `PLUGBOARD_MASTER_KEY` (or the key file) is not base64 of exactly 32 bytes.
    #[error(
        "PLUGBOARD_MASTER_KEY must be base64 of exactly 32 random bytes (e.g. `openssl rand -base64 32`)"
    )]
    InvalidMasterKey,

    /// A wrapped data key failed to authenticate under the master key: in practice the master key is
    /// not the one the database was set up with.
    #[error(
        "the master key cannot unwrap the stored data keys: PLUGBOARD_MASTER_KEY is not the key this \
         database was encrypted with (or a stored wrapped key is corrupted)"
    )]
    WrongMasterKey,

    /// The data key a value names is not in the key ring.
    #[error("data key `{0}` is not in the key ring")]
    UnknownKey(String),

    /// Authentication failed: the value was tampered with or corrupted, or it belongs to another row
    /// or field (associated data mismatch).
    #[error(
        "decryption failed: the stored value was tampered with, is corrupted, or belongs to another \
         row or field"
    )]
    Decrypt,

    /// The AEAD refused to encrypt (only for absurdly large inputs).
    #[error("encryption failed")]
    Encrypt,

    /// The stored bytes are not a sealed value or wrapped key of a known format (too short, wrong
    /// length, or an unknown format version).
    #[error("the stored ciphertext is malformed (wrong length or unknown format version)")]
    Malformed,

    /// The decrypted value was expected to be text but is not valid UTF-8.
    #[error("the decrypted value is not valid UTF-8")]
    NotUtf8,

    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed")]
    Random,
}
