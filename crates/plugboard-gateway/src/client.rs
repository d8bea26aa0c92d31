//! The HTTP client under the aggregated endpoints' `rmcp` clients: rmcp's [`StreamableHttpClient`] implemented over
//! the egress guard's streaming request ([`plugboard_egress::Guard::send_stream`]), so every upstream connection
//! goes through the guard (checked addresses, same-origin redirects only, no proxy from the environment, a silence
//! bound on every read) and no second HTTP stack is built.
//!
//! Every request takes its headers from the gateway's materialisation cache, so an OAuth token due for refresh is
//! refreshed before the request that needs it, and anything the upstream says in an error is redacted before rmcp
//! sees it. `GET` streams are not opened: the aggregated endpoints relay no server-initiated messages, and a broken
//! response stream fails its request at once instead of being resumed.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use http::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};
use http::{Method, StatusCode};
use plugboard_egress::{EgressError, StreamRequest};
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, JsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
    StreamableHttpResponseLimits,
};
use sse_stream::Sse;

use crate::ports::IntegrationInfo;
use crate::upstream::Prepared;
use crate::Inner;

/// Why a request to the upstream did not happen or did not finish (messages already redacted).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Upstream(String),
    #[error("the integration's credentials are not usable: {0}")]
    Credentials(String),
    #[error("the gateway is shutting down")]
    Gone,
}

/// One integration's upstream, as rmcp's HTTP client.
#[derive(Clone)]
pub struct GuardedClient {
    gw: Weak<Inner>,
    info: Arc<IntegrationInfo>,
}

type Result<T> = std::result::Result<T, StreamableHttpError<ClientError>>;

impl GuardedClient {
    pub fn new(gw: Weak<Inner>, info: Arc<IntegrationInfo>) -> Self {
        GuardedClient { gw, info }
    }

    async fn prepared(&self) -> Result<(Arc<Inner>, Arc<Prepared>)> {
        let gw = self
            .gw
            .upgrade()
            .ok_or(StreamableHttpError::Client(ClientError::Gone))?;
        let prepared = gw
            .upstreams
            .get(gw.ports.integrations.as_ref(), &self.info)
            .await
            .map_err(|e| StreamableHttpError::Client(ClientError::Credentials(e.message)))?;
        Ok((gw, prepared))
    }

    fn egress_error(
        gw: &Inner,
        prepared: &Prepared,
        err: &EgressError,
    ) -> StreamableHttpError<ClientError> {
        let text = match err {
            EgressError::Timeout => format!(
                "the MCP server did not answer within {} ms",
                gw.config.timeout.as_millis()
            ),
            other => format!("could not reach the MCP server: {other}"),
        };
        StreamableHttpError::Client(ClientError::Upstream(prepared.finish(&text)))
    }

    fn headers(
        prepared: &Prepared,
        custom: HashMap<HeaderName, HeaderValue>,
        session_id: Option<&str>,
    ) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in custom {
            headers.insert(name, value);
        }
        for name in prepared.headers().keys() {
            headers.remove(name);
        }
        for (name, value) in prepared.headers() {
            headers.append(name.clone(), value.clone());
        }
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        if let Some(sid) = session_id.and_then(|s| HeaderValue::from_str(s).ok()) {
            headers.insert(HeaderName::from_static("mcp-session-id"), sid);
        }
        headers
    }
}

fn media_type_is(value: Option<&HeaderValue>, expected: &str) -> bool {
    value
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(expected))
}

