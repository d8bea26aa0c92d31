//! The accept loop: how connections are taken, bounded and closed, below the router.
//!
//! - At most `max_connections` connections are served at once; beyond that the listener is not polled, so further
//!   clients wait in the kernel's backlog instead of taking file descriptors.
//! - A request head must arrive within `header_timeout` (a half-sent header is closed); the same bound closes a
//!   keep-alive connection that stays idle between requests.
//! - The first request head of each HTTP/1 connection is read and checked here, so that a malformed request (400),
//!   a too long URI (414), too large headers (431) and a request with both `Content-Length` and `Transfer-Encoding`
//!   (400, a request-smuggling vector) get the API's JSON error body; then the connection goes to hyper.
//! - On shutdown: stop accepting (connections already in the backlog are still taken), answer every request already
//!   read with `Connection: close`, then close idle connections and wait for busy ones up to a drain deadline.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::ConnectInfo;
use axum::Router;
use bytes::{Buf, Bytes, BytesMut};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

use crate::error::error_body;

/// Longest request target (path and query) accepted: 414 beyond.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Largest request head (request line and headers) accepted: 431 beyond.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;
/// Most header lines accepted: 431 beyond.
pub const MAX_HEADERS: usize = 100;
/// How long requests already read get to finish after the shutdown signal before idle connections are closed.
const LINGER: Duration = Duration::from_millis(500);

/// How connections are served.
#[derive(Clone, Copy, Debug)]
pub struct ServeOptions {
    pub header_timeout: Duration,
    pub max_connections: usize,
    /// After the shutdown signal, how long busy connections get to finish.
    pub drain_timeout: Duration,
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains (see the module documentation).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    // Set once shutdown has begun: every response then carries `Connection: close`.
    let flag = Arc::new(AtomicBool::new(false));
    let closing = flag.clone();
    let router = router.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let closing = closing.clone();
            async move {
                let mut res = next.run(req).await;
                if closing.load(Ordering::Relaxed) {
                    res.headers_mut().insert(
                        http::header::CONNECTION,
                        http::HeaderValue::from_static("close"),
                    );
                }
                res
            }
        },
    ));
    let permits = options.max_connections.max(1);
    let slots = Arc::new(Semaphore::new(permits));
    let (close_tx, close_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => break,
        };
        match accepted {
            Ok((stream, peer)) => spawn_connection(
                stream,
                peer,
                router.clone(),
                options,
                close_rx.clone(),
                permit,
            ),
            Err(e) => {
                // Out of file descriptors and the like: wait a moment instead of spinning.
                tracing::warn!(error = %e, "cannot accept a connection");
                drop(permit);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    flag.store(true, Ordering::Relaxed);
    tracing::info!("shutting down: no new connections; answering the requests already received");
    // Connections the kernel completed before the signal: their clients have sent requests; take and answer them.
    if let Ok(std_listener) = listener.into_std() {
        loop {
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                break;
            };
            let Ok((stream, peer)) = std_listener.accept() else {
                break;
            };
            let stream = stream
                .set_nonblocking(true)
                .and_then(|()| TcpStream::from_std(stream));
            if let Ok(stream) = stream {
                spawn_connection(
                    stream,
                    peer,
                    router.clone(),
                    options,
                    close_rx.clone(),
                    permit,
                );
            }
        }
    }
    tokio::time::sleep(LINGER).await;
    let _ = close_tx.send(true);
    let all = u32::try_from(permits).unwrap_or(u32::MAX);
    let drained = tokio::time::timeout(options.drain_timeout, slots.acquire_many(all)).await;
    match drained {
        Ok(_) => tracing::info!("every connection is closed"),
        Err(_) => tracing::warn!(
            drain_ms = options.drain_timeout.as_millis() as u64,
            "connections still busy after the drain deadline are cut"
        ),
    }
}

fn spawn_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    options: ServeOptions,
    mut close: watch::Receiver<bool>,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    tokio::spawn(async move {
        let _permit = permit;
        let _ = stream.set_nodelay(true);
        let io = match first_head(stream, options.header_timeout).await {
            Some(io) => io,
            None => return,
        };
        let started = tokio::time::Instant::now();
        let service = hyper_util::service::TowerToHyperService::new(router.map_request(
            move |mut req: axum::extract::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            },
        ));
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(options.header_timeout)
            // Requests already read are answered when the reading side ends: a client that sent its requests and
            // closed its side, and the requests before a refused head (see `Rewind`).
            .half_close(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(options.header_timeout))
            .keep_alive_timeout(options.header_timeout);
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        tokio::pin!(conn);
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = close.wait_for(|closing| *closing) => {}
        }
        // A request read just now is not yet in hyper's hands: let it start before idle connections are closed.
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = tokio::time::sleep_until(started + LINGER) => {}
        }
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    });
}

