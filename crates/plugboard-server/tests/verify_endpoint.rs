//! The verify endpoint itself: check order and every error status, modes that skip the probe, the no-verify-block
//! answer, the audit entry and the rate limit. On SQLite and (when configured) PostgreSQL.

// clippy.toml lets `#[test]` functions unwrap, expect and panic; the helpers and `test_on_both_backends!` bodies of
// an integration test crate are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod verify_support;

use std::time::Duration;

use axum::http::Method;
use axum::routing::any;
use axum::Router;
use plugboard_server::testing::{test_on_both_backends, Db, TestApp};
use plugboard_store::Role;
use serde_json::json;
use verify_support::*;

const SECRET: &str = "ghp_TopSecretValue123";

fn manifests(provider_url: &str) -> Vec<String> {
    vec![
        // pat without a verify block; a select, a validated and a number field.
        r#"id: plain
name: Plain
auth_mode: pat
fields:
  - {key: token, label: Token, type: password, required: true, validation: {min_length: 8}}
  - {key: region, label: Region, type: select, choices: [eu, us], required: false}
  - {key: port, label: Port, type: number, required: false}
mcp: {transport: stdio, command: npx}
"#
        .to_owned(),
        format!(
            r#"id: hosted
name: Hosted
auth_mode: mcp_oauth
mcp: {{transport: streamable-http, endpoint: "{provider_url}"}}
verify:
  http: {{url: "{provider_url}"}}
"#
        ),
        format!(
            r#"id: byo
name: BYO
auth_mode: byo_oauth
fields:
  - {{key: client_id, label: Client ID, type: text, required: true}}
  - {{key: client_secret, label: Client secret, type: password, required: true}}
oauth:
  authorization_url: "{provider_url}/authorize"
  token_url: "{provider_url}/token"
mcp: {{transport: streamable-http, endpoint: "{provider_url}", headers: {{Authorization: "Bearer ${{oauth.access_token}}"}}}}
verify:
  http: {{url: "{provider_url}?id=${{field.client_id}}"}}
"#
        ),
        format!(
            r#"id: open
name: Open
auth_mode: none
mcp: {{transport: streamable-http, endpoint: "{provider_url}"}}
verify:
  http: {{url: "{provider_url}"}}
"#
        ),
        format!(
            r#"id: probed
name: Probed
auth_mode: pat
fields:
  - {{key: token, label: Token, type: password, required: true}}
mcp: {{transport: stdio, command: npx}}
verify:
  http: {{url: "{provider_url}", headers: {{Authorization: "Bearer ${{field.token}}"}}}}
"#
        ),
    ]
}

async fn setup(db: Db) -> (TestApp, Provider) {
    let provider = serve("127.0.0.1", Router::new().fallback(any(|| async { "ok" }))).await;
    let app = app(
        db,
        catalog(&manifests(&provider.url("/"))),
        true,
        Duration::from_secs(5),
    )
    .await;
    (app, provider)
}

async fn error_message(
    app: &TestApp,
    uri: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
    status: u16,
) -> String {
    let res = app.raw(Method::POST, uri, token, &[], body).await;
    res.assert_status(status);
    res.json()["error"].as_str().unwrap_or_default().to_owned()
}