/// A JSON-RPC error answer to a `server/discover` that a legacy server refused with a 4xx, so rmcp falls back to
/// `initialize` (what rmcp's own HTTP clients do).
fn legacy_discover_answer(
    message: &ClientJsonRpcMessage,
    session_attached: bool,
    status: StatusCode,
    body: &[u8],
) -> Option<StreamableHttpPostResponse> {
    if session_attached
        || !status.is_client_error()
        || status == StatusCode::UNAUTHORIZED
        || status == StatusCode::FORBIDDEN
    {
        return None;
    }
    let ClientJsonRpcMessage::Request(request) = message else {
        return None;
    };
    if !matches!(request.request, ClientRequest::DiscoverRequest(_)) {
        return None;
    }
    let error = match serde_json::from_slice::<ServerJsonRpcMessage>(body) {
        Ok(JsonRpcMessage::Error(e)) => e.error,
        _ => rmcp::ErrorData::invalid_request(
            format!("server/discover was refused with HTTP {}", status.as_u16()),
            None,
        ),
    };
    Some(StreamableHttpPostResponse::Json(
        ServerJsonRpcMessage::error(error, Some(request.id.clone())),
        None,
    ))
}

impl StreamableHttpClient for GuardedClient {
    type Error = ClientError;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse> {
        self.post_message_with_response_limits(
            uri,
            message,
            session_id,
            auth_header,
            custom_headers,
            StreamableHttpResponseLimits::default(),
        )
        .await
    }

    async fn post_message_with_response_limits(
        &self,
        _uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> Result<StreamableHttpPostResponse> {
        let (gw, prepared) = self.prepared().await?;
        let body = serde_json::to_vec(&message).map_err(StreamableHttpError::Deserialize)?;
        let mut headers = Self::headers(&prepared, custom_headers, session_id.as_deref());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let request = StreamRequest {
            method: Method::POST,
            url: prepared.endpoint().clone(),
            headers,
            body: Some(Bytes::from(body)),
            idle_timeout: gw.config.timeout,
        };
        let resp = gw
            .guard
            .send_stream(request)
            .await
            .map_err(|e| Self::egress_error(&gw, &prepared, &e))?;
        let status = resp.status;
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(StreamableHttpError::Client(ClientError::Upstream(format!(
                "the MCP server refused this integration's credentials (HTTP {}); reconnect the integration or \
                 update its credentials",
                status.as_u16()
            ))));
        }
        if status == StatusCode::ACCEPTED || status == StatusCode::NO_CONTENT {
            return Ok(StreamableHttpPostResponse::Accepted);
        }
        if status == StatusCode::NOT_FOUND && session_id.is_some() {
            return Err(StreamableHttpError::SessionExpired);
        }
        let upstream_session = resp
            .headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let content_type = resp.headers.get(CONTENT_TYPE).cloned();
        let awaits_no_response = !matches!(message, ClientJsonRpcMessage::Request(_));
        let cap = limits
            .max_json_response_size
            .min(gw.config.max_message_bytes);
        if !status.is_success() {
            let body = resp
                .body
                .collect_capped(cap)
                .await
                .ok()
                .flatten()
                .unwrap_or_default();
            let text = prepared.redactor.redact(&String::from_utf8_lossy(&body));
            if let Some(answer) =
                legacy_discover_answer(&message, session_id.is_some(), status, text.as_bytes())
            {
                return Ok(answer);
            }
            if media_type_is(content_type.as_ref(), "application/json") {
                if let Ok(err @ JsonRpcMessage::Error(_)) =
                    serde_json::from_str::<ServerJsonRpcMessage>(&text)
                {
                    return Ok(StreamableHttpPostResponse::Json(err, upstream_session));
                }
            }
            return Err(StreamableHttpError::UnexpectedServerResponse(Cow::Owned(
                prepared.finish(&format!(
                    "the MCP server answered HTTP {}: {text}",
                    status.as_u16()
                )),
            )));
        }
        if media_type_is(content_type.as_ref(), "text/event-stream") {
            let max_event = limits.max_sse_event_size.min(gw.config.max_message_bytes);
            let stream = bounded_events(resp.body, max_event);
            return Ok(StreamableHttpPostResponse::Sse(stream, upstream_session));
        }
        if media_type_is(content_type.as_ref(), "application/json") {
            let body = match resp.body.collect_capped(cap).await {
                Ok(Some(b)) => b,
                Ok(None) => {
                    return Err(StreamableHttpError::ResponseBodyTooLarge { max_size: cap })
                }
                Err(e) => return Err(Self::egress_error(&gw, &prepared, &e)),
            };
            return match serde_json::from_slice::<ServerJsonRpcMessage>(&body) {
                Ok(parsed) => Ok(StreamableHttpPostResponse::Json(parsed, upstream_session)),
                Err(_) if awaits_no_response => Ok(StreamableHttpPostResponse::Accepted),
                Err(_) => Err(StreamableHttpError::UnexpectedServerResponse(
                    Cow::Borrowed(
                        "the MCP server answered with JSON that is not a JSON-RPC message",
                    ),
                )),
            };
        }
        if awaits_no_response {
            return Ok(StreamableHttpPostResponse::Accepted);
        }
        Err(StreamableHttpError::UnexpectedContentType(
            content_type.and_then(|v| v.to_str().ok().map(|s| s.chars().take(64).collect())),
        ))
    }