/// Reads and checks the first request head of an HTTP/1 connection. `None` when the connection was answered with
/// an error (or closed: nothing, or a half-sent head, within the timeout); else the stream with the bytes read so
/// far put back in front.
async fn first_head(mut stream: TcpStream, timeout: Duration) -> Option<Rewind> {
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match check_head(&buf) {
            Head::Incomplete => {}
            Head::Pass(..) => return Some(Rewind::new(stream, &buf)),
            Head::Refuse(status, code, message) => {
                refuse(&mut stream, status, code, message).await;
                return None;
            }
        }
        let mut chunk = [0u8; 4096];
        let n = match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) => n,
            Ok(Err(_)) => return None,
            Err(_) => {
                if !buf.is_empty() {
                    tracing::debug!(
                        "closing a connection that did not send its request head in time"
                    );
                }
                return None;
            }
        };
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

enum Head {
    Incomplete,
    /// A head to pass on: its length in bytes and how its body ends.
    Pass(usize, BodyFraming),
    Refuse(u16, &'static str, &'static str),
}

/// How the body after a request head ends, as far as the connection's later heads are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyFraming {
    /// After this many bytes (0: no body).
    Length(u64),
    Chunked,
    /// Not followed: HTTP/2, an upgrade, a `CONNECT`, an encoding hyper refuses itself.
    Opaque,
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn check_head(buf: &[u8]) -> Head {
    if buf.is_empty() {
        return Head::Incomplete;
    }
    // HTTP/2 with prior knowledge: hyper's.
    let n = buf.len().min(H2_PREFACE.len());
    if buf[..n] == H2_PREFACE[..n] {
        return if n == H2_PREFACE.len() {
            Head::Pass(n, BodyFraming::Opaque)
        } else {
            Head::Incomplete
        };
    }
    // The request line alone is too long (before the head is complete).
    let line_end = buf.windows(2).position(|w| w == b"\r\n");
    let line_len = line_end.unwrap_or(buf.len());
    if line_len > MAX_URI_BYTES + 64 {
        return Head::Refuse(
            414,
            "uri_too_long",
            "the request URI is longer than 8 KiB: send long values in the request body",
        );
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) => {
            if buf.len() > MAX_HEAD_BYTES {
                Head::Refuse(
                    431,
                    "headers_too_large",
                    "the request headers are larger than 32 KiB: send fewer or shorter headers",
                )
            } else {
                Head::Incomplete
            }
        }
        Ok(httparse::Status::Complete(len)) => {
            if req.path.is_some_and(|p| p.len() > MAX_URI_BYTES) {
                return Head::Refuse(
                    414,
                    "uri_too_long",
                    "the request URI is longer than 8 KiB: send long values in the request body",
                );
            }
            if len > MAX_HEAD_BYTES {
                return Head::Refuse(
                    431,
                    "headers_too_large",
                    "the request headers are larger than 32 KiB: send fewer or shorter headers",
                );
            }
            match check_framing(req.headers) {
                Ok(_) if req.method == Some("CONNECT") => Head::Pass(len, BodyFraming::Opaque),
                Ok(framing) => Head::Pass(len, framing),
                Err(refusal) => refusal,
            }
        }
        Err(httparse::Error::TooManyHeaders) => Head::Refuse(
            431,
            "headers_too_large",
            "the request has more than 100 header lines: send fewer headers",
        ),
        Err(_) => Head::Refuse(
            400,
            "invalid_request",
            "the request is not well-formed HTTP/1.1",
        ),
    }
}

