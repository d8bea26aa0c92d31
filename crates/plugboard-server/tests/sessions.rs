//! Browser sessions and sign-in links through the real routes: the cookie as specified, session fixation, CSRF, a
//! stolen session after sign-out, replayed and expired links, idle and absolute expiry (time advanced, never slept),
//! removal of the user, expiring tokens, and last uses written at most once a minute. On both backends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use axum::http::{header, Method};
use plugboard_server::testing::{session_from, test_on_both_backends, Db, TestApp};
use plugboard_store::{NewAudit, UserId};
use serde_json::json;

test_on_both_backends! {
    a_sign_in_link_sets_the_specified_cookie_and_signs_the_person_in => link_signs_in;
    the_cookie_is_secure_when_the_public_url_is_https => secure_cookie;
    every_sign_in_gets_a_new_secret_and_ends_the_session_the_browser_brought => fixation;
    a_planted_or_malformed_session_cookie_signs_nobody_in => planted_cookie;
    a_cookie_request_that_changes_something_needs_plugboards_origin => csrf;
    bearer_requests_need_no_origin_and_win_over_a_cookie => bearer_first;
    a_stolen_session_fails_everywhere_within_a_second_after_sign_out => stolen_after_logout;
    a_replayed_sign_in_link_signs_nobody_in => replayed_link;
    an_expired_or_unknown_sign_in_link_says_so_and_signs_nobody_in => expired_link;
    a_session_ends_after_twelve_hours_without_use => idle_expiry;
    a_session_ends_seven_days_after_sign_in_however_much_it_is_used => absolute_expiry;
    a_session_records_its_use_at_most_once_a_minute => session_last_use;
    a_session_ends_when_its_user_is_removed => removed_user;
    an_expired_token_answers_401 => expiring_token;
    a_token_records_its_use_at_most_once_a_minute_not_per_request => token_last_use;
    a_revoked_token_fails_on_another_instance_within_a_second => revoked_elsewhere;
}

