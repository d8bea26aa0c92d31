//! byo_oauth end to end against a fake authorization server on loopback: install, the person approves, the callback
//! exchanges the code through the egress guard; denial, failed exchanges, bad states; refresh.

// clippy.toml lets `#[test]` functions unwrap, expect and panic; the helpers and `test_on_both_backends!` bodies of
// an integration test crate are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod oauth_support;

use std::time::Duration;

use oauth_support::*;
use plugboard_server::oauth::{self, callback, TokenError};
use plugboard_server::testing::{Db, TestApp};
use plugboard_store::{now_ms, IntegrationId, Workspace};
use secrecy::ExposeSecret;
use serde_json::json;

plugboard_server::testing::test_on_both_backends! {
    the_full_byo_flow_with_pkce_and_client_secret_post_ends_active_with_tokens_sealed => full_flow_pkce_post;
    the_full_byo_flow_without_pkce_with_client_secret_basic_and_a_form_encoded_answer => full_flow_basic_form;
    a_denial_by_the_provider_turns_the_integration_error_with_a_readable_reason => denial;
    a_failed_exchange_turns_the_integration_error_without_leaking_the_code_or_the_secret => failed_exchange;
    an_unusable_token_answer_is_a_failed_exchange => unusable_answer;
    replayed_unknown_missing_and_expired_states_get_400 => bad_states;
    an_expiring_token_is_refreshed_before_it_is_handed_out => refresh_before_handout;
    concurrent_callers_make_exactly_one_refresh => concurrent_refresh;
    a_rotated_refresh_token_replaces_the_old_one => rotation;
    a_refresh_answer_without_a_refresh_token_keeps_the_old_one => no_rotation;
    invalid_grant_on_refresh_turns_the_integration_error_telling_to_reconnect => invalid_grant;
    a_transient_refresh_failure_hands_out_the_still_valid_token => transient_refresh_failure;
    an_integration_in_error_reconnects_through_oauth_start_without_a_new_install => reconnect;
    short_lived_tokens_are_refreshed_once_for_concurrent_reads_and_not_while_fresh => short_lived;
}

const CLIENT_ID: &str = "byo-client-1";
const SECRET: &str = "s3cret-value-XYZ";

struct Setup {
    app: TestApp,
    fake: std::sync::Arc<Fake>,
    ws: Workspace,
    token: String,
}

async fn setup(db: Db, pkce: bool, token_auth: &'static str, secret: &str) -> Setup {
    let fake = Fake::spawn(FakeConfig::default()).await;
    fake.add_client(CLIENT_ID, token_auth, Some(secret));
    let app = app(db, &[byo_manifest(&fake, &ByoOptions { pkce, token_auth })]).await;
    let (ws, token) = app.workspace().await;
    Setup {
        app,
        fake,
        ws,
        token,
    }
}

/// Install, approve, callback: returns (integration id, oauth_url, approval).
async fn connect(s: &Setup, secret: &str) -> (String, String, Approved) {
    let (id, body) = install(
        &s.app,
        &s.ws,
        &s.token,
        "fake-byo",
        json!({"client_id": CLIENT_ID, "client_secret": secret}),
    )
    .await;
    assert_eq!(body["next_step"], "oauth");
    let oauth_url = body["oauth_url"].as_str().unwrap().to_string();
    let approved = s.fake.approve(&oauth_url);
    let res = s
        .app
        .get(
            &callback_uri(&[("code", &approved.code), ("state", &approved.state)]),
            None,
        )
        .await;
    assert_page(&res, 200, &[&approved.code, secret]);
    (id, oauth_url, approved)
}

async fn open_secret(app: &TestApp, id: &str, name: &str) -> Option<String> {
    let row = app
        .db
        .store
        .integration_secrets(&IntegrationId::from(id))
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.name == name)?;
    let p = app.state.vault.open(&row).await.unwrap();
    Some(String::from_utf8(p.expose().to_vec()).unwrap())
}

async fn token_of(app: &TestApp, id: &str) -> Result<String, TokenError> {
    let i = app
        .db
        .store
        .get_integration(&IntegrationId::from(id))
        .await
        .unwrap()
        .unwrap();
    oauth::access_token(&app.state, &i)
        .await
        .map(|t| t.expose_secret().to_string())
}