/// `Content-Length` and `Transfer-Encoding` together, or several different lengths, make the body's end ambiguous
/// (request smuggling): refused. Otherwise, how the body ends.
fn check_framing(headers: &[httparse::Header<'_>]) -> Result<BodyFraming, Head> {
    let named = |name: &'static str| {
        headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let mut lengths = named("content-length");
    let encodings: Vec<&[u8]> = named("transfer-encoding").collect();
    let first = lengths.next();
    if !encodings.is_empty() && first.is_some() {
        return Err(Head::Refuse(
            400,
            "invalid_request",
            "the request has both Content-Length and Transfer-Encoding: send only one of them",
        ));
    }
    if named("upgrade").next().is_some() {
        return Ok(BodyFraming::Opaque);
    }
    if let Some(last) = encodings.last() {
        // hyper takes a body as chunked when the last encoding is `chunked`, and refuses the request otherwise.
        let last_coding = last.rsplit(|b| *b == b',').next().unwrap_or_default();
        return Ok(
            if last_coding.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                BodyFraming::Chunked
            } else {
                BodyFraming::Opaque
            },
        );
    }
    let Some(first) = first else {
        return Ok(BodyFraming::Length(0));
    };
    let length = std::str::from_utf8(first)
        .ok()
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse::<u64>().ok());
    match length {
        Some(n) if lengths.all(|other| other == first) => Ok(BodyFraming::Length(n)),
        _ => Err(Head::Refuse(
            400,
            "invalid_request",
            "the request's Content-Length is not one whole number",
        )),
    }
}

/// Answers an error with the API's body and closes the connection.
async fn refuse(stream: &mut TcpStream, status: u16, code: &str, message: &str) {
    let response = response_text(status, code, message);
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// A stream with bytes already read put back in front; its later request heads checked as the first one is (a
/// refused one is answered with the API's JSON error once hyper has answered the requests before it, and hyper never
/// sees it); and hyper's own error answers (a bare status line, for what the checks here let through) replaced by the
/// same answer with the API's JSON error body.
struct Rewind {
    inner: TcpStream,
    framing: Framing,
    /// A replacement answer still to be written.
    pending: Bytes,
    /// The client closed its side.
    eof: bool,
}

/// The request stream of a connection, followed request by request.
struct Framing {
    /// Bytes read and checked, for hyper.
    ready: BytesMut,
    /// Bytes read and not checked yet (the start of a request head, of a chunk-size line).
    unchecked: BytesMut,
    follow: Follow,
    /// The answer to a refused request head: hyper reads nothing more, and this goes out when hyper ends the
    /// connection.
    refusal: Option<Bytes>,
}

/// Where the next byte of the request stream belongs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Follow {
    Head,
    /// Bytes of a body with a `Content-Length` still to come.
    Body(u64),
    /// A chunked body's size line.
    ChunkSize,
    /// Bytes of a chunk still to come, its closing line break included.
    ChunkData(u64),
    /// A chunked body's trailer lines, up to the empty one.
    Trailers,
    /// Not followed any more (HTTP/2, an upgrade, framing hyper judges by itself): bytes go to hyper as they come.
    Off,
}

/// The size of a chunk from its size line (without the `\n`), extensions ignored.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let digits = line.split(|b| *b == b';').next()?.trim_ascii();
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

impl Rewind {
    fn new(inner: TcpStream, read: &[u8]) -> Rewind {
        Rewind {
            inner,
            framing: Framing::new(read),
            pending: Bytes::new(),
            eof: false,
        }
    }
}

impl Framing {
    fn new(read: &[u8]) -> Framing {
        let mut framing = Framing {
            ready: BytesMut::new(),
            unchecked: BytesMut::new(),
            follow: Follow::Head,
            refusal: None,
        };
        framing.push(read);
        framing
    }

    /// Bytes read from the client.
    fn push(&mut self, read: &[u8]) {
        self.unchecked.extend_from_slice(read);
        self.advance();
    }

    /// The client closed its side: what is left goes to hyper, which answers or closes as it would.
    fn close(&mut self) {
        let rest = self.unchecked.split();
        self.ready.extend_from_slice(&rest);
    }

    /// Moves what can be checked from `unchecked` to `ready`, following the requests' framing.
    fn advance(&mut self) {
        while !self.unchecked.is_empty() && self.refusal.is_none() {
            match self.follow {
                Follow::Off => {
                    self.ready.extend_from_slice(&self.unchecked);
                    self.unchecked.clear();
                }
                Follow::Head => match check_head(&self.unchecked) {
                    Head::Incomplete => return,
                    Head::Refuse(status, code, message) => {
                        self.refusal = Some(Bytes::from(response_text(status, code, message)));
                        self.unchecked.clear();
                    }
                    Head::Pass(len, framing) => {
                        self.pass(len);
                        self.follow = match framing {
                            BodyFraming::Length(0) => Follow::Head,
                            BodyFraming::Length(n) => Follow::Body(n),
                            BodyFraming::Chunked => Follow::ChunkSize,
                            BodyFraming::Opaque => Follow::Off,
                        };
                    }
                },
                Follow::Body(left) | Follow::ChunkData(left) => {
                    let n = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(self.unchecked.len());
                    self.pass(n);
                    let left = left - n as u64;
                    self.follow = match (self.follow, left) {
                        (Follow::Body(_), 0) => Follow::Head,
                        (Follow::Body(_), _) => Follow::Body(left),
                        (_, 0) => Follow::ChunkSize,
                        _ => Follow::ChunkData(left),
                    };
                }
                Follow::ChunkSize | Follow::Trailers => {
                    let Some(end) = self.unchecked.iter().position(|b| *b == b'\n') else {
                        if self.unchecked.len() > MAX_HEAD_BYTES {
                            self.follow = Follow::Off;
                        }
                        return;
                    };
                    let line = &self.unchecked[..end];
                    let next = if self.follow == Follow::ChunkSize {
                        match chunk_size(line) {
                            Some(0) => Follow::Trailers,
                            Some(n) => n.checked_add(2).map_or(Follow::Off, Follow::ChunkData),
                            // Not a size: hyper answers it.
                            None => Follow::Off,
                        }
                    } else if line.is_empty() || line == b"\r" {
                        Follow::Head
                    } else {
                        Follow::Trailers
                    };
                    self.pass(end + 1);
                    self.follow = next;
                }
            }
        }
    }

