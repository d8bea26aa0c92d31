//! OpenID Connect sign-in against a real, certified provider (npm `oidc-provider`, started by the tests), through
//! the `oidc` module in-process and through its two routes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use plugboard_server::oidc::web::{self, SignInCompletion};
use plugboard_server::oidc::{
    Callback, IdTokenProblem, Oidc, OidcError, OidcSettings, VerifiedIdentity,
};
use secrecy::SecretString;
use support::idp::{Browser, IdpOptions, TestIdp};
use tower::ServiceExt;

const REDIRECT_URI: &str = "http://127.0.0.1:8080/auth/oidc/callback";
const KEY: [u8; 32] = [42u8; 32];

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Confidential,
    Public,
}

fn settings(idp: &TestIdp, kind: Kind) -> OidcSettings {
    OidcSettings {
        issuer: idp.issuer.clone(),
        client_id: match kind {
            Kind::Confidential => idp.confidential_client_id.clone(),
            Kind::Public => idp.public_client_id.clone(),
        },
        client_secret: (kind == Kind::Confidential)
            .then(|| SecretString::from(idp.confidential_client_secret.clone())),
        scopes: vec!["openid".into(), "email".into(), "profile".into()],
        redirect_uri: REDIRECT_URI.into(),
        connect_timeout: Duration::from_secs(5),
        timeout: Duration::from_secs(10),
        secure_cookies: false,
    }
}

fn oidc(idp: &TestIdp, kind: Kind) -> Oidc {
    Oidc::new(settings(idp, kind), &KEY).expect("relying party")
}

async fn idp() -> TestIdp {
    TestIdp::start(IdpOptions::new(REDIRECT_URI)).await
}

/// start → the provider's authorization endpoint, driven like a browser → the callback's values → finish.
async fn sign_in(rp: &Oidc) -> Result<VerifiedIdentity, OidcError> {
    let (callback, pending) = authorize(rp).await;
    rp.finish_login(&callback, Some(&pending)).await
}

/// The callback values and the pending cookie of one sign-in at the provider.
async fn authorize(rp: &Oidc) -> (Callback, String) {
    let start = rp.start_login().await.expect("start");
    let query = Browser::new()
        .authorize(&start.authorization_url, REDIRECT_URI)
        .await;
    (
        Callback::from_query(&query),
        start.pending.cookie_value().to_string(),
    )
}

#[tokio::test]
async fn a_person_signs_in_with_a_confidential_client_and_gets_a_verified_identity() {
    let idp = idp().await;
    let sub = idp
        .add_account("Ada@Example.com", true, Some("Ada Lovelace"))
        .await;
    let rp = oidc(&idp, Kind::Confidential);
    let start = rp.start_login().await.expect("start");
    let url = reqwest::Url::parse(&start.authorization_url).unwrap();
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert!(
        url.as_str().starts_with(&format!("{}/auth?", idp.issuer)),
        "{url}"
    );
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["redirect_uri"], REDIRECT_URI);
    assert_eq!(q["scope"], "openid email profile");
    assert!(q["state"].len() >= 22 && q["nonce"].len() >= 22 && q["code_challenge"].len() == 43);
    let pending = start.pending.cookie_value();
    assert!(
        !pending.contains(&q["state"]) && !pending.contains(&q["nonce"]),
        "sealed"
    );

    let query = Browser::new()
        .authorize(&start.authorization_url, REDIRECT_URI)
        .await;
    let identity = rp
        .finish_login(&Callback::from_query(&query), Some(pending))
        .await
        .expect("signed in");
    assert_eq!(
        identity,
        VerifiedIdentity {
            email: "ada@example.com".into(),
            name: "Ada Lovelace".into(),
            subject: sub,
            issuer: idp.issuer.clone(),
        }
    );
    assert_eq!(
        idp.stats().await["userinfo_requests"],
        1,
        "the certified default keeps email out of the ID token: it came from userinfo"
    );
}

#[tokio::test]
async fn claims_in_the_id_token_are_used_as_well_as_those_from_userinfo() {
    let mut options = IdpOptions::new(REDIRECT_URI);
    options.claims_in_id_token = true;
    let idp = TestIdp::start(options).await;
    idp.add_account("grace@example.com", true, None).await;
    let identity = sign_in(&oidc(&idp, Kind::Confidential))
        .await
        .expect("signed in");
    assert_eq!(identity.email, "grace@example.com");
    assert_eq!(
        identity.name, "grace@example.com",
        "without a name claim the email stands in"
    );
    assert_eq!(
        idp.stats().await["userinfo_requests"],
        0,
        "the ID token sufficed"
    );
}

