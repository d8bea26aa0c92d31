//! The MCP probe, for `streamable-http` servers: open a session, negotiate a protocol version, call the method.
//!
//! 1. `POST initialize` (JSON-RPC 2.0, `protocolVersion` [`REQUESTED_VERSION`], `clientInfo` plugboard) with the
//!    manifest's rendered headers and `Accept: application/json, text/event-stream`. The answer may be JSON or an
//!    SSE stream; a stream is read incrementally, at most [`MAX_STREAM_BYTES`], until the response with our id.
//!    The server's `protocolVersion` must be one we speak ([`KNOWN_VERSIONS`]); its `Mcp-Session-Id` is kept.
//! 2. `POST notifications/initialized`.
//! 3. `POST <method>` with `Mcp-Session-Id` and `MCP-Protocol-Version`; `ok: true` only for a `result`.
//! 4. `DELETE` the session (best effort, in the background, at most one second).
//!
//! Every request goes through the egress guard ([`Guard::send_streaming`](plugboard_egress::Guard::send_streaming)).
//! A same-origin 307/308 redirect is followed (at most 5; each hop re-checked by the guard); a redirect to another
//! origin is reported, not followed, so headers carrying credentials never leave the endpoint's origin.
//!
//! Legacy `sse` servers (the 2024-11-05 HTTP+SSE transport) are not verified: the probe answers `ok: true` saying
//! nothing was checked (see [`super::run`]). That transport needs a long-lived GET stream plus POSTs to a URL the
//! server chooses, and the spec has deprecated it.

use std::time::Duration;

use http::{Method, StatusCode};
use plugboard_catalog::Mcp;
use plugboard_egress::Request;
use serde_json::{json, Value};
use url::Url;

use super::redact::body_text;
use super::{Outcome, ProbeContext};

const PROBE: &str = "mcp";
/// The version we ask for.
pub const REQUESTED_VERSION: &str = "2025-06-18";
/// Versions we accept when the server answers with another one.
pub const KNOWN_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// The most we read of one answer (JSON body or SSE stream).
pub const MAX_STREAM_BYTES: usize = 1024 * 1024;
const MAX_REDIRECTS: usize = 5;
const MAX_SESSION_ID: usize = 1024;
/// Header names we set ourselves; the manifest's copies are dropped.
const OWN_HEADERS: &[&str] = &[
    "accept",
    "content-type",
    "mcp-session-id",
    "mcp-protocol-version",
];

struct Client<'c, 'a> {
    ctx: &'c ProbeContext<'a>,
    endpoint: Url,
    headers: Vec<(String, String)>,
    session_id: Option<String>,
    protocol: Option<String>,
}

/// Why a step failed: the message for the user (redacted before it is returned).
struct Fail(String);

pub async fn probe(ctx: &ProbeContext<'_>, mcp: &Mcp, method: &str) -> Outcome {
    let Some(endpoint) = &mcp.endpoint else {
        return Outcome::fail(PROBE, "the connector has no MCP endpoint to verify");
    };
    let endpoint = match ctx.render(endpoint) {
        Ok(e) => e,
        Err(m) => return Outcome::fail(PROBE, ctx.finish(&m)),
    };
    let endpoint = match Url::parse(endpoint.trim()) {
        Ok(u) => u,
        Err(e) => {
            return Outcome::fail(
                PROBE,
                ctx.finish(&format!("the MCP endpoint is not a valid URL ({e})")),
            )
        }
    };
    let mut headers = Vec::new();
    for (name, template) in &mcp.headers {
        if OWN_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            continue;
        }
        match ctx.render(template) {
            Ok(v) => headers.push((name.clone(), v)),
            Err(m) => return Outcome::fail(PROBE, ctx.finish(&m)),
        }
    }
    let mut client = Client {
        ctx,
        endpoint,
        headers,
        session_id: None,
        protocol: None,
    };
    let result = client.run(method).await;
    client.close();
    match result {
        Ok(()) => Outcome::ok(PROBE),
        Err(Fail(m)) => Outcome::fail(PROBE, ctx.finish(&m)),
    }
}

