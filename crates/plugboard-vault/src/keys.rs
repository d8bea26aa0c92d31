//! The master key and the data keys it wraps.

use std::fmt;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use rand::rngs::OsRng;
use rand::RngCore;
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::cipher::{self, DOMAIN, KEY_LEN, OVERHEAD};
use crate::error::VaultError;

/// Standard alphabet; accepts input with or without `=` padding; rejects non-canonical trailing bits.
const LENIENT_STANDARD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Prefix of data key ids.
pub const DATA_KEY_ID_PREFIX: &str = "dk_";

/// Length of a [`WrappedKey::wrapped`] blob: version, nonce, the 32 key bytes and the tag.
pub const WRAPPED_KEY_LEN: usize = OVERHEAD + KEY_LEN;

/// A zeroize-on-drop 32-byte key on the heap (so moves do not leave copies on the stack).
struct KeyBytes(Box<[u8; KEY_LEN]>);

impl KeyBytes {
    fn zeroed() -> Self {
        Self(Box::new([0u8; KEY_LEN]))
    }

    fn random() -> Result<Self, VaultError> {
        let mut key = Self::zeroed();
        cipher::random(&mut key.0[..])?;
        Ok(key)
    }
}

impl Drop for KeyBytes {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ZeroizeOnDrop for KeyBytes {}

/// The key-encryption key: wraps the data keys stored in the database. Never stored there.
///
/// Zeroized on drop; `Debug` prints `MasterKey(**redacted**)`. Deliberately neither `Clone` nor
/// `PartialEq`.
pub struct MasterKey(KeyBytes);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(**redacted**)")
    }
}

impl ZeroizeOnDrop for MasterKey {}

impl MasterKey {
    /// Parses standard base64 of exactly 32 bytes, with or without padding; surrounding whitespace
    /// (such as the newline at the end of a key file) is ignored. The error never echoes the input.
    pub fn from_base64(s: &str) -> Result<Self, VaultError> {
        // Decode into a fixed buffer (wiped on drop) so no stray heap copy of the key is left behind.
        // Anything that decodes to more than the buffer holds is rejected by `decode_slice`.
        let mut buffer = Zeroizing::new([0u8; 2 * KEY_LEN]);
        let len = LENIENT_STANDARD
            .decode_slice(s.trim().as_bytes(), &mut buffer[..])
            .map_err(|_| VaultError::InvalidMasterKey)?;
        let decoded = buffer.get(..len).ok_or(VaultError::InvalidMasterKey)?;
        if decoded.len() != KEY_LEN {
            return Err(VaultError::InvalidMasterKey);
        }
        let mut key = KeyBytes::zeroed();
        key.0.copy_from_slice(decoded);
        Ok(Self(key))
    }

    /// A fresh random key from the operating system.
    ///
    /// # Panics
    ///
    /// Only if the operating system's random number generator fails, as [`OsRng`] does.
    pub fn generate() -> Self {
        let mut key = KeyBytes::zeroed();
        OsRng.fill_bytes(&mut key.0[..]);
        Self(key)
    }

    /// Standard padded base64 (44 characters), for writing the development key file.
    pub fn to_base64(&self) -> SecretString {
        // `encode` allocates exactly the output length, so the conversion to `SecretString`
        // does not reallocate and leave an unwiped copy behind.
        SecretString::from(STANDARD.encode(&self.0 .0[..]))
    }

    /// A short non-secret id of this key for logs: the first 8 hex digits of SHA-256 over a
    /// domain-separated encoding of the key. 32 bits of a hash reveal nothing usable about a
    /// 256-bit random key.
    pub fn fingerprint(&self) -> String {
        let input = Zeroizing::new(cipher::encode_parts(&[
            DOMAIN,
            b"master-key-fingerprint",
            &self.0 .0[..],
        ]));
        let digest = Sha256::digest(&input[..]);
        hex(digest.get(..4).unwrap_or_default())
    }

    /// A keyed hash (HMAC-SHA256 under the master key, domain-separated by `purpose`) of `data`: for values
    /// that must be compared later but must not be testable offline by someone who reads the database
    /// (e.g. request fingerprints that cover secret values).
    pub fn keyed_hash(&self, purpose: &str, data: &[u8]) -> [u8; 32] {
        use hmac::{Hmac, Mac};
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(&self.0 .0[..]) {
            Ok(m) => m,
            // HMAC accepts keys of any length: unreachable, but no panic either.
            Err(_) => return [0u8; 32],
        };
        mac.update(&cipher::encode_parts(&[
            DOMAIN,
            b"keyed-hash",
            purpose.as_bytes(),
            data,
        ]));
        mac.finalize().into_bytes().into()
    }