#[tokio::test]
async fn a_public_client_signs_in_with_pkce_and_no_secret() {
    let idp = idp().await;
    let sub = idp
        .add_account("linus@example.com", true, Some("Linus"))
        .await;
    let identity = sign_in(&oidc(&idp, Kind::Public)).await.expect("signed in");
    assert_eq!(
        (identity.subject, identity.email),
        (sub, "linus@example.com".to_string())
    );
}

#[tokio::test]
async fn a_code_from_one_sign_in_cannot_be_finished_with_another_sign_ins_cookie() {
    // Each sign-in has its own state, nonce and PKCE verifier, sealed in its own cookie.
    let idp = idp().await;
    idp.add_account("pkce@example.com", true, None).await;
    let rp = oidc(&idp, Kind::Public);
    let (cb_a, _pending_a) = authorize(&rp).await;
    let (_cb_b, pending_b) = authorize(&rp).await;
    assert_eq!(
        rp.finish_login(&cb_a, Some(&pending_b)).await,
        Err(OidcError::StateMismatch),
        "a code from one sign-in cannot be finished with another sign-in's cookie"
    );
}

#[tokio::test]
async fn an_unverified_email_is_refused() {
    let idp = idp().await;
    idp.add_account("unverified@example.com", false, Some("Eve"))
        .await;
    let err = sign_in(&oidc(&idp, Kind::Confidential)).await.unwrap_err();
    assert_eq!(err, OidcError::EmailNotVerified);
    assert!(
        err.to_string()
            .contains("Your identity provider says your email address is not verified"),
        "{err}"
    );
    assert_eq!(err.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_unverified_email_in_the_id_token_is_refused_too() {
    let mut options = IdpOptions::new(REDIRECT_URI);
    options.claims_in_id_token = true;
    let idp = TestIdp::start(options).await;
    idp.add_account("unverified@example.com", false, None).await;
    assert_eq!(
        sign_in(&oidc(&idp, Kind::Public)).await,
        Err(OidcError::EmailNotVerified)
    );
}

#[tokio::test]
async fn a_rotated_signing_key_is_fetched_once_and_accepted() {
    let idp = idp().await;
    idp.add_account("rotate@example.com", true, None).await;
    let rp = oidc(&idp, Kind::Confidential);
    sign_in(&rp).await.expect("first sign-in");
    let before = idp.stats().await;
    let old_kid = before["last_id_token_kid"].as_str().unwrap().to_string();

    let new_kid = idp.rotate_keys().await;
    assert_ne!(new_kid, old_kid);
    let identity = sign_in(&rp).await.expect("signed in with the new key");
    assert_eq!(identity.email, "rotate@example.com");
    let after = idp.stats().await;
    assert_eq!(
        after["last_id_token_kid"],
        new_kid.as_str(),
        "the ID token carried the new kid"
    );
    assert_eq!(
        after["jwks_fetches"].as_u64().unwrap(),
        before["jwks_fetches"].as_u64().unwrap() + 1,
        "exactly one JWKS fetch for the unknown kid"
    );
    // The new keys are kept: another sign-in fetches nothing.
    sign_in(&rp).await.expect("third sign-in");
    assert_eq!(idp.stats().await["jwks_fetches"], after["jwks_fetches"]);
}

async fn tampered(mode: &str, kind: Kind) -> OidcError {
    let idp = idp().await;
    idp.add_account("mallory@example.com", true, None).await;
    idp.tamper(Some(mode)).await;
    let result = sign_in(&oidc(&idp, kind)).await;
    assert_eq!(
        idp.stats().await["token_responses"],
        1,
        "the provider issued one token response"
    );
    result.expect_err("a tampered ID token must be refused")
}

#[tokio::test]
async fn an_id_token_for_another_audience_is_refused() {
    assert_eq!(
        tampered("wrong_aud", Kind::Confidential).await,
        OidcError::IdToken(IdTokenProblem::WrongAudience)
    );
}

#[tokio::test]
async fn an_id_token_from_another_issuer_is_refused() {
    assert_eq!(
        tampered("wrong_iss", Kind::Confidential).await,
        OidcError::IdToken(IdTokenProblem::WrongIssuer)
    );
}

#[tokio::test]
async fn an_id_token_with_another_nonce_is_refused() {
    assert_eq!(
        tampered("wrong_nonce", Kind::Public).await,
        OidcError::IdToken(IdTokenProblem::WrongNonce)
    );
}

#[tokio::test]
async fn an_expired_id_token_is_refused() {
    assert_eq!(
        tampered("expired", Kind::Confidential).await,
        OidcError::IdToken(IdTokenProblem::Expired)
    );
}

#[tokio::test]
async fn an_id_token_signed_by_a_key_outside_the_jwks_is_refused_after_one_refetch() {
    let idp = idp().await;
    idp.add_account("mallory@example.com", true, None).await;
    idp.tamper(Some("foreign_key")).await;
    let rp = oidc(&idp, Kind::Confidential);
    let before = idp.stats().await["jwks_fetches"].as_u64().unwrap();
    let err = sign_in(&rp).await.unwrap_err();
    assert_eq!(err, OidcError::IdToken(IdTokenProblem::UnknownKey));
    // One fetch at discovery, one more for the unknown kid, no more.
    assert_eq!(
        idp.stats().await["jwks_fetches"].as_u64().unwrap(),
        before + 2
    );
}

#[tokio::test]
async fn an_id_token_signed_by_another_key_under_a_published_kid_is_refused() {
    assert_eq!(
        tampered("forged_kid", Kind::Confidential).await,
        OidcError::IdToken(IdTokenProblem::BadSignature)
    );
}

#[tokio::test]
async fn an_unsigned_id_token_alg_none_is_refused() {
    assert_eq!(
        tampered("alg_none", Kind::Public).await,
        OidcError::IdToken(IdTokenProblem::Unsigned)
    );
}

#[tokio::test]
async fn an_id_token_signed_with_the_client_secret_hs256_is_refused() {
    // The provider does not advertise HS256, and Plugboard never accepts shared-secret signatures.
    assert_eq!(
        tampered("hs256", Kind::Confidential).await,
        OidcError::IdToken(IdTokenProblem::DisallowedAlgorithm)
    );
}

#[tokio::test]
async fn a_replayed_callback_is_refused_here_and_by_the_provider_elsewhere() {
    let idp = idp().await;
    idp.add_account("replay@example.com", true, None).await;
    let rp = oidc(&idp, Kind::Confidential);
    let (callback, pending) = authorize(&rp).await;
    rp.finish_login(&callback, Some(&pending))
        .await
        .expect("first use");
    assert_eq!(
        rp.finish_login(&callback, Some(&pending)).await,
        Err(OidcError::Replayed)
    );
    // Another instance (same key, no shared memory): the provider refuses the used code.
    let other = oidc(&idp, Kind::Confidential);
    assert_eq!(
        other.finish_login(&callback, Some(&pending)).await,
        Err(OidcError::CodeRejected)
    );
}

#[tokio::test]
async fn a_callback_without_this_browsers_sign_in_is_refused() {
    let idp = idp().await;
    idp.add_account("csrf@example.com", true, None).await;
    let rp = oidc(&idp, Kind::Confidential);
    let (callback, pending) = authorize(&rp).await;
    assert_eq!(
        rp.finish_login(&callback, None).await,
        Err(OidcError::SignInExpired)
    );
    assert_eq!(
        rp.finish_login(&callback, Some("not-a-sealed-value")).await,
        Err(OidcError::SignInExpired)
    );
    // Sealed by another deployment's key.
    let foreign = Oidc::new(settings(&idp, Kind::Confidential), &[1u8; 32]).unwrap();
    assert_eq!(
        foreign.finish_login(&callback, Some(&pending)).await,
        Err(OidcError::SignInExpired)
    );
    let mut no_state = callback.clone();
    no_state.state = None;
    assert_eq!(
        rp.finish_login(&no_state, Some(&pending)).await,
        Err(OidcError::StateMismatch)
    );
    let mut other_iss = callback.clone();
    other_iss.iss = Some("https://elsewhere.example".into());
    assert_eq!(
        rp.finish_login(&other_iss, Some(&pending)).await,
        Err(OidcError::IssuerMismatch)
    );
}

#[tokio::test]
async fn a_provider_that_promises_iss_must_send_it() {
    let idp = idp().await;
    idp.add_account("iss@example.com", true, None).await;
    let rp = oidc(&idp, Kind::Confidential);
    let (mut callback, pending) = authorize(&rp).await;
    assert!(callback.iss.is_some(), "oidc-provider sends iss (RFC 9207)");
    callback.iss = None;
    assert_eq!(
        rp.finish_login(&callback, Some(&pending)).await,
        Err(OidcError::IssuerMismatch)
    );
}

/// A port nothing listens on.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn settings_for(issuer: &str, timeout: Duration) -> OidcSettings {
    OidcSettings {
        issuer: issuer.into(),
        client_id: "plugboard-confidential".into(),
        client_secret: None,
        scopes: vec!["openid".into(), "email".into()],
        redirect_uri: REDIRECT_URI.into(),
        connect_timeout: timeout,
        timeout,
        secure_cookies: false,
    }
}

#[tokio::test]
async fn an_identity_provider_that_is_down_answers_a_clear_error_within_the_timeout() {
    // Nothing listening: refused at once.
    let rp = Oidc::new(
        settings_for(
            &format!("http://127.0.0.1:{}", free_port()),
            Duration::from_millis(800),
        ),
        &KEY,
    )
    .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), rp.start_login())
        .await
        .expect("bounded")
        .unwrap_err();
    assert!(matches!(err, OidcError::ProviderUnreachable(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("could not reach your identity provider"),
        "{err}"
    );
    assert!(err.to_string().contains("cannot connect"), "{err}");

    // Accepts connections and never answers: the total timeout ends it.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = silent.accept().await {
            conns.push(c);
        }
    });
    let rp = Oidc::new(
        settings_for(
            &format!("http://127.0.0.1:{port}"),
            Duration::from_millis(500),
        ),
        &KEY,
    )
    .unwrap();
    let started = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(10), rp.start_login())
        .await
        .expect("bounded by the configured timeout, not hanging")
        .unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert_eq!(
        err,
        OidcError::ProviderUnreachable("it did not answer within 500 ms".into())
    );
    held.abort();

    // Up but failing: a 503 is "unreachable" too (try again later), not a configuration problem.
    let failing = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = failing.local_addr().unwrap().port();
    let app = axum::Router::new().fallback(|| async { StatusCode::SERVICE_UNAVAILABLE });
    let served = tokio::spawn(async move { axum::serve(failing, app).await });
    let rp = Oidc::new(
        settings_for(&format!("http://127.0.0.1:{port}"), Duration::from_secs(5)),
        &KEY,
    )
    .unwrap();
    assert_eq!(
        rp.start_login().await.unwrap_err(),
        OidcError::ProviderUnreachable("it answered 503 Service Unavailable".into())
    );
    served.abort();
}

