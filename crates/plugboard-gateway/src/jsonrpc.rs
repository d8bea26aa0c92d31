//! Just enough JSON-RPC for the relay: what a message is, its id and method, a `tools/list` result to filter, a
//! `tools/call` outcome, and the gateway's own error answers.

use serde_json::{json, Map, Value};

use crate::policy::ToolPolicy;
use crate::ports::Outcome;

/// The gateway's JSON-RPC error codes (the implementation-defined server range; MCP's own codes are left alone).
pub mod code {
    /// A `tools/call` refused by the integration's tool policy.
    pub const TOOL_DENIED: i64 = -32040;
    /// Refused by a concurrency limit after waiting.
    pub const BUSY: i64 = -32041;
    /// The upstream could not be reached, refused the credentials, redirected, or failed.
    pub const UPSTREAM: i64 = -32042;
    /// The upstream stayed silent longer than the gateway timeout.
    pub const UPSTREAM_TIMEOUT: i64 = -32043;
    /// The integration's credentials could not be materialised (e.g. an OAuth refresh was refused).
    pub const CREDENTIALS: i64 = -32044;
    /// Unknown, ended, or foreign session id.
    pub const SESSION_NOT_FOUND: i64 = -32045;
    /// JSON-RPC: the body is not JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// JSON-RPC: not a valid request.
    pub const INVALID_REQUEST: i64 = -32600;
    /// JSON-RPC: unknown method / tool.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// JSON-RPC: invalid params.
    pub const INVALID_PARAMS: i64 = -32602;
}

/// The body of a POST: one message or a batch (protocol 2025-03-26 allows batches).
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Single(Value),
    Batch(Vec<Value>),
}

impl Body {
    pub fn parse(bytes: &[u8]) -> Option<Body> {
        match serde_json::from_slice::<Value>(bytes).ok()? {
            Value::Array(items) => Some(Body::Batch(items)),
            v @ Value::Object(_) => Some(Body::Single(v)),
            _ => None,
        }
    }

    pub fn messages(&self) -> &[Value] {
        match self {
            Body::Single(v) => std::slice::from_ref(v),
            Body::Batch(items) => items,
        }
    }

    pub fn into_messages(self) -> Vec<Value> {
        match self {
            Body::Single(v) => vec![v],
            Body::Batch(items) => items,
        }
    }
}

/// A request id as a map key (ids are strings or numbers; `1` and `"1"` are different ids).
pub fn id_key(id: &Value) -> String {
    id.to_string()
}

pub fn method(msg: &Value) -> Option<&str> {
    msg.get("method").and_then(Value::as_str)
}

/// The id of a request (a message with a method and a non-null id).
pub fn request_id(msg: &Value) -> Option<&Value> {
    method(msg)?;
    msg.get("id").filter(|id| id.is_string() || id.is_number())
}

/// The id of a response or error (a message without a method, with `result` or `error`).
pub fn response_id(msg: &Value) -> Option<&Value> {
    if msg.get("method").is_some() {
        return None;
    }
    if msg.get("result").is_none() && msg.get("error").is_none() {
        return None;
    }
    msg.get("id").filter(|id| id.is_string() || id.is_number())
}

/// `params.name` of a `tools/call`.
pub fn tool_name(msg: &Value) -> Option<&str> {
    msg.get("params")?.get("name")?.as_str()
}

/// How a `tools/call` answer ended.
pub fn outcome(response: &Value) -> Outcome {
    if response.get("error").is_some() {
        return Outcome::RpcError;
    }
    let is_error = response
        .get("result")
        .and_then(|r| r.get("isError"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if is_error {
        Outcome::ToolError
    } else {
        Outcome::Ok
    }
}

/// Drops the tools the policy refuses from a `tools/list` result (any answer whose `result.tools` is a list of
/// objects with a `name`); `true` when something was dropped.
pub fn filter_tools(response: &mut Value, policy: &ToolPolicy) -> bool {
    let Some(tools) = response
        .get_mut("result")
        .and_then(|r| r.get_mut("tools"))
        .and_then(Value::as_array_mut)
    else {
        return false;
    };
    let before = tools.len();
    tools.retain(|t| {
        t.get("name")
            .and_then(Value::as_str)
            .is_some_and(|name| policy.allows(name))
    });
    tools.len() != before
}

/// A JSON-RPC error answer.
pub fn error(id: Option<&Value>, code: i64, message: &str, data: Option<Value>) -> Value {
    let mut err = Map::new();
    err.insert("code".into(), json!(code));
    err.insert("message".into(), json!(message));
    if let Some(d) = data {
        err.insert("data".into(), d);
    }
    json!({
        "jsonrpc": "2.0",
        "id": id.cloned().unwrap_or(Value::Null),
        "error": Value::Object(err),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_told_apart() {
        let req = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}});
        let note = json!({"jsonrpc":"2.0","method":"notifications/progress"});
        let resp = json!({"jsonrpc":"2.0","id":"a","result":{}});
        assert_eq!(request_id(&req), Some(&json!(1)));
        assert_eq!(tool_name(&req), Some("x"));
        assert_eq!(request_id(&note), None);
        assert_eq!(response_id(&resp), Some(&json!("a")));
        assert_eq!(response_id(&req), None);
        assert_ne!(id_key(&json!(1)), id_key(&json!("1")));
        assert!(matches!(Body::parse(b"[1]"), Some(Body::Batch(_))));
        assert!(Body::parse(b"\"x\"").is_none());
        assert!(Body::parse(b"{").is_none());
    }

    #[test]
    fn outcomes_and_tool_filtering() {
        assert_eq!(
            outcome(&json!({"id":1,"result":{"content":[]}})),
            Outcome::Ok
        );
        assert_eq!(
            outcome(&json!({"id":1,"result":{"isError":true}})),
            Outcome::ToolError
        );
        assert_eq!(
            outcome(&json!({"id":1,"error":{"code":1}})),
            Outcome::RpcError
        );
        let policy = ToolPolicy {
            allow: vec![],
            deny: vec!["secret_*".into()],
        };
        let mut list =
            json!({"id":1,"result":{"tools":[{"name":"a"},{"name":"secret_b"},{"bad":1}]}});
        assert!(filter_tools(&mut list, &policy));
        assert_eq!(list["result"]["tools"], json!([{"name":"a"}]));
        let mut other = json!({"id":1,"result":{"content":[]}});
        assert!(!filter_tools(&mut other, &policy));
        let e = error(Some(&json!(3)), code::BUSY, "busy", None);
        assert_eq!(e["id"], json!(3));
        assert_eq!(e["error"]["code"], json!(code::BUSY));
    }
}
