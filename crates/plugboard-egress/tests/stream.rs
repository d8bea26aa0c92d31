//! `Guard::send_stream`: the relay's request, against real servers on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{guard, serve, Reply, StubResolver};
use http::{HeaderMap, HeaderValue, Method};
use plugboard_egress::{EgressError, StreamRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const LOOPBACK: &str = "127.0.0.1/32";

fn request(method: Method, url: String) -> StreamRequest {
    let mut headers = HeaderMap::new();
    headers.insert("authorization", HeaderValue::from_static("Bearer SECRET"));
    StreamRequest {
        method,
        url: url::Url::parse(&url).unwrap(),
        headers,
        body: Some(Bytes::from_static(b"{\"jsonrpc\":\"2.0\"}")),
        idle_timeout: Duration::from_secs(2),
    }
}

/// A server that sends a chunked answer, one piece per `gate` signal, then waits `tail` before ending.
async fn trickling_server(
    pieces: usize,
    gate: tokio::sync::mpsc::Receiver<()>,
) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut gate = gate;
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = sock.read(&mut buf).await;
        sock.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .await
        .unwrap();
        for i in 0..pieces {
            if gate.recv().await.is_none() {
                return;
            }
            let data = format!("data: {i}\n\n");
            let chunk = format!("{:x}\r\n{data}\r\n", data.len());
            sock.write_all(chunk.as_bytes()).await.unwrap();
            sock.flush().await.unwrap();
        }
        let _ = sock.write_all(b"0\r\n\r\n").await;
    });
    addr
}

#[tokio::test]
async fn a_streamed_body_arrives_piece_by_piece_as_the_server_sends_it() {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let addr = trickling_server(3, rx).await;
    let g = guard(LOOPBACK, StubResolver::new());
    let mut resp = g
        .send_stream(request(Method::POST, format!("http://{addr}/mcp")))
        .await
        .unwrap();
    assert_eq!(resp.status.as_u16(), 200);
    for i in 0..3 {
        tx.send(()).await.unwrap();
        let chunk = resp.body.next_chunk().await.unwrap().unwrap();
        assert_eq!(chunk, Bytes::from(format!("data: {i}\n\n")), "piece {i}");
    }
    assert!(resp.body.next_chunk().await.is_none());
}

#[tokio::test]
async fn a_silent_server_ends_the_stream_with_a_timeout() {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let addr = trickling_server(2, rx).await;
    let g = guard(LOOPBACK, StubResolver::new());
    let mut req = request(Method::POST, format!("http://{addr}/mcp"));
    req.idle_timeout = Duration::from_millis(200);
    let mut resp = g.send_stream(req).await.unwrap();
    tx.send(()).await.unwrap();
    assert!(resp.body.next_chunk().await.unwrap().is_ok());
    // The second piece never comes.
    let err = resp.body.next_chunk().await.unwrap().unwrap_err();
    assert_eq!(err, EgressError::Timeout);
    assert!(resp.body.next_chunk().await.is_none());
    drop(tx);
}

