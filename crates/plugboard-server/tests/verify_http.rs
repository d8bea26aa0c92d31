//! HTTP verify probes against real loopback providers: success rules, provider messages, secrets never echoed,
//! bounded messages, timeouts, and the egress guard (blocked destinations are never contacted).

// clippy.toml lets `#[test]` functions unwrap, expect and panic; the helpers and `test_on_both_backends!` bodies of
// an integration test crate are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod verify_support;

use std::time::Duration;

use axum::body::Body;
use axum::extract::RawQuery;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::json;
use verify_support::*;

/// A token with characters that every encoding changes.
const TOKEN: &str = "tok/Sec+ret=42 z!";

fn bearer(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_owned()
}

/// The provider: `/user` needs `Bearer good`; `/slack` answers 200 with `ok`; `/echo*` repeat the token back.
fn provider_routes() -> Router {
    Router::new()
        .route(
            "/user",
            get(|h: HeaderMap| async move {
                if bearer(&h) == "good" {
                    (StatusCode::OK, Json(json!({"login": "octocat"}))).into_response()
                } else {
                    (StatusCode::UNAUTHORIZED, Json(json!({"message": "Bad credentials"}))).into_response()
                }
            }),
        )
        .route("/forbidden", get(|| async { StatusCode::FORBIDDEN }))
        .route(
            "/slack",
            post(|h: HeaderMap| async move {
                if bearer(&h) == "good" {
                    Json(json!({"ok": true, "user": "bot"}))
                } else {
                    Json(json!({"ok": false, "error": "invalid_auth"}))
                }
            }),
        )
        .route("/text", any(|| async { "plain text, not JSON" }))
        .route(
            "/echo-json",
            any(|h: HeaderMap, RawQuery(q): RawQuery| async move {
                let token = bearer(&h);
                let b64 = base64::engine::general_purpose::STANDARD;
                let msg = format!(
                    "token {token} is invalid; as sent in the query: {}; base64: {}; url-safe: {}; basic: Basic {}",
                    q.unwrap_or_default(),
                    b64.encode(&token),
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&token),
                    b64.encode(format!("someone:{token}")),
                );
                (StatusCode::UNAUTHORIZED, Json(json!({"message": msg})))
            }),
        )
        .route(
            "/echo-text",
            any(|h: HeaderMap, RawQuery(q): RawQuery| async move {
                let token = bearer(&h);
                let form: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
                let body = format!(
                    "<html>denied for {token}\n query={} form={form} json={}</html>",
                    q.unwrap_or_default(),
                    serde_json::to_string(&token).unwrap_or_default()
                );
                (StatusCode::FORBIDDEN, body)
            }),
        )
        .route(
            "/huge",
            any(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "é".repeat(200_000)) }),
        )
        .route(
            "/huge-json",
            any(|| async {
                (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"error": "x".repeat(10_000)})),
                )
            }),
        )
}

fn manifests(base: &str) -> Vec<String> {
    vec![
        pat_http(
            "single",
            &format!("    url: \"{base}/user\"\n    headers: {{Authorization: \"Bearer ${{field.token}}\"}}"),
        ),
        pat_http(
            "list",
            &format!("    url: \"{base}/forbidden\"\n    expect_status: [200, 403]"),
        ),
        pat_http(
            "slack",
            &format!(
                "    method: POST\n    url: \"{base}/slack\"\n    headers: {{Authorization: \"Bearer ${{field.token}}\"}}\n    expect_json_field: ok"
            ),
        ),
        pat_http(
            "notjson",
            &format!("    url: \"{base}/text\"\n    expect_json_field: ok"),
        ),
        pat_http(
            "echo-json",
            &format!(
                "    url: \"{base}/echo-json?t=${{field.token|url}}&raw=${{field.token}}\"\n    headers: {{Authorization: \"Bearer ${{field.token}}\"}}"
            ),
        ),
        pat_http(
            "echo-text",
            &format!(
                "    url: \"{base}/echo-text?t=${{field.token|url}}\"\n    headers: {{Authorization: \"Bearer ${{field.token}}\"}}"
            ),
        ),
        pat_http("huge", &format!("    url: \"{base}/huge\"")),
        pat_http("huge-json", &format!("    url: \"{base}/huge-json\"")),
    ]
}

