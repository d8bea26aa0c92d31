//! The gateway's own answers: the contract's error body before MCP starts, JSON-RPC errors inside it.

use axum::body::Body;
use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use serde_json::{json, Value};

use crate::jsonrpc;

pub const JSON: &str = "application/json";
pub const EVENT_STREAM: &str = "text/event-stream";

/// `{"error", "code"}` with `status` (401, 403, 404, 405, 409, 503: before any MCP is spoken).
pub fn refusal(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = json!({"error": message, "code": code});
    json_response(status, &body)
}

pub fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    bytes_response(status, JSON, Bytes::from(bytes))
}

pub fn bytes_response(status: StatusCode, content_type: &str, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(CONTENT_TYPE, v);
    }
    resp
}

/// JSON-RPC errors for `ids` (one object when the request was a single message, else an array), HTTP 200 since
/// each request gets its answer; with no id to answer (notifications only), one error without id and
/// `status_without_ids`.
pub fn rpc_errors(
    ids: &[Value],
    single: bool,
    code: i64,
    message: &str,
    data: Option<Value>,
    status_without_ids: StatusCode,
) -> Response<Body> {
    if ids.is_empty() {
        return json_response(
            status_without_ids,
            &jsonrpc::error(None, code, message, data),
        );
    }
    let errors: Vec<Value> = ids
        .iter()
        .map(|id| jsonrpc::error(Some(id), code, message, data.clone()))
        .collect();
    messages_response(StatusCode::OK, errors, single)
}

/// Messages as one JSON object (a single request) or an array (a batch).
pub fn messages_response(
    status: StatusCode,
    mut messages: Vec<Value>,
    single: bool,
) -> Response<Body> {
    if single && messages.len() == 1 {
        let only = messages.pop().unwrap_or(Value::Null);
        json_response(status, &only)
    } else {
        json_response(status, &Value::Array(messages))
    }
}

pub fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut resp = refusal(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        &format!("this MCP endpoint answers {allow}"),
    );
    resp.headers_mut()
        .insert(http::header::ALLOW, HeaderValue::from_static(allow));
    resp
}

/// 404 with a JSON-RPC error: the MCP client starts a new session.
pub fn session_not_found() -> Response<Body> {
    json_response(
        StatusCode::NOT_FOUND,
        &jsonrpc::error(
            None,
            jsonrpc::code::SESSION_NOT_FOUND,
            "this MCP session is unknown, has ended, or belongs to another token; start a new session with \
             initialize",
            None,
        ),
    )
}
