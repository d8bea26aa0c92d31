//! Small helpers: name checks written by hand (no regex, nothing to unwrap) and safe display of
//! untrusted names inside error messages.

/// Shows an untrusted *name* (a key, a filter) in an error message: control characters escaped,
/// at most 64 characters. Never used for submitted values.
pub(crate) fn shown(s: &str) -> String {
    const MAX: usize = 64;
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == MAX {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// `^[A-Za-z_][A-Za-z0-9_]*$`, at most `max` bytes.
pub(crate) fn is_identifier(s: &str, max: usize) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    s.len() <= max && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A field or derived key: `^[A-Za-z_][A-Za-z0-9_-]*$`, at most `max` bytes (hyphens too, as in `api-key`, so
/// catalogs written for other platforms load).
pub(crate) fn is_key(s: &str, max: usize) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    s.len() <= max && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `^[a-z][a-z0-9_-]*$`, at most 64 bytes.
pub(crate) fn is_manifest_id(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_lowercase() => {}
        _ => return false,
    }
    s.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// An icon key: `^[a-z0-9][a-z0-9_.-]*$`, at most 64 bytes.
pub(crate) fn is_icon_key(s: &str) -> bool {
    // Letters of either case, digits, `_ . - /` (`GitHub`, `simple-icons/github`); no `:`, so no value can carry a
    // URL scheme (`javascript:`, `data:`) into a frontend's `src`.
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    s.len() <= 128 && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/'))
}

/// `#RRGGBB`.
pub(crate) fn is_hex_color(s: &str) -> bool {
    match s.strip_prefix('#') {
        Some(hex) => hex.len() == 6 && hex.chars().all(|c| c.is_ascii_hexdigit()),
        None => false,
    }
}

/// An HTTP header name (RFC 9110 `token`), at most 128 bytes.
pub(crate) fn is_header_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    '!' | '#'
                        | '$'
                        | '%'
                        | '&'
                        | '\''
                        | '*'
                        | '+'
                        | '-'
                        | '.'
                        | '^'
                        | '_'
                        | '`'
                        | '|'
                        | '~'
                )
        })
}

/// A key as it appears in an error path: `.name` when plain, `["na me"]` otherwise.
pub(crate) fn path_key(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (path.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{}]", serde_json::Value::from(shown(key))),
    }
}

pub(crate) fn path_index(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_checks_accept_and_reject_what_the_spec_says() {
        assert!(is_manifest_id("github"));
        assert!(is_manifest_id("a1_b-c"));
        assert!(!is_manifest_id("GitHub"));
        assert!(!is_manifest_id("1abc"));
        assert!(!is_manifest_id(""));
        assert!(!is_manifest_id(&"a".repeat(65)));
        assert!(is_identifier("api_key", 64));
        assert!(is_identifier("_x9", 64));
        assert!(!is_identifier("9x", 64));
        assert!(!is_identifier("a-b", 64));
        assert!(is_key("api-key", 64));
        assert!(is_key("api_key", 64));
        assert!(!is_key("-x", 64));
        assert!(!is_key("a.b", 64));
        assert!(is_icon_key("github"));
        assert!(is_icon_key("google.drive_v2-x"));
        assert!(!is_icon_key("Git Hub"));
        assert!(is_hex_color("#aBc123"));
        assert!(!is_hex_color("#abc"));
        assert!(!is_hex_color("abc123"));
        assert!(is_header_name("X-Api-Key"));
        assert!(!is_header_name("X Api"));
    }

    #[test]
    fn shown_escapes_control_characters_and_truncates() {
        assert_eq!(shown("a\nb"), "a\\nb");
        assert_eq!(shown(&"x".repeat(100)).chars().count(), 65);
    }

    #[test]
    fn path_keys_are_dotted_when_plain_and_quoted_otherwise() {
        assert_eq!(path_key("", "id"), "id");
        assert_eq!(path_key("mcp.headers", "X-Key"), "mcp.headers.X-Key");
        assert_eq!(path_key("mcp.env", "a b"), "mcp.env[\"a b\"]");
        assert_eq!(path_index("mcp.args", 2), "mcp.args[2]");
    }
}
