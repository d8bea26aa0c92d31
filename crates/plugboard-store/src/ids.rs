//! Identifiers: opaque random strings (a letter then 23 lowercase alphanumerics, cuid2-like, ~119 bits), and one
//! newtype per kind of id so that a workspace id cannot be passed where a user id is expected.
//!
//! Two ways to make an id value:
//! - [`WorkspaceId::parse`] (and `str::parse`) for an id that arrives in a request: `None` unless it has the shape
//!   [`new_id`] makes, so the edge can answer an id of the wrong shape as an unknown id before any database sees it;
//! - `WorkspaceId::from(String)` / `from(&str)` for an id from a trusted source (a database row, an operator's
//!   command line, a test): not checked.

use std::fmt;

use rand::Rng;
use serde::{Deserialize, Serialize};

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
/// Length of an id made by [`new_id`].
pub const ID_LEN: usize = 24;

/// A new random id, e.g. `c8k2m0x7q1v9b3n5h4j6w2t0`.
pub fn new_id() -> String {
    let mut id = String::with_capacity(ID_LEN);
    id.push('c');
    fill_random(&mut id);
    id
}

/// Random characters of [`ALPHABET`] until `id` is [`ID_LEN`] long.
fn fill_random(id: &mut String) {
    let mut rng = rand::thread_rng();
    while id.len() < ID_LEN {
        id.push(char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]));
    }
}

/// A new id of the same shape as [`new_id`] whose first characters after the `c` are the time it was made (ms since
/// the epoch, 9 base-36 digits in byte order), then 14 random characters (~72 bits): ids made later sort after
/// earlier ones, so a table keyed by them grows at its end. The audit log's rows use it: a batch of entries then
/// writes a few pages of its primary key's index instead of one page per entry.
pub fn new_time_ordered_id(now_ms: i64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut time = [b'0'; 9];
    let mut t = u64::try_from(now_ms).unwrap_or(0);
    for d in time.iter_mut().rev() {
        *d = DIGITS[(t % 36) as usize];
        t /= 36;
    }
    let mut id = String::with_capacity(ID_LEN);
    id.push('c');
    id.extend(time.iter().map(|b| char::from(*b)));
    fill_random(&mut id);
    id
}

/// Whether `s` has the shape [`new_id`] makes: 24 lowercase ASCII letters and digits, the first a letter.
pub fn is_well_formed_id(s: &str) -> bool {
    s.len() == ID_LEN
        && s.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
        && s.bytes().all(|b| ALPHABET.contains(&b))
}

/// A well-formed id that [`new_id`] never makes (its ids start with `c`): stands for any malformed id from a
/// request, so it is answered as an unknown one.
pub const UNKNOWN_ID: &str = "z00000000000000000000000";

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// An id of the wrong shape (see [`is_well_formed_id`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a well-formed id")]
pub struct MalformedId;

macro_rules! id_type {
    ($($(#[$doc:meta])* $name:ident;)+) => {$(
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, sqlx::Type)]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(String);

        impl $name {
            /// A new random id.
            pub fn generate() -> Self {
                $name(new_id())
            }

            /// An id from a request: `None` unless it has the shape [`new_id`] makes.
            pub fn parse(s: &str) -> Option<Self> {
                is_well_formed_id(s).then(|| $name(s.to_owned()))
            }

            /// An id from a request, where an id of the wrong shape must be answered exactly as an unknown id:
            /// the id itself when well-formed, else [`UNKNOWN_ID`], which is well-formed but never made, so it
            /// finds nothing (and a malformed value never reaches the database).
            pub fn parse_or_unknown(s: &str) -> Self {
                $name::parse(s).unwrap_or_else(|| $name(UNKNOWN_ID.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = MalformedId;
            fn from_str(s: &str) -> Result<Self, MalformedId> {
                $name::parse(s).ok_or(MalformedId)
            }
        }

        /// Unchecked: for ids from a trusted source (the database, an operator, a test).
        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }

        /// Unchecked: for ids from a trusted source (the database, an operator, a test).
        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_owned())
            }
        }

        /// Unchecked: for ids from a trusted source (the database, an operator, a test).
        impl From<&String> for $name {
            fn from(s: &String) -> Self {
                $name(s.clone())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        /// A JSON string equal to the id (responses carry ids as strings).
        impl PartialEq<$name> for serde_json::Value {
            fn eq(&self, other: &$name) -> bool {
                self.as_str() == Some(other.as_str())
            }
        }
    )+};
}

id_type! {
    /// A person's id.
    UserId;
    /// A workspace's id.
    WorkspaceId;
    /// A crew's id (a group inside a workspace).
    CrewId;
    /// An integration's id.
    IntegrationId;
    /// An API token's id (not the token: that is never stored).
    TokenId;
    /// A browser session's id (not its secret: only the secret's hash is stored).
    SessionId;
    /// An agent token's id (not the token: that is never stored).
    AgentTokenId;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_ordered_ids_are_well_formed_and_sort_by_the_time_they_were_made() {
        let times = [
            0,
            1,
            35,
            36,
            1_700_000_000_000,
            1_800_000_000_123,
            101_559_956_668_415,
        ];
        let ids: Vec<String> = times.iter().map(|t| new_time_ordered_id(*t)).collect();
        for id in &ids {
            assert!(is_well_formed_id(id), "{id}");
        }
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(sorted, ids);
        assert_ne!(new_time_ordered_id(5), new_time_ordered_id(5));
    }

    #[test]
    fn ids_are_24_lowercase_alphanumerics_starting_with_a_letter() {
        let id = new_id();
        assert_eq!(id.len(), 24);
        assert!(id.starts_with('c'));
        assert!(id.bytes().all(|b| ALPHABET.contains(&b)));
        assert_ne!(new_id(), new_id());
        assert!(is_well_formed_id(&id));
    }

    #[test]
    fn only_ids_of_the_generated_shape_parse() {
        let id = WorkspaceId::generate();
        assert_eq!(WorkspaceId::parse(id.as_str()), Some(id.clone()));
        assert_eq!(id.as_str().parse::<WorkspaceId>(), Ok(id.clone()));
        for bad in [
            "",
            "nope",
            "cdoesnotexist0000000000",
            "cdoesnotexist000000000000",
            "Cdoesnotexist00000000000",
            "0doesnotexist00000000000",
            "cdoesnotexist0000000000é",
            "c-oesnotexist00000000000",
        ] {
            assert_eq!(WorkspaceId::parse(bad), None, "{bad:?}");
        }
        assert!(WorkspaceId::parse("cdoesnotexist00000000000").is_some());
        assert_eq!(WorkspaceId::parse_or_unknown("\0"), UNKNOWN_ID);
        assert!(is_well_formed_id(UNKNOWN_ID) && !UNKNOWN_ID.starts_with('c'));
        assert_eq!(WorkspaceId::parse_or_unknown(id.as_str()), id);
    }
}