/// Waits (polling, at most `limit`) until `check` holds; panics with `what` otherwise.
async fn within<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    loop {
        if check().await {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn link_path(app: &TestApp, user: &UserId) -> String {
    let link = plugboard_server::people::create_sign_in_link(
        app.db.store.as_ref(),
        &app.state.config.public_url,
        user,
        app.state.clock.now_ms(),
    )
    .await
    .unwrap();
    assert!(
        link.url.starts_with("http://127.0.0.1:8080/auth/link/"),
        "{}",
        link.url
    );
    let now = app.state.clock.now_ms();
    assert!(
        (link.expires_at - now - 15 * 60 * 1000).abs() < 5_000,
        "15 minutes"
    );
    link.url
        .strip_prefix("http://127.0.0.1:8080")
        .unwrap()
        .to_string()
}

async fn link_signs_in(db: Db) {
    let app = TestApp::new(db).await;
    let team = app.team().await;
    let user = team.owner.user_id().await;
    let path = link_path(&app, &user).await;
    let res = app.anonymous().get(&path).await;
    assert_eq!(res.status.as_u16(), 303, "{}", res.text());
    assert_eq!(res.headers[header::LOCATION], "/");
    let set_cookie: Vec<&str> = res
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(set_cookie.len(), 1);
    let cookie = set_cookie[0];
    let secret = session_from(&res.headers).unwrap();
    assert_eq!(
        cookie,
        format!("plugboard_session={secret}; Path=/; Max-Age=604800; HttpOnly; SameSite=Lax")
    );
    // Only a hash of the secret is stored.
    let hash = plugboard_server::sessions::hash_secret(&secret);
    assert!(app.db.store.session_by_hash(&hash).await.unwrap().is_some());
    assert!(app
        .db
        .store
        .session_by_hash(secret.as_bytes())
        .await
        .unwrap()
        .is_none());
    let me = app.with_session(&secret).get("/api/v1/me").await;
    me.assert_status(200);
    assert_eq!(me.json()["id"], user);
    assert_eq!(me.json()["workspaces"][0]["role"], "OWNER");
    // The session works on every /api/v1 endpoint, like a token.
    app.with_session(&secret)
        .get(&format!("/api/v1/integrations?workspace_id={}", team.id()))
        .await
        .assert_status(200);
}

async fn secure_cookie(db: Db) {
    let app = TestApp::build(db, None, |c| {
        c.public_url = "https://plugboard.example.com".into()
    })
    .await;
    let (user, _) = app.user("ada@example.com").await;
    let link = plugboard_server::people::create_sign_in_link(
        app.db.store.as_ref(),
        &app.state.config.public_url,
        &user.id,
        app.state.clock.now_ms(),
    )
    .await
    .unwrap();
    assert!(link
        .url
        .starts_with("https://plugboard.example.com/auth/link/"));
    let path = link
        .url
        .strip_prefix("https://plugboard.example.com")
        .unwrap();
    let res = app.anonymous().get(path).await;
    let cookie = res.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        cookie.ends_with("; HttpOnly; SameSite=Lax; Secure"),
        "{cookie}"
    );
    let secret = session_from(&res.headers).unwrap();
    let caller = app.with_session(&secret);
    assert_eq!(app.origin(), "https://plugboard.example.com");
    caller
        .post("/api/v1/workspaces", json!({"name": "A"}))
        .await
        .assert_status(201);
    let out = caller.raw(Method::POST, "/auth/logout", &[], None).await;
    assert_eq!(out.status.as_u16(), 303);
    assert!(out.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .ends_with("; Secure"));
}

async fn fixation(db: Db) {
    let app = TestApp::new(db).await;
    let (user, _) = app.user("ada@example.com").await;
    let first = app.session_for(&user.id).await;
    // The browser brings its current session to the next sign-in: it gets a new secret, the old one ends.
    let path = link_path(&app, &user.id).await;
    let res = app.with_session(&first).get(&path).await;
    assert_eq!(res.status.as_u16(), 303);
    let second = session_from(&res.headers).unwrap();
    assert_ne!(first, second, "a new secret at every sign-in");
    app.with_session(&first)
        .get("/api/v1/me")
        .await
        .assert_status(401);
    app.with_session(&second)
        .get("/api/v1/me")
        .await
        .assert_status(200);
    // Another sign-in of the same person elsewhere keeps this one.
    let third = app.session_for(&user.id).await;
    assert!(third != second && third != first);
    app.with_session(&second)
        .get("/api/v1/me")
        .await
        .assert_status(200);
}

async fn planted_cookie(db: Db) {
    let app = TestApp::new(db).await;
    let (user, _) = app.user("ada@example.com").await;
    // An attacker plants a cookie value of their choosing before the victim signs in: it is never a session.
    let planted = "A".repeat(43);
    let path = link_path(&app, &user.id).await;
    let res = app.with_session(&planted).get(&path).await;
    let secret = session_from(&res.headers).unwrap();
    assert_ne!(secret, planted);
    for bad in [planted.as_str(), "short", &"x".repeat(5000), "\"quoted\""] {
        let res = app.with_session(bad).get("/api/v1/me").await;
        res.assert_status(401);
        assert_eq!(res.json()["code"], "unauthenticated");
    }
    // Two different session cookies (one tossed in from elsewhere): refused rather than guessed.
    let res = app
        .anonymous()
        .raw(
            Method::GET,
            "/api/v1/me",
            &[(
                "cookie",
                &format!("plugboard_session={secret}; plugboard_session={planted}"),
            )],
            None,
        )
        .await;
    res.assert_status(401);
    assert!(res.json()["error"]
        .as_str()
        .unwrap()
        .contains("several plugboard_session cookies"));
}

async fn csrf(db: Db) {
    let app = TestApp::new(db).await;
    let team = app.team().await;
    let browser = team.owner.by_cookie().await;
    let before = app.db.store.list_workspaces().await.unwrap().len();
    for origin in [
        None,
        Some("https://evil.example"),
        Some("http://127.0.0.1:8081"),
        Some("null"),
        Some("http://127.0.0.1:8080.evil.example"),
    ] {
        let forged = browser.with_origin(origin);
        for (method, uri, body) in [
            (
                Method::POST,
                "/api/v1/workspaces".to_string(),
                Some(json!({"name": "forged"})),
            ),
            (
                Method::PATCH,
                format!("/api/v1/workspaces/{}", team.id()),
                Some(json!({"name": "forged"})),
            ),
            (
                Method::DELETE,
                format!("/api/v1/workspaces/{}", team.id()),
                None,
            ),
            (
                Method::POST,
                "/api/v1/tokens".to_string(),
                Some(json!({"name": "forged"})),
            ),
            (
                Method::PUT,
                format!("/api/v1/workspaces/{}", team.id()),
                Some(json!({})),
            ),
        ] {
            let res = forged.send(method.clone(), &uri, body).await;
            if method == Method::PUT {
                // No PUT route: 405 before any authentication.
                assert_eq!(res.status.as_u16(), 405);
                continue;
            }
            res.assert_status(403);
            assert_eq!(
                res.json()["code"],
                "csrf_rejected",
                "{method} {uri} from {origin:?}"
            );
        }
    }
    assert_eq!(
        app.db.store.list_workspaces().await.unwrap().len(),
        before,
        "nothing stored"
    );
    assert!(
        app.db
            .store
            .list_tokens(&browser.user_id().await, false)
            .await
            .unwrap()
            .len()
            == 1
    );
    // Reading needs no Origin; the right Origin (written with a default port, or in capitals) passes.
    browser
        .with_origin(None)
        .get("/api/v1/me")
        .await
        .assert_status(200);
    browser
        .post("/api/v1/workspaces", json!({"name": "mine"}))
        .await
        .assert_status(201);
    browser
        .with_origin(Some("HTTP://127.0.0.1:8080"))
        .post("/api/v1/workspaces", json!({"name": "mine too"}))
        .await
        .assert_status(201);
    // Sign-out from another origin is refused too (and the session lives on).
    let res = browser
        .with_origin(Some("https://evil.example"))
        .raw(Method::POST, "/auth/logout", &[], None)
        .await;
    res.assert_status(403);
    assert_eq!(res.json()["code"], "csrf_rejected");
    browser.get("/api/v1/me").await.assert_status(200);
}

async fn bearer_first(db: Db) {
    let app = TestApp::new(db).await;
    let team = app.team().await;
    // A bearer request is not subject to the Origin rule.
    team.owner
        .with_origin(Some("https://evil.example"))
        .post("/api/v1/workspaces", json!({"name": "by token"}))
        .await
        .assert_status(201);
    team.owner
        .post("/api/v1/tokens", json!({"name": "t"}))
        .await
        .assert_status(201);
    // With both, the bearer token decides: a bad token is a 401 even beside a good cookie.
    let browser = team.owner.by_cookie().await;
    let res = browser
        .raw(
            Method::GET,
            "/api/v1/me",
            &[("authorization", "Bearer pb_not-a-token")],
            None,
        )
        .await;
    res.assert_status(401);
    let res = browser
        .raw(
            Method::GET,
            "/api/v1/me",
            &[("authorization", "Basic YTpi")],
            None,
        )
        .await;
    res.assert_status(401);
    assert_eq!(res.headers[header::WWW_AUTHENTICATE], "Bearer");
}

async fn stolen_after_logout(db: Db) {
    let app = TestApp::new(db).await;
    let other = app.another_instance().await;
    let (user, _) = app.user("ada@example.com").await;
    let secret = app.session_for(&user.id).await;
    // Both instances have verified (and cached) the session.
    app.with_session(&secret)
        .get("/api/v1/me")
        .await
        .assert_status(200);
    let on_other = || other.with_session(&secret).with_origin(Some(&app.origin()));
    on_other().get("/api/v1/me").await.assert_status(200);
    let res = app
        .with_session(&secret)
        .raw(Method::POST, "/auth/logout", &[], None)
        .await;
    assert_eq!(res.status.as_u16(), 303);
    assert_eq!(res.headers[header::LOCATION], "/");
    let cleared = res.headers[header::SET_COOKIE].to_str().unwrap();
    assert_eq!(
        cleared,
        "plugboard_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"
    );
    assert!(app
        .db
        .store
        .session_by_hash(&plugboard_server::sessions::hash_secret(&secret))
        .await
        .unwrap()
        .is_none());
    // The stolen cookie, replayed here and on the other instance.
    let res = app.with_session(&secret).get("/api/v1/me").await;
    res.assert_status(401);
    within(
        Duration::from_secs(1),
        "the sign-out reaching the other instance",
        || async { on_other().get("/api/v1/me").await.status.as_u16() == 401 },
    )
    .await;
    // Signing out again (or signed out) is harmless.
    let again = app
        .with_session(&secret)
        .raw(Method::POST, "/auth/logout", &[], None)
        .await;
    assert_eq!(again.status.as_u16(), 303);
    assert_eq!(
        app.anonymous()
            .raw(Method::POST, "/auth/logout", &[], None)
            .await
            .status
            .as_u16(),
        303
    );
}

async fn replayed_link(db: Db) {
    let app = TestApp::new(db).await;
    let (user, _) = app.user("ada@example.com").await;
    let path = link_path(&app, &user.id).await;
    // A link checker's HEAD spends nothing.
    let head = app.anonymous().raw(Method::HEAD, &path, &[], None).await;
    assert_eq!(head.status.as_u16(), 200);
    assert!(head.headers.get(header::SET_COOKIE).is_none());
    let first = app.anonymous().get(&path).await;
    assert_eq!(first.status.as_u16(), 303);
    let replay = app.anonymous().get(&path).await;
    assert_eq!(replay.status.as_u16(), 410);
    assert!(replay.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(
        replay.headers.get(header::SET_COOKIE).is_none(),
        "no session"
    );
    let page = replay.text();
    assert!(
        page.contains("This sign-in link was already used")
            && page.contains("ask your administrator for a new link"),
        "{page}"
    );
    assert!(
        !page.contains(path.rsplit('/').next().unwrap()),
        "the page never shows the secret"
    );
    assert_eq!(replay.headers[header::X_FRAME_OPTIONS], "DENY");
}

async fn expired_link(db: Db) {
    let app = TestApp::new(db).await;
    let (user, _) = app.user("ada@example.com").await;
    let path = link_path(&app, &user.id).await;
    app.state.clock.advance(Duration::from_secs(15 * 60));
    let res = app.anonymous().get(&path).await;
    assert_eq!(res.status.as_u16(), 410);
    assert!(res.headers.get(header::SET_COOKIE).is_none());
    assert!(
        res.text().contains("This sign-in link has expired"),
        "{}",
        res.text()
    );
    // Just inside the 15 minutes it works.
    let fresh = link_path(&app, &user.id).await;
    app.state.clock.advance(Duration::from_secs(15 * 60 - 1));
    assert_eq!(app.anonymous().get(&fresh).await.status.as_u16(), 303);
    for unknown in [
        "/auth/link/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "/auth/link/nope",
        "/auth/link/%FF%FE",
    ] {
        let res = app.anonymous().get(unknown).await;
        assert_eq!(res.status.as_u16(), 404, "{unknown}");
        assert!(res.text().contains("This sign-in link is not valid"));
        assert!(res.headers.get(header::SET_COOKIE).is_none());
    }
}

async fn idle_expiry(db: Db) {
    let app = TestApp::new(db).await;
    let (user, _) = app.user("ada@example.com").await;
    let secret = app.session_for(&user.id).await;
    let caller = app.with_session(&secret);
    app.state
        .clock
        .advance(Duration::from_secs(11 * 3600 + 59 * 60));
    caller.get("/api/v1/me").await.assert_status(200);
    // Used just now: another 12 hours from here.
    app.state.clock.advance(Duration::from_secs(11 * 3600));
    caller.get("/api/v1/me").await.assert_status(200);
    app.state.clock.advance(Duration::from_secs(12 * 3600));
    let res = caller.get("/api/v1/me").await;
    res.assert_status(401);
    assert!(res.json()["error"]
        .as_str()
        .unwrap()
        .contains("sign in again"));
}

async fn absolute_expiry(db: Db) {
    let app = TestApp::new(db).await;
    let (user, _) = app.user("ada@example.com").await;
    let secret = app.session_for(&user.id).await;
    let caller = app.with_session(&secret);
    // Used every 10 hours for 7 days less a minute: alive throughout.
    for _ in 0..16 {
        app.state.clock.advance(Duration::from_secs(10 * 3600));
        caller.get("/api/v1/me").await.assert_status(200);
    }
    app.state
        .clock
        .advance(Duration::from_secs(7 * 24 * 3600 - 160 * 3600 - 60));
    caller.get("/api/v1/me").await.assert_status(200);
    app.state.clock.advance(Duration::from_secs(60));
    caller.get("/api/v1/me").await.assert_status(401);
}

async fn last_use(app: &TestApp, secret: &str) -> i64 {
    app.db
        .store
        .session_by_hash(&plugboard_server::sessions::hash_secret(secret))
        .await
        .unwrap()
        .unwrap()
        .last_used_at
}

async fn session_last_use(db: Db) {
    let app = TestApp::new(db).await;
    let (user, _) = app.user("ada@example.com").await;
    let secret = app.session_for(&user.id).await;
    let started = last_use(&app, &secret).await;
    let caller = app.with_session(&secret);
    // Thirty requests over 59 seconds: not one write (a write would record the advanced time).
    for _ in 0..30 {
        app.state.clock.advance(Duration::from_millis(1_966));
        caller.get("/api/v1/me").await.assert_status(200);
    }
    assert_eq!(
        last_use(&app, &secret).await,
        started,
        "no write within the minute"
    );
    app.state.clock.advance(Duration::from_secs(2));
    caller.get("/api/v1/me").await.assert_status(200);
    let now = app.state.clock.now_ms();
    let written = last_use(&app, &secret).await;
    assert!(
        written > started + 60_000 && written <= now,
        "one write after the minute"
    );
    caller.get("/api/v1/me").await.assert_status(200);
    assert_eq!(last_use(&app, &secret).await, written);
}

async fn removed_user(db: Db) {
    let app = TestApp::new(db).await;
    let other = app.another_instance().await;
    let (user, token) = app.user("leaver@example.com").await;
    let secret = app.session_for(&user.id).await;
    app.with_session(&secret)
        .get("/api/v1/me")
        .await
        .assert_status(200);
    other
        .with_session(&secret)
        .get("/api/v1/me")
        .await
        .assert_status(200);
    other
        .with_token(&token)
        .get("/api/v1/me")
        .await
        .assert_status(200);
    let audit = NewAudit {
        workspace_id: None,
        actor_id: None,
        action: "user_removed".into(),
        target: Some(user.id.to_string()),
        detail: json!({}),
    };
    assert_eq!(
        app.db.store.remove_user(&user.id, audit).await.unwrap(),
        plugboard_store::UserRemoval::Removed
    );
    within(
        Duration::from_secs(1),
        "the removal reaching both instances",
        || async {
            app.with_session(&secret)
                .get("/api/v1/me")
                .await
                .status
                .as_u16()
                == 401
                && other
                    .with_session(&secret)
                    .get("/api/v1/me")
                    .await
                    .status
                    .as_u16()
                    == 401
                && other
                    .with_token(&token)
                    .get("/api/v1/me")
                    .await
                    .status
                    .as_u16()
                    == 401
        },
    )
    .await;
}

async fn expiring_token(db: Db) {
    let app = TestApp::new(db).await;
    let team = app.team().await;
    let res = team
        .owner
        .post(
            "/api/v1/tokens",
            json!({"name": "ci", "expires_in_days": 2}),
        )
        .await;
    res.assert_status(201);
    let token = res.json()["token"].as_str().unwrap().to_string();
    let listed = team.owner.get("/api/v1/tokens").await.json();
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "ci")
        .unwrap()
        .clone();
    let now = app.state.clock.now_ms();
    let expires = entry["expires_at"].as_i64().unwrap();
    assert!((expires - now - 2 * 86_400_000).abs() < 5_000, "two days");
    let caller = app.with_token(&token);
    caller.get("/api/v1/me").await.assert_status(200);
    app.state
        .clock
        .advance(Duration::from_secs(2 * 86_400 - 60));
    caller.get("/api/v1/me").await.assert_status(200);
    app.state.clock.advance(Duration::from_secs(61));
    let res = caller.get("/api/v1/me").await;
    res.assert_status(401);
    assert_eq!(res.json()["code"], "token_expired");
    assert!(res.json()["error"]
        .as_str()
        .unwrap()
        .contains("create a new one"));
    // The token without expiry still works.
    team.owner.get("/api/v1/me").await.assert_status(200);
}

async fn token_row(app: &TestApp, user: &UserId, id: &str) -> Option<i64> {
    app.db
        .store
        .list_tokens(user, true)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.id == id)
        .unwrap()
        .last_used_at
}