async fn setup() -> (plugboard_server::testing::TestApp, Provider) {
    let provider = serve("127.0.0.1", provider_routes()).await;
    let app = app(
        sqlite().await,
        catalog(&manifests(&provider.url(""))),
        true,
        Duration::from_secs(5),
    )
    .await;
    (app, provider)
}

#[tokio::test]
async fn success_by_a_single_status_and_the_providers_message_on_failure() {
    let (app, provider) = setup().await;
    let (ws, token) = manager(&app).await;
    assert_eq!(
        verify(&app, &token, "single", &ws, json!({"token": "good"})).await,
        (true, String::new())
    );
    let (ok, message) = verify(&app, &token, "single", &ws, json!({"token": "wrong-token"})).await;
    assert!(!ok);
    assert_eq!(message, "provider answered 401: Bad credentials");
    assert_eq!(provider.requests(), 2, "one call per verify");
}

#[tokio::test]
async fn success_by_a_list_of_statuses() {
    let (app, _provider) = setup().await;
    let (ws, token) = manager(&app).await;
    let (ok, message) = verify(&app, &token, "list", &ws, json!({"token": "anything"})).await;
    assert!(ok, "{message}");
}

#[tokio::test]
async fn expect_json_field_must_be_exactly_true() {
    let (app, _provider) = setup().await;
    let (ws, token) = manager(&app).await;
    assert!(
        verify(&app, &token, "slack", &ws, json!({"token": "good"}))
            .await
            .0
    );
    let (ok, message) = verify(&app, &token, "slack", &ws, json!({"token": "bad-token"})).await;
    assert!(!ok);
    assert!(message.contains("invalid_auth"), "{message}");
    assert!(message.contains("200"), "{message}");
    let (ok, message) = verify(&app, &token, "notjson", &ws, json!({"token": "whatever"})).await;
    assert!(!ok);
    assert!(message.contains("not with JSON"), "{message}");
}

fn forms_of(token: &str) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    vec![
        token.to_owned(),
        percent_encoding::utf8_percent_encode(token, percent_encoding::NON_ALPHANUMERIC)
            .to_string(),
        url::form_urlencoded::byte_serialize(token.as_bytes()).collect(),
        b64.encode(token),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token),
        b64.encode(format!("someone:{token}")),
        "Sec+ret".to_owned(),
        "Sec%2Bret".to_owned(),
    ]
}

#[tokio::test]
async fn a_provider_that_echoes_the_token_never_gets_it_echoed_back() {
    let (app, _provider) = setup().await;
    let (ws, token) = manager(&app).await;
    for connector in ["echo-json", "echo-text"] {
        let (ok, message) = verify(&app, &token, connector, &ws, json!({"token": TOKEN})).await;
        assert!(!ok);
        assert!(message.starts_with("provider answered 40"), "{message}");
        assert!(message.contains("[redacted]"), "{message}");
        for form in forms_of(TOKEN) {
            assert!(
                !message.to_lowercase().contains(&form.to_lowercase()),
                "{connector}: {form:?} leaked in {message}"
            );
        }
    }
}

#[tokio::test]
async fn a_huge_body_is_cut_to_at_most_512_bytes() {
    let (app, _provider) = setup().await;
    let (ws, token) = manager(&app).await;
    for connector in ["huge", "huge-json"] {
        let (ok, message) = verify(&app, &token, connector, &ws, json!({"token": "good"})).await;
        assert!(!ok);
        assert!(message.len() <= 512, "{} bytes", message.len());
        assert!(message.starts_with("provider answered "), "{message}");
    }
}