async fn full_flow_pkce_post(db: Db) {
    let logs = LogCapture::start();
    let s = setup(db, true, "client_secret_post", SECRET).await;
    let (id, oauth_url, approved) = connect(&s, SECRET).await;

    let q = query_of(&oauth_url);
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["redirect_uri"], CALLBACK);
    assert_eq!(q["scope"], "read write");
    let challenge = q["code_challenge"].clone();

    let reqs = s.fake.token_requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.form["grant_type"], "authorization_code");
    assert_eq!(r.form["code"], approved.code);
    assert_eq!(r.form["redirect_uri"], CALLBACK);
    assert_eq!(
        s256(&r.form["code_verifier"]),
        challenge,
        "the verifier matches the challenge"
    );
    assert_eq!(r.form["client_id"], CLIENT_ID);
    assert_eq!(r.form["client_secret"], SECRET);
    assert_eq!(r.form["audience"], "api.example", "token_params are sent");
    assert!(r.authorization.is_none());
    assert_eq!(r.accept.as_deref(), Some("application/json"));
    assert!(r
        .content_type
        .as_deref()
        .unwrap()
        .starts_with("application/x-www-form-urlencoded"));

    assert_eq!(status_of(&s.app, &id).await, ("active".into(), None));
    let names = secret_names(&s.app, &id).await;
    assert!(
        names.contains(&"oauth.access_token".to_string()),
        "{names:?}"
    );
    assert!(names.contains(&"oauth.refresh_token".to_string()));
    assert!(
        !names.contains(&"oauth.pkce_verifier".to_string()),
        "the verifier is destroyed after use"
    );
    let grant = s
        .app
        .db
        .store
        .get_oauth_grant(&IntegrationId::from(&id))
        .await
        .unwrap()
        .unwrap();
    let expires = grant.expires_at.unwrap() - now_ms();
    assert!((3_590_000..=3_600_000).contains(&expires), "{expires}");

    let at = s.fake.last_access_token().unwrap();
    assert_eq!(token_of(&s.app, &id).await.unwrap(), at);
    let rt = open_secret(&s.app, &id, "oauth.refresh_token")
        .await
        .unwrap();

    if let Some(text) = database_text(&s.app) {
        assert!(text.contains(&id), "the scan sees the data");
        for secret in [at.as_str(), rt.as_str(), SECRET, approved.code.as_str()] {
            assert!(!text.contains(secret), "plaintext {secret} in the database");
        }
    }
    let log = logs.text();
    assert!(log.contains("oauth callback"), "the capture works: {log}");
    for secret in [
        at.as_str(),
        rt.as_str(),
        SECRET,
        approved.code.as_str(),
        approved.state.as_str(),
        r.form["code_verifier"].as_str(),
    ] {
        assert!(!log.contains(secret), "{secret} was logged");
    }
}

async fn full_flow_basic_form(db: Db) {
    let secret = "p@ss:w/rd +é%";
    let s = setup(db, false, "client_secret_basic", secret).await;
    s.fake.set(|c| c.form_encoded = true);
    let (id, oauth_url, approved) = connect(&s, secret).await;
    let q = query_of(&oauth_url);
    assert!(!q.contains_key("code_challenge") && !q.contains_key("code_challenge_method"));
    let r = &s.fake.token_requests()[0];
    let enc = |x: &str| url::form_urlencoded::byte_serialize(x.as_bytes()).collect::<String>();
    let expected = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{}:{}", enc(CLIENT_ID), enc(secret))
        )
    );
    assert_eq!(r.authorization.as_deref(), Some(expected.as_str()));
    assert!(!r.form.contains_key("client_secret"));
    assert!(!r.form.contains_key("code_verifier"));
    assert_eq!(r.form["code"], approved.code);
    assert_eq!(status_of(&s.app, &id).await.0, "active");
    assert_eq!(
        token_of(&s.app, &id).await.unwrap(),
        s.fake.last_access_token().unwrap()
    );
}