async fn token_last_use(db: Db) {
    let app = TestApp::new(db).await;
    let team = app.team().await;
    let user = team.owner.user_id().await;
    let created = team
        .owner
        .post("/api/v1/tokens", json!({"name": "ci"}))
        .await
        .json();
    let (id, token) = (
        created["id"].as_str().unwrap(),
        created["token"].as_str().unwrap(),
    );
    assert_eq!(token_row(&app, &user, id).await, None, "never used");
    let caller = app.with_token(token);
    caller.get("/api/v1/me").await.assert_status(200);
    let first = token_row(&app, &user, id)
        .await
        .expect("the first use is written");
    for _ in 0..20 {
        app.state.clock.advance(Duration::from_millis(2_900));
        caller.get("/api/v1/tokens").await.assert_status(200);
    }
    assert_eq!(
        token_row(&app, &user, id).await,
        Some(first),
        "no write per request"
    );
    app.state.clock.advance(Duration::from_secs(2));
    caller.get("/api/v1/me").await.assert_status(200);
    let second = token_row(&app, &user, id).await.unwrap();
    assert!(second >= first + 60_000, "written again after a minute");
    let listed = caller.get("/api/v1/tokens").await.json();
    let shown = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap()["last_used_at"]
        .clone();
    assert_eq!(shown, json!(second));
}

async fn revoked_elsewhere(db: Db) {
    let app = TestApp::new(db).await;
    let other = app.another_instance().await;
    let team = app.team().await;
    let created = team
        .owner
        .post("/api/v1/tokens", json!({"name": "ci"}))
        .await
        .json();
    let (id, token) = (
        created["id"].as_str().unwrap(),
        created["token"].as_str().unwrap(),
    );
    other
        .with_token(token)
        .get("/api/v1/me")
        .await
        .assert_status(200);
    // Revoked by its owner through a browser session.
    let browser = team.owner.by_cookie().await;
    browser
        .delete(&format!("/api/v1/tokens/{id}"))
        .await
        .assert_status(204);
    app.with_token(token)
        .get("/api/v1/me")
        .await
        .assert_status(401);
    within(
        Duration::from_secs(1),
        "the revocation reaching the other instance",
        || async {
            other
                .with_token(token)
                .get("/api/v1/me")
                .await
                .status
                .as_u16()
                == 401
        },
    )
    .await;
}
