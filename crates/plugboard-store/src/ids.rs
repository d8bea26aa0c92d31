//! Opaque identifiers: a letter then 23 random lowercase alphanumerics (cuid2-like, ~119 bits).

use rand::Rng;

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A new random id, e.g. `c8k2m0x7q1v9b3n5h4j6w2t0`.
pub fn new_id() -> String {
    let mut rng = rand::thread_rng();
    let mut id = String::with_capacity(24);
    id.push('c');
    for _ in 0..23 {
        id.push(char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]));
    }
    id
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_24_lowercase_alphanumerics_starting_with_a_letter() {
        let id = new_id();
        assert_eq!(id.len(), 24);
        assert!(id.starts_with('c'));
        assert!(id.bytes().all(|b| ALPHABET.contains(&b)));
        assert_ne!(new_id(), new_id());
    }
}