#[tokio::test]
async fn discovery_is_tried_again_after_the_provider_was_unreachable() {
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let rp = Oidc::new(settings_for(&issuer, Duration::from_secs(5)), &KEY).unwrap();
    assert!(matches!(
        rp.start_login().await,
        Err(OidcError::ProviderUnreachable(_))
    ));
    let mut options = IdpOptions::new(REDIRECT_URI);
    options.port = port;
    let idp = TestIdp::start(options).await;
    assert_eq!(idp.issuer, issuer);
    let start = rp
        .start_login()
        .await
        .expect("discovered now that it is up");
    assert!(start
        .authorization_url
        .starts_with(&format!("{issuer}/auth?")));
}

#[tokio::test]
async fn a_misconfigured_client_secret_is_reported_as_such() {
    let idp = idp().await;
    idp.add_account("secret@example.com", true, None).await;
    let mut s = settings(&idp, Kind::Confidential);
    s.client_secret = Some(SecretString::from("wrong-secret".to_string()));
    let err = sign_in(&Oidc::new(s, &KEY).unwrap()).await.unwrap_err();
    assert_eq!(err, OidcError::ClientRejected);
    assert!(err.to_string().contains("PLUGBOARD_OIDC_CLIENT_SECRET"));
    assert!(!err.to_string().contains("wrong-secret"));
}

