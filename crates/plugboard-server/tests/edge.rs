//! The HTTP edge on a real socket: errors produced below the handlers carry the API's error body, oversized
//! declarations are refused at once, slow or stalled clients are closed and cannot starve others, and shutdown
//! answers every request already received.
//!
//! Reads are guarded by a generous bound so that a hang fails the test instead of stalling it; nothing here asserts
//! a duration.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use plugboard_server::testing::{Backend, Db, TestApp};
use plugboard_server::Application;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const GUARD: Duration = Duration::from_secs(20);

struct Running {
    app: TestApp,
    port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

async fn start(configure: impl FnOnce(&mut plugboard_server::Config)) -> Running {
    let db = Db::new(Backend::Sqlite).await.unwrap();
    let app = TestApp::build(db, None, configure).await;
    let server = Application::bind(app.state.clone()).await.unwrap();
    let port = server.port();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(async move {
        server
            .run_until(async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    Running {
        app,
        port,
        stop: Some(tx),
        done,
    }
}

async fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port)).await.unwrap()
}

/// Reads until the peer closes (or `GUARD` passes: then the test fails).
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(GUARD, stream.read_to_end(&mut out))
        .await
        .expect("the server neither answered nor closed the connection")
        .ok();
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends `request` on a new connection and reads the answer until the server closes it.
async fn exchange(port: u16, request: &[u8]) -> String {
    let mut s = connect(port).await;
    s.write_all(request).await.unwrap();
    read_to_close(&mut s).await
}

fn status_of(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"))
}

/// The JSON error body of a raw response, checked for the contract's shape.
#[track_caller]
fn error_of(response: &str) -> serde_json::Value {
    let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let v: serde_json::Value = serde_json::from_str(body.trim()).unwrap_or_else(|e| {
        panic!("error body is not JSON ({e}): {body:?}");
    });
    assert!(v["error"].is_string() && v["code"].is_string(), "{v}");
    v
}

#[tokio::test]
async fn errors_produced_below_the_handlers_carry_the_json_error_body() {
    let s = start(|_| {}).await;
    let res = exchange(s.port, b"GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(status_of(&res), 400, "{res}");
    assert_eq!(error_of(&res)["code"], "invalid_request");

    let long = format!(
        "GET /api/v1/connectors?q={} HTTP/1.1\r\nHost: a\r\n\r\n",
        "a".repeat(9 * 1024)
    );
    let res = exchange(s.port, long.as_bytes()).await;
    assert_eq!(status_of(&res), 414, "{res}");
    assert_eq!(error_of(&res)["code"], "uri_too_long");

    let big = format!(
        "GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "a".repeat(40 * 1024)
    );
    let res = exchange(s.port, big.as_bytes()).await;
    assert_eq!(status_of(&res), 431, "{res}");
    assert_eq!(error_of(&res)["code"], "headers_too_large");

    let res = exchange(
        s.port,
        b"GET /api/v1/nothing-here HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&res), 404, "{res}");
    assert_eq!(error_of(&res)["code"], "not_found");

    let res = exchange(
        s.port,
        b"PUT /api/v1/connectors HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&res), 405, "{res}");
    assert_eq!(error_of(&res)["code"], "method_not_allowed");
}

#[tokio::test]
async fn a_malformed_request_later_on_a_keep_alive_connection_also_gets_the_json_error_body() {
    let s = start(|_| {}).await;
    for (bad, status, code) in [
        (
            b"GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            400,
            "invalid_request",
        ),
        (
            format!(
                "GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
                "a".repeat(600 * 1024)
            )
            .into_bytes(),
            431,
            "headers_too_large",
        ),
    ] {
        let mut c = connect(s.port).await;
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let mut first = vec![0u8; 4096];
        let n = tokio::time::timeout(GUARD, c.read(&mut first))
            .await
            .unwrap()
            .unwrap();
        assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
        let _ = c.write_all(&bad).await;
        let res = read_to_close(&mut c).await;
        assert_eq!(status_of(&res), status, "{res}");
        assert_eq!(error_of(&res)["code"], code);
    }
}

#[tokio::test]
async fn a_request_with_both_content_length_and_transfer_encoding_is_refused_with_400() {
    let s = start(|_| {}).await;
    let (ws, token) = s.app.workspace().await;
    for order in [
        "Content-Length: 4\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: chunked\r\nContent-Length: 4",
    ] {
        let req = format!(
            "POST /api/v1/workspaces/{}/crews HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\n{order}\r\n\r\n11\r\n{{\"name\": \"smug\"}}\r\n0\r\n\r\n",
            ws.id
        );
        let res = exchange(s.port, req.as_bytes()).await;
        assert_eq!(status_of(&res), 400, "{res}");
        assert_smuggling_refused(&res);
    }
    // Nothing was created.
    assert!(crew_names(&s, &token, &ws).await.is_empty());
}

#[tokio::test]
async fn a_smuggling_request_later_on_a_keep_alive_connection_is_refused_after_the_answers_before_it(
) {
    let s = start(|_| {}).await;
    let (ws, token) = s.app.workspace().await;
    let crew = |name: &str, framing: &str, body: &str| {
        format!(
            "POST /api/v1/workspaces/{}/crews HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\n{framing}\r\n\r\n{body}",
            ws.id
        )
        .replace("NAME", name)
    };
    let json = r#"{"name": "NAME"}"#;
    // Sent at once (pipelined): a crew with a Content-Length body, one with a chunked body, then a request with both
    // framings, then one more that must never be read.
    let first = crew(
        "one",
        &format!("Content-Length: {}", json.replace("NAME", "one").len()),
        json,
    );
    let chunked_body = json.replace("NAME", "two");
    let second = crew(
        "two",
        "Transfer-Encoding: chunked",
        &format!("{:x}\r\n{chunked_body}\r\n0\r\n\r\n", chunked_body.len()),
    );
    let smuggled = crew(
        "smuggled",
        "Content-Length: 4\r\nTransfer-Encoding: chunked",
        &format!(
            "{:x}\r\n{}\r\n0\r\n\r\n",
            json.len() + 5,
            json.replace("NAME", "smuggled")
        ),
    );
    let never = crew(
        "never",
        &format!("Content-Length: {}", json.replace("NAME", "never").len()),
        &json.replace("NAME", "never"),
    );
    let mut c = connect(s.port).await;
    c.write_all(format!("{first}{second}{smuggled}{never}").as_bytes())
        .await
        .unwrap();
    let all = read_to_close(&mut c).await;
    let answers: Vec<&str> = all.split("HTTP/1.1 ").skip(1).collect();
    assert_eq!(answers.len(), 3, "{all}");
    assert!(
        answers[0].starts_with("201") && answers[1].starts_with("201"),
        "{all}"
    );
    assert!(answers[2].starts_with("400"), "{all}");
    assert_smuggling_refused(&format!("HTTP/1.1 {}", answers[2]));
    assert_eq!(crew_names(&s, &token, &ws).await, ["one", "two"]);
}

/// The answer is the refusal of a request with both `Content-Length` and `Transfer-Encoding`.
#[track_caller]
fn assert_smuggling_refused(response: &str) {
    assert!(error_of(response)["error"]
        .as_str()
        .unwrap()
        .contains("Content-Length and Transfer-Encoding"));
}

/// The names of the workspace's crews, sorted.
async fn crew_names(s: &Running, token: &str, ws: &plugboard_store::Workspace) -> Vec<String> {
    let crews = s
        .app
        .with_token(token)
        .get(&format!("/api/v1/workspaces/{}/crews", ws.id))
        .await
        .json();
    let mut names: Vec<String> = crews
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort_unstable();
    names
}

#[tokio::test]
async fn a_declared_body_over_1_mib_is_refused_at_once_without_100_continue() {
    let s = start(|_| {}).await;
    let (_, token) = s.app.workspace().await;
    for expect in ["Expect: 100-continue\r\n", ""] {
        let req = format!(
            "POST /api/v1/workspaces HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\n{expect}Content-Length: {}\r\n\r\n{{\"na",
            2 * 1024 * 1024
        );
        // The body is never sent: the answer must come without it.
        let res = exchange(s.port, req.as_bytes()).await;
        assert!(!res.starts_with("HTTP/1.1 100"), "{res}");
        assert_eq!(status_of(&res), 413, "{res}");
        assert_eq!(error_of(&res)["code"], "payload_too_large");
    }
}

#[tokio::test]
async fn a_json_endpoint_refuses_a_body_that_is_not_declared_as_json_with_415() {
    let s = start(|_| {}).await;
    let (_, token) = s.app.workspace().await;
    let body = br#"{"name": "Acme"}"#.to_vec();
    for ct in ["text/plain", "application/x-www-form-urlencoded"] {
        let res = s
            .app
            .with_token(&token)
            .raw(
                http::Method::POST,
                "/api/v1/workspaces",
                &[("content-type", ct)],
                Some(body.clone()),
            )
            .await;
        res.assert_status(415);
        assert_eq!(res.json()["code"], "unsupported_media_type");
    }
    // No Content-Type at all, on a raw socket.
    let req = format!(
        "POST /api/v1/workspaces HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {token}\r\n\
         Connection: close\r\nContent-Length: {}\r\n\r\n{{\"name\": \"Acme\"}}",
        body.len()
    );
    let res = exchange(s.port, req.as_bytes()).await;
    assert_eq!(status_of(&res), 415, "{res}");
    // JSON with parameters and +json types are JSON.
    for ct in [
        "application/json; charset=utf-8",
        "application/vnd.api+json",
    ] {
        let req = format!(
            "POST /api/v1/workspaces HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {token}\r\n\
             Connection: close\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n{{\"name\": \"Acme\"}}",
            body.len()
        );
        let res = exchange(s.port, req.as_bytes()).await;
        assert_eq!(status_of(&res), 201, "{ct}: {res}");
    }
}

#[tokio::test]
async fn a_client_request_id_is_echoed_only_when_short_visible_ascii() {
    let s = start(|_| {}).await;
    // The JSON API and the MCP gateway (whose edge is a layer of its own) alike.
    for (method, path) in [
        (http::Method::GET, "/healthz"),
        (http::Method::POST, "/mcp/i/cnosuchintegration0000000"),
    ] {
        let res = s
            .app
            .anonymous()
            .raw(
                method.clone(),
                path,
                &[("x-request-id", "trace-42_abc")],
                None,
            )
            .await;
        assert_eq!(res.headers["x-request-id"], "trace-42_abc", "{path}");
        let huge = "a".repeat(8 * 1024);
        for bad in [huge.as_str(), "with space", &"b".repeat(129)] {
            let res = s
                .app
                .anonymous()
                .raw(method.clone(), path, &[("x-request-id", bad)], None)
                .await;
            let id = res.headers["x-request-id"].to_str().unwrap();
            assert_ne!(id, bad);
            assert!(plugboard_store::is_well_formed_id(id), "{path}: {id}");
        }
        let res = s.app.anonymous().raw(method, path, &[], None).await;
        let id = res.headers["x-request-id"].to_str().unwrap();
        assert!(plugboard_store::is_well_formed_id(id), "{path}: {id}");
    }
}

#[tokio::test]
async fn a_half_sent_request_head_and_an_idle_connection_are_closed() {
    let s = start(|c| c.header_timeout = Duration::from_millis(300)).await;
    let mut half = connect(s.port).await;
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Slow: ")
        .await
        .unwrap();
    let res = read_to_close(&mut half).await;
    assert!(res.is_empty() || status_of(&res) >= 400, "{res}");

    // A keep-alive connection after its answer.
    let mut idle = connect(s.port).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let res = read_to_close(&mut idle).await;
    assert_eq!(status_of(&res), 200, "{res}");
}

#[tokio::test]
async fn stalled_connections_beyond_the_connection_bound_do_not_stop_a_real_client() {
    let s = start(|c| {
        c.header_timeout = Duration::from_millis(300);
        c.max_connections = 4;
    })
    .await;
    let mut stalled = Vec::new();
    for _ in 0..12 {
        let mut c = connect(s.port).await;
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\n")
            .await
            .unwrap();
        stalled.push(c);
    }
    let res = exchange(
        s.port,
        b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&res), 200, "{res}");
    drop(stalled);
}

#[tokio::test]
async fn shutdown_answers_every_request_already_received_then_stops_accepting() {
    let mut s = start(|_| {}).await;
    let (ws, token) = s.app.workspace().await;
    let mut conns = Vec::new();
    for i in 0..16 {
        let mut c = connect(s.port).await;
        let body = format!("{{\"name\": \"crew {i}\"}}");
        let req = format!(
            "POST /api/v1/workspaces/{}/crews HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            ws.id,
            body.len()
        );
        c.write_all(req.as_bytes()).await.unwrap();
        conns.push(c);
    }
    // The signal arrives right after the requests.
    s.stop.take().unwrap().send(()).unwrap();
    for mut c in conns {
        let res = read_to_close(&mut c).await;
        assert_eq!(status_of(&res), 201, "{res}");
    }
    tokio::time::timeout(GUARD, &mut s.done)
        .await
        .expect("the server stops after draining")
        .unwrap();
    assert!(TcpStream::connect(("127.0.0.1", s.port)).await.is_err());
    let crews = s
        .app
        .with_token(&token)
        .get(&format!("/api/v1/workspaces/{}/crews", ws.id))
        .await;
    assert_eq!(crews.json().as_array().unwrap().len(), 16);
}
