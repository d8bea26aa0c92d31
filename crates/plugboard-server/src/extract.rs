//! Request helpers every handler shares: path and query extractors whose rejections are the API's error body, the
//! `Idempotency-Key` header, and JSON bodies parsed without ever echoing a submitted value.

use axum::extract::{FromRequestParts, RawQuery};
use axum::http::request::Parts;

use crate::error::ApiError;

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

/// Parses a JSON request body into an object, with messages that never echo a submitted value.
pub fn json_object(body: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("request body must be a JSON object"));
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request("request body must be a JSON object")),
        Err(e) => Err(ApiError::bad_request(format!(
            "request body is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))),
    }
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

/// Cuts a string to at most `max` characters (for echoing keys, never values).
pub fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}
