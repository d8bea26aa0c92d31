//! Behaviour against real servers on 127.0.0.1, opened with `allow_cidrs`.

// clippy.toml lets `#[test]` functions unwrap, expect and panic; the helpers and `test_on_both_backends!` bodies of
// an integration test crate are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{config, guard, recording_listener, serve, Reply, StubResolver};
use plugboard_egress::{EgressConfig, EgressError, Guard, Request};

const LOOPBACK: &str = "127.0.0.1/32";

fn guard_with(cfg: EgressConfig) -> Guard {
    Guard::with_resolver(cfg, StubResolver::new()).expect("guard")
}

async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..100 {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

#[tokio::test]
async fn send_returns_the_status_headers_and_body_of_an_allowed_server() {
    let server = serve(|_| {
        Reply::Full(
            201,
            vec![("X-Test".to_owned(), "yes".to_owned())],
            b"hello".to_vec(),
        )
    })
    .await;
    let g = guard(LOOPBACK, StubResolver::new());
    let resp = g
        .send(
            Request::post(server.url("/things?x=1"), "payload")
                .header("Content-Type", "text/plain")
                .header("X-Custom", "v"),
        )
        .await
        .unwrap();
    assert_eq!(resp.status, 201);
    assert_eq!(&resp.body[..], b"hello");
    assert!(!resp.truncated);
    assert_eq!(resp.headers.get("x-test").unwrap(), "yes");
    assert_eq!(resp.final_url.as_str(), server.url("/things?x=1"));
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/things?x=1");
    assert_eq!(seen[0].body, b"payload");
    assert_eq!(seen[0].header("x-custom"), Some("v"));
}

#[tokio::test]
async fn a_name_resolving_to_an_allowed_address_is_reached_through_the_guard_resolver() {
    let server = serve(|_| Reply::ok("via name")).await;
    let r = StubResolver::new().with("provider.test", &["127.0.0.1"]);
    let g = guard(LOOPBACK, r.clone());
    let url = format!("http://provider.test:{}/v1", server.port());
    let resp = g.send(Request::get(url)).await.unwrap();
    assert_eq!(&resp.body[..], b"via name");
    assert_eq!(r.lookups("provider.test"), 1);
}

#[tokio::test]
async fn a_body_larger_than_the_cap_is_cut_at_the_cap_and_marked_truncated() {
    let server = serve(|req| {
        let n = if req.path == "/exact" { 1000 } else { 5000 };
        Reply::Full(200, vec![], vec![b'a'; n])
    })
    .await;
    let g = guard_with(EgressConfig {
        max_response_bytes: 1000,
        ..config(LOOPBACK)
    });
    let resp = g.send(Request::get(server.url("/big"))).await.unwrap();
    assert_eq!(resp.body.len(), 1000);
    assert!(resp.truncated);
    let resp = g.send(Request::get(server.url("/exact"))).await.unwrap();
    assert_eq!(resp.body.len(), 1000);
    assert!(!resp.truncated);
}

#[tokio::test]
async fn an_endless_body_is_cut_at_the_cap_instead_of_being_buffered() {
    let server = serve(|_| Reply::Endless).await;
    let cap = 256 * 1024 + 7;
    let g = guard_with(EgressConfig {
        max_response_bytes: cap,
        ..config(LOOPBACK)
    });
    let resp = g.send(Request::get(server.url("/"))).await.unwrap();
    assert_eq!(resp.body.len(), cap);
    assert!(resp.truncated);
}

#[tokio::test]
async fn a_server_that_never_answers_gives_a_timeout() {
    let server = serve(|_| Reply::Hang).await;
    let g = guard_with(EgressConfig {
        connect_timeout: Duration::from_millis(300),
        total_timeout: Duration::from_millis(300),
        ..config(LOOPBACK)
    });
    let err = g.send(Request::get(server.url("/"))).await.unwrap_err();
    assert_eq!(err, EgressError::Timeout);
    assert_eq!(err.to_string(), "timed out");
    let err = g
        .send_streaming(Request::get(server.url("/")))
        .await
        .unwrap_err();
    assert_eq!(err, EgressError::Timeout);
}

#[tokio::test]
async fn the_total_timeout_covers_a_redirect_chain() {
    let server = serve(|req| {
        if req.path == "/start" {
            Reply::redirect(302, "/hang")
        } else {
            Reply::Hang
        }
    })
    .await;
    let g = guard_with(EgressConfig {
        total_timeout: Duration::from_millis(300),
        ..config(LOOPBACK)
    });
    let err = g
        .send(Request::get(server.url("/start")).follow_redirects(true))
        .await
        .unwrap_err();
    assert_eq!(err, EgressError::Timeout);
}

#[tokio::test]
async fn a_closed_port_gives_a_connect_error_naming_the_host() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let g = guard(LOOPBACK, StubResolver::new());
    let err = g
        .send(Request::get(format!(
            "http://127.0.0.1:{port}/?secret=SECRET"
        )))
        .await
        .unwrap_err();
    assert!(matches!(err, EgressError::Connect(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with("could not connect to 127.0.0.1: "), "{msg}");
    assert!(!msg.contains("SECRET"), "{msg}");
    let err = g.connect_tcp("127.0.0.1", port).await.unwrap_err();
    assert!(matches!(err, EgressError::Connect(_)), "{err:?}");
}

#[tokio::test]
async fn connect_tcp_reaches_an_allowed_loopback_listener() {
    let (addr, accepts) = recording_listener().await;
    let g = guard(LOOPBACK, StubResolver::new());
    let stream = g.connect_tcp("127.0.0.1", addr.port()).await.unwrap();
    assert_eq!(stream.peer_addr().unwrap(), addr);
    assert!(eventually(|| accepts.load(Ordering::SeqCst) == 1).await);
}

#[tokio::test]
async fn connect_tcp_tries_each_checked_address_in_turn() {
    let (addr, accepts) = recording_listener().await;
    // Nothing listens on 127.0.0.2 at that port, so the first attempt is refused and the second one connects.
    let r = StubResolver::new().with("db.test", &["127.0.0.2", "127.0.0.1"]);
    let g = guard("127.0.0.0/8", r);
    let stream = g.connect_tcp("db.test", addr.port()).await.unwrap();
    assert_eq!(stream.peer_addr().unwrap(), addr);
    assert!(eventually(|| accepts.load(Ordering::SeqCst) == 1).await);
}

#[tokio::test]
async fn a_refused_destination_opens_no_connection() {
    let (addr, accepts) = recording_listener().await;
    let r = StubResolver::new().with("db.test", &["127.0.0.1"]);
    let g = guard("", r);
    for host in [
        "127.0.0.1",
        "localhost",
        "db.test",
        "[::ffff:127.0.0.1]",
        "2130706433",
    ] {
        let err = g.connect_tcp(host, addr.port()).await.unwrap_err();
        assert!(matches!(err, EgressError::Blocked(_)), "{host}: {err:?}");
    }
    for url in [
        format!("http://127.0.0.1:{}/", addr.port()),
        format!("http://localhost:{}/", addr.port()),
        format!("http://db.test:{}/", addr.port()),
    ] {
        let err = g.send(Request::get(url.clone())).await.unwrap_err();
        assert!(matches!(err, EgressError::Blocked(_)), "{url}: {err:?}");
        let err = g
            .send_streaming(Request::get(url.clone()))
            .await
            .unwrap_err();
        assert!(matches!(err, EgressError::Blocked(_)), "{url}: {err:?}");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(accepts.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_rebinding_name_is_resolved_once_per_request_and_dialled_at_the_checked_address() {
    let server = serve(|_| Reply::ok("checked")).await;
    // First answer: the allowed loopback address. Every later answer: a private address.
    let r = StubResolver::new()
        .then("rebind.test", &["127.0.0.1"])
        .then("rebind.test", &["10.0.0.1"]);
    let g = guard(LOOPBACK, r.clone());
    let url = format!("http://rebind.test:{}/", server.port());
    let resp = g.send(Request::get(url.clone())).await.unwrap();
    assert_eq!(&resp.body[..], b"checked");
    assert_eq!(
        r.lookups("rebind.test"),
        1,
        "one resolution, used for the connection"
    );
    // The next request resolves again, sees the private answer and is refused before connecting.
    let err = g.send(Request::get(url)).await.unwrap_err();
    assert!(
        matches!(err, EgressError::Blocked(ref m) if m.contains("10.0.0.1")),
        "{err:?}"
    );
    assert_eq!(server.accepts(), 1);
}

#[tokio::test]
async fn a_name_that_rebinds_between_check_url_and_send_is_refused_at_connection_time() {
    let server = serve(|_| Reply::ok("should not be reached")).await;
    let r = StubResolver::new()
        .then("rebind.test", &["127.0.0.1"])
        .then("rebind.test", &["169.254.169.254"]);
    let g = guard(LOOPBACK, r.clone());
    let url = format!("http://rebind.test:{}/", server.port());
    assert!(g.check_url(&url).await.is_ok());
    let err = g.send(Request::get(url)).await.unwrap_err();
    assert!(
        matches!(err, EgressError::Blocked(ref m) if m.contains("metadata")),
        "{err:?}"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(server.accepts(), 0);
}

#[tokio::test]
async fn a_redirect_into_a_refused_destination_is_refused_at_that_hop() {
    let targets = [
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://127.0.0.2/",
        "http://[::1]/",
        "http://metadata.google.internal/",
        "http://internal.test/",
    ];
    for target in targets {
        let server = serve(move |_| Reply::redirect(302, target)).await;
        let r = StubResolver::new().with("internal.test", &["10.0.0.1"]);
        let g = guard(LOOPBACK, r);
        let result = g
            .send(Request::get(server.url("/start")).follow_redirects(true))
            .await;
        assert!(
            matches!(result, Err(EgressError::Blocked(_))),
            "{target}: {result:?}"
        );
        assert_eq!(server.seen().len(), 1, "{target}");
    }
}

#[tokio::test]
async fn a_redirect_to_another_scheme_or_with_credentials_is_refused() {
    for target in [
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/",
        "http://user:pw@127.0.0.1/",
    ] {
        let server = serve(move |_| Reply::redirect(307, target)).await;
        let g = guard(LOOPBACK, StubResolver::new());
        let result = g
            .send(Request::get(server.url("/")).follow_redirects(true))
            .await;
        assert!(
            matches!(result, Err(EgressError::InvalidUrl(_))),
            "{target}: {result:?}"
        );
    }
}

#[tokio::test]
async fn a_redirect_is_returned_as_is_when_not_following() {
    let server = serve(|_| Reply::redirect(302, "http://10.0.0.1/")).await;
    let g = guard(LOOPBACK, StubResolver::new());
    let resp = g.send(Request::get(server.url("/"))).await.unwrap();
    assert_eq!(resp.status, 302);
    assert_eq!(resp.headers.get("location").unwrap(), "http://10.0.0.1/");
    let streamed = g
        .send_streaming(Request::get(server.url("/")).follow_redirects(true))
        .await
        .unwrap();
    assert_eq!(streamed.status().as_u16(), 302);
    assert_eq!(server.seen().len(), 2);
}

fn chain_handler(last: u32) -> impl Fn(&common::SeenRequest) -> Reply + Send + Sync + 'static {
    move |req| {
        let n: u32 = req
            .path
            .strip_prefix("/r/")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if n >= last {
            Reply::ok("end")
        } else {
            Reply::redirect(302, &format!("/r/{}", n + 1))
        }
    }
}

#[tokio::test]
async fn five_redirects_are_followed() {
    let server = serve(chain_handler(5)).await;
    let g = guard(LOOPBACK, StubResolver::new());
    let resp = g
        .send(Request::get(server.url("/r/0")).follow_redirects(true))
        .await
        .unwrap();
    assert_eq!(&resp.body[..], b"end");
    assert_eq!(resp.final_url.path(), "/r/5");
}

#[tokio::test]
async fn more_than_five_redirects_are_refused() {
    let server = serve(chain_handler(u32::MAX)).await;
    let g = guard(LOOPBACK, StubResolver::new());
    let err = g
        .send(Request::get(server.url("/r/0")).follow_redirects(true))
        .await
        .unwrap_err();
    assert_eq!(err, EgressError::TooManyRedirects);
    assert_eq!(server.seen().len(), 6);
}

#[tokio::test]
async fn see_other_turns_into_get_and_temporary_redirect_keeps_method_and_body() {
    let server = serve(|req| match req.path.as_str() {
        "/303" => Reply::redirect(303, "/after"),
        "/301" => Reply::redirect(301, "/after"),
        "/307" => Reply::redirect(307, "/after"),
        "/308" => Reply::redirect(308, "/after"),
        _ => Reply::ok("done"),
    })
    .await;
    let g = guard(LOOPBACK, StubResolver::new());
    for (path, method, body) in [
        ("/303", "GET", &b""[..]),
        ("/301", "GET", &b""[..]),
        ("/307", "POST", &b"data"[..]),
        ("/308", "POST", &b"data"[..]),
    ] {
        let before = server.seen().len();
        g.send(
            Request::post(server.url(path), "data")
                .header("Content-Type", "text/plain")
                .follow_redirects(true),
        )
        .await
        .unwrap();
        let seen = server.seen();
        let after = &seen[before + 1];
        assert_eq!(after.path, "/after");
        assert_eq!(after.method, method, "{path}");
        assert_eq!(after.body, body, "{path}");
        assert_eq!(
            after.header("content-type").is_some(),
            method == "POST",
            "{path}"
        );
    }
}

#[tokio::test]
async fn credentials_are_dropped_when_a_redirect_changes_origin_and_kept_within_it() {
    let other = serve(|_| Reply::ok("other")).await;
    let other_url = other.url("/landing");
    let first = serve(move |req| {
        if req.path == "/same" {
            Reply::redirect(302, "/landing")
        } else if req.path == "/landing" {
            Reply::ok("same")
        } else {
            Reply::redirect(307, &other_url)
        }
    })
    .await;
    let g = guard(LOOPBACK, StubResolver::new());
    let req = |url: String| {
        Request::get(url)
            .header("Authorization", "Bearer SECRET")
            .header("Cookie", "session=SECRET")
            .header("X-Api-Key", "SECRET")
            .header("Accept", "application/json")
            .follow_redirects(true)
    };
    let resp = g.send(req(first.url("/cross"))).await.unwrap();
    assert_eq!(&resp.body[..], b"other");
    let landed = &other.seen()[0];
    assert_eq!(landed.header("authorization"), None);
    assert_eq!(landed.header("cookie"), None);
    assert_eq!(landed.header("x-api-key"), None);
    assert_eq!(landed.header("accept"), Some("application/json"));

    let resp = g.send(req(first.url("/same"))).await.unwrap();
    assert_eq!(&resp.body[..], b"same");
    let seen = first.seen();
    let landed = seen.last().unwrap();
    assert_eq!(landed.path, "/landing");
    assert_eq!(landed.header("authorization"), Some("Bearer SECRET"));
}

#[tokio::test]
async fn send_streaming_hands_back_a_response_the_caller_reads() {
    let server = serve(|_| Reply::Endless).await;
    let g = guard(LOOPBACK, StubResolver::new());
    let mut resp = g
        .send_streaming(Request::get(server.url("/sse")))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let chunk = resp.chunk().await.unwrap().unwrap();
    assert!(!chunk.is_empty());
}

#[tokio::test]
async fn absurdly_large_timeouts_do_not_panic() {
    let server = serve(|_| Reply::ok("fine")).await;
    let (addr, _) = recording_listener().await;
    let g = guard_with(EgressConfig {
        connect_timeout: Duration::MAX,
        total_timeout: Duration::MAX,
        max_response_bytes: usize::MAX,
        max_redirects: usize::MAX,
        ..config(LOOPBACK)
    });
    let resp = g.send(Request::get(server.url("/"))).await.unwrap();
    assert_eq!(&resp.body[..], b"fine");
    assert!(g.connect_tcp("127.0.0.1", addr.port()).await.is_ok());
}

#[tokio::test]
async fn a_zero_byte_cap_reads_nothing_and_reports_truncation() {
    let server = serve(|_| Reply::ok("something")).await;
    let g = guard_with(EgressConfig {
        max_response_bytes: 0,
        ..config(LOOPBACK)
    });
    let resp = g.send(Request::get(server.url("/"))).await.unwrap();
    assert!(resp.body.is_empty());
    assert!(resp.truncated);
}

#[tokio::test]
async fn a_body_is_never_resent_to_another_origin_by_a_307_or_308() {
    let other = serve(|_| Reply::ok("other")).await;
    let other_url = other.url("/landing");
    let first = serve(move |_| Reply::redirect(307, &other_url)).await;
    let g = guard(LOOPBACK, StubResolver::new());
    let req = Request::post(first.url("/start"), b"token=SECRET".to_vec()).follow_redirects(true);
    let resp = g.send(req).await.unwrap();
    assert_eq!(resp.status, 307, "the cross-origin 307 is the answer");
    assert!(
        other.seen().is_empty(),
        "the other origin was never contacted"
    );
}