async fn denial(db: Db) {
    let s = setup(db, true, "client_secret_post", SECRET).await;
    let (id, body) = install(
        &s.app,
        &s.ws,
        &s.token,
        "fake-byo",
        json!({"client_id": CLIENT_ID, "client_secret": SECRET}),
    )
    .await;
    let state = query_of(body["oauth_url"].as_str().unwrap())["state"].clone();
    let res = s
        .app
        .get(
            &callback_uri(&[
                ("error", "access_denied"),
                ("error_description", "The user said <no>"),
                ("state", &state),
            ]),
            None,
        )
        .await;
    let page = assert_page(&res, 200, &[&state]);
    assert!(
        page.contains("&lt;no&gt;") && !page.contains("<no>"),
        "escaped: {page}"
    );
    let (status, reason) = status_of(&s.app, &id).await;
    assert_eq!(status, "error");
    let reason = reason.unwrap();
    assert!(
        reason.contains("access_denied") && reason.contains("did not grant"),
        "{reason}"
    );
    assert!(s.fake.token_requests().is_empty());
    assert!(!secret_names(&s.app, &id)
        .await
        .contains(&"oauth.pkce_verifier".to_string()));
    // The state is spent.
    let res = s
        .app
        .get(&callback_uri(&[("code", "x"), ("state", &state)]), None)
        .await;
    assert_page(&res, 400, &[]);
}

async fn failed_exchange(db: Db) {
    let s = setup(db, true, "client_secret_post", SECRET).await;
    s.fake.set(|c| {
        c.code_failure = Some((
            400,
            json!({"error": "invalid_grant", "error_description": format!("secret {SECRET} and your code are wrong")})
                .to_string(),
        ))
    });
    let (id, body) = install(
        &s.app,
        &s.ws,
        &s.token,
        "fake-byo",
        json!({"client_id": CLIENT_ID, "client_secret": SECRET}),
    )
    .await;
    let approved = s.fake.approve(body["oauth_url"].as_str().unwrap());
    let res = s
        .app
        .get(
            &callback_uri(&[("code", &approved.code), ("state", &approved.state)]),
            None,
        )
        .await;
    assert_page(&res, 502, &[SECRET, &approved.code]);
    let (status, reason) = status_of(&s.app, &id).await;
    assert_eq!(status, "error");
    let reason = reason.unwrap();
    assert!(reason.contains("invalid_grant"), "{reason}");
    assert!(
        !reason.contains(SECRET) && !reason.contains(&approved.code),
        "{reason}"
    );
    let names = secret_names(&s.app, &id).await;
    assert!(!names.iter().any(|n| n.starts_with("oauth.")), "{names:?}");
}

async fn unusable_answer(db: Db) {
    let s = setup(db, false, "client_secret_post", SECRET).await;
    let huge = "x".repeat(3 * 1024 * 1024);
    for (status, body) in [
        (200, "<html>not json</html>".to_string()),
        (200, "{\"token_type\": \"bearer\"}".to_string()),
        (200, "{\"access_token\": 42}".to_string()),
        (500, "{\"access_token\": \"no\"}".to_string()),
        (200, format!("{{\"access_token\": \"{huge}\"}}")),
    ] {
        s.fake
            .set(|c| c.code_failure = Some((status, body.clone())));
        let (id, b) = install(
            &s.app,
            &s.ws,
            &s.token,
            "fake-byo",
            json!({"client_id": CLIENT_ID, "client_secret": SECRET}),
        )
        .await;
        let approved = s.fake.approve(b["oauth_url"].as_str().unwrap());
        let res = s
            .app
            .get(
                &callback_uri(&[("code", &approved.code), ("state", &approved.state)]),
                None,
            )
            .await;
        assert_page(&res, 502, &[SECRET]);
        let (st, reason) = status_of(&s.app, &id).await;
        assert_eq!(st, "error");
        assert!(reason.unwrap().len() < 600);
    }
}

