//! Property tests: nothing a database (or an operator) can hand the vault makes it panic.

// clippy.toml lets `#[test]` functions unwrap, expect and panic; the helpers and `test_on_both_backends!` bodies of
// an integration test crate are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use plugboard_vault::{secret_aad, KeyRing, MasterKey, Sealed, WrappedKey};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn open_never_panics_on_arbitrary_blobs(
        blob in proptest::collection::vec(any::<u8>(), 0..200),
        first_byte in any::<u8>(),
        aad in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let master = MasterKey::generate();
        let (key, _) = master.new_data_key().unwrap();
        let ring = KeyRing::new(key);
        let mut with_version = blob.clone();
        with_version.insert(0, first_byte);
        for blob in [blob, with_version] {
            let sealed = Sealed { key_id: ring.active_id().to_owned(), blob };
            // Random bytes practically never authenticate.
            prop_assert!(ring.open(&sealed, &aad).is_err());
        }
    }

    #[test]
    fn open_never_panics_on_arbitrary_key_ids(key_id in ".{0,40}", blob in proptest::collection::vec(any::<u8>(), 0..64)) {
        let master = MasterKey::generate();
        let (key, _) = master.new_data_key().unwrap();
        let ring = KeyRing::new(key);
        let sealed = Sealed { key_id, blob };
        prop_assert!(ring.open(&sealed, b"").is_err());
    }

    #[test]
    fn unwrap_never_panics_on_arbitrary_wrapped_keys(
        id in ".{0,30}",
        wrapped in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        let master = MasterKey::generate();
        let wrapped = WrappedKey { id, wrapped };
        prop_assert!(master.unwrap(&wrapped).is_err());
    }

    #[test]
    fn from_base64_never_panics_on_arbitrary_input(input in "\\PC{0,120}") {
        let _ = MasterKey::from_base64(&input);
    }

    #[test]
    fn from_base64_never_panics_on_base64_looking_input(input in "[A-Za-z0-9+/=\\s]{0,120}") {
        let _ = MasterKey::from_base64(&input);
    }

    #[test]
    fn any_plaintext_round_trips_under_its_own_aad_only(
        plaintext in proptest::collection::vec(any::<u8>(), 0..300),
        integration in "[a-z0-9_]{1,12}",
        field in "[a-z_]{1,12}",
    ) {
        let master = MasterKey::generate();
        let (key, _) = master.new_data_key().unwrap();
        let ring = KeyRing::new(key);
        let aad = secret_aad(&integration, &field);
        let sealed = ring.seal(&plaintext, &aad).unwrap();
        let opened = ring.open(&sealed, &aad).unwrap();
        prop_assert_eq!(opened.expose(), &plaintext[..]);
        let other = secret_aad(&integration, &format!("{field}_"));
        prop_assert!(ring.open(&sealed, &other).is_err());
    }
}

#[test]
fn keyed_hashes_depend_on_the_master_key_the_purpose_and_the_data() {
    let a = plugboard_vault::MasterKey::generate();
    let b = plugboard_vault::MasterKey::generate();
    assert_eq!(a.keyed_hash("p", b"data"), a.keyed_hash("p", b"data"));
    assert_ne!(a.keyed_hash("p", b"data"), b.keyed_hash("p", b"data"));
    assert_ne!(a.keyed_hash("p", b"data"), a.keyed_hash("q", b"data"));
    assert_ne!(a.keyed_hash("p", b"data"), a.keyed_hash("p", b"datb"));
    assert_ne!(a.keyed_hash("pd", b"ata"), a.keyed_hash("p", b"data"));
}