    /// The first `n` unchecked bytes are fine: they go to hyper.
    fn pass(&mut self, n: usize) {
        self.ready.extend_from_slice(&self.unchecked[..n]);
        self.unchecked.advance(n);
    }
}

/// The JSON answer standing in for hyper's bare `status` answer to a request head it could not parse.
fn replacement_for(head: &[u8]) -> Option<Bytes> {
    let status = match head.get(..13)? {
        b"HTTP/1.1 400 " => 400,
        b"HTTP/1.1 414 " => 414,
        b"HTTP/1.1 431 " => 431,
        _ => return None,
    };
    let end = head.windows(4).position(|w| w == b"\r\n\r\n")?;
    let lower = head[..end].to_ascii_lowercase();
    // Every answer of the router carries x-request-id; hyper's own answers carry neither it nor a body.
    let has = |needle: &[u8]| lower.windows(needle.len()).any(|w| w == needle);
    if has(b"x-request-id:") || !has(b"content-length: 0") {
        return None;
    }
    let (code, message) = match status {
        414 => (
            "uri_too_long",
            "the request URI is longer than 8 KiB: send long values in the request body",
        ),
        431 => (
            "headers_too_large",
            "the request headers are too large: send fewer or shorter headers",
        ),
        _ => ("invalid_request", "the request is not well-formed HTTP/1.1"),
    };
    Some(Bytes::from(response_text(status, code, message)))
}

fn response_text(status: u16, code: &str, message: &str) -> String {
    let body = error_body(code, message);
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\nx-request-id: {}\r\n\r\n{body}",
        body.len(),
        plugboard_store::new_id()
    )
}