async fn bad_states(db: Db) {
    let s = setup(db, true, "client_secret_post", SECRET).await;
    let (id, _, approved) = connect(&s, SECRET).await;
    // Replay.
    let res = s
        .app
        .get(
            &callback_uri(&[("code", &approved.code), ("state", &approved.state)]),
            None,
        )
        .await;
    let page = assert_page(&res, 400, &[&approved.code]);
    assert!(page.contains("no longer valid"));
    assert_eq!(
        status_of(&s.app, &id).await.0,
        "active",
        "a replay changes nothing"
    );
    assert_eq!(s.fake.token_requests().len(), 1);
    // Unknown and missing.
    for uri in [
        callback_uri(&[("code", "c"), ("state", "not-a-state")]),
        callback_uri(&[("code", "c")]),
        callback_uri(&[("code", "c"), ("state", "")]),
        callback_uri(&[("state", &"s".repeat(5000))]),
        "/api/v1/connectors/oauth/callback".to_string(),
    ] {
        assert_page(&s.app.get(&uri, None).await, 400, &[]);
    }
    // Expired: the same callback eleven minutes later (an injected clock).
    let (id2, body) = install(
        &s.app,
        &s.ws,
        &s.token,
        "fake-byo",
        json!({"client_id": CLIENT_ID, "client_secret": SECRET}),
    )
    .await;
    let approved = s.fake.approve(body["oauth_url"].as_str().unwrap());
    let q = callback::CallbackQuery {
        code: Some(approved.code.clone()),
        state: Some(approved.state.clone()),
        ..Default::default()
    };
    let page = callback::complete(&s.app.state, &q, now_ms() + 11 * 60 * 1000).await;
    assert_eq!(page.status.as_u16(), 400);
    assert_eq!(status_of(&s.app, &id2).await.0, "pending_oauth");
    assert_eq!(
        s.fake.token_requests().len(),
        1,
        "no exchange for an expired state"
    );
}

/// Connects with a token that lives 30 s and moves the server's clock 20 s on, so that 10 s remain: less than half
/// its lifetime, so it is due for a refresh and still valid; then lets the fake answer refreshes with `expires_in`
/// 3600.
async fn connected_expiring(s: &Setup) -> String {
    s.fake.set(|c| c.expires_in = Some(30));
    let (id, _, _) = connect(s, SECRET).await;
    s.app.state.clock.advance(Duration::from_secs(20));
    s.fake.set(|c| c.expires_in = Some(3600));
    id
}

/// `GET /runtime`: the access token it hands out (in the rendered `Authorization` header).
async fn runtime_token(s: &Setup, id: &str) -> String {
    let res = s
        .app
        .get(
            &format!("/api/v1/integrations/{id}/runtime"),
            Some(&s.token),
        )
        .await;
    res.assert_status(200);
    let header = res.json()["mcp"]["headers"]["Authorization"]
        .as_str()
        .unwrap()
        .to_string();
    header.strip_prefix("Bearer ").unwrap().to_string()
}

/// A provider whose access tokens live 30 s and whose refresh tokens rotate: a token is refreshed only when less
/// than 15 s (half its life) remain, ten concurrent reads make one refresh and all take its token, and reads while
/// the new token is fresh make none.
async fn short_lived(db: Db) {
    let s = setup(db, true, "client_secret_post", SECRET).await;
    s.fake.set(|c| {
        c.expires_in = Some(30);
        c.rotate_refresh = true;
    });
    let (id, _, _) = connect(&s, SECRET).await;
    let first = s.fake.last_access_token().unwrap();
    let first_rt = open_secret(&s.app, &id, "oauth.refresh_token")
        .await
        .unwrap();

    // 16 s left: more than half of the 30 s: handed out as it is.
    s.app.state.clock.advance(Duration::from_secs(14));
    for _ in 0..3 {
        assert_eq!(runtime_token(&s, &id).await, first);
    }
    assert_eq!(s.fake.refresh_requests(), 0, "no refresh while fresh");

    // 12 s left: due. Ten concurrent reads, one call to the token endpoint, all get its token.
    s.app.state.clock.advance(Duration::from_secs(4));
    s.fake.set(|c| c.refresh_delay = Duration::from_millis(300));
    let reads = (0..10).map(|_| runtime_token(&s, &id));
    let tokens = futures_util::future::join_all(reads).await;
    assert_eq!(
        s.fake.refresh_requests(),
        1,
        "exactly one token-endpoint call"
    );
    let second = s.fake.last_access_token().unwrap();
    assert_ne!(second, first);
    assert!(tokens.iter().all(|t| *t == second), "{tokens:?}");
    let second_rt = open_secret(&s.app, &id, "oauth.refresh_token")
        .await
        .unwrap();
    assert_ne!(second_rt, first_rt, "the refresh token rotated");

    // The new token lives 30 s too: reads within its first half make no call.
    s.fake.set(|c| c.refresh_delay = Duration::ZERO);
    s.app.state.clock.advance(Duration::from_secs(10));
    for _ in 0..5 {
        assert_eq!(runtime_token(&s, &id).await, second);
    }
    assert_eq!(s.fake.refresh_requests(), 1);

    // Then due again: the next refresh presents the rotated refresh token, once.
    s.app.state.clock.advance(Duration::from_secs(6));
    let reads = (0..10).map(|_| runtime_token(&s, &id));
    futures_util::future::join_all(reads).await;
    assert_eq!(s.fake.refresh_requests(), 2);
    let last = s.fake.token_requests().pop().unwrap();
    assert_eq!(last.form["refresh_token"], second_rt);
    assert_eq!(status_of(&s.app, &id).await.0, "active");
    // The metrics page counts the two refreshes.
    let page = s
        .app
        .state
        .metrics
        .render(plugboard_store::Database::pool_stats(
            s.app.db.store.as_ref(),
        ))
        .unwrap();
    assert!(
        page.contains("plugboard_oauth_refreshes_total{outcome=\"ok\"} 2\n"),
        "{page}"
    );
}