/// The completion the people work will provide; here it records the identity and redirects to `/`.
#[derive(Default)]
struct Recorder(Mutex<Vec<VerifiedIdentity>>);

#[async_trait::async_trait]
impl SignInCompletion for Recorder {
    async fn complete(&self, identity: VerifiedIdentity) -> Response {
        self.0.lock().unwrap().push(identity);
        (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response()
    }
}

async fn get(
    router: &axum::Router,
    uri: &str,
    cookie: Option<&str>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let mut req = Request::builder().uri(uri);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    let res = router
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test]
async fn the_sign_in_routes_redirect_to_the_provider_and_hand_the_identity_over() {
    let idp = idp().await;
    let sub = idp
        .add_account("route@example.com", true, Some("Route"))
        .await;
    let recorder = Arc::new(Recorder::default());
    let router: axum::Router = web::router(Some(oidc(&idp, Kind::Confidential)), recorder.clone());

    let (status, headers, _) = get(&router, "/auth/oidc/login", None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let location = headers[header::LOCATION].to_str().unwrap().to_string();
    assert!(location.starts_with(&format!("{}/auth?", idp.issuer)));
    let set_cookie = headers[header::SET_COOKIE].to_str().unwrap().to_string();
    assert!(
        set_cookie.contains("; Path=/auth/oidc; Max-Age=600; HttpOnly; SameSite=Lax"),
        "{set_cookie}"
    );
    assert!(!set_cookie.contains("Secure"), "the public URL is http");
    let cookie = set_cookie.split(';').next().unwrap().to_string();

    let query = Browser::new().authorize(&location, REDIRECT_URI).await;
    let callback_uri = format!("/auth/oidc/callback?{query}");
    let (status, headers, _) = get(&router, &callback_uri, Some(&cookie)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/");
    let cleared: Vec<_> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(
        cleared
            .iter()
            .any(|c| c.starts_with("plugboard_oidc=;") && c.contains("Max-Age=0")),
        "{cleared:?}"
    );
    let got = recorder.0.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].email.as_str(), got[0].subject.as_str()),
        ("route@example.com", sub.as_str())
    );