impl Rewind {
    /// Writes what is left of a replacement answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while !self.pending.is_empty() {
            let n = match Pin::new(&mut self.inner).poll_write(cx, &self.pending) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()))
                }
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            self.pending.advance(n);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        loop {
            let framing = &mut this.framing;
            if !framing.ready.is_empty() {
                let n = framing.ready.len().min(buf.remaining());
                buf.put_slice(&framing.ready[..n]);
                framing.ready.advance(n);
                return Poll::Ready(Ok(()));
            }
            if framing.refusal.is_some() || this.eof {
                return Poll::Ready(Ok(()));
            }
            if framing.follow == Follow::Off && framing.unchecked.is_empty() {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            // Not zeroed first: the socket fills what is read, and only that is looked at.
            let mut chunk = [std::mem::MaybeUninit::<u8>::uninit(); 8192];
            let mut read = ReadBuf::uninit(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
            if read.filled().is_empty() {
                this.eof = true;
                this.framing.close();
                continue;
            }
            this.framing.push(read.filled());
        }
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.poll_pending(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
        if let Some(replacement) = replacement_for(buf) {
            // hyper's bytes count as written; the replacement goes out instead (finished by flush or shutdown).
            self.pending = replacement;
            return match self.poll_pending(cx) {
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                _ => Poll::Ready(Ok(buf.len())),
            };
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.poll_pending(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.poll_pending(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        // hyper has answered everything before a refused head: now its answer.
        if let Some(refusal) = self.framing.refusal.take() {
            self.pending = refusal;
            match self.poll_pending(cx) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Drop for Rewind {
    fn drop(&mut self) {
        // hyper ended the connection without shutting it down: the refusal's answer (small, it fits the socket's
        // buffer) is written without waiting.
        if let Some(refusal) = self.framing.refusal.take() {
            let _ = self.inner.try_write(&refusal);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(head: &[u8]) -> Option<u16> {
        match check_head(head) {
            Head::Refuse(s, _, _) => Some(s),
            Head::Pass(..) => None,
            Head::Incomplete => Some(0),
        }
    }

    #[test]
    fn only_hypers_own_bare_error_answers_are_replaced() {
        let bare = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let r = replacement_for(bare).unwrap();
        let text = String::from_utf8_lossy(&r);
        assert!(text.starts_with("HTTP/1.1 400 ") && text.contains(r#""code":"invalid_request""#));
        assert!(replacement_for(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n"
        )
        .is_some());
        for ours in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nx-request-id: a\r\n\r\n"[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 52\r\n\r\n{}",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\n",
        ] {
            assert!(replacement_for(ours).is_none());
        }
    }

    /// Feeds `stream` one byte at a time (the hardest split), then returns what hyper got and whether a head was
    /// refused.
    fn followed(stream: &[u8]) -> (Vec<u8>, Option<u16>) {
        let mut framing = Framing::new(&[]);
        for b in stream {
            framing.push(std::slice::from_ref(b));
        }
        let refused = framing
            .refusal
            .as_ref()
            .map(|r| String::from_utf8_lossy(&r[9..12]).parse::<u16>().unwrap());
        (framing.ready.to_vec(), refused)
    }

    #[test]
    fn later_request_heads_are_found_after_bodies_of_every_framing_and_checked() {
        let get = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n".to_vec();
        let fixed =
            b"POST /b HTTP/1.1\r\nContent-Length: 27\r\n\r\nGET /x HTTP/1.1\r\nA: b\r\n\r\n12"
                .to_vec();
        let chunked = b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
            5;ext=1\r\nhello\r\n1A\r\nGET / HTTP/1.1\r\n\r\nabcdefgh\r\n0\r\nX-T: 1\r\n\r\n"
            .to_vec();
        let smuggled =
            b"POST /d HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                .to_vec();
        let fine: Vec<u8> = [get.clone(), fixed.clone(), chunked.clone(), get.clone()].concat();
        assert_eq!(followed(&fine), (fine.clone(), None));
        // A smuggling head after each kind of body is refused, and hyper gets nothing of it.
        for before in [&get, &fixed, &chunked] {
            let stream = [before.clone(), smuggled.clone(), get.clone()].concat();
            assert_eq!(followed(&stream), (before.clone(), Some(400)));
        }
        // Upgrades and HTTP/2 are not followed: everything goes through.
        let upgrade = b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n\x00\x01".to_vec();
        let stream = [upgrade, smuggled.clone()].concat();
        assert_eq!(followed(&stream), (stream.clone(), None));
        let h2 = [H2_PREFACE, b"\x00\x00\x12"].concat();
        assert_eq!(followed(&h2), (h2.clone(), None));
        // A chunk size that is not one: hyper judges the rest.
        let bad = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec();
        let stream = [bad, smuggled].concat();
        assert_eq!(followed(&stream), (stream.clone(), None));
        assert_eq!(chunk_size(b"1a\r"), Some(26));
        assert_eq!(chunk_size(b" 0 ;x"), Some(0));
        assert_eq!(chunk_size(b"fffffffffffffffff"), None);
    }

    #[test]
    fn heads_are_checked_before_hyper_sees_them() {
        assert_eq!(refused(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), None);
        assert_eq!(refused(b"GET / HTTP/1.1\r\nHost: a\r\n"), Some(0));
        assert_eq!(refused(b"GET / HTT"), Some(0));
        assert_eq!(refused(H2_PREFACE), None);
        assert_eq!(refused(&H2_PREFACE[..10]), Some(0));
        assert_eq!(refused(b"GET /\x01 HTTP/1.1\r\n\r\n"), Some(400));
        assert_eq!(
            refused(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Some(400)
        );
        assert_eq!(
            refused(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\ncontent-length: 3\r\n\r\n"),
            Some(400)
        );
        assert_eq!(
            refused(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"),
            Some(400)
        );
        assert_eq!(
            refused(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n"),
            None
        );
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_URI_BYTES + 1));
        assert_eq!(refused(long.as_bytes()), Some(414));
        let big = format!("GET / HTTP/1.1\r\nX-A: {}\r\n", "a".repeat(MAX_HEAD_BYTES));
        assert_eq!(refused(big.as_bytes()), Some(431));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: a\r\n")).collect();
        assert_eq!(
            refused(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()),
            Some(431)
        );
    }
}
