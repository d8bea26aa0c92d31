//! The only place that touches the AEAD. Format of a sealed blob (and of a wrapped key):
//!
//! ```text
//! version (1 byte, = 1) || nonce (12 bytes, random) || ciphertext || tag (16 bytes)
//! ```
//!
//! Every function here returns an error instead of panicking on any input.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use rand::rngs::OsRng;
use rand::RngCore;
use zeroize::Zeroize;

use crate::error::VaultError;

pub(crate) const KEY_LEN: usize = 32;
pub(crate) const FORMAT_V1: u8 = 1;
pub(crate) const NONCE_LEN: usize = 12;
pub(crate) const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + NONCE_LEN;
/// Length of a sealed empty value: version, nonce and tag.
pub(crate) const OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// Domain of every associated-data string the vault builds.
pub(crate) const DOMAIN: &[u8] = b"plugboard/v1";

/// Fills `dest` from the OS random number generator.
pub(crate) fn random(dest: &mut [u8]) -> Result<(), VaultError> {
    OsRng.try_fill_bytes(dest).map_err(|_| VaultError::Random)
}

/// Unambiguous encoding of a list of byte strings: each part is its length (u64, big-endian)
/// followed by its bytes. No encoding of one list is the encoding of another list.
pub(crate) fn encode_parts(parts: &[&[u8]]) -> Vec<u8> {
    let len = parts.iter().map(|p| 8 + p.len()).sum();
    let mut out = Vec::with_capacity(len);
    for part in parts {
        out.extend_from_slice(&(part.len() as u64).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

fn cipher(key: &[u8; KEY_LEN]) -> Aes256Gcm {
    Aes256Gcm::new(key.into())
}

/// Encrypts `plaintext` under `key` with a fresh random nonce; returns the versioned blob.
pub(crate) fn seal(
    key: &[u8; KEY_LEN],
    plaintext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, VaultError> {
    let mut nonce = [0u8; NONCE_LEN];
    random(&mut nonce)?;
    let capacity = plaintext
        .len()
        .checked_add(OVERHEAD)
        .ok_or(VaultError::Encrypt)?;
    let mut blob = Vec::with_capacity(capacity);
    blob.push(FORMAT_V1);
    blob.extend_from_slice(&nonce);
    blob.extend_from_slice(plaintext);
    let result = cipher(key).encrypt_in_place_detached(
        Nonce::from_slice(&nonce),
        aad,
        &mut blob[HEADER_LEN..],
    );
    match result {
        Ok(tag) => {
            blob.extend_from_slice(&tag);
            Ok(blob)
        }
        Err(_) => {
            // The buffer may still hold plaintext.
            blob.zeroize();
            Err(VaultError::Encrypt)
        }
    }
}

/// Decrypts a versioned blob. `Malformed` when the blob cannot be a sealed value at all (empty,
/// unknown version, shorter than header + tag); `Decrypt` when authentication fails.
/// The returned buffer holds plaintext: the caller must wrap it in something that zeroizes.
pub(crate) fn open(key: &[u8; KEY_LEN], blob: &[u8], aad: &[u8]) -> Result<Vec<u8>, VaultError> {
    let (version, rest) = blob.split_first().ok_or(VaultError::Malformed)?;
    if *version != FORMAT_V1 {
        return Err(VaultError::Malformed);
    }
    let (nonce, rest) = rest
        .split_at_checked(NONCE_LEN)
        .ok_or(VaultError::Malformed)?;
    let ciphertext_len = rest
        .len()
        .checked_sub(TAG_LEN)
        .ok_or(VaultError::Malformed)?;
    let (ciphertext, tag) = rest
        .split_at_checked(ciphertext_len)
        .ok_or(VaultError::Malformed)?;
    if nonce.len() != NONCE_LEN || tag.len() != TAG_LEN {
        return Err(VaultError::Malformed);
    }
    let mut buffer = ciphertext.to_vec();
    // aes-gcm checks the tag before it decrypts, so on failure `buffer` still holds ciphertext only.
    cipher(key)
        .decrypt_in_place_detached(
            Nonce::from_slice(nonce),
            aad,
            &mut buffer,
            Tag::from_slice(tag),
        )
        .map_err(|_| VaultError::Decrypt)?;
    Ok(buffer)
}
