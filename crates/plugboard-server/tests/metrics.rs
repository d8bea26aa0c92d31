//! `GET /metrics`: the Prometheus page after real traffic, parsed with a Prometheus text parser, and who may read
//! it (the metrics token, loopback callers only without it).

// clippy.toml lets `#[test]` functions unwrap, expect and panic; the helpers and `test_on_both_backends!` bodies of
// an integration test crate are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod verify_support;

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use plugboard_gateway::ports::{Metrics as _, Outcome};
use plugboard_server::testing::{test_on_both_backends, Db, TestApp};
use plugboard_server::{App, Application};
use prom_text_format_parser::{Metric, Sample, Scrape, Type, ValueType};
use serde_json::json;
use tower::ServiceExt;
use verify_support::{catalog, manager, pat_http, verify};

test_on_both_backends! {
    the_page_counts_traffic_by_route_template_and_parses_as_prometheus_text => page_after_traffic;
}

const TOKEN: &str = "metrics-token-0123456789abcdef";

/// `GET /metrics` through the router, as if from `peer` (`None`: no peer address known).
async fn scrape(
    app: &TestApp,
    peer: Option<&str>,
    headers: &[(&str, &str)],
) -> (StatusCode, String, String) {
    let mut req = Request::builder().uri("/metrics");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut req = req.body(Body::empty()).unwrap();
    if let Some(peer) = peer {
        let addr: SocketAddr = peer.parse().unwrap();
        req.extensions_mut().insert(ConnectInfo(addr));
    }
    let res = app.router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

/// The page parsed strictly (any line that is not the Prometheus text format fails the test).
fn parse(text: &str) -> Scrape {
    Scrape::parse(text).unwrap_or_else(|e| panic!("not the Prometheus text format: {e:?}\n{text}"))
}

fn family<'a>(scrape: &'a Scrape, name: &str) -> &'a Metric {
    scrape
        .metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| {
            let names: Vec<&str> = scrape.metrics.iter().map(|m| m.name.as_str()).collect();
            panic!("no family {name}; families: {names:?}")
        })
}

fn label<'a>(sample: &'a Sample, key: &str) -> Option<&'a str> {
    sample
        .labels
        .iter()
        .find(|l| l.key == key)
        .map(|l| l.value.as_str())
}

/// The samples of family `name` of this kind whose labels include every pair of `labels`.
fn samples<'a>(
    scrape: &'a Scrape,
    name: &str,
    kind: ValueType,
    labels: &[(&str, &str)],
) -> Vec<&'a Sample> {
    family(scrape, name)
        .samples
        .iter()
        .filter(|s| s.value.value_type == kind)
        .filter(|s| labels.iter().all(|(k, v)| label(s, k) == Some(*v)))
        .collect()
}

/// The one plain sample (a counter's or a gauge's value) of family `name` with these labels.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    one(scrape, name, ValueType::Sample, labels)
}

/// The one sample of this kind (a histogram's `_count`, …) of family `name` with these labels.
fn one(scrape: &Scrape, name: &str, kind: ValueType, labels: &[(&str, &str)]) -> f64 {
    let found = samples(scrape, name, kind, labels);
    assert_eq!(
        found.len(),
        1,
        "one {kind:?} of {name} with {labels:?}; the family: {:?}",
        family(scrape, name).samples
    );
    found[0].value.value.as_f64()
}

