//! OpenID Connect sign-in end to end through the real routes, against a real, certified provider (npm
//! `oidc-provider`, started by the tests): `/auth/oidc/login` → the provider → `/auth/oidc/callback` → the session
//! cookie → `/api/v1`. A new user is made for an unknown verified email; signing in again in the same browser ends
//! the session it held; an unverified email or a tampered ID token starts no session. On both backends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use axum::http::{header, Method};
use plugboard_server::config::OidcConfig;
use plugboard_server::testing::{session_from, test_on_both_backends, Db, TestApp, TestResponse};
use secrecy::SecretString;
use serde_json::json;
use support::idp::{Browser, IdpOptions, TestIdp};

/// `Config::for_tests` has `PLUGBOARD_PUBLIC_URL=http://127.0.0.1:8080`.
const REDIRECT_URI: &str = "http://127.0.0.1:8080/auth/oidc/callback";

test_on_both_backends! {
    a_new_person_signs_in_with_oidc_and_the_session_works_on_the_api => new_person;
    a_known_email_signs_in_as_the_existing_user => known_person;
    an_unverified_email_starts_no_session_and_makes_no_user => unverified;
    a_tampered_id_token_starts_no_session => tampered;
    a_public_client_signs_in_too => public_client;
}

async fn app_for(db: Db, idp: &TestIdp, confidential: bool) -> TestApp {
    let oidc = OidcConfig {
        issuer: idp.issuer.clone(),
        client_id: if confidential {
            idp.confidential_client_id.clone()
        } else {
            idp.public_client_id.clone()
        },
        client_secret: confidential
            .then(|| SecretString::from(idp.confidential_client_secret.clone())),
        scopes: vec!["openid".into(), "email".into(), "profile".into()],
    };
    TestApp::build(db, None, move |c| c.oidc = Some(oidc)).await
}