impl Client<'_, '_> {
    async fn run(&mut self, method: &str) -> Result<(), Fail> {
        let init = json!({
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": REQUESTED_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "plugboard", "version": env!("CARGO_PKG_VERSION")},
            },
        });
        let resp = self.post(&init).await?;
        if let Some(id) = resp.headers().get("mcp-session-id") {
            let id = id
                .to_str()
                .ok()
                .filter(|s| {
                    !s.is_empty()
                        && s.len() <= MAX_SESSION_ID
                        && s.bytes().all(|b| (0x21..=0x7e).contains(&b))
                })
                .ok_or_else(|| Fail("the MCP server sent an invalid Mcp-Session-Id".into()))?;
            self.session_id = Some(id.to_owned());
        }
        let result = self.answer(resp, 1, "initialize").await?;
        let version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !KNOWN_VERSIONS.contains(&version) {
            let shown: String = version.chars().take(32).collect();
            return Err(Fail(format!(
                "the MCP server answered initialize with protocol version {shown:?}, which Plugboard does not \
                 speak (it speaks {})",
                KNOWN_VERSIONS.join(", ")
            )));
        }
        self.protocol = Some(version.to_owned());

        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let resp = self.post(&note).await?;
        let status = resp.status();
        if !status.is_success() {
            return Err(self.http_failure(resp, "notifications/initialized").await);
        }
        drop(resp);

        let call = json!({"jsonrpc": "2.0", "id": 2, "method": method, "params": {}});
        let resp = self.post(&call).await?;
        self.answer(resp, 2, method).await?;
        Ok(())
    }

    fn request(&self, method: Method, url: &Url) -> Request {
        let mut req = Request::new(method, url.as_str());
        for (n, v) in &self.headers {
            req = req.header(n.clone(), v.clone());
        }
        if let Some(id) = &self.session_id {
            req = req.header("Mcp-Session-Id", id.clone());
        }
        if let Some(v) = &self.protocol {
            req = req.header("MCP-Protocol-Version", v.clone());
        }
        req
    }

    /// POSTs one JSON-RPC message, following same-origin 307/308 redirects.
    async fn post(&mut self, message: &Value) -> Result<reqwest::Response, Fail> {
        let body = serde_json::to_vec(message).unwrap_or_default();
        let mut url = self.endpoint.clone();
        for _ in 0..=MAX_REDIRECTS {
            let req = self
                .request(Method::POST, &url)
                .header("Content-Type", "application/json")
                .header("Accept", "application/json, text/event-stream")
                .body(body.clone());
            let resp = self
                .ctx
                .guard
                .send_streaming(req)
                .await
                .map_err(|e| Fail(self.ctx.egress_message("MCP server", &e)))?;
            let status = resp.status().as_u16();
            if !matches!(status, 307 | 308) {
                return Ok(resp);
            }
            let next = resp
                .headers()
                .get(http::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| url.join(l.trim()).ok())
                .ok_or_else(|| {
                    Fail(format!(
                        "the MCP server answered {status} without a usable Location"
                    ))
                })?;
            if next.origin() != url.origin() {
                return Err(Fail(format!(
                    "the MCP endpoint redirects to another origin ({}); use that URL as the endpoint",
                    next.host_str().unwrap_or("unknown host")
                )));
            }
            url = next;
            // The endpoint that answers is the one later requests go to.
            self.endpoint = url.clone();
        }
        Err(Fail("the MCP endpoint redirected too many times".into()))
    }

    /// The `result` of the JSON-RPC response with `id`, from a JSON or SSE answer.
    async fn answer(&self, resp: reqwest::Response, id: u64, method: &str) -> Result<Value, Fail> {
        if !resp.status().is_success() {
            return Err(self.http_failure(resp, method).await);
        }
        let content_type = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let message = if content_type.starts_with("text/event-stream") {
            read_sse(resp, id).await?
        } else if content_type.starts_with("application/json") {
            let (body, truncated) = read_capped(resp, MAX_STREAM_BYTES).await?;
            if truncated {
                return Err(Fail(format!(
                    "the MCP server's answer to {method} is larger than {MAX_STREAM_BYTES} bytes"
                )));
            }
            let value: Value = serde_json::from_slice(&body).map_err(|_| {
                Fail(format!(
                    "the MCP server answered {method} with invalid JSON"
                ))
            })?;
            find_response(&value, id).ok_or_else(|| {
                Fail(format!(
                    "the MCP server's answer to {method} holds no response to it"
                ))
            })?
        } else {
            let shown: String = content_type.chars().take(64).collect();
            return Err(Fail(format!(
                "the MCP server answered {method} with content type {shown:?} (expected JSON or an event stream)"
            )));
        };
        if let Some(err) = message.get("error") {
            let text = err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("no message");
            let code = err.get("code").and_then(Value::as_i64);
            return Err(Fail(match code {
                Some(c) => format!("the MCP server answered {method} with error {c}: {text}"),
                None => format!("the MCP server answered {method} with an error: {text}"),
            }));
        }
        message
            .get("result")
            .cloned()
            .ok_or_else(|| Fail(format!("the MCP server's answer to {method} has no result")))
    }

    /// The message for a non-2xx answer, with the body's own words.
    async fn http_failure(&self, resp: reqwest::Response, method: &str) -> Fail {
        let status = resp.status();
        let (body, truncated) = read_capped(resp, 64 * 1024).await.unwrap_or_default();
        let said = body_text(&self.ctx.redactor, &body, truncated);
        let said = said.trim();
        let head = match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => format!(
                "the MCP server rejected the credentials ({})",
                status.as_u16()
            ),
            _ => format!("the MCP server answered {method} with {}", status.as_u16()),
        };
        if said.is_empty() {
            Fail(head)
        } else {
            Fail(format!("{head}: {said}"))
        }
    }

    /// Ends the session: best effort, in the background (at most one second), so it never changes the outcome or
    /// delays the answer.
    fn close(&self) {
        if self.session_id.is_none() {
            return;
        }
        let req = self.request(Method::DELETE, &self.endpoint);
        let guard = self.ctx.guard.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(1), guard.send_streaming(req)).await;
        });
    }
}

