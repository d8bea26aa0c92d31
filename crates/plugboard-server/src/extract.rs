//! Request helpers every handler shares: path and query extractors whose rejections are the API's error body, the
//! `Idempotency-Key` header, and JSON bodies parsed without ever echoing a submitted value. The typed request
//! structs (`InstallRequest`, `CustomServerRequest`, …) are parsed with these helpers, in the handler, after the
//! role check: the contract's check order is 401, `workspace_id` 400, role 403, connector 404, body 400.

use axum::extract::{FromRequestParts, RawQuery};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// Longest `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 255;

/// A path extractor whose rejection is the API's error body.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// The decoded query string as key/value pairs (never fails; the handler decides what is missing).
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let RawQuery(raw) = RawQuery::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::bad_request("invalid query string"))?;
        let pairs = raw
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        Ok(QueryPairs(pairs))
    }
}

impl QueryPairs {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A required, non-empty parameter: 400 naming it otherwise.
    pub fn require(&self, key: &str) -> Result<&str, ApiError> {
        self.get(key)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::bad_request(format!("query parameter `{key}` is required")))
    }
}

/// The `Idempotency-Key` header: absent, or one value of 1 to 255 visible ASCII characters (400 otherwise).
///
/// Handlers take it as `Result<IdempotencyKey, ApiError>` and apply `?` after the role and connector checks, so a
/// malformed key never answers before them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        idempotency_key(&parts.headers).map(IdempotencyKey)
    }
}

/// The `Idempotency-Key` of `headers` (see [`IdempotencyKey`]).
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all("idempotency-key").iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let bad = || {
        ApiError::bad_request(format!(
            "the Idempotency-Key header must be one value of 1 to {MAX_IDEMPOTENCY_KEY_BYTES} visible ASCII characters"
        ))
    };
    if values.next().is_some() {
        return Err(bad());
    }
    let bytes = value.as_bytes();
    if bytes.is_empty()
        || bytes.len() > MAX_IDEMPOTENCY_KEY_BYTES
        || !bytes.iter().all(|b| (0x21..=0x7e).contains(b))
    {
        return Err(bad());
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

/// Whether a body is empty (or only whitespace).
pub fn is_blank(body: &[u8]) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
}

/// Parses a JSON request body into an object, with messages that never echo a submitted value.
pub fn json_object(body: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("request body must be a JSON object"));
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) => {
            if let Some(path) = nul_path(&map, "") {
                return Err(ApiError::invalid_field(format!(
                    "`{path}` contains a NUL character (U+0000), which cannot be stored: remove it"
                )));
            }
            Ok(map)
        }
        Ok(_) => Err(ApiError::bad_request("request body must be a JSON object")),
        Err(e) => Err(ApiError::bad_request(format!(
            "request body is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))),
    }
}

/// The dotted path (keys only, cut to 64 characters each) of the first key or string value holding a NUL
/// character, which no database column can store (PostgreSQL refuses it in text).
fn nul_path(map: &Map<String, Value>, prefix: &str) -> Option<String> {
    fn walk(v: &Value, path: &str) -> Option<String> {
        match v {
            Value::String(s) if s.contains('\0') => Some(path.to_string()),
            Value::Object(m) => nul_path(m, path),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, item)| walk(item, &format!("{path}[{i}]"))),
            _ => None,
        }
    }
    map.iter().find_map(|(k, v)| {
        let key = truncate(&k.replace('\0', "\\0"), 64);
        let path = if prefix.is_empty() {
            key
        } else {
            format!("{prefix}.{key}")
        };
        if k.contains('\0') {
            return Some(path);
        }
        walk(v, &path)
    })
}

/// Rejects keys outside `allowed`, naming the first unknown one.
pub fn only_keys(
    map: &serde_json::Map<String, serde_json::Value>,
    allowed: &[&str],
) -> Result<(), ApiError> {
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(ApiError::bad_request(format!(
            "unknown key `{}` in request body (allowed: {})",
            truncate(k, 64),
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

/// An optional string member: 400 naming the key when present but not a string.
pub fn opt_string(
    map: &serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> Result<Option<String>, ApiError> {
    match map.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::bad_request(format!("`{key}` must be a string"))),
    }
}

/// An optional object member: 400 naming the key when present but not an object.
pub fn opt_object(
    map: &Map<String, Value>,
    key: &str,
) -> Result<Option<Map<String, Value>>, ApiError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o.clone())),
        Some(_) => Err(ApiError::invalid_field(format!(
            "`{key}` must be an object"
        ))),
    }
}

/// Cuts a string to at most `max` characters (for echoing keys, never values).
pub fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn a_nul_character_anywhere_in_a_body_is_refused_naming_where() {
        let e = json_object(br#"{"name": "a\u0000b"}"#).unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        assert!(e.message.contains("`name`"), "{}", e.message);
        let e = json_object(br#"{"headers": {"X-A": "ok", "X-B": "\u0000"}}"#).unwrap_err();
        assert!(e.message.contains("`headers.X-B`"), "{}", e.message);
        let e = json_object(br#"{"args": ["a", "\u0000"]}"#).unwrap_err();
        assert!(e.message.contains("`args[1]`"), "{}", e.message);
        assert!(json_object(br#"{"name": "a\u0001b", "n": 0}"#).is_ok());
    }

    #[test]
    fn idempotency_keys_are_visible_ascii_of_bounded_length() {
        let mut h = HeaderMap::new();
        assert_eq!(idempotency_key(&h).unwrap(), None);
        h.insert("idempotency-key", HeaderValue::from_static("abc-123_~!"));
        assert_eq!(idempotency_key(&h).unwrap().as_deref(), Some("abc-123_~!"));
        for bad in ["", "with space", &"k".repeat(256)] {
            h.insert("idempotency-key", HeaderValue::from_str(bad).unwrap());
            assert!(idempotency_key(&h).is_err(), "{bad:?}");
        }
        h.insert(
            "idempotency-key",
            HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
        );
        assert!(idempotency_key(&h).is_err());
    }
}