async fn checks_run_in_the_contract_order(db: Db) {
    let (app, _provider) = setup(db).await;
    let (ws, manager) = manager(&app).await;
    let viewer = app.member(&ws, Role::Viewer).await;
    let member = app.member(&ws, Role::Member).await;
    let (_other_ws, outsider) = app.workspace().await;
    let good = Some(br#"{"fields":{"token":"abcdefgh"}}"#.to_vec());
    let bad_body = Some(b"{not json".to_vec());
    let uri = verify_uri("plain", &ws);

    // 401 first, whatever else is wrong.
    error_message(
        &app,
        "/api/v1/connectors/nope/verify",
        None,
        bad_body.clone(),
        401,
    )
    .await;
    error_message(&app, &uri, Some("pb_invalid"), good.clone(), 401).await;
    // 400 for workspace_id before the role check.
    let m = error_message(
        &app,
        "/api/v1/connectors/plain/verify",
        Some(&viewer),
        good.clone(),
        400,
    )
    .await;
    assert!(m.contains("workspace_id"), "{m}");
    error_message(
        &app,
        "/api/v1/connectors/plain/verify?workspace_id=",
        Some(&manager),
        good.clone(),
        400,
    )
    .await;
    // 403 before 404, for every role below MANAGER, outsiders and unknown workspaces.
    for token in [&viewer, &member, &outsider] {
        error_message(
            &app,
            &verify_uri("nope", &ws),
            Some(token),
            bad_body.clone(),
            403,
        )
        .await;
        error_message(&app, &uri, Some(token), good.clone(), 403).await;
    }
    error_message(
        &app,
        "/api/v1/connectors/plain/verify?workspace_id=no-such-ws",
        Some(&manager),
        good.clone(),
        403,
    )
    .await;
    // 404 before the body.
    error_message(
        &app,
        &verify_uri("nope", &ws),
        Some(&manager),
        bad_body.clone(),
        404,
    )
    .await;
    // The body last.
    error_message(&app, &uri, Some(&manager), bad_body, 400).await;
    let ok = app
        .raw(Method::POST, &uri, Some(&manager), &[], good.clone())
        .await;
    ok.assert_status(200);
    // ADMIN and OWNER pass too.
    let admin = app.member(&ws, Role::Admin).await;
    app.raw(Method::POST, &uri, Some(&admin), &[], good)
        .await
        .assert_status(200);
}

async fn bad_bodies_get_400_naming_the_field(db: Db) {
    let (app, _provider) = setup(db).await;
    let (ws, token) = manager(&app).await;
    let uri = verify_uri("plain", &ws);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"[1,2]".to_vec(), "JSON object"),
        (b"\"x\"".to_vec(), "JSON object"),
        (
            b"{\"fields\": {\"token\": \"abcdefgh\"}, \"extra\": 1}".to_vec(),
            "extra",
        ),
        (b"{\"fields\": [1]}".to_vec(), "fields"),
        (b"{\"fields\": {}}".to_vec(), "token"),
        (b"".to_vec(), "token"),
        (
            format!("{{\"fields\": {{\"token\": \"{SECRET}\", \"nope\": \"x\"}}}}").into_bytes(),
            "nope",
        ),
        (
            format!("{{\"fields\": {{\"token\": \"{SECRET}\", \"region\": \"mars\"}}}}")
                .into_bytes(),
            "region",
        ),
        (
            format!("{{\"fields\": {{\"token\": \"{SECRET}\", \"port\": \"many\"}}}}").into_bytes(),
            "port",
        ),
        (
            format!("{{\"fields\": {{\"token\": \"{SECRET}\", \"port\": true}}}}").into_bytes(),
            "port",
        ),
        (b"{\"fields\": {\"token\": \"short\"}}".to_vec(), "token"),
        (b"{\"fields\": {\"token\": 12345678}}".to_vec(), "token"),
    ];
    for (body, named) in cases {
        let shown = String::from_utf8_lossy(&body).into_owned();
        let res = app
            .raw(Method::POST, &uri, Some(&token), &[], Some(body))
            .await;
        assert_eq!(res.status.as_u16(), 400, "{shown}: {}", res.text());
        let v = res.json();
        assert!(v["code"].is_string(), "{v}");
        let m = v["error"].as_str().unwrap_or_default();
        assert!(m.contains(named), "{shown}: {m} should name {named}");
        assert!(
            !res.text().contains(SECRET),
            "a submitted value was echoed: {}",
            res.text()
        );
    }
}

async fn modes_without_a_probe_answer_ok_and_call_nobody(db: Db) {
    let (app, provider) = setup(db).await;
    let (ws, token) = manager(&app).await;
    assert_eq!(
        verify(&app, &token, "hosted", &ws, json!({})).await,
        (true, String::new())
    );
    let (ok, message) = verify(
        &app,
        &token,
        "byo",
        &ws,
        json!({"client_id": "abc", "client_secret": "s3cr3t-value"}),
    )
    .await;
    assert!(ok && message.is_empty(), "{message}");
    // An empty body is fine when nothing is required.
    let res = app
        .raw(
            Method::POST,
            &verify_uri("open", &ws),
            Some(&token),
            &[],
            None,
        )
        .await;
    res.assert_status(200);
    assert_eq!(res.json(), json!({"ok": true, "message": ""}));
    assert_eq!(provider.requests(), 0);
    assert_eq!(provider.connections(), 0);
    // The control: a pat manifest does call the same provider.
    let (ok, _) = verify(&app, &token, "probed", &ws, json!({"token": SECRET})).await;
    assert!(ok);
    assert_eq!(provider.requests(), 1);
}