/// Reads at most `cap` bytes of a body; `true` when there was more.
async fn read_capped(mut resp: reqwest::Response, cap: usize) -> Result<(Vec<u8>, bool), Fail> {
    let mut buf = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = cap.saturating_sub(buf.len());
                if chunk.len() > room {
                    buf.extend_from_slice(chunk.get(..room).unwrap_or_default());
                    return Ok((buf, true));
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok((buf, false)),
            Err(e) => {
                return Err(Fail(format!(
                    "reading the MCP server's answer failed: {}",
                    e.without_url()
                )))
            }
        }
    }
}

/// The response with `id` in a JSON-RPC message or batch.
fn find_response(value: &Value, id: u64) -> Option<Value> {
    let matches = |m: &Value| {
        m.get("id").and_then(Value::as_u64) == Some(id)
            && (m.get("result").is_some() || m.get("error").is_some())
    };
    match value {
        Value::Array(items) => items.iter().find(|m| matches(m)).cloned(),
        m if matches(m) => Some(m.clone()),
        _ => None,
    }
}

/// Reads an SSE stream until the response with `id`, at most [`MAX_STREAM_BYTES`].
async fn read_sse(mut resp: reqwest::Response, id: u64) -> Result<Value, Fail> {
    let mut parser = SseParser::default();
    let mut total = 0usize;
    loop {
        let chunk = match resp.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => {
                return Err(Fail(
                    "the MCP server closed its event stream without answering".into(),
                ))
            }
            Err(e) => {
                return Err(Fail(format!(
                    "reading the MCP server's event stream failed: {}",
                    e.without_url()
                )))
            }
        };
        total += chunk.len();
        if total > MAX_STREAM_BYTES {
            return Err(Fail(format!(
                "the MCP server's event stream passed {MAX_STREAM_BYTES} bytes without an answer"
            )));
        }
        for data in parser.push(&chunk) {
            if let Ok(value) = serde_json::from_str::<Value>(&data) {
                if let Some(found) = find_response(&value, id) {
                    return Ok(found);
                }
            }
        }
    }
}

/// An incremental parser for `text/event-stream`: yields the `data` of each `message` event.
#[derive(Default)]
pub struct SseParser {
    buf: Vec<u8>,
    data: Vec<String>,
    event: String,
}

impl SseParser {
    /// Feeds bytes; returns the data of every event completed by them.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            if line.is_empty() {
                let data = self.data.join("\n");
                if !data.is_empty() && (self.event.is_empty() || self.event == "message") {
                    out.push(data);
                }
                self.data.clear();
                self.event.clear();
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line.as_ref(), ""),
            };
            match field {
                "data" => self.data.push(value.to_owned()),
                "event" => self.event = value.to_owned(),
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_are_split_across_chunks() {
        let mut p = SseParser::default();
        assert!(p.push(b"id: 0\nretry: 3000\ndata:\n\n").is_empty());
        assert!(p.push(b"event: message\r\ndata: {\"a\"").is_empty());
        let out = p.push(b":1}\r\n\r\n: ping\n\nevent: other\ndata: x\n\ndata: y\ndata: z\n\n");
        assert_eq!(out, vec!["{\"a\":1}".to_owned(), "y\nz".to_owned()]);
    }

    #[test]
    fn responses_are_found_by_id() {
        let batch = json!([{"jsonrpc":"2.0","method":"n"},{"jsonrpc":"2.0","id":2,"result":{}}]);
        assert!(find_response(&batch, 2).is_some());
        assert!(find_response(&batch, 1).is_none());
        assert!(find_response(&json!({"id":1,"error":{}}), 1).is_some());
    }
}