/// Installs, a verify refused by the egress guard, a 404 by id, an unmatched path and a gateway call; then the
/// page has each of them under bounded labels, and no raw id anywhere.
async fn page_after_traffic(db: Db) {
    let manifests = vec![
        // Loopback and a cloud metadata address: refused by the egress guard, never contacted.
        pat_http("to-loopback", "    url: \"http://127.0.0.1:9/user\""),
        pat_http(
            "to-metadata",
            "    url: \"http://169.254.169.254/latest/meta-data/\"",
        ),
    ];
    let app = TestApp::build(db, Some(catalog(&manifests)), |_| {}).await;
    let (ws, token) = manager(&app).await;

    let (ok, _) = verify(&app, &token, "to-loopback", &ws, json!({"token": "t"})).await;
    assert!(!ok);
    let (ok, _) = verify(&app, &token, "to-metadata", &ws, json!({"token": "t"})).await;
    assert!(!ok);
    let res = app
        .post(
            &format!(
                "/api/v1/connectors/to-loopback/install?workspace_id={}",
                ws.id
            ),
            Some(&token),
            json!({"fields": {"token": "t"}}),
        )
        .await;
    res.assert_status(201);
    let integration_id = res.json()["integration_id"].as_str().unwrap().to_string();
    app.get(
        &format!("/api/v1/integrations/{integration_id}"),
        Some(&token),
    )
    .await
    .assert_status(200);
    let missing = "int_doesnotexist000000000000";
    let res = app
        .get(&format!("/api/v1/integrations/{missing}"), Some(&token))
        .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    app.get("/no/such/page/42", None).await;
    // The gateway reports its calls through this port (what the gateway crate calls).
    app.state
        .metrics
        .gateway_call(&integration_id, Outcome::Ok, Duration::from_millis(30));
    app.state
        .metrics
        .gateway_call(&integration_id, Outcome::Timeout, Duration::from_secs(2));

    let (status, content_type, text) = scrape(&app, Some("127.0.0.1:50000"), &[]).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let page = parse(&text);

    // HTTP requests by route template, method and status.
    let item = "/api/v1/integrations/{integration_id}";
    assert_eq!(
        value(
            &page,
            "plugboard_http_requests_total",
            &[("route", item), ("method", "GET"), ("status", "200")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &page,
            "plugboard_http_requests_total",
            &[("route", item), ("status", "404")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &page,
            "plugboard_http_requests_total",
            &[
                ("route", "/api/v1/connectors/{connector_id}/verify"),
                ("method", "POST"),
                ("status", "200")
            ]
        ),
        2.0
    );
    assert_eq!(
        value(
            &page,
            "plugboard_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ),
        1.0
    );
    let latency = family(&page, "plugboard_http_request_duration_seconds");
    assert_eq!(latency.kind, Type::Histogram);
    let buckets = samples(
        &page,
        "plugboard_http_request_duration_seconds",
        ValueType::Sample,
        &[("route", item), ("status", "200")],
    );
    assert!(buckets.len() > 5, "{buckets:?}");
    assert!(buckets.iter().any(|b| label(b, "le") == Some("+Inf")));
    assert_eq!(
        one(
            &page,
            "plugboard_http_request_duration_seconds",
            ValueType::Count,
            &[("route", item), ("status", "200")]
        ),
        1.0
    );
    // No raw path or id in any label.
    for m in &page.metrics {
        for s in &m.samples {
            for l in s.labels.iter() {
                let v = &l.value;
                assert!(
                    !v.contains(missing) && !v.contains(ws.id.as_str()) && !v.contains("/no/such"),
                    "{} has a raw value in {}={v}",
                    m.name,
                    l.key
                );
            }
        }
    }

    // Verify outcomes by connector, installs by auth mode, egress refusals by reason.
    for connector in ["to-loopback", "to-metadata"] {
        assert_eq!(
            value(
                &page,
                "plugboard_verify_total",
                &[("connector", connector), ("outcome", "failed")]
            ),
            1.0
        );
    }
    assert_eq!(
        value(&page, "plugboard_installs_total", &[("auth_mode", "pat")]),
        1.0
    );
    assert_eq!(
        value(
            &page,
            "plugboard_installs_total",
            &[("auth_mode", "custom")]
        ),
        0.0
    );
    assert_eq!(
        value(
            &page,
            "plugboard_egress_refusals_total",
            &[("reason", "loopback")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &page,
            "plugboard_egress_refusals_total",
            &[("reason", "cloud_metadata")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &page,
            "plugboard_egress_refusals_total",
            &[("reason", "private")]
        ),
        0.0
    );
    // OAuth refreshes: every outcome present from the start.
    for outcome in ["ok", "refused", "failed"] {
        assert_eq!(
            value(
                &page,
                "plugboard_oauth_refreshes_total",
                &[("outcome", outcome)]
            ),
            0.0
        );
    }
    // Gateway calls and their latency by integration and outcome.
    for outcome in ["ok", "timeout"] {
        let labels = [
            ("integration", integration_id.as_str()),
            ("outcome", outcome),
        ];
        assert_eq!(value(&page, "plugboard_gateway_calls_total", &labels), 1.0);
        assert_eq!(
            one(
                &page,
                "plugboard_gateway_call_duration_seconds",
                ValueType::Count,
                &labels
            ),
            1.0
        );
    }
    // The database pool.
    let max = value(&page, "plugboard_db_pool_max_connections", &[]);
    let open = value(&page, "plugboard_db_pool_connections", &[]);
    let idle = value(&page, "plugboard_db_pool_idle_connections", &[]);
    assert!(max >= 1.0, "{max}");
    assert!(open >= 1.0 && open <= max, "{open} of {max}");
    assert!(idle <= open, "{idle} of {open}");
    // Every family is prefixed, typed and explained.
    for m in &page.metrics {
        assert!(m.name.starts_with("plugboard_"), "{}", m.name);
        assert_ne!(m.kind, Type::Untyped, "{}", m.name);
        assert!(
            m.help_desc.as_deref().is_some_and(|h| !h.is_empty()),
            "{}",
            m.name
        );
    }
    assert_eq!(
        family(&page, "plugboard_http_requests_total").kind,
        Type::Counter
    );
    assert_eq!(
        family(&page, "plugboard_db_pool_connections").kind,
        Type::Gauge
    );
}

async fn sqlite_app(configure: impl FnOnce(&mut plugboard_server::Config)) -> TestApp {
    TestApp::build(verify_support::sqlite().await, None, configure).await
}

#[tokio::test]
async fn without_a_token_only_loopback_callers_not_behind_a_proxy_read_the_page() {
    let app = sqlite_app(|_| {}).await;
    for peer in ["127.0.0.1:40000", "[::1]:40000", "127.8.9.10:1"] {
        let (status, _, body) = scrape(&app, Some(peer), &[]).await;
        assert_eq!(status, StatusCode::OK, "{peer}: {body}");
        family(&parse(&body), "plugboard_db_pool_max_connections");
    }
    for (peer, headers) in [
        (Some("203.0.113.7:40000"), vec![]),
        (Some("10.1.2.3:40000"), vec![]),
        (Some("[2001:db8::1]:40000"), vec![]),
        (None, vec![]),
        // A reverse proxy on this machine calls from loopback: a forwarded request is someone else's.
        (
            Some("127.0.0.1:40000"),
            vec![("x-forwarded-for", "203.0.113.7")],
        ),
        (
            Some("127.0.0.1:40000"),
            vec![("forwarded", "for=203.0.113.7")],
        ),
    ] {
        let (status, content_type, body) = scrape(&app, peer, &headers).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{peer:?} {headers:?}");
        assert!(content_type.starts_with("application/json"));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["code"], "forbidden");
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .contains("PLUGBOARD_METRICS_TOKEN"),
            "{v}"
        );
        assert!(!body.contains("plugboard_db_pool"));
    }
}

#[tokio::test]
async fn with_a_token_the_page_needs_it_from_anywhere() {
    let app = sqlite_app(|c| c.metrics_token = Some(TOKEN.to_string().into())).await;
    let good = format!("Bearer {TOKEN}");
    let lower = format!("bearer {TOKEN}");
    for peer in ["203.0.113.7:40000", "127.0.0.1:40000"] {
        for auth in [good.as_str(), lower.as_str()] {
            let (status, _, body) = scrape(&app, Some(peer), &[("authorization", auth)]).await;
            assert_eq!(status, StatusCode::OK, "{peer}: {body}");
            parse(&body);
        }
    }
    let almost = format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]);
    let longer = format!("Bearer {TOKEN}x");
    let basic = format!("Basic {TOKEN}");
    for headers in [
        vec![],
        vec![("authorization", almost.as_str())],
        vec![("authorization", longer.as_str())],
        vec![("authorization", basic.as_str())],
        vec![("authorization", "Bearer")],
    ] {
        // Loopback is no exception once a token is set.
        let (status, _, body) = scrape(&app, Some("127.0.0.1:40000"), &headers).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{headers:?}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["code"], "unauthenticated");
        assert!(!body.contains(TOKEN));
    }
}

#[tokio::test]
async fn the_served_application_knows_its_callers_address() {
    let db = verify_support::sqlite().await;
    let data_dir = db.data_dir.clone().unwrap();
    let mut config = plugboard_server::Config::for_tests(data_dir, db.url.clone());
    config.master_key = Some(plugboard_server::testing::test_master_key());
    let state = App::with_parts(
        config,
        db.store.clone(),
        plugboard_catalog::Catalog::builtin().unwrap(),
    )
    .await
    .unwrap();
    let application = Application::bind(state).await.unwrap();
    let port = application.port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(application.run_until(async {
        let _ = stopped.await;
    }));
    let res = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let page = parse(&res.text().await.unwrap());
    assert!(value(&page, "plugboard_db_pool_max_connections", &[]) >= 1.0);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
