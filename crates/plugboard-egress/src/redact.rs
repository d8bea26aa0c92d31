//! Removing secrets from everything a provider says back (probe messages, relayed MCP traffic), and cutting
//! messages to size.
//!
//! A provider can echo what we sent it: the raw token, the token inside a JSON string, percent-encoded in a URL it
//! quotes back, or base64 in an `Authorization: Basic …` it prints. Every secret value is searched for in all of
//! those forms and replaced by `[redacted]`:
//!
//! - raw, JSON-escaped and hex, matched ASCII-case-insensitively;
//! - percent-encoded with every encode set a URL or form could apply (`%2F` style and `+` for spaces), case-insensitive
//!   (so `%2f` is found too);
//! - base64 (standard and URL-safe, padded or not) **inside any longer base64 text**: a secret at byte offset `k` of
//!   an encoded string always produces the same run of characters, one of three depending on `k mod 3`, so
//!   `base64("user:" + secret)` (a Basic header) is found whatever the user name is. The whole base64 word holding
//!   such a run is removed.
//!
//! Values shorter than [`MIN_SECRET_LEN`] bytes are not searched for: replacing every `ab` in a message would make it
//! unreadable and such a value protects nothing.

use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC};

/// What replaces a secret.
pub const REDACTED: &str = "[redacted]";
/// Secrets shorter than this are not searched for.
pub const MIN_SECRET_LEN: usize = 4;
/// The longest message a probe returns, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 512;

/// Encode sets a URL, a query, a path, userinfo or a form may use for the same value.
const FRAGMENT: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'<').add(b'>').add(b'`');
const QUERY: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'\'');
const PATH: &AsciiSet = &QUERY.add(b'?').add(b'`').add(b'{').add(b'}');
const USERINFO: &AsciiSet = &PATH
    .add(b'/')
    .add(b':')
    .add(b';')
    .add(b'=')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'|');
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Finds and removes a fixed set of secret values.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Lower-cased needles matched case-insensitively.
    plain: Vec<String>,
    /// Base64 runs matched exactly; the whole base64 word around a match is removed.
    base64: Vec<String>,
    longest: usize,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("needles", &(self.plain.len() + self.base64.len()))
            .finish()
    }
}

fn push_unique(list: &mut Vec<String>, s: String) {
    if !s.is_empty() && !list.contains(&s) {
        list.push(s);
    }
}

/// The characters of `engine`'s encoding that depend only on `secret` when it sits at byte offset `align` (0, 1, 2)
/// of the encoded input.
fn base64_core(secret: &[u8], align: usize, url_safe: bool) -> Option<String> {
    let mut input = vec![0u8; align];
    input.extend_from_slice(secret);
    let encoded = if url_safe {
        URL_SAFE_NO_PAD.encode(&input)
    } else {
        STANDARD_NO_PAD.encode(&input)
    };
    // Character i covers input bits [6i, 6i + 6).
    let start = (8 * align).div_ceil(6);
    let end = (8 * (align + secret.len())) / 6; // exclusive
    encoded.get(start..end).map(str::to_owned)
}

fn is_base64_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_')
}

impl Redactor {
    /// A redactor for these secret values (shorter ones than [`MIN_SECRET_LEN`] are skipped).
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Redactor {
        let mut plain = Vec::new();
        let mut base64 = Vec::new();
        for secret in secrets {
            if secret.len() < MIN_SECRET_LEN {
                continue;
            }
            let mut variants = vec![secret.to_owned()];
            for set in [NON_ALPHANUMERIC, COMPONENT, USERINFO, PATH, QUERY, FRAGMENT] {
                variants.push(utf8_percent_encode(secret, set).to_string());
            }
            variants.push(url::form_urlencoded::byte_serialize(secret.as_bytes()).collect());
            if let Ok(json) = serde_json::to_string(secret) {
                let inner = json
                    .strip_prefix('"')
                    .and_then(|s| s.strip_suffix('"'))
                    .unwrap_or(&json);
                variants.push(inner.replace('/', "\\/"));
                variants.push(inner.to_owned());
            }
            variants.push(hex::encode(secret));
            for v in variants {
                push_unique(&mut plain, v.to_ascii_lowercase());
            }
            for align in 0..3 {
                for url_safe in [false, true] {
                    if let Some(core) = base64_core(secret.as_bytes(), align, url_safe) {
                        if core.len() >= 4 {
                            push_unique(&mut base64, core);
                        }
                    }
                }
            }
        }
        // Longest first, so a longer variant is removed whole before a shorter one could match inside it.
        plain.sort_by_key(|s| std::cmp::Reverse(s.len()));
        base64.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let longest = plain
            .iter()
            .chain(base64.iter())
            .map(String::len)
            .max()
            .unwrap_or(0);
        Redactor {
            plain,
            base64,
            longest,
        }
    }

    /// The longest form searched for, in bytes (a text cut shorter than this at its end may hold a partial secret).
    pub fn longest(&self) -> usize {
        self.longest
    }