async fn a_manifest_without_a_verify_block_says_nothing_was_checked(db: Db) {
    let (app, _provider) = setup(db).await;
    let (ws, token) = manager(&app).await;
    let (ok, message) = verify(&app, &token, "plain", &ws, json!({"token": SECRET})).await;
    assert!(ok);
    assert!(message.contains("nothing was checked"), "{message}");
}

async fn every_verify_is_audited_without_field_values(db: Db) {
    let (app, _provider) = setup(db).await;
    let (ws, token) = manager(&app).await;
    verify(&app, &token, "probed", &ws, json!({"token": SECRET})).await;
    verify(&app, &token, "hosted", &ws, json!({})).await;
    // A rejected body is not a verify.
    app.post(
        &verify_uri("plain", &ws),
        Some(&token),
        json!({"fields": {}}),
    )
    .await
    .assert_status(400);
    let rows = app
        .db
        .store
        .list_audit(&ws.id, 50, None)
        .await
        .expect("audit");
    let verifies: Vec<_> = rows
        .iter()
        .filter(|r| r.action == "connector.verify")
        .collect();
    assert_eq!(verifies.len(), 2, "{rows:?}");
    for row in &verifies {
        let detail: serde_json::Value = serde_json::from_str(&row.detail).expect("detail json");
        assert_eq!(detail["ok"], json!(true));
        assert_eq!(row.target.as_deref(), detail["connector_id"].as_str());
        assert!(row.actor_id.is_some());
        assert_eq!(row.workspace_id.as_deref(), Some(ws.id.as_str()));
        let all = serde_json::to_string(&row).expect("row json");
        assert!(!all.contains(SECRET), "{all}");
    }
    let targets: Vec<_> = verifies.iter().filter_map(|r| r.target.clone()).collect();
    assert!(targets.contains(&"probed".to_owned()) && targets.contains(&"hosted".to_owned()));
}

async fn the_31st_verify_in_a_minute_gets_429_with_retry_after(db: Db) {
    let (app, _provider) = setup(db).await;
    let (ws, token) = manager(&app).await;
    for i in 0..30 {
        let res = app
            .post(
                &verify_uri("plain", &ws),
                Some(&token),
                json!({"fields": {"token": SECRET}}),
            )
            .await;
        assert_eq!(res.status.as_u16(), 200, "verify {i}: {}", res.text());
    }
    let res = app
        .post(
            &verify_uri("plain", &ws),
            Some(&token),
            json!({"fields": {"token": SECRET}}),
        )
        .await;
    res.assert_status(429);
    assert_eq!(res.json()["code"], "rate_limited");
    let retry: u64 = res
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    // Another workspace has its own budget.
    let (ws2, token2) = manager(&app).await;
    let (ok, _) = verify(&app, &token2, "plain", &ws2, json!({"token": SECRET})).await;
    assert!(ok);
}

test_on_both_backends! {
    checks_run_in_the_contract_order_401_400_403_404_400 => checks_run_in_the_contract_order;
    bad_bodies_get_400_naming_the_field_and_never_echo_values => bad_bodies_get_400_naming_the_field;
    mcp_oauth_byo_oauth_and_none_answer_ok_without_any_outbound_call => modes_without_a_probe_answer_ok_and_call_nobody;
    a_manifest_without_a_verify_block_answers_ok_saying_nothing_was_checked => a_manifest_without_a_verify_block_says_nothing_was_checked;
    every_verify_is_audited_with_connector_and_ok_but_no_field_values => every_verify_is_audited_without_field_values;
    the_31st_verify_in_a_minute_gets_429_with_retry_after => the_31st_verify_in_a_minute_gets_429_with_retry_after;
}
