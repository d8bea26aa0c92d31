//! The relay's request: the guard's checks, the answer's body read as a stream under a silence bound.
//!
//! [`Guard::send_stream`] is for callers that pass an answer on as it arrives (the MCP gateway relaying an SSE
//! stream): the body is never collected here, and the caller reads it at its own pace (reading slower is
//! backpressure, not silence). The checks are the guard's: scheme, userinfo, literal and resolved addresses (the
//! client's resolver checks every answer, so the connection goes only to a checked address), no proxy from the
//! environment. Redirects are followed by hand only within the origin and each hop is re-checked; a redirect to
//! another origin, or one that would turn the request into a GET, is [`EgressError::Redirected`], not followed.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::header::{HeaderMap, HeaderValue, LOCATION};
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use url::{Position, Url};

use crate::error::EgressError;
use crate::guard::{
    is_followed_redirect, map_client_error, Checker, Guard, CALLER_FORBIDDEN, USER_AGENT,
};

/// The client behind [`Guard::send_stream`]: hyper-util's pooled HTTP/1 and HTTP/2 client, straight, without
/// reqwest's layers (redirect policy, retries, URL re-parsing) on a path the MCP gateway takes for every call. It
/// connects only to addresses [`GuardDns`] checked (an IP literal was checked before the request), speaks TLS with
/// rustls and the Mozilla roots, and never uses a proxy; redirects are [`Guard::send_stream`]'s business.
pub(crate) type StreamClient =
    Client<hyper_rustls::HttpsConnector<HttpConnector<GuardDns>>, Full<Bytes>>;

/// How long an idle pooled upstream connection is kept (as reqwest's default).
const POOL_IDLE: Duration = Duration::from_secs(90);

pub(crate) fn stream_client(checker: &Arc<Checker>) -> Result<StreamClient, EgressError> {
    let mut http = HttpConnector::new_with_resolver(GuardDns(Arc::clone(checker)));
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(checker.cfg.effective_connect_timeout()));
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| EgressError::Http(format!("could not set up TLS: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE)
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .build(https))
}

/// The streaming client's resolver: every address of a name checked, or the name refused.
#[derive(Clone)]
pub(crate) struct GuardDns(Arc<Checker>);

impl tower_service::Service<Name> for GuardDns {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = EgressError;
    type Future =
        Pin<Box<dyn Future<Output = Result<std::vec::IntoIter<SocketAddr>, EgressError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), EgressError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let checker = Arc::clone(&self.0);
        Box::pin(async move {
            // The port is the connector's (it sets each address's port from the URL).
            checker
                .resolve_checked(name.as_str(), 0)
                .await
                .map(Vec::into_iter)
        })
    }
}

/// One outbound request whose answer is read as a stream.
#[derive(Clone)]
pub struct StreamRequest {
    pub method: Method,
    /// Parsed by the caller (once, for a target used again and again); checked here on every request.
    pub url: Url,
    /// Sent as given, except the framing and target headers the guard owns (`Host`, `Content-Length`,
    /// `Transfer-Encoding`, `Connection` and the other hop-by-hop names), which are dropped.
    pub headers: HeaderMap,
    pub body: Option<Bytes>,
    /// The longest wait for the answer's head, and then for each piece of its body.
    pub idle_timeout: Duration,
}

impl fmt::Debug for StreamRequest {
    /// No header values, query or body: they may hold secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = self.url.host_str();
        f.debug_struct("StreamRequest")
            .field("method", &self.method)
            .field("host", &host)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("body_len", &self.body.as_ref().map(Bytes::len))
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}

/// The answer's head, and its body still to be read.
pub struct StreamResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The URL that answered (after same-origin redirects).
    pub final_url: Url,
    pub body: BodyStream,
}

impl fmt::Debug for StreamResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamResponse")
            .field("status", &self.status)
            .field("final_host", &self.final_url.host_str())
            .finish_non_exhaustive()
    }
}

type Chunks = Pin<Box<dyn Stream<Item = Result<Bytes, EgressError>> + Send>>;

/// The body of a [`StreamResponse`]: chunks as they arrive. Waiting longer than the idle timeout for the next chunk
/// (while the reader is waiting, not while it is busy) yields [`EgressError::Timeout`] and ends the stream; so does
/// any transport error, mapped and sanitised like the guard's other errors.
pub struct BodyStream {
    inner: Chunks,
    url: Url,
    idle: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
    waiting: bool,
    done: bool,
}

impl BodyStream {
    fn new(body: hyper::body::Incoming, url: Url, idle: Duration) -> Self {
        let shown = url.clone();
        let chunks = body
            .into_data_stream()
            .map(move |r| r.map_err(|e| map_client_error(&e, &shown, false, false)));
        BodyStream {
            inner: Box::pin(chunks),
            url,
            idle,
            sleep: Box::pin(tokio::time::sleep(idle)),
            waiting: false,
            done: false,
        }
    }