    /// `text` with every secret form replaced by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        if self.plain.is_empty() && self.base64.is_empty() {
            return text.to_owned();
        }
        let bytes = text.as_bytes();
        let lower = text.to_ascii_lowercase();
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        for needle in &self.plain {
            let mut from = 0;
            while let Some(pos) = lower.get(from..).and_then(|h| h.find(needle.as_str())) {
                let start = from + pos;
                ranges.push((start, start + needle.len()));
                // Step over one whole character: a needle may start with a multi-byte one.
                from = start + needle.chars().next().map_or(1, char::len_utf8);
            }
        }
        for needle in &self.base64 {
            let mut from = 0;
            while let Some(pos) = text.get(from..).and_then(|h| h.find(needle.as_str())) {
                let mut start = from + pos;
                let mut end = start + needle.len();
                while start > 0 && bytes.get(start - 1).copied().is_some_and(is_base64_char) {
                    start -= 1;
                }
                while bytes.get(end).copied().is_some_and(is_base64_char) {
                    end += 1;
                }
                ranges.push((start, end));
                from = end.max(from + pos + 1);
            }
        }
        if ranges.is_empty() {
            return text.to_owned();
        }
        ranges.sort_unstable();
        let mut out = String::with_capacity(text.len());
        let mut cursor = 0;
        let mut current: Option<(usize, usize)> = None;
        let flush = |out: &mut String, cursor: &mut usize, (s, e): (usize, usize)| {
            // Needles are ASCII-lowercased copies of UTF-8 strings, and ASCII case folding keeps byte offsets, so
            // the ranges fall on character boundaries; widen to be safe if they ever do not.
            let mut s = s.max(*cursor);
            while s > *cursor && !text.is_char_boundary(s) {
                s -= 1;
            }
            let mut e = e.min(text.len());
            while e < text.len() && !text.is_char_boundary(e) {
                e += 1;
            }
            out.push_str(text.get(*cursor..s).unwrap_or_default());
            out.push_str(REDACTED);
            *cursor = e;
        };
        for (s, e) in ranges {
            current = match current {
                Some((cs, ce)) if s <= ce => Some((cs, ce.max(e))),
                Some(done) => {
                    flush(&mut out, &mut cursor, done);
                    Some((s, e))
                }
                None => Some((s, e)),
            };
        }
        if let Some(done) = current {
            flush(&mut out, &mut cursor, done);
        }
        out.push_str(text.get(cursor..).unwrap_or_default());
        out
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary, ending with `…` when cut.
pub fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    const ELLIPSIS: &str = "…";
    let mut end = max.saturating_sub(ELLIPSIS.len());
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = s.get(..end).unwrap_or_default().trim_end().to_owned();
    out.push_str(ELLIPSIS);
    out
}

/// Invisible formatting characters a provider could use to make a message read differently than it is (zero-width
/// characters, bidirectional overrides and isolates, the byte-order mark).
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// One line of readable text: control and invisible formatting characters dropped, runs of whitespace collapsed.
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(4096));
    let mut space = false;
    for c in s.chars() {
        if c.is_whitespace() {
            space = true;
        } else if c.is_control() || is_invisible_format(c) {
            continue;
        } else {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(c);
        }
    }
    out
}

/// The final form of any probe message: secrets removed, one line, at most [`MAX_MESSAGE_BYTES`].
pub fn finish(redactor: &Redactor, message: &str) -> String {
    // Redact before and after collapsing whitespace: a secret holding whitespace runs is found either way.
    let once = redactor.redact(message);
    let line = redactor.redact(&one_line(&once));
    cut(&line, MAX_MESSAGE_BYTES)
}

/// The readable part of a provider's response body: the `error` / `message` string of a JSON body when there is one
/// (also `error.message`, `error_description`, `errors[0].message`, `detail`), else the text itself. When the body was
/// cut (`truncated`), its last bytes are dropped, so a secret split by the cut cannot survive as a fragment.
pub fn body_text(redactor: &Redactor, body: &[u8], truncated: bool) -> String {
    let mut body = body;
    if truncated {
        let keep = body.len().saturating_sub(redactor.longest());
        body = body.get(..keep).unwrap_or_default();
    }
    if let Some(msg) = json_message(body) {
        return msg;
    }
    // Only the start matters for the message; redact a generous prefix so shifting cannot pull in an unredacted tail.
    let text = String::from_utf8_lossy(body);
    let limit = (64 * 1024 + 2 * redactor.longest()).min(text.len());
    let mut end = limit;
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut prefix = text.get(..end).unwrap_or_default();
    if end < text.len() {
        // Same reasoning as for a truncated body.
        let keep = prefix.len().saturating_sub(redactor.longest());
        let mut k = keep;
        while k > 0 && !prefix.is_char_boundary(k) {
            k -= 1;
        }
        prefix = prefix.get(..k).unwrap_or_default();
    }
    prefix.to_owned()
}

