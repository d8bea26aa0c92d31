//! Benchmark tools for `bench/run.sh` (binaries `mcp-echo-server` and `mcp-load`); this library is the MCP client's
//! HTTP side they share: an `rmcp` streamable-HTTP client over `reqwest` that sends a bearer token. The gateway's
//! tests use it as their agent too, with extra headers and a record of everything received
//! ([`BearerHttp::recording`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use http::{HeaderName, HeaderValue};
use rmcp::model::{ClientJsonRpcMessage, JsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
};
use sse_stream::{Sse, SseStream};

/// A transport failure, in words.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

type Res<T> = Result<T, StreamableHttpError<HttpError>>;

fn err(e: impl std::fmt::Display) -> StreamableHttpError<HttpError> {
    StreamableHttpError::Client(HttpError(e.to_string()))
}

/// Everything a recording client received: each response's header lines and body bytes, and every
/// `Mcp-Session-Id` handed out.
#[derive(Default)]
pub struct Received {
    bytes: Mutex<Vec<u8>>,
    session_ids: Mutex<Vec<String>>,
}

impl Received {
    /// What was received, as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes.lock().unwrap_or_else(PoisonError::into_inner))
            .into_owned()
    }

    /// Every `Mcp-Session-Id` received, oldest first.
    pub fn session_ids(&self) -> Vec<String> {
        self.session_ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn bytes(&self, chunk: &[u8]) {
        self.bytes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(chunk);
    }

    fn head(&self, resp: &reqwest::Response) {
        for (n, v) in resp.headers() {
            self.bytes(&[n.as_str().as_bytes(), b": ", v.as_bytes(), b"\n"].concat());
        }
        if let Some(sid) = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
        {
            self.session_ids
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(sid.to_owned());
        }
    }
}

/// The HTTP side of one or many MCP sessions (a shared connection pool).
#[derive(Clone)]
pub struct BearerHttp {
    client: reqwest::Client,
    token: Option<Arc<str>>,
    /// Sent with every request.
    extra: Arc<Vec<(HeaderName, HeaderValue)>>,
    received: Option<Arc<Received>>,
}

impl BearerHttp {
    /// A client sending `Authorization: Bearer <token>` when a token is given.
    pub fn new(token: Option<&str>) -> Result<BearerHttp, reqwest::Error> {
        Ok(BearerHttp {
            client: reqwest::Client::builder()
                .no_proxy()
                .tcp_nodelay(true)
                .build()?,
            token: token.map(Arc::from),
            extra: Arc::default(),
            received: None,
        })
    }

    /// Also sends this header with every request.
    pub fn with_header(mut self, name: &'static str, value: &'static str) -> BearerHttp {
        Arc::make_mut(&mut self.extra).push((
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        ));
        self
    }

    /// Keeps everything received (see [`Received`]).
    pub fn recording(mut self) -> BearerHttp {
        self.received = Some(Arc::default());
        self
    }

    /// What was received so far; empty unless [`BearerHttp::recording`].
    pub fn received_text(&self) -> String {
        self.received.as_ref().map(|r| r.text()).unwrap_or_default()
    }

    /// Every `Mcp-Session-Id` received so far; empty unless [`BearerHttp::recording`].
    pub fn session_ids(&self) -> Vec<String> {
        self.received
            .as_ref()
            .map(|r| r.session_ids())
            .unwrap_or_default()
    }

    fn keep_head(&self, resp: &reqwest::Response) {
        if let Some(r) = &self.received {
            r.head(resp);
        }
    }

    fn keep_body(&self, body: &[u8]) {
        if let Some(r) = &self.received {
            r.bytes(body);
        }
    }

    fn request(
        &self,
        method: reqwest::Method,
        uri: &str,
        session: Option<&str>,
        custom: HashMap<HeaderName, HeaderValue>,
    ) -> reqwest::RequestBuilder {
        let mut rb = self
            .client
            .request(method, uri)
            .header("accept", "application/json, text/event-stream");
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t);
        }
        for (n, v) in self.extra.iter() {
            rb = rb.header(n, v);
        }
        for (n, v) in custom {
            rb = rb.header(n, v);
        }
        if let Some(s) = session {
            rb = rb.header("mcp-session-id", s);
        }
        rb
    }

    fn sse(&self, resp: reqwest::Response) -> BoxStream<'static, Result<Sse, SseError>> {
        match &self.received {
            None => SseStream::from_bytes_stream(resp.bytes_stream()).boxed(),
            Some(received) => {
                let received = Arc::clone(received);
                let bytes = resp.bytes_stream().map(move |c| {
                    if let Ok(c) = &c {
                        received.bytes(c);
                    }
                    c
                });
                SseStream::from_bytes_stream(bytes).boxed()
            }
        }
    }
}

impl StreamableHttpClient for BearerHttp {
    type Error = HttpError;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth: Option<String>,
        custom: HashMap<HeaderName, HeaderValue>,
    ) -> Res<StreamableHttpPostResponse> {
        let body = serde_json::to_vec(&message).map_err(err)?;
        let resp = self
            .request(reqwest::Method::POST, &uri, session_id.as_deref(), custom)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(err)?;
        self.keep_head(&resp);
        let status = resp.status();
        let sid = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if status == 202 || status == 204 {
            return Ok(StreamableHttpPostResponse::Accepted);
        }
        if status == 404 && session_id.is_some() {
            return Err(StreamableHttpError::SessionExpired);
        }
        let is_sse = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("text/event-stream"));
        if is_sse && status.is_success() {
            return Ok(StreamableHttpPostResponse::Sse(self.sse(resp), sid));
        }
        let body = resp.bytes().await.map_err(err)?;
        self.keep_body(&body);
        match serde_json::from_slice::<ServerJsonRpcMessage>(&body) {
            Ok(m @ JsonRpcMessage::Error(_)) => Ok(StreamableHttpPostResponse::Json(m, sid)),
            Ok(m) if status.is_success() => Ok(StreamableHttpPostResponse::Json(m, sid)),
            _ if !matches!(message, ClientJsonRpcMessage::Request(_)) && status.is_success() => {
                Ok(StreamableHttpPostResponse::Accepted)
            }
            _ => Err(StreamableHttpError::UnexpectedServerResponse(Cow::Owned(
                format!("HTTP {status}: {}", String::from_utf8_lossy(&body)),
            ))),
        }
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        _auth: Option<String>,
        custom: HashMap<HeaderName, HeaderValue>,
    ) -> Res<()> {
        let resp = self
            .request(reqwest::Method::DELETE, &uri, Some(&session_id), custom)
            .send()
            .await
            .map_err(err)?;
        self.keep_head(&resp);
        Ok(())
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        _auth: Option<String>,
        custom: HashMap<HeaderName, HeaderValue>,
    ) -> Res<BoxStream<'static, Result<Sse, SseError>>> {
        let mut rb = self.request(reqwest::Method::GET, &uri, session_id.as_deref(), custom);
        if let Some(id) = last_event_id {
            rb = rb.header("last-event-id", id);
        }
        let resp = rb.send().await.map_err(err)?;
        self.keep_head(&resp);
        if resp.status() == 405 {
            return Err(StreamableHttpError::ServerDoesNotSupportSse);
        }
        if !resp.status().is_success() {
            return Err(StreamableHttpError::UnexpectedServerResponse(Cow::Owned(
                format!("GET answered {}", resp.status()),
            )));
        }
        Ok(self.sse(resp))
    }
}