#[tokio::test]
async fn a_reader_busy_elsewhere_is_not_silence() {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let addr = trickling_server(2, rx).await;
    let g = guard(LOOPBACK, StubResolver::new());
    let mut req = request(Method::POST, format!("http://{addr}/mcp"));
    req.idle_timeout = Duration::from_millis(300);
    let mut resp = g.send_stream(req).await.unwrap();
    tx.send(()).await.unwrap();
    tx.send(()).await.unwrap();
    assert!(resp.body.next_chunk().await.unwrap().is_ok());
    // The reader takes longer than the bound before asking for more; the piece is already there.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(resp.body.next_chunk().await.unwrap().is_ok());
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_at_the_head() {
    let server = serve(|_| Reply::Hang).await;
    let g = guard(LOOPBACK, StubResolver::new());
    let mut req = request(Method::POST, server.url("/mcp"));
    req.idle_timeout = Duration::from_millis(200);
    let err = g.send_stream(req).await.unwrap_err();
    assert_eq!(err, EgressError::Timeout);
}

#[tokio::test]
async fn a_same_origin_temporary_redirect_is_followed_with_method_body_and_headers() {
    let server = serve(|req| {
        if req.path == "/old" {
            Reply::redirect(307, "/new")
        } else {
            Reply::ok("landed")
        }
    })
    .await;
    let g = guard(LOOPBACK, StubResolver::new());
    let resp = g
        .send_stream(request(Method::POST, server.url("/old")))
        .await
        .unwrap();
    assert_eq!(resp.final_url.path(), "/new");
    let body = resp.body.collect_capped(1024).await.unwrap().unwrap();
    assert_eq!(&body[..], b"landed");
    let seen = server.seen();
    let landed = seen.last().unwrap();
    assert_eq!(landed.method, "POST");
    assert_eq!(landed.body, b"{\"jsonrpc\":\"2.0\"}");
    assert_eq!(landed.header("authorization"), Some("Bearer SECRET"));
}

#[tokio::test]
async fn a_redirect_to_another_origin_is_an_error_and_the_other_origin_is_never_contacted() {
    let other = serve(|_| Reply::ok("other")).await;
    let other_url = other.url("/landing");
    let first = serve(move |_| Reply::redirect(308, &other_url)).await;
    let g = guard(LOOPBACK, StubResolver::new());
    let err = g
        .send_stream(request(Method::POST, first.url("/mcp")))
        .await
        .unwrap_err();
    let EgressError::Redirected(msg) = err else {
        panic!("expected Redirected, got {err:?}")
    };
    assert!(msg.contains("another origin"), "{msg}");
    assert!(!msg.contains("landing"), "only the host is named: {msg}");
    assert!(other.seen().is_empty());
}

#[tokio::test]
async fn a_redirect_that_would_turn_a_post_into_a_get_is_an_error() {
    let server = serve(|_| Reply::redirect(302, "/elsewhere")).await;
    let g = guard(LOOPBACK, StubResolver::new());
    let err = g
        .send_stream(request(Method::POST, server.url("/mcp")))
        .await
        .unwrap_err();
    assert!(matches!(err, EgressError::Redirected(_)), "{err:?}");
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn a_refused_destination_is_refused_before_any_connection() {
    let g = guard("", StubResolver::new());
    let err = g
        .send_stream(request(Method::GET, "http://127.0.0.1:9/mcp".to_owned()))
        .await
        .unwrap_err();
    assert!(matches!(err, EgressError::Blocked(_)), "{err:?}");
    let g = guard(
        "",
        StubResolver::new().with("internal.example", &["10.1.2.3"]),
    );
    let err = g
        .send_stream(request(
            Method::GET,
            "http://internal.example/mcp".to_owned(),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, EgressError::Blocked(_)), "{err:?}");
}

#[tokio::test]
async fn a_collected_body_longer_than_the_cap_is_refused_not_cut() {
    let server = serve(|_| Reply::Endless).await;
    let g = guard(LOOPBACK, StubResolver::new());
    let resp = g
        .send_stream(request(Method::GET, server.url("/")))
        .await
        .unwrap();
    assert_eq!(resp.body.collect_capped(100_000).await.unwrap(), None);
}

#[tokio::test]
async fn a_name_connects_to_the_address_the_guard_resolved_and_checked() {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let addr = trickling_server(1, rx).await;
    let g = guard(
        LOOPBACK,
        StubResolver::new().with("mcp.internal.example", &["127.0.0.1"]),
    );
    tx.send(()).await.unwrap();
    let url = format!("http://mcp.internal.example:{}/mcp", addr.port());
    let resp = g.send_stream(request(Method::POST, url)).await.unwrap();
    assert_eq!(resp.status, 200);
    let body = resp.body.collect_capped(1024).await.unwrap().unwrap();
    assert_eq!(&body[..], b"data: 0\n\n");
}

#[tokio::test]
async fn a_closed_port_is_a_connection_error_that_names_the_host_only() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let g = guard(LOOPBACK, StubResolver::new());
    let url = format!("http://127.0.0.1:{port}/mcp?key=SECRET");
    let err = g.send_stream(request(Method::POST, url)).await.unwrap_err();
    let EgressError::Connect(text) = &err else {
        panic!("{err:?}");
    };
    assert!(text.starts_with("127.0.0.1: "), "{text}");
    assert!(!err.to_string().contains("SECRET"), "{err}");
}

#[tokio::test]
async fn a_server_that_cuts_its_answer_short_ends_the_stream_with_an_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = sock.read(&mut buf).await;
        // A chunk announced as 0x40 bytes, 9 sent, then the connection closed.
        sock.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n\
              40\r\ndata: 0\n\n",
        )
        .await
        .unwrap();
    });
    let g = guard(LOOPBACK, StubResolver::new());
    let url = format!("http://127.0.0.1:{}/mcp", addr.port());
    let resp = g.send_stream(request(Method::POST, url)).await.unwrap();
    let err = resp.body.collect_capped(1024).await.unwrap_err();
    assert!(matches!(err, EgressError::Http(_)), "{err:?}");
}