fn cookies(res: &TestResponse) -> Vec<String> {
    res.headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

/// `/auth/oidc/login`, the provider, `/auth/oidc/callback`: the callback's answer.
async fn sign_in(app: &TestApp) -> TestResponse {
    sign_in_bringing(app, None).await
}

/// [`sign_in`] in a browser that holds the session `brought` (its cookie goes with the callback).
async fn sign_in_bringing(app: &TestApp, brought: Option<&str>) -> TestResponse {
    let start = app.anonymous().get("/auth/oidc/login").await;
    assert_eq!(start.status.as_u16(), 303, "{}", start.text());
    let location = start.headers[header::LOCATION]
        .to_str()
        .unwrap()
        .to_string();
    let pending = cookies(&start)
        .into_iter()
        .find(|c| c.starts_with("plugboard_oidc="))
        .expect("the pending sign-in cookie");
    let mut cookie = pending.split(';').next().unwrap().to_string();
    if let Some(secret) = brought {
        cookie = format!("{cookie}; plugboard_session={secret}");
    }
    let query = Browser::new().authorize(&location, REDIRECT_URI).await;
    app.anonymous()
        .raw(
            Method::GET,
            &format!("/auth/oidc/callback?{query}"),
            &[("cookie", &cookie)],
            None,
        )
        .await
}

async fn new_person(db: Db) {
    let idp = TestIdp::start(IdpOptions::new(REDIRECT_URI)).await;
    idp.add_account("Ada@Example.com", true, Some("Ada Lovelace"))
        .await;
    let app = app_for(db, &idp, true).await;
    assert!(app
        .db
        .store
        .find_user_by_email("ada@example.com")
        .await
        .unwrap()
        .is_none());
    let res = sign_in(&app).await;
    assert_eq!(res.status.as_u16(), 303, "{}", res.text());
    assert_eq!(res.headers[header::LOCATION], "/");
    let set = cookies(&res);
    assert!(
        set.iter()
            .any(|c| c.starts_with("plugboard_oidc=;") && c.contains("Max-Age=0")),
        "{set:?}"
    );
    let session_cookie = set
        .iter()
        .find(|c| c.starts_with("plugboard_session="))
        .unwrap();
    assert!(
        session_cookie.ends_with("; Path=/; Max-Age=604800; HttpOnly; SameSite=Lax"),
        "{session_cookie}"
    );
    let secret = session_from(&res.headers).unwrap();
    let browser = app.with_session(&secret);
    let me = browser.get("/api/v1/me").await;
    me.assert_status(200);
    assert_eq!(me.json()["email"], "ada@example.com");
    assert_eq!(me.json()["name"], "Ada Lovelace");
    assert_eq!(me.json()["workspaces"], json!([]));
    let user = app
        .db
        .store
        .find_user_by_email("ada@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(me.json()["id"], user.id);
    browser
        .post("/api/v1/workspaces", json!({"name": "Ada's"}))
        .await
        .assert_status(201);
    // Signing in again in this browser: the same user, a new session, and the session it held ends.
    let again = sign_in_bringing(&app, Some(&secret)).await;
    assert_eq!(again.status.as_u16(), 303);
    let second = session_from(&again.headers).unwrap();
    assert_ne!(second, secret);
    assert_eq!(
        app.with_session(&second).get("/api/v1/me").await.json()["id"],
        user.id
    );
    app.with_session(&secret)
        .get("/api/v1/me")
        .await
        .assert_status(401);
    // A sign-in in another browser keeps this one.
    let elsewhere = sign_in(&app).await;
    assert_eq!(elsewhere.status.as_u16(), 303);
    app.with_session(&second)
        .get("/api/v1/me")
        .await
        .assert_status(200);
    assert_eq!(app.db.store.list_users().await.unwrap().len(), 1);
}

async fn known_person(db: Db) {
    let idp = TestIdp::start(IdpOptions::new(REDIRECT_URI)).await;
    idp.add_account("GRACE@example.com", true, Some("Grace"))
        .await;
    let app = app_for(db, &idp, true).await;
    let team = app.team().await;
    let existing = app
        .db
        .store
        .create_user("grace@example.com", "Grace Hopper")
        .await
        .unwrap();
    app.db
        .store
        .add_member(team.id(), &existing.id, plugboard_store::Role::Admin)
        .await
        .unwrap();
    let res = sign_in(&app).await;
    assert_eq!(res.status.as_u16(), 303, "{}", res.text());
    let me = app
        .with_session(&session_from(&res.headers).unwrap())
        .get("/api/v1/me")
        .await
        .json();
    assert_eq!(me["id"], existing.id);
    assert_eq!(
        me["name"], "Grace Hopper",
        "an existing user keeps their name"
    );
    assert_eq!(me["workspaces"][0]["role"], "ADMIN");
}

async fn unverified(db: Db) {
    let idp = TestIdp::start(IdpOptions::new(REDIRECT_URI)).await;
    idp.add_account("eve@example.com", false, Some("Eve")).await;
    let app = app_for(db, &idp, true).await;
    let res = sign_in(&app).await;
    assert_eq!(res.status.as_u16(), 403);
    assert!(res.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(res.text().contains("not verified"), "{}", res.text());
    assert!(session_from(&res.headers).is_none(), "no session");
    assert!(
        app.db
            .store
            .find_user_by_email("eve@example.com")
            .await
            .unwrap()
            .is_none(),
        "no user"
    );
}

async fn tampered(db: Db) {
    let idp = TestIdp::start(IdpOptions::new(REDIRECT_URI)).await;
    idp.add_account("mallory@example.com", true, None).await;
    let app = app_for(db, &idp, true).await;
    for mode in ["wrong_aud", "alg_none", "expired"] {
        idp.tamper(Some(mode)).await;
        let res = sign_in(&app).await;
        assert_eq!(res.status.as_u16(), 502, "{mode}: {}", res.text());
        assert!(res.text().contains("The sign-in was refused"), "{mode}");
        assert!(session_from(&res.headers).is_none(), "{mode}: no session");
    }
    assert!(app.db.store.list_users().await.unwrap().is_empty());
}

async fn public_client(db: Db) {
    let idp = TestIdp::start(IdpOptions::new(REDIRECT_URI)).await;
    idp.add_account("linus@example.com", true, None).await;
    let app = app_for(db, &idp, false).await;
    let res = sign_in(&app).await;
    assert_eq!(res.status.as_u16(), 303, "{}", res.text());
    let me = app
        .with_session(&session_from(&res.headers).unwrap())
        .get("/api/v1/me")
        .await;
    assert_eq!(me.json()["email"], "linus@example.com");
    assert_eq!(
        me.json()["name"],
        "linus@example.com",
        "no name claim: the email stands in"
    );
}