/// The provider's own message in a JSON body, if there is one.
pub fn json_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    provider_message(&value)
}

/// `error` / `message` strings of a JSON value (and a few common nestings).
pub fn provider_message(value: &serde_json::Value) -> Option<String> {
    let obj = value.as_object()?;
    let pick = |v: Option<&serde_json::Value>| {
        v.and_then(serde_json::Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    pick(obj.get("error"))
        .or_else(|| pick(obj.get("message")))
        .or_else(|| pick(obj.get("error").and_then(|e| e.get("message"))))
        .or_else(|| pick(obj.get("error_description")))
        .or_else(|| {
            pick(
                obj.get("errors")
                    .and_then(|e| e.get(0))
                    .and_then(|e| e.get("message")),
            )
        })
        .or_else(|| pick(obj.get("detail")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_copy_of_a_secret_starting_with_a_multibyte_character_is_removed() {
        let r = Redactor::new(["ébène-secret-42"]);
        let text = "a ébène-secret-42 b ébène-secret-42 c ébène-secret-42 d ébène-secret-42";
        let out = r.redact(text);
        assert!(!out.contains("secret-42"), "{out}");
        assert_eq!(out.matches(REDACTED).count(), 4, "{out}");
    }

    const TOKEN: &str = "ghp_S3cr3t/Tok+en=42 x";

    #[test]
    fn every_encoding_of_a_secret_is_removed() {
        let r = Redactor::new([TOKEN]);
        let forms = [
            TOKEN.to_owned(),
            TOKEN.to_uppercase(),
            utf8_percent_encode(TOKEN, NON_ALPHANUMERIC).to_string(),
            utf8_percent_encode(TOKEN, NON_ALPHANUMERIC)
                .to_string()
                .to_lowercase(),
            url::form_urlencoded::byte_serialize(TOKEN.as_bytes()).collect(),
            base64::engine::general_purpose::STANDARD.encode(TOKEN),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(TOKEN),
            base64::engine::general_purpose::STANDARD.encode(format!("user:{TOKEN}")),
            base64::engine::general_purpose::STANDARD.encode(format!("ab:{TOKEN}")),
            base64::engine::general_purpose::URL_SAFE.encode(format!("x:{TOKEN}")),
            serde_json::to_string(TOKEN).unwrap(),
            hex::encode(TOKEN),
            hex::encode_upper(TOKEN),
        ];
        for form in forms {
            let out = r.redact(&format!("before {form} after"));
            assert!(out.contains(REDACTED), "{form} -> {out}");
            assert!(out.starts_with("before "), "{out}");
            assert!(out.ends_with(" after") || out.ends_with("after"), "{out}");
            assert!(!out.contains("S3cr3t") && !out.to_lowercase().contains("s3cr3t"));
        }
    }

    #[test]
    fn short_values_and_clean_text_are_left_alone() {
        let r = Redactor::new(["ab", "longsecret"]);
        assert_eq!(r.redact("ab cd"), "ab cd");
        assert_eq!(r.redact("nothing here"), "nothing here");
        assert_eq!(Redactor::new([]).redact("x"), "x");
    }

    #[test]
    fn unicode_text_and_secrets_do_not_break_boundaries() {
        let r = Redactor::new(["pässwörd", "ÄÖÜ!"]);
        let out = r.redact("é pässwörd ü PÄSSWÖRD ÄÖÜ!");
        assert!(!out.contains("pässwörd"), "{out}");
        assert!(!out.contains("ÄÖÜ!"), "{out}");
    }

    #[test]
    fn cut_respects_char_boundaries() {
        let s = "é".repeat(600);
        let c = cut(&s, 512);
        assert!(c.len() <= 512);
        assert!(c.ends_with('…'));
        assert_eq!(cut("short", 512), "short");
    }

    #[test]
    fn finish_collapses_and_bounds() {
        let r = Redactor::new(["secret-value"]);
        let m = finish(&r, &format!("a\n\n b\t{}", "x".repeat(2000)));
        assert!(m.starts_with("a b x"));
        assert_eq!(one_line("ab\u{202E}cd\u{200B}\u{1b}[31m"), "abcd[31m");
        assert!(m.len() <= MAX_MESSAGE_BYTES);
    }

    #[test]
    fn provider_messages_are_found() {
        assert_eq!(
            json_message(br#"{"message":"Bad credentials"}"#).as_deref(),
            Some("Bad credentials")
        );
        assert_eq!(
            json_message(br#"{"ok":false,"error":"invalid_auth"}"#).as_deref(),
            Some("invalid_auth")
        );
        assert_eq!(
            json_message(br#"{"error":{"message":"nope"}}"#).as_deref(),
            Some("nope")
        );
        assert_eq!(json_message(b"not json"), None);
    }

    #[test]
    fn a_truncated_body_loses_its_tail() {
        let r = Redactor::new(["abcdefgh"]);
        let text = body_text(&r, b"hello abcd", true);
        assert!(!text.contains("abcd"), "{text}");
    }
}