    // The same answer again: an HTML page that says so, no second identity.
    let (status, headers, body) = get(&router, &callback_uri, Some(&cookie)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(
        body.contains("already used") && body.contains("/auth/oidc/login"),
        "{body}"
    );
    assert!(
        !body.contains(&query),
        "the page never echoes the code or state"
    );
    assert_eq!(recorder.0.lock().unwrap().len(), 1);

    // The provider said no.
    let (_, headers, _) = get(&router, "/auth/oidc/login", None).await;
    let cookie = headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let location = reqwest::Url::parse(headers[header::LOCATION].to_str().unwrap()).unwrap();
    let state = location
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let denied = format!("/auth/oidc/callback?error=access_denied&error_description=End-User+aborted&state={state}&iss={}", idp.issuer);
    let (status, _, body) = get(&router, &denied, Some(&cookie)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("did not sign you in (access_denied): End-User aborted"),
        "{body}"
    );
}

#[tokio::test]
async fn without_oidc_configured_the_routes_say_so() {
    let router: axum::Router = web::router(None, Arc::new(Recorder::default()));
    for uri in ["/auth/oidc/login", "/auth/oidc/callback?code=x&state=y"] {
        let (status, _, body) = get(&router, uri, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(
            body.contains("PLUGBOARD_OIDC_ISSUER") && body.contains("sign-in link"),
            "{body}"
        );
    }
}

#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything logged in this test binary, at TRACE level.
fn capture_logs() -> LogBuffer {
    static BUF: std::sync::OnceLock<LogBuffer> = std::sync::OnceLock::new();
    BUF.get_or_init(|| {
        let buf = LogBuffer::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        buf
    })
    .clone()
}

#[tokio::test]
async fn codes_states_cookies_and_the_client_secret_never_reach_logs_or_pages() {
    let logs = capture_logs();
    let idp = idp().await;
    idp.add_account("quiet@example.com", true, None).await;
    let router: axum::Router = web::router(
        Some(oidc(&idp, Kind::Confidential)),
        Arc::new(Recorder::default()),
    );
    let mut secrets = vec![idp.confidential_client_secret.clone()];
    let mut pages = Vec::new();
    for tamper in [None, Some("wrong_nonce")] {
        idp.tamper(tamper).await;
        let (_, headers, _) = get(&router, "/auth/oidc/login", None).await;
        let cookie = headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let location = headers[header::LOCATION].to_str().unwrap().to_string();
        let query = Browser::new().authorize(&location, REDIRECT_URI).await;
        let cb = Callback::from_query(&query);
        secrets.push(cb.code.clone().unwrap());
        secrets.push(cb.state.clone().unwrap());
        secrets.push(cookie.split_once('=').unwrap().1.to_string());
        let (status, _, body) = get(
            &router,
            &format!("/auth/oidc/callback?{query}"),
            Some(&cookie),
        )
        .await;
        if tamper.is_some() {
            assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
        }
        pages.push(body);
    }
    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(
        text.contains("OpenID Connect sign-in refused"),
        "the refusal is logged"
    );
    for s in &secrets {
        assert!(!text.contains(s.as_str()), "a secret value is in the logs");
        for page in &pages {
            assert!(!page.contains(s.as_str()), "a secret value is on a page");
        }
    }
}
