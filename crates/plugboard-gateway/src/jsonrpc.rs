//! Just enough JSON-RPC for the relay: what a message is, its id and method, a `tools/list` result to filter, a
//! `tools/call` outcome, and the gateway's own error answers.

use serde::Deserialize;
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

/// What the relay needs of one message of an answer: its id when it is a response or an error (as
/// [`response_id`]), and how it ended (as [`outcome`]).
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerHead {
    pub id: Option<Value>,
    pub outcome: Outcome,
}

/// The fields of a message [`answer_heads`] and [`request_heads`] read; every other field is skipped without being
/// built. Read only from a JSON object (serde's derive would also take an array, which the full parse reads
/// differently), and a field given twice is an error (the full parse keeps the last one): both leave the case to the
/// full parse.
#[derive(Default)]
struct Head {
    id: Option<Value>,
    /// `method` when it is there (`null` included: `Some(Value::Null)`).
    method: Option<Value>,
    /// `result.isError`, from an object `result` only.
    result: Option<Picked<IsError>>,
    error: bool,
    /// `params.name`, from an object `params` only.
    params: Option<Picked<Name>>,
}

/// The one field of an inner object that [`Head`] reads.
trait Wanted {
    const NAME: &'static str;
    fn is(field: &Field) -> bool;
}

struct IsError;

impl Wanted for IsError {
    const NAME: &'static str = "isError";
    fn is(field: &Field) -> bool {
        matches!(field, Field::IsError)
    }
}

struct Name;

impl Wanted for Name {
    const NAME: &'static str = "name";
    fn is(field: &Field) -> bool {
        matches!(field, Field::Name)
    }
}

/// An object's field `W` (`None` when absent); the object's other fields skipped, `W` given twice an error.
struct Picked<W>(Option<Value>, std::marker::PhantomData<W>);

/// A field name, borrowed while it is compared.
enum Field {
    Id,
    Method,
    Result,
    Error,
    IsError,
    Params,
    Name,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Field, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = Field;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Field, E> {
                Ok(match v {
                    "id" => Field::Id,
                    "method" => Field::Method,
                    "result" => Field::Result,
                    "error" => Field::Error,
                    "isError" => Field::IsError,
                    "params" => Field::Params,
                    "name" => Field::Name,
                    _ => Field::Other,
                })
            }
        }
        d.deserialize_identifier(Name)
    }
}

/// Fails on a field seen before.
fn once<E: serde::de::Error>(seen: &mut bool, name: &'static str) -> Result<(), E> {
    if std::mem::replace(seen, true) {
        return Err(E::duplicate_field(name));
    }
    Ok(())
}

impl<'de> Deserialize<'de> for Head {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Head, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = Head;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON-RPC message")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Head, A::Error> {
                let mut head = Head::default();
                let (mut id, mut result, mut params) = (false, false, false);
                while let Some(field) = map.next_key::<Field>()? {
                    match field {
                        Field::Id => {
                            once(&mut id, "id")?;
                            head.id = map.next_value()?;
                        }
                        Field::Method => {
                            let mut seen = head.method.is_some();
                            once(&mut seen, "method")?;
                            head.method = Some(map.next_value()?);
                        }
                        Field::Result => {
                            once(&mut result, "result")?;
                            head.result = Some(map.next_value()?);
                        }
                        Field::Error => {
                            let mut seen = head.error;
                            once(&mut seen, "error")?;
                            map.next_value::<serde::de::IgnoredAny>()?;
                            head.error = true;
                        }
                        Field::Params => {
                            once(&mut params, "params")?;
                            head.params = Some(map.next_value()?);
                        }
                        Field::IsError | Field::Name | Field::Other => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(head)
            }
        }
        d.deserialize_map(Fields)
    }
}

impl<'de, W: Wanted> Deserialize<'de> for Picked<W> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Picked<W>, D::Error> {
        struct Fields<W>(std::marker::PhantomData<W>);
        impl<'de, W: Wanted> serde::de::Visitor<'de> for Fields<W> {
            type Value = Picked<W>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "an object (read for its {})", W::NAME)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Picked<W>, A::Error> {
                let mut value = None;
                let mut seen = false;
                while let Some(field) = map.next_key::<Field>()? {
                    if W::is(&field) {
                        once(&mut seen, W::NAME)?;
                        value = Some(map.next_value()?);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(Picked(value, std::marker::PhantomData))
            }
        }
        d.deserialize_map(Fields(std::marker::PhantomData))
    }
}

/// What the relay needs of one message of a request body: its id when it is a request (as [`request_id`]), its
/// method (as [`method`]) and `params.name` (as [`tool_name`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RequestHead {
    pub id: Option<Value>,
    pub method: Option<String>,
    pub tool: Option<String>,
}

impl From<Head> for RequestHead {
    fn from(h: Head) -> RequestHead {
        let method = match h.method {
            Some(Value::String(m)) => Some(m),
            _ => None,
        };
        let id =
            h.id.filter(|id| method.is_some() && (id.is_string() || id.is_number()));
        let tool = match h.params.and_then(|p| p.0) {
            Some(Value::String(name)) => Some(name),
            _ => None,
        };
        RequestHead { id, method, tool }
    }
}

/// The [`RequestHead`]s of a request body and whether it is a single message (not a batch), read without building
/// the messages (arguments can be large). `None` when the body is not plain enough to read that way (see
/// [`answer_heads`]; also when `params` is not an object): the caller then parses it in full.
pub fn request_heads(body: &[u8]) -> Option<(Vec<RequestHead>, bool)> {
    if body.trim_ascii_start().starts_with(b"[") {
        let heads: Vec<Head> = serde_json::from_slice(body).ok()?;
        Some((heads.into_iter().map(RequestHead::from).collect(), false))
    } else {
        let head: Head = serde_json::from_slice(body).ok()?;
        Some((vec![head.into()], true))
    }
}

