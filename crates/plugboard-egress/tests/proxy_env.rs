//! Proxy environment variables are ignored. This file is its own test binary so the variables it sets do not leak
//! into other tests; every test in it sets the same values.

// clippy.toml lets `#[test]` functions unwrap, expect and panic; the helpers and `test_on_both_backends!` bodies of
// an integration test crate are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{guard, recording_listener, serve, Reply, StubResolver};
use plugboard_egress::Request;

async fn set_proxy_env() -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
    let (proxy, accepts) = recording_listener().await;
    let proxy_url = format!("http://{proxy}");
    for var in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        std::env::set_var(var, &proxy_url);
    }
    for var in ["NO_PROXY", "no_proxy", "REQUEST_METHOD"] {
        std::env::remove_var(var);
    }
    accepts
}

#[tokio::test]
async fn proxy_environment_variables_are_ignored() {
    let proxy_accepts = set_proxy_env().await;
    let server = serve(|_| Reply::ok("direct")).await;
    // A name (not an IP literal) so that nothing about the target would exempt it from a proxy.
    let r = StubResolver::new().with("provider.test", &["127.0.0.1"]);
    let g = guard("127.0.0.1/32", r);
    let url = format!("http://provider.test:{}/", server.port());

    let resp = g.send(Request::get(url.clone())).await.unwrap();
    assert_eq!(&resp.body[..], b"direct");
    let streamed = g.send_streaming(Request::get(url.clone())).await.unwrap();
    assert_eq!(streamed.status().as_u16(), 200);
    assert_eq!(server.accepts(), 2);

    // Control: a client that honours the environment does go to the proxy, so the variables above are live. (An IP
    // literal, so that even a failing control never asks the system resolver.)
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let _ = plain.get(server.url("/")).send().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        proxy_accepts.load(Ordering::SeqCst),
        1,
        "the control request used the proxy"
    );
    assert_eq!(server.accepts(), 2);
}