async fn refresh_before_handout(db: Db) {
    let s = setup(db, true, "client_secret_post", SECRET).await;
    let id = connected_expiring(&s).await;
    let first = s.fake.last_access_token().unwrap();
    let old_rt = open_secret(&s.app, &id, "oauth.refresh_token")
        .await
        .unwrap();
    let got = token_of(&s.app, &id).await.unwrap();
    assert_ne!(got, first, "the expiring token was refreshed");
    assert_eq!(got, s.fake.last_access_token().unwrap());
    assert_eq!(s.fake.refresh_requests(), 1);
    let r = s.fake.token_requests().pop().unwrap();
    assert_eq!(r.form["grant_type"], "refresh_token");
    assert_eq!(r.form["refresh_token"], old_rt);
    assert_eq!(r.form["client_id"], CLIENT_ID);
    assert_eq!(r.form["client_secret"], SECRET);
    assert!(!r.form.contains_key("resource"));
    // Fresh now: handed out without another refresh.
    assert_eq!(token_of(&s.app, &id).await.unwrap(), got);
    assert_eq!(s.fake.refresh_requests(), 1);
}

async fn concurrent_refresh(db: Db) {
    let s = setup(db, true, "client_secret_post", SECRET).await;
    let id = connected_expiring(&s).await;
    s.fake.set(|c| c.refresh_delay = Duration::from_millis(300));
    let calls = (0..8).map(|_| token_of(&s.app, &id));
    let results = futures_util::future::join_all(calls).await;
    let tokens: Vec<String> = results.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(s.fake.refresh_requests(), 1, "exactly one refresh");
    let newest = s.fake.last_access_token().unwrap();
    assert!(tokens.iter().all(|t| *t == newest), "{tokens:?}");
}

async fn rotation(db: Db) {
    let s = setup(db, true, "client_secret_post", SECRET).await;
    let id = connected_expiring(&s).await;
    let old_rt = open_secret(&s.app, &id, "oauth.refresh_token")
        .await
        .unwrap();
    s.fake.set(|c| c.expires_in = Some(30));
    token_of(&s.app, &id).await.unwrap();
    let new_rt = open_secret(&s.app, &id, "oauth.refresh_token")
        .await
        .unwrap();
    assert_ne!(
        new_rt, old_rt,
        "the rotated refresh token replaced the old one"
    );
    // The next refresh (once the new 30 s token is due) uses the new one, which the provider accepts.
    s.app.state.clock.advance(Duration::from_secs(20));
    s.fake.set(|c| c.expires_in = Some(3600));
    token_of(&s.app, &id).await.unwrap();
    let reqs = s.fake.token_requests();
    assert_eq!(s.fake.refresh_requests(), 2);
    assert_eq!(reqs.last().unwrap().form["refresh_token"], new_rt);
    assert_eq!(status_of(&s.app, &id).await.0, "active");
}