    /// The next chunk, `None` at the end.
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes, EgressError>> {
        futures_util::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// Reads the rest of the body, at most `cap` bytes; `Ok(None)` when it is longer.
    pub async fn collect_capped(mut self, cap: usize) -> Result<Option<Bytes>, EgressError> {
        let mut buf = bytes::BytesMut::new();
        while let Some(chunk) = self.next_chunk().await {
            let chunk = chunk?;
            if buf.len() + chunk.len() > cap {
                return Ok(None);
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Some(buf.freeze()))
    }
}

impl fmt::Debug for BodyStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyStream")
            .field("host", &self.url.host_str())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Stream for BodyStream {
    type Item = Result<Bytes, EgressError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if !this.waiting {
            // A new wait starts now: time spent while the reader was busy elsewhere is not silence.
            let deadline = tokio::time::Instant::now() + this.idle;
            this.sleep.as_mut().reset(deadline);
            this.waiting = true;
        }
        match this.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.waiting = false;
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.done = true;
                    Poll::Ready(Some(Err(EgressError::Timeout)))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

fn location_host(next: &Url) -> String {
    next.host_str().unwrap_or("an unknown host").to_owned()
}

impl Guard {
    /// One request through the streaming client: the answer's head, its body not yet read.
    async fn execute_stream(
        &self,
        method: &Method,
        url: &Url,
        headers: &HeaderMap,
        body: Option<Bytes>,
    ) -> Result<http::Response<hyper::body::Incoming>, EgressError> {
        // The fragment is the client's own business; it never goes on the wire.
        let uri: http::Uri = url[..Position::AfterQuery].parse().map_err(|_| {
            EgressError::InvalidUrl("the URL is not a valid HTTP request target".to_owned())
        })?;
        let mut request = http::Request::new(Full::new(body.unwrap_or_default()));
        *request.method_mut() = method.clone();
        *request.uri_mut() = uri;
        *request.headers_mut() = headers.clone();
        request
            .headers_mut()
            .entry(http::header::USER_AGENT)
            .or_insert(HeaderValue::from_static(USER_AGENT));
        self.stream_client()
            .request(request)
            .await
            .map_err(|e| map_client_error(&e, url, false, e.is_connect()))
    }

    /// Sends `req` and returns as soon as the answer's head is in, its body to be read as a stream
    /// ([`BodyStream`]). The head must arrive within `idle_timeout`. Same-origin 307/308 redirects are followed
    /// (and 301/302/303 for GET and HEAD), each hop re-checked, at most `max_redirects`; a redirect to another
    /// origin, or one that would change the method, is [`EgressError::Redirected`] and is not followed, so headers
    /// carrying credentials never leave the origin they were meant for.
    pub async fn send_stream(&self, req: StreamRequest) -> Result<StreamResponse, EgressError> {
        let mut url = self.check_url_static(req.url)?;
        let mut headers = req.headers;
        for name in CALLER_FORBIDDEN {
            headers.remove(*name);
        }
        let idle = req.idle_timeout;
        let mut hops = 0usize;
        loop {
            let send = self.execute_stream(&req.method, &url, &headers, req.body.clone());
            let resp = tokio::time::timeout(idle, send)
                .await
                .unwrap_or(Err(EgressError::Timeout))?;
            let status = resp.status();
            let location = resp.headers().get(LOCATION).cloned();
            let (true, Some(location)) = (is_followed_redirect(status.as_u16()), location) else {
                let (parts, body) = resp.into_parts();
                let headers = parts.headers;
                let body = BodyStream::new(body, url.clone(), idle);
                return Ok(StreamResponse {
                    status,
                    headers,
                    final_url: url,
                    body,
                });
            };
            drop(resp);
            let next = location
                .to_str()
                .ok()
                .and_then(|l| url.join(l.trim()).ok())
                .ok_or_else(|| {
                    EgressError::Redirected(format!(
                        "the server answered {} with an unusable Location",
                        status.as_u16()
                    ))
                })?;
            if next.origin() != url.origin() {
                return Err(EgressError::Redirected(format!(
                    "the server answered {} pointing to another origin ({}), which is not followed",
                    status.as_u16(),
                    location_host(&next)
                )));
            }
            let keeps_method = matches!(status.as_u16(), 307 | 308)
                || req.method == Method::GET
                || req.method == Method::HEAD;
            if !keeps_method {
                return Err(EgressError::Redirected(format!(
                    "the server answered {} to a {} request (following it would turn it into a GET)",
                    status.as_u16(),
                    req.method
                )));
            }
            if hops >= self.config().max_redirects {
                return Err(EgressError::TooManyRedirects);
            }
            hops += 1;
            tracing::debug!(
                status = status.as_u16(),
                "egress following a same-origin redirect"
            );
            url = self.check_url_static(next)?;
        }
    }
}