#[tokio::test]
async fn a_hanging_provider_answers_ok_false_within_the_probe_timeout() {
    let hang = silent("127.0.0.1").await;
    let manifest = pat_http("hang", &format!("    url: \"http://{}/\"", hang.addr));
    let app = app(
        sqlite().await,
        catalog(&[manifest]),
        true,
        Duration::from_millis(300),
    )
    .await;
    let (ws, token) = manager(&app).await;
    let (ok, message) = verify(&app, &token, "hang", &ws, json!({"token": "good"})).await;
    assert!(!ok);
    assert!(message.contains("timed out"), "{message}");
    assert!(hang.connections() >= 1);
}

#[tokio::test]
async fn an_unreachable_provider_answers_ok_false_with_the_reason() {
    let port = closed_port().await;
    let manifest = pat_http("gone", &format!("    url: \"http://127.0.0.1:{port}/\""));
    let app = app(
        sqlite().await,
        catalog(&[manifest]),
        true,
        Duration::from_secs(5),
    )
    .await;
    let (ws, token) = manager(&app).await;
    let (ok, message) = verify(&app, &token, "gone", &ws, json!({"token": "good"})).await;
    assert!(!ok);
    assert!(
        message.starts_with("could not reach the provider"),
        "{message}"
    );
}

#[tokio::test]
async fn a_loopback_provider_outside_allow_cidrs_is_blocked_and_never_contacted() {
    let provider = serve("127.0.0.1", provider_routes()).await;
    let manifests = vec![
        pat_http("direct", &format!("    url: \"{}\"", provider.url("/user"))),
        pat_http(
            "by-name",
            &format!(
                "    url: \"http://localhost:{}/user\"",
                provider.addr.port()
            ),
        ),
        pat_http(
            "decimal",
            &format!(
                "    url: \"http://2130706433:{}/user\"",
                provider.addr.port()
            ),
        ),
        pat_http(
            "metadata",
            "    url: \"http://169.254.169.254/latest/meta-data/\"",
        ),
    ];
    let app = app(
        sqlite().await,
        catalog(&manifests),
        false,
        Duration::from_secs(5),
    )
    .await;
    let (ws, token) = manager(&app).await;
    for connector in ["direct", "by-name", "decimal", "metadata"] {
        let (ok, message) = verify(&app, &token, connector, &ws, json!({"token": "good"})).await;
        assert!(!ok);
        assert!(message.starts_with("blocked: "), "{connector}: {message}");
    }
    assert_eq!(provider.connections(), 0);
}

#[tokio::test]
async fn a_redirect_to_a_blocked_address_is_refused_and_the_target_never_contacted() {
    // The target listens on 127.0.0.2, which the allow list (127.0.0.1/32) does not open.
    let target = serve(
        "127.0.0.2",
        Router::new().fallback(any(|| async { "secret internal page" })),
    )
    .await;
    let location = target.url("/internal");
    let redirector = serve(
        "127.0.0.1",
        Router::new().route(
            "/start",
            any(move || {
                let location = location.clone();
                async move {
                    Response::builder()
                        .status(StatusCode::FOUND)
                        .header("location", location)
                        .body(Body::empty())
                        .unwrap_or_default()
                }
            }),
        ),
    )
    .await;
    let manifest = pat_http(
        "redirect",
        &format!(
            "    url: \"{}\"\n    headers: {{Authorization: \"Bearer ${{field.token}}\"}}",
            redirector.url("/start")
        ),
    );
    let app = app(
        sqlite().await,
        catalog(&[manifest]),
        true,
        Duration::from_secs(5),
    )
    .await;
    let (ws, token) = manager(&app).await;
    let (ok, message) = verify(&app, &token, "redirect", &ws, json!({"token": "good"})).await;
    assert!(!ok);
    assert!(message.starts_with("blocked: "), "{message}");
    assert_eq!(redirector.requests(), 1);
    assert_eq!(target.connections(), 0);
}