async fn no_rotation(db: Db) {
    let s = setup(db, true, "client_secret_post", SECRET).await;
    let id = connected_expiring(&s).await;
    let old_rt = open_secret(&s.app, &id, "oauth.refresh_token")
        .await
        .unwrap();
    s.fake.set(|c| {
        c.rotate_refresh = false;
        c.expires_in = Some(30);
    });
    let t1 = token_of(&s.app, &id).await.unwrap();
    assert_eq!(
        open_secret(&s.app, &id, "oauth.refresh_token")
            .await
            .unwrap(),
        old_rt,
        "kept"
    );
    s.app.state.clock.advance(Duration::from_secs(20));
    s.fake.set(|c| c.expires_in = Some(3600));
    let t2 = token_of(&s.app, &id).await.unwrap();
    assert_ne!(t1, t2);
    let reqs = s.fake.token_requests();
    assert_eq!(reqs.last().unwrap().form["refresh_token"], old_rt);
    assert_eq!(s.fake.refresh_requests(), 2);
}

async fn invalid_grant(db: Db) {
    let s = setup(db, true, "client_secret_post", SECRET).await;
    let id = connected_expiring(&s).await;
    s.fake.set(|c| {
        c.refresh_failure = Some((
            400,
            json!({"error": "invalid_grant", "error_description": "refresh token revoked"})
                .to_string(),
        ))
    });
    let err = token_of(&s.app, &id).await.unwrap_err();
    let TokenError::Reconnect(reason) = err else {
        panic!("{err:?}")
    };
    assert!(
        reason.contains("invalid_grant") && reason.contains("Reconnect"),
        "{reason}"
    );
    let (status, stored) = status_of(&s.app, &id).await;
    assert_eq!(status, "error");
    assert_eq!(stored.as_deref(), Some(reason.as_str()));
    // No further calls to the provider while in error.
    assert!(matches!(
        token_of(&s.app, &id).await,
        Err(TokenError::Reconnect(_))
    ));
    assert_eq!(s.fake.refresh_requests(), 1);
    let g = s
        .app
        .db
        .store
        .get_oauth_grant(&IntegrationId::from(&id))
        .await
        .unwrap()
        .unwrap();
    assert!(g.lock_owner.is_none(), "the lock was released");
}

async fn transient_refresh_failure(db: Db) {
    let s = setup(db, true, "client_secret_post", SECRET).await;
    let id = connected_expiring(&s).await;
    let current = s.fake.last_access_token().unwrap();
    s.fake.set(|c| {
        c.refresh_failure = Some((503, "<html>down</html>".into()));
    });
    assert_eq!(token_of(&s.app, &id).await.unwrap(), current);
    assert_eq!(status_of(&s.app, &id).await.0, "active");
    s.fake.set(|c| c.refresh_failure = None);
    assert_ne!(token_of(&s.app, &id).await.unwrap(), current);
}

async fn reconnect(db: Db) {
    let s = setup(db, true, "client_secret_post", SECRET).await;
    let id = connected_expiring(&s).await;
    s.fake
        .set(|c| c.refresh_failure = Some((400, json!({"error": "invalid_grant"}).to_string())));
    assert!(token_of(&s.app, &id).await.is_err());
    assert_eq!(status_of(&s.app, &id).await.0, "error");
    s.fake.set(|c| c.refresh_failure = None);

    let viewer = s.app.member(&s.ws, plugboard_store::Role::Viewer).await;
    start_mcp(&s.app, &viewer, &id).await.assert_status(403);
    let res = start_mcp(&s.app, &s.token, &id).await;
    res.assert_status(200);
    let oauth_url = res.json()["oauth_url"].as_str().unwrap().to_string();
    let q = query_of(&oauth_url);
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["code_challenge_method"], "S256");
    let approved = s.fake.approve(&oauth_url);
    let res = s
        .app
        .get(
            &callback_uri(&[("code", &approved.code), ("state", &approved.state)]),
            None,
        )
        .await;
    assert_page(&res, 200, &[&approved.code, SECRET]);
    assert_eq!(status_of(&s.app, &id).await.0, "active");
    let token = token_of(&s.app, &id).await.unwrap();
    assert_eq!(Some(token), s.fake.last_access_token());
}