    /// A fresh random data key with a new random id (`dk_` + 16 hex digits), and the same key
    /// wrapped under this master key for storage. The wrapping binds the key id as associated data.
    pub fn new_data_key(&self) -> Result<(DataKey, WrappedKey), VaultError> {
        let mut id_bytes = [0u8; 8];
        cipher::random(&mut id_bytes)?;
        let id = format!("{DATA_KEY_ID_PREFIX}{}", hex(&id_bytes));
        let key = KeyBytes::random()?;
        let wrapped = cipher::seal(&self.0 .0, &key.0[..], &wrap_aad(&id))?;
        Ok((
            DataKey {
                id: id.clone(),
                key,
            },
            WrappedKey { id, wrapped },
        ))
    }

    /// Unwraps a stored data key. A tag failure means this is not the master key that wrapped it
    /// (or the stored row is corrupted or has been given another id): [`VaultError::WrongMasterKey`].
    /// A blob of the wrong length or format version is [`VaultError::Malformed`].
    pub fn unwrap(&self, wrapped: &WrappedKey) -> Result<DataKey, VaultError> {
        if wrapped.wrapped.len() != WRAPPED_KEY_LEN {
            return Err(VaultError::Malformed);
        }
        let plain = Zeroizing::new(
            cipher::open(&self.0 .0, &wrapped.wrapped, &wrap_aad(&wrapped.id)).map_err(|err| {
                match err {
                    VaultError::Decrypt => VaultError::WrongMasterKey,
                    other => other,
                }
            })?,
        );
        if plain.len() != KEY_LEN {
            return Err(VaultError::Malformed);
        }
        let mut key = KeyBytes::zeroed();
        key.0.copy_from_slice(&plain[..]);
        Ok(DataKey {
            id: wrapped.id.clone(),
            key,
        })
    }
}

fn wrap_aad(key_id: &str) -> Vec<u8> {
    cipher::encode_parts(&[DOMAIN, b"wrapped-data-key", key_id.as_bytes()])
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// A data key wrapped under the master key: what the database stores. Ciphertext, so `Debug` is fine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// The data key id (`dk_…`); bound into the wrapping as associated data.
    pub id: String,
    /// `version || nonce || encrypted key || tag` ([`WRAPPED_KEY_LEN`] bytes).
    pub wrapped: Vec<u8>,
}

/// An unwrapped data key: an id and 32 secret bytes. Zeroized on drop; `Debug` shows only the id.
pub struct DataKey {
    id: String,
    key: KeyBytes,
}

impl DataKey {
    /// The key id, as stored next to every value sealed under this key.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.key.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey")
            .field("id", &self.id)
            .field("key", &format_args!("**redacted**"))
            .finish()
    }
}

impl ZeroizeOnDrop for DataKey {}

#[cfg(test)]
mod tests {
    use super::*;

    fn renderings(bytes: &[u8]) -> Vec<String> {
        vec![
            hex(bytes),
            hex(bytes).to_uppercase(),
            format!("{bytes:?}"),
            STANDARD.encode(bytes),
        ]
    }

    #[test]
    fn debug_of_a_data_key_shows_the_id_but_not_the_key_bytes() {
        let master = MasterKey::generate();
        let (key, _) = master.new_data_key().unwrap();
        let debug = format!("{key:?} {key:#?}");
        assert!(debug.contains(key.id()));
        assert!(debug.contains("redacted"));
        for rendering in renderings(key.bytes()) {
            assert!(!debug.contains(&rendering), "{debug}");
        }
        // Shorter windows of the key, too.
        for window in key.bytes().windows(4) {
            assert!(!debug.contains(&hex(window)), "{debug}");
        }
    }

    #[test]
    fn debug_of_a_master_key_is_exactly_the_redacted_marker() {
        let master = MasterKey::from_base64(&STANDARD.encode([0xab; 32])).unwrap();
        assert_eq!(format!("{master:?}"), "MasterKey(**redacted**)");
        assert_eq!(format!("{master:#?}"), "MasterKey(**redacted**)");
        for rendering in renderings(&[0xab; 32]) {
            assert!(!format!("{master:?}").contains(&rendering));
        }
    }

    #[test]
    fn the_wrapped_key_has_the_documented_length_and_does_not_contain_the_key() {
        let master = MasterKey::generate();
        let (key, wrapped) = master.new_data_key().unwrap();
        assert_eq!(wrapped.wrapped.len(), WRAPPED_KEY_LEN);
        assert_eq!(wrapped.wrapped[0], cipher::FORMAT_V1);
        assert!(!wrapped
            .wrapped
            .windows(KEY_LEN)
            .any(|w| w == &key.bytes()[..]));
    }

    #[test]
    fn hex_encodes_lowercase_two_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(hex(&[]), "");
    }
}