    async fn delete_session(
        &self,
        _uri: Arc<str>,
        session_id: Arc<str>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<()> {
        let (gw, prepared) = self.prepared().await?;
        let request = StreamRequest {
            method: Method::DELETE,
            url: prepared.endpoint().clone(),
            headers: Self::headers(&prepared, custom_headers, Some(&session_id)),
            body: None,
            idle_timeout: gw.config.timeout,
        };
        let resp = gw
            .guard
            .send_stream(request)
            .await
            .map_err(|e| Self::egress_error(&gw, &prepared, &e))?;
        if resp.status.is_success() || resp.status == StatusCode::METHOD_NOT_ALLOWED {
            Ok(())
        } else {
            Err(StreamableHttpError::UnexpectedServerResponse(Cow::Owned(
                format!(
                    "the MCP server answered HTTP {} to the end of the session",
                    resp.status.as_u16()
                ),
            )))
        }
    }

    async fn get_stream(
        &self,
        _uri: Arc<str>,
        _session_id: Option<Arc<str>>,
        _last_event_id: Option<String>,
        _auth_header: Option<String>,
        _custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<BoxStream<'static, std::result::Result<Sse, SseError>>> {
        Err(StreamableHttpError::ServerDoesNotSupportSse)
    }
}

/// The SSE events of a body, framed by the gateway's own framer, each at most `max_event` bytes (a longer one, a
/// transport error or silence ends the stream with an error). The upstream is read only as fast as rmcp reads.
fn bounded_events(
    body: plugboard_egress::BodyStream,
    max_event: usize,
) -> BoxStream<'static, std::result::Result<Sse, SseError>> {
    struct State {
        body: Option<plugboard_egress::BodyStream>,
        framer: crate::sse::Framer,
        ready: std::collections::VecDeque<Sse>,
    }
    let state = State {
        body: Some(body),
        framer: crate::sse::Framer::new(max_event),
        ready: std::collections::VecDeque::new(),
    };
    futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(event) = st.ready.pop_front() {
                return Some((Ok(event), st));
            }
            let body = st.body.as_mut()?;
            match body.next_chunk().await {
                None => return None,
                Some(Err(e)) => {
                    st.body = None;
                    return Some((Err(SseError::Body(Box::new(e))), st));
                }
                Some(Ok(chunk)) => match st.framer.push(&chunk) {
                    Ok(events) => st.ready.extend(events.into_iter().map(|e| Sse {
                        retry: e.retry.as_deref().and_then(|r| r.trim().parse().ok()),
                        event: e.event,
                        data: e.data,
                        id: e.id,
                    })),
                    Err(crate::sse::TooLarge(max)) => {
                        st.body = None;
                        let msg = format!("the MCP server sent an event larger than {max} bytes");
                        return Some((Err(SseError::Body(msg.into())), st));
                    }
                },
            }
        }
    })
    .boxed()
}
