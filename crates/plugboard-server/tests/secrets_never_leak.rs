//! Canaries pushed through every flow that handles a secret (install of each credential mode, patch, custom servers
//! with secret headers and env, rejected requests, rotation) appear only in `/runtime` responses: never in the
//! database files or columns (raw, hex or base64), never in another response, never in the logs at TRACE level.
//! And a sealed value moved to another row or field, or with a flipped bit, fails to open. On both backends.

// clippy.toml lets `#[test]` functions unwrap, expect and panic; the helpers and `test_on_both_backends!` bodies of
// an integration test crate are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod integration_support;

use axum::http::Method;
use integration_support::*;
use plugboard_server::testing::{test_on_both_backends, Db, TestApp, TestResponse};
use plugboard_store::{IntegrationId, Role};
use plugboard_vault::MasterKey;
use serde_json::json;

test_on_both_backends! {
    a_canary_pushed_through_every_flow_appears_only_in_runtime_responses => canary_everywhere;
    swapping_two_ciphertexts_between_rows_makes_both_fail_to_open => swapped_rows;
    swapping_two_ciphertexts_between_fields_of_one_row_makes_both_fail_to_open => swapped_fields;
    a_flipped_bit_fails_to_open => flipped_bit;
}

/// Responses that must not hold a canary.
#[derive(Default)]
struct Seen(Vec<(String, Vec<u8>)>);

impl Seen {
    fn keep(&mut self, what: &str, res: &TestResponse) {
        self.0.push((what.to_string(), res.body.to_vec()));
        let headers = format!("{:?}", res.headers);
        self.0
            .push((format!("{what} headers"), headers.into_bytes()));
    }
}