impl From<Head> for AnswerHead {
    fn from(h: Head) -> AnswerHead {
        let is_response = h.method.is_none() && (h.result.is_some() || h.error);
        let id =
            h.id.filter(|id| is_response && (id.is_string() || id.is_number()));
        let is_error = h
            .result
            .and_then(|r| r.0)
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let outcome = if h.error {
            Outcome::RpcError
        } else if is_error {
            Outcome::ToolError
        } else {
            Outcome::Ok
        };
        AnswerHead { id, outcome }
    }
}

/// The [`AnswerHead`]s of an answer's text (one message or a batch), read without building the messages (a tool
/// result can be large). `None` when the text is not plain enough to read that way (not JSON, an item that is not
/// an object, a key given twice, a `result` that is not an object): the caller then parses it in full, which
/// decides those cases as before.
pub fn answer_heads(text: &str) -> Option<Vec<AnswerHead>> {
    if text.trim_start().starts_with('[') {
        let heads: Vec<Head> = serde_json::from_str(text).ok()?;
        Some(heads.into_iter().map(AnswerHead::from).collect())
    } else {
        let head: Head = serde_json::from_str(text).ok()?;
        Some(vec![head.into()])
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
    use proptest::prelude::*;

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
    fn answer_heads_read_what_the_full_parse_reads() {
        let cases = [
            r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"x"}]}}"#,
            r#"{"jsonrpc":"2.0","id":"a","result":{"isError":true,"content":[]}}"#,
            r#"{"jsonrpc":"2.0","id":2,"error":{"code":-1,"message":"no"}}"#,
            r#"{"jsonrpc":"2.0","id":3,"method":"sampling/createMessage","params":{}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}"#,
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse"}}"#,
            r#"{"jsonrpc":"2.0","id":4,"result":{"isError":"yes"}}"#,
            r#"[{"jsonrpc":"2.0","id":5,"result":{}},{"jsonrpc":"2.0","id":6,"error":{}}]"#,
        ];
        for text in cases {
            let value: Value = serde_json::from_str(text).unwrap();
            let full: Vec<AnswerHead> = match &value {
                Value::Array(items) => items.iter().collect::<Vec<_>>(),
                one => vec![one],
            }
            .into_iter()
            .map(|m| AnswerHead {
                id: response_id(m).cloned(),
                outcome: outcome(m),
            })
            .collect();
            assert_eq!(answer_heads(text), Some(full), "{text}");
        }
        // What it does not decide, the full parse does.
        for text in [
            r#"{"id":1,"id":2,"result":{}}"#,
            r#"{"id":1,"result":null}"#,
            r#"{"id":1,"result":[true]}"#,
            r#"[[1,false,{"isError":true}]]"#,
            r#"[1]"#,
            r#"{"id":1,"result":{"isError":true,"isError":false}}"#,
            "not json",
        ] {
            assert_eq!(answer_heads(text), None, "{text}");
        }
    }

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-3i64..3).prop_map(Value::from),
            prop::sample::select(vec!["a", "1", "isError", "", "tools/call"]).prop_map(Value::from),
        ]
    }

    /// An object's text from (key, value) pairs, keys possibly repeated (which a `Value` cannot hold).
    fn object_text(pairs: &[(String, Value)]) -> String {
        let fields: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{}:{v}", Value::from(k.as_str())))
            .collect();
        format!("{{{}}}", fields.join(","))
    }

    proptest::proptest! {
        /// Whatever message it is given, `answer_heads` and `request_heads` either leave it to the full parse or
        /// read what the full parse reads.
        #[test]
        fn heads_never_disagree_with_the_full_parse(
            pairs in proptest::collection::vec(
                (
                    proptest::sample::select(
                        vec!["id", "method", "result", "error", "isError", "jsonrpc", "params"],
                    ),
                    proptest::prop_oneof![
                        leaf(),
                        proptest::collection::vec(leaf(), 0..3).prop_map(Value::Array),
                        proptest::collection::vec(
                            (proptest::sample::select(vec!["isError", "content", "id", "name"]), leaf()),
                            0..3,
                        )
                        .prop_map(|kv| {
                            Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                        }),
                    ],
                ),
                0..6,
            ),
            batch in proptest::bool::ANY,
        ) {
            let pairs: Vec<(String, Value)> = pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            let one = object_text(&pairs);
            let text = if batch { format!("[{one},{one}]") } else { one };
            if let Some(heads) = answer_heads(&text) {
                let value: Value = serde_json::from_str(&text).unwrap();
                let full: Vec<AnswerHead> = match &value {
                    Value::Array(items) => items.iter().collect::<Vec<_>>(),
                    one => vec![one],
                }
                .into_iter()
                .map(|m| AnswerHead { id: response_id(m).cloned(), outcome: outcome(m) })
                .collect();
                proptest::prop_assert_eq!(heads, full, "{}", text);
            }
            if let Some((heads, single)) = request_heads(text.as_bytes()) {
                let value: Value = serde_json::from_str(&text).unwrap();
                let body = Body::parse(text.as_bytes()).unwrap();
                proptest::prop_assert_eq!(single, matches!(body, Body::Single(_)));
                let full: Vec<RequestHead> = body
                    .messages()
                    .iter()
                    .map(|m| RequestHead {
                        id: request_id(m).cloned(),
                        method: method(m).map(str::to_owned),
                        tool: tool_name(m).map(str::to_owned),
                    })
                    .collect();
                proptest::prop_assert_eq!(heads, full, "{} {}", text, value);
            }
        }
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