async fn canary_everywhere(db: Db) {
    let logs = capture_logs();
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    let manager = app.member(&ws, Role::Manager).await;
    let c = canary();
    let patched = canary();
    // The OAuth client id is not secret (it is part of the oauth_url the install returns) but, as every field of a
    // byo_oauth install, it is stored only in the vault: it must not be in the database or the logs either.
    let client_id = canary();
    let canaries = vec![c.clone(), patched.clone()];
    let mut seen = Seen::default();
    let mut ids = Vec::new();

    // Installs of every credential mode.
    let installs = [
        ("github", json!({"fields": {"token": github_token(&c)}})),
        (
            "slack",
            json!({"fields": {"user_token": format!("xoxp-{c}")}}),
        ),
        (
            "postgres",
            json!({"fields": {"host": format!("{c}.db.example.com"), "database": c, "user": c, "password": c}}),
        ),
        (
            "github-oauth-app",
            json!({"fields": {"client_id": client_id, "client_secret": c}}),
        ),
    ];
    for (connector, body) in installs {
        let res = app
            .raw(
                Method::POST,
                &install_uri(connector, &ws.id),
                Some(&manager),
                &[("idempotency-key", connector)],
                Some(body.to_string().into_bytes()),
            )
            .await;
        res.assert_status(201);
        seen.keep(&format!("install {connector}"), &res);
        // A retry replays the stored response.
        let again = app
            .raw(
                Method::POST,
                &install_uri(connector, &ws.id),
                Some(&manager),
                &[("idempotency-key", connector)],
                Some(body.to_string().into_bytes()),
            )
            .await;
        again.assert_status(201);
        seen.keep(&format!("replayed install {connector}"), &again);
        ids.push(res.json()["integration_id"].as_str().unwrap().to_string());
    }
    // Custom servers with a secret header and a secret env value, and with credentials a new user sends without
    // marking them (sealed all the same: their names or values say what they are).
    for body in [
        json!({"name": "http", "transport": "streamable-http", "endpoint": "https://mcp.example.com/",
               "headers": {"Authorization": {"value": format!("Bearer {c}"), "secret": true}}}),
        json!({"name": "stdio", "transport": "stdio", "command": "run",
               "env": {"TOKEN": {"value": c, "secret": true}}}),
        json!({"name": "unmarked http", "transport": "streamable-http", "endpoint": "https://mcp.example.com/",
               "headers": {"Authorization": format!("Bearer {c}"), "X-Api-Key": c, "X-Custom": format!("Basic {c}")}}),
        json!({"name": "unmarked stdio", "transport": "stdio", "command": "run",
               "env": {"GITHUB_TOKEN": c, "DATABASE_URL": format!("postgres://app:{c}@db.internal/app")}}),
    ] {
        let res = app
            .post(
                &format!("/api/v1/integrations?workspace_id={}", ws.id),
                Some(&manager),
                body,
            )
            .await;
        res.assert_status(201);
        seen.keep("custom create", &res);
        ids.push(res.json()["integration_id"].as_str().unwrap().to_string());
    }
    // Rejected requests carrying the canary: errors name fields, never values.
    for (uri, body) in [
        (
            install_uri("github", &ws.id),
            format!(r#"{{"fields": {{"token": "{c}"}}}}"#),
        ),
        (
            install_uri("github", &ws.id),
            format!(r#"{{"fields": {{"token": "{c}"#),
        ),
        (
            install_uri("postgres", &ws.id),
            format!(
                r#"{{"fields": {{"host": "h", "database": "d", "user": "u", "password": "{c}", "port": "{c}"}}}}"#
            ),
        ),
        (
            install_uri("slack", &ws.id),
            format!(r#"{{"fields": {{"user_token": "{c}"}}}}"#),
        ),
        (
            format!("/api/v1/integrations?workspace_id={}", ws.id),
            format!(
                r#"{{"name": "x", "transport": "sse", "endpoint": "https://u:{c}@x.example.com/"}}"#
            ),
        ),
        (
            format!("/api/v1/integrations?workspace_id={}", ws.id),
            format!(
                r#"{{"name": "x", "transport": "sse", "endpoint": "https://x.example.com/", "headers": {{"A": {{"value": "{c}\n", "secret": true}}}}}}"#
            ),
        ),
    ] {
        let res = app
            .raw(
                Method::POST,
                &uri,
                Some(&manager),
                &[],
                Some(body.into_bytes()),
            )
            .await;
        res.assert_status(400);
        seen.keep("rejected request", &res);
    }
    // Patch: a new canary replaces the old one; a rejected patch echoes nothing.
    let res = patch(
        &app,
        &manager,
        &ids[0],
        json!({"fields": {"token": github_token(&patched)}}),
    )
    .await;
    res.assert_status(200);
    seen.keep("patch", &res);
    let res = patch(
        &app,
        &manager,
        &ids[0],
        json!({"fields": {"token": patched}}),
    )
    .await;
    res.assert_status(400);
    seen.keep("rejected patch", &res);
    let res = patch(
        &app,
        &manager,
        &ids[2],
        json!({"fields": {"password": patched}}),
    )
    .await;
    res.assert_status(200);
    seen.keep("patch postgres", &res);

    // Rotation re-seals every value under a new key.
    let master = MasterKey::from_base64(&app.master_key()).unwrap();
    plugboard_server::vault::rotate(app.db.store.clone(), &master)
        .await
        .unwrap();

    // Reads: list, get, audit. Runtime is the one place the values appear.
    let res = app
        .get(
            &format!("/api/v1/integrations?workspace_id={}", ws.id),
            Some(&manager),
        )
        .await;
    res.assert_status(200);
    seen.keep("list", &res);
    for id in &ids {
        let res = app
            .get(&format!("/api/v1/integrations/{id}"), Some(&manager))
            .await;
        res.assert_status(200);
        seen.keep("get", &res);
    }
    let rt = runtime(&app, &owner, &ids[0]).await;
    rt.assert_status(200);
    assert!(
        rt.text().contains(&patched),
        "runtime has the patched value"
    );
    let rt = runtime(&app, &owner, &ids[2]).await;
    assert!(rt.text().contains(&format!("{c}.db.example.com")) && rt.text().contains(&patched));
    for i in [4, 5, 6, 7] {
        let rt = runtime(&app, &owner, &ids[i]).await;
        rt.assert_status(200);
        assert!(rt.text().contains(&c), "runtime of custom server {i}");
    }
    let res = app
        .get(
            &format!("/api/v1/audit?workspace_id={}", ws.id),
            Some(&owner),
        )
        .await;
    res.assert_status(200);
    assert!(res.json()["entries"].as_array().unwrap().len() >= 10);
    seen.keep("audit", &res);

    for (what, bytes) in &seen.0 {
        assert_clean(bytes, &canaries, what);
    }
    let stored_only_in_the_vault = vec![c.clone(), patched.clone(), client_id.clone()];
    for (place, bytes) in database_dump(&app.db).await {
        assert_clean(&bytes, &stored_only_in_the_vault, &place);
    }
    tracing::trace!("trace-level probe");
    let log = logs.bytes();
    let text = String::from_utf8_lossy(&log);
    assert!(
        text.contains("install{")
            && text.contains("runtime{")
            && text.contains("trace-level probe"),
        "the subscriber captured the flows at TRACE level"
    );
    assert_clean(&log, &stored_only_in_the_vault, "the logs");
}

async fn install_two(app: &TestApp) -> (String, String, String, String, String) {
    let (ws, owner) = app.workspace().await;
    let a = github_token("alpha");
    let b = github_token("bravo");
    let ia = install_github(app, &owner, &ws, &a).await;
    let ib = install_github(app, &owner, &ws, &b).await;
    (owner, ia, ib, a, b)
}

#[track_caller]
fn assert_opaque_500(res: &TestResponse, values: &[&str]) {
    res.assert_status(500);
    assert_eq!(
        res.json(),
        json!({"error": "internal server error", "code": "internal"})
    );
    for v in values {
        assert!(!res.text().contains(v));
    }
}

async fn swapped_rows(db: Db) {
    let logs = capture_logs();
    let app = TestApp::new(db).await;
    let (owner, ia, ib, a, b) = install_two(&app).await;
    let ra = app
        .db
        .store
        .integration_secrets(&IntegrationId::from(&ia))
        .await
        .unwrap()
        .remove(0);
    let rb = app
        .db
        .store
        .integration_secrets(&IntegrationId::from(&ib))
        .await
        .unwrap()
        .remove(0);
    set_secret(&app.db, &ia, &ra.name, &rb.key_id, &rb.ciphertext).await;
    set_secret(&app.db, &ib, &rb.name, &ra.key_id, &ra.ciphertext).await;
    for id in [&ia, &ib] {
        assert_opaque_500(&runtime(&app, &owner, id).await, &[&a, &b]);
    }
    assert!(
        logs.text().contains("decryption failed"),
        "the cause is logged"
    );
    // Listing still works: it never decrypts.
    let row = app
        .db
        .store
        .get_integration(&IntegrationId::from(&ia))
        .await
        .unwrap()
        .unwrap();
    app.get(
        &format!("/api/v1/integrations?workspace_id={}", row.workspace_id),
        Some(&owner),
    )
    .await
    .assert_status(200);
}

async fn swapped_fields(db: Db) {
    let _logs = capture_logs();
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    let id = install(
        &app,
        &owner,
        &ws,
        "postgres",
        json!({"fields": {"host": "h.example.com", "database": "d", "user": "u", "password": "pw"}}),
    )
    .await["integration_id"]
        .as_str()
        .unwrap()
        .to_string();
    let rows = app
        .db
        .store
        .integration_secrets(&IntegrationId::from(&id))
        .await
        .unwrap();
    let host = rows.iter().find(|r| r.name == "field.host").unwrap();
    let pw = rows.iter().find(|r| r.name == "field.password").unwrap();
    set_secret(&app.db, &id, &host.name, &pw.key_id, &pw.ciphertext).await;
    set_secret(&app.db, &id, &pw.name, &host.key_id, &host.ciphertext).await;
    assert_opaque_500(&runtime(&app, &owner, &id).await, &["h.example.com", "pw"]);
    // Opening each row directly fails too: both are bound to their own field.
    for r in app
        .db
        .store
        .integration_secrets(&IntegrationId::from(&id))
        .await
        .unwrap()
    {
        if r.name == "field.host" || r.name == "field.password" {
            assert!(app.state.vault.open(&r).await.is_err(), "{}", r.name);
        }
    }
}

async fn flipped_bit(db: Db) {
    let _logs = capture_logs();
    let app = TestApp::new(db).await;
    let (owner, ia, _ib, a, _b) = install_two(&app).await;
    let row = app
        .db
        .store
        .integration_secrets(&IntegrationId::from(&ia))
        .await
        .unwrap()
        .remove(0);
    for position in [1, row.ciphertext.len() / 2, row.ciphertext.len() - 1] {
        let mut bad = row.ciphertext.clone();
        bad[position] ^= 0x01;
        set_secret(&app.db, &ia, &row.name, &row.key_id, &bad).await;
        assert_opaque_500(&runtime(&app, &owner, &ia).await, &[&a]);
    }
    // Put back, it opens again.
    set_secret(&app.db, &ia, &row.name, &row.key_id, &row.ciphertext).await;
    runtime(&app, &owner, &ia).await.assert_status(200);
}

/// The scanner itself: it must find the canary raw, in hex, and inside longer base64 values at every alignment.
#[test]
fn the_scanner_finds_every_encoding_of_a_canary() {
    use base64::Engine;
    let c = canary();
    let hex: String = c.bytes().map(|b| format!("{b:02x}")).collect();
    let mut samples = vec![
        format!("x{c}y").into_bytes(),
        hex.clone().into_bytes(),
        hex.to_uppercase().into_bytes(),
    ];
    for engine in [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        for prefix in ["", "a", "ab", "abc"] {
            for suffix in ["", "z", "zz"] {
                samples.push(engine.encode(format!("{prefix}{c}{suffix}")).into_bytes());
            }
        }
    }
    for s in samples {
        let caught =
            std::panic::catch_unwind(|| assert_clean(&s, std::slice::from_ref(&c), "sample"));
        assert!(
            caught.is_err(),
            "not found in {}",
            String::from_utf8_lossy(&s)
        );
    }
    assert_clean(b"nothing to see", &[c], "clean sample");
}
