//! mcp_oauth end to end against a fake MCP resource server and authorization server on loopback: discovery (the
//! challenge, the well-known forms), dynamic registration and reuse, the authorization URL, the callback, refresh
//! with `resource`; and a callback handled by a second instance on the same PostgreSQL database.

// clippy.toml lets `#[test]` functions unwrap, expect and panic; the helpers and `test_on_both_backends!` bodies of
// an integration test crate are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod oauth_support;

use std::sync::Arc;
use std::time::Duration;

use oauth_support::*;
use plugboard_server::oauth;
use plugboard_server::testing::{Db, TestApp, TestResponse};
use plugboard_store::{IntegrationId, Role, Workspace};
use secrecy::ExposeSecret;
use serde_json::json;
use tower::ServiceExt;

plugboard_server::testing::test_on_both_backends! {
    the_mcp_flow_reads_the_metadata_url_from_the_challenge_and_ends_active => challenge_flow;
    without_a_challenge_the_path_form_metadata_and_rfc8414_path_insertion_are_used => path_forms;
    without_path_form_metadata_the_root_form_and_openid_discovery_are_used => root_and_openid;
    a_registered_client_is_reused_for_the_same_authorization_server => client_reuse;
    a_confidential_registered_client_authenticates_with_its_sealed_secret => confidential_client;
    an_iss_that_is_not_the_recorded_issuer_is_refused_without_an_exchange => iss_mismatch;
    an_answer_without_the_iss_its_server_promised_is_refused_and_one_with_it_connects => iss_required;
    an_authorization_server_without_s256_is_refused => no_s256;
    metadata_for_another_resource_or_issuer_is_refused => wrong_resource;
    an_mcp_token_is_refreshed_with_the_resource => mcp_refresh;
    starting_needs_manager_and_an_oauth_integration => start_authz;
    the_runtime_view_hands_out_a_refreshed_token => runtime_view;
}

#[tokio::test]
async fn a_callback_is_handled_by_a_second_instance_on_the_same_postgresql_database() {
    let Some(db) = Db::new(plugboard_server::testing::Backend::Postgres).await else {
        eprintln!("PLUGBOARD_TEST_DATABASE_URL is not set: PostgreSQL variant not run");
        return;
    };
    second_instance(db).await;
}

#[tokio::test]
async fn the_oauth_routes_are_in_the_openapi_document() {
    let db = Db::new(plugboard_server::testing::Backend::Sqlite)
        .await
        .unwrap();
    let app = TestApp::new(db).await;
    let doc = app.get("/api/openapi.json", None).await.json();
    let paths = &doc["paths"];
    assert!(paths["/api/v1/connectors/oauth/callback"]["get"].is_object());
    assert!(paths["/api/v1/integrations/{integration_id}/oauth/start"]["post"].is_object());
}

struct Setup {
    app: TestApp,
    fake: Arc<Fake>,
    ws: Workspace,
    token: String,
}

async fn setup(db: Db, cfg: FakeConfig) -> Setup {
    let fake = Fake::spawn(cfg).await;
    let app = app(
        db,
        &[
            mcp_manifest("fake-mcp", &fake.mcp_endpoint()),
            mcp_manifest("fake-mcp-2", &fake.mcp_endpoint()),
            byo_manifest(
                &fake,
                &ByoOptions {
                    pkce: false,
                    token_auth: "client_secret_post",
                },
            ),
        ],
    )
    .await;
    let (ws, token) = app.workspace().await;
    Setup {
        app,
        fake,
        ws,
        token,
    }
}

async fn install_mcp(s: &Setup, connector: &str) -> String {
    let (id, body) = install(&s.app, &s.ws, &s.token, connector, json!({})).await;
    assert_eq!(body["next_step"], "mcp_oauth");
    assert!(body.get("oauth_url").is_none_or(|v| v.is_null()));
    assert_eq!(status_of(&s.app, &id).await.0, "pending_oauth");
    id
}

async fn start_ok(s: &Setup, id: &str) -> String {
    let res = start_mcp(&s.app, &s.token, id).await;
    res.assert_status(200);
    res.json()["oauth_url"].as_str().unwrap().to_string()
}

async fn callback(app: &TestApp, a: &Approved, iss: Option<&str>) -> TestResponse {
    let mut p = vec![("code", a.code.as_str()), ("state", a.state.as_str())];
    if let Some(i) = iss {
        p.push(("iss", i));
    }
    app.get(&callback_uri(&p), None).await
}

async fn token_of(app: &TestApp, id: &str) -> Result<String, oauth::TokenError> {
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

/// Start, approve, callback (with `iss`), checking the exchange.
async fn connect(s: &Setup, id: &str) -> (String, Approved) {
    let url = start_ok(s, id).await;
    let a = s.fake.approve(&url);
    let res = callback(&s.app, &a, Some(&s.fake.issuer())).await;
    let page = assert_page(&res, 200, &[&a.code]);
    assert!(
        page.contains(&format!("data-integration-id=\"{id}\"")),
        "{page}"
    );
    assert!(page.contains("data-status=\"active\""), "{page}");
    assert!(
        page.contains("data-origin=\"http://127.0.0.1:8080\""),
        "{page}"
    );
    assert_eq!(status_of(&s.app, id).await, ("active".into(), None));
    (url, a)
}

async fn challenge_flow(db: Db) {
    let logs = LogCapture::start();
    let s = setup(
        db,
        FakeConfig {
            challenge: ChallengeMode::MetadataUrl("/meta/resource.json".into()),
            prm_at: vec!["/meta/resource.json".into()],
            prm_scopes: vec!["mcp:read".into(), "mcp:write".into()],
            ..Default::default()
        },
    )
    .await;
    let id = install_mcp(&s, "fake-mcp").await;
    let (url, a) = connect(&s, &id).await;

    let q = query_of(&url);
    assert!(url.starts_with(&s.fake.url("/authorize?")));
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["redirect_uri"], CALLBACK);
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["resource"], s.fake.mcp_endpoint());
    assert_eq!(q["scope"], "mcp:read mcp:write");
    assert_eq!(q["state"].len(), 43);

    let regs = s.fake.registrations();
    assert_eq!(regs.len(), 1);
    let r = &regs[0];
    assert_eq!(r["redirect_uris"], json!([CALLBACK]));
    assert_eq!(
        r["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(r["response_types"], json!(["code"]));
    assert_eq!(r["token_endpoint_auth_method"], "none");
    assert_eq!(r["application_type"], "web");
    assert_eq!(r["client_name"], "Plugboard");
    assert_eq!(q["client_id"], "dyn-client-1");

    let hits = s.fake.hits();
    assert_eq!(
        &hits[..3],
        &[
            "POST /mcp",
            "GET /meta/resource.json",
            "GET /.well-known/oauth-authorization-server"
        ],
        "{hits:?}"
    );
    assert!(!hits.iter().any(|h| h.contains("oauth-protected-resource")));

    let tr = s.fake.token_requests();
    assert_eq!(tr.len(), 1);
    let f = &tr[0].form;
    assert_eq!(f["grant_type"], "authorization_code");
    assert_eq!(f["code"], a.code);
    assert_eq!(f["redirect_uri"], CALLBACK);
    assert_eq!(f["resource"], s.fake.mcp_endpoint());
    assert_eq!(f["client_id"], "dyn-client-1");
    assert_eq!(s256(&f["code_verifier"]), q["code_challenge"]);
    assert!(!f.contains_key("client_secret") && tr[0].authorization.is_none());

    let at = s.fake.last_access_token().unwrap();
    assert_eq!(token_of(&s.app, &id).await.unwrap(), at);
    assert!(!secret_names(&s.app, &id)
        .await
        .contains(&"oauth.pkce_verifier".to_string()));
    if let Some(text) = database_text(&s.app) {
        assert!(text.contains(&id));
        assert!(!text.contains(&at) && !text.contains(&a.code));
    }
    let log = logs.text();
    assert!(!log.contains(&at) && !log.contains(&a.code) && !log.contains(&f["code_verifier"]));
}

async fn path_forms(db: Db) {
    let s = setup(
        db,
        FakeConfig {
            challenge: ChallengeMode::Bare,
            prm_at: vec!["/.well-known/oauth-protected-resource/mcp".into()],
            issuer_path: "/tenant1".into(),
            as_metadata_at: vec!["/.well-known/oauth-authorization-server/tenant1".into()],
            ..Default::default()
        },
    )
    .await;
    let id = install_mcp(&s, "fake-mcp").await;
    connect(&s, &id).await;
    let hits = s.fake.hits();
    assert_eq!(
        &hits[..3],
        &[
            "POST /mcp",
            "GET /.well-known/oauth-protected-resource/mcp",
            "GET /.well-known/oauth-authorization-server/tenant1",
        ],
        "{hits:?}"
    );
}

async fn root_and_openid(db: Db) {
    let s = setup(
        db,
        FakeConfig {
            challenge: ChallengeMode::Bare,
            prm_at: vec!["/.well-known/oauth-protected-resource".into()],
            issuer_path: "/tenant2".into(),
            as_metadata_at: vec!["/tenant2/.well-known/openid-configuration".into()],
            ..Default::default()
        },
    )
    .await;
    let id = install_mcp(&s, "fake-mcp").await;
    connect(&s, &id).await;
    let hits = s.fake.hits();
    assert_eq!(
        &hits[..6],
        &[
            "POST /mcp",
            "GET /.well-known/oauth-protected-resource/mcp",
            "GET /.well-known/oauth-protected-resource",
            "GET /.well-known/oauth-authorization-server/tenant2",
            "GET /.well-known/openid-configuration/tenant2",
            "GET /tenant2/.well-known/openid-configuration",
        ],
        "{hits:?}"
    );
}

async fn client_reuse(db: Db) {
    let s = setup(db, FakeConfig::default()).await;
    let a = install_mcp(&s, "fake-mcp").await;
    let b = install_mcp(&s, "fake-mcp-2").await;
    let url_a = start_ok(&s, &a).await;
    let url_b = start_ok(&s, &b).await;
    // Starting again also reuses it (and replaces the first state).
    let url_a2 = start_ok(&s, &a).await;
    assert_eq!(s.fake.registrations().len(), 1, "registered once");
    let id = query_of(&url_a)["client_id"].clone();
    assert_eq!(query_of(&url_b)["client_id"], id);
    assert_eq!(query_of(&url_a2)["client_id"], id);
    // The replaced state of `a` is no longer valid; the new one is.
    let stale = s.fake.approve(&url_a);
    assert_page(&callback(&s.app, &stale, None).await, 400, &[]);
    for (iid, url) in [(&a, &url_a2), (&b, &url_b)] {
        let appr = s.fake.approve(url);
        assert_page(&callback(&s.app, &appr, None).await, 200, &[]);
        assert_eq!(status_of(&s.app, iid).await.0, "active");
    }
}

async fn confidential_client(db: Db) {
    let s = setup(
        db,
        FakeConfig {
            register_confidential: true,
            auth_methods: Some(vec!["client_secret_post".into()]),
            expires_in: Some(30),
            ..Default::default()
        },
    )
    .await;
    let a = install_mcp(&s, "fake-mcp").await;
    let b = install_mcp(&s, "fake-mcp-2").await;
    connect(&s, &a).await;
    connect(&s, &b).await;
    let regs = s.fake.registrations();
    assert_eq!(regs.len(), 1);
    assert_eq!(regs[0]["token_endpoint_auth_method"], "client_secret_post");
    let secret = s.fake.rec.lock().unwrap().clients["dyn-client-1"]
        .secret
        .clone()
        .unwrap();
    let reqs = s.fake.token_requests();
    assert_eq!(reqs.len(), 2);
    for r in &reqs {
        assert_eq!(
            r.form["client_secret"], secret,
            "both use the registered secret"
        );
    }
    // Refresh authenticates the same way (once the 30 s token is due: less than half its life left).
    s.app.state.clock.advance(Duration::from_secs(20));
    s.fake.set(|c| c.expires_in = Some(3600));
    token_of(&s.app, &b).await.unwrap();
    let last = s.fake.token_requests().pop().unwrap();
    assert_eq!(last.form["grant_type"], "refresh_token");
    assert_eq!(last.form["client_secret"], secret);
    if let Some(text) = database_text(&s.app) {
        assert!(!text.contains(&secret), "the client secret is sealed");
    }
}

async fn iss_mismatch(db: Db) {
    let s = setup(db, FakeConfig::default()).await;
    let id = install_mcp(&s, "fake-mcp").await;
    let url = start_ok(&s, &id).await;
    let a = s.fake.approve(&url);
    let res = callback(&s.app, &a, Some("https://evil.example")).await;
    assert_page(&res, 400, &[&a.code]);
    let (status, reason) = status_of(&s.app, &id).await;
    assert_eq!(status, "error");
    assert!(reason.unwrap().contains("another authorization server"));
    assert!(s.fake.token_requests().is_empty(), "no exchange");
    // The state is spent even though nothing was exchanged.
    assert_page(
        &callback(&s.app, &a, Some(&s.fake.issuer())).await,
        400,
        &[],
    );
}

async fn no_s256(db: Db) {
    let s = setup(
        db,
        FakeConfig {
            s256: false,
            ..Default::default()
        },
    )
    .await;
    let id = install_mcp(&s, "fake-mcp").await;
    let res = start_mcp(&s.app, &s.token, &id).await;
    res.assert_status(422);
    let body = res.json();
    assert_eq!(body["code"], "oauth_unsupported");
    assert!(body["error"].as_str().unwrap().contains("S256"), "{body}");
    assert!(s.fake.registrations().is_empty());
    let (status, reason) = status_of(&s.app, &id).await;
    assert_eq!(status, "error");
    assert!(reason.unwrap().contains("S256"));
}

async fn wrong_resource(db: Db) {
    let s = setup(
        db,
        FakeConfig {
            prm_resource: Some("http://127.0.0.1:1/other".into()),
            ..Default::default()
        },
    )
    .await;
    let id = install_mcp(&s, "fake-mcp").await;
    let res = start_mcp(&s.app, &s.token, &id).await;
    res.assert_status(422);
    assert_eq!(res.json()["code"], "oauth_discovery_failed");
    assert!(res.json()["error"]
        .as_str()
        .unwrap()
        .contains("not for this MCP server"));

    // An authorization server whose metadata names another issuer.
    s.fake.set(|c| {
        c.prm_resource = None;
        c.issuer_override = Some("http://127.0.0.1:9/elsewhere".into());
        c.prm_auth_servers = Some(vec![s.fake.url("")]);
    });
    let res = start_mcp(&s.app, &s.token, &id).await;
    res.assert_status(422);
    assert!(
        res.json()["error"]
            .as_str()
            .unwrap()
            .contains("names issuer"),
        "{}",
        res.text()
    );
    assert!(s.fake.registrations().is_empty());
}

async fn mcp_refresh(db: Db) {
    let s = setup(
        db,
        FakeConfig {
            expires_in: Some(30),
            ..Default::default()
        },
    )
    .await;
    let id = install_mcp(&s, "fake-mcp").await;
    connect(&s, &id).await;
    s.app.state.clock.advance(Duration::from_secs(20));
    s.fake.set(|c| {
        c.expires_in = Some(3600);
        c.refresh_delay = Duration::from_millis(200);
    });
    let results = futures_util::future::join_all((0..6).map(|_| token_of(&s.app, &id))).await;
    assert_eq!(s.fake.refresh_requests(), 1);
    let newest = s.fake.last_access_token().unwrap();
    assert!(results.into_iter().all(|r| r.unwrap() == newest));
    let r = s.fake.token_requests().pop().unwrap();
    assert_eq!(r.form["grant_type"], "refresh_token");
    assert_eq!(r.form["resource"], s.fake.mcp_endpoint());
    assert_eq!(r.form["client_id"], "dyn-client-1");
}

async fn start_authz(db: Db) {
    let s = setup(db, FakeConfig::default()).await;
    let id = install_mcp(&s, "fake-mcp").await;
    let member = s.app.member(&s.ws, Role::Member).await;
    start_mcp(&s.app, &member, &id).await.assert_status(403);
    let manager = s.app.member(&s.ws, Role::Manager).await;
    start_mcp(&s.app, &manager, &id).await.assert_status(200);
    let (_, other) = s.app.workspace().await;
    start_mcp(&s.app, &other, &id).await.assert_status(403);
    start_mcp(&s.app, &s.token, "cnope")
        .await
        .assert_status(404);
    s.app
        .request(
            axum::http::Method::POST,
            &format!("/api/v1/integrations/{id}/oauth/start"),
            None,
            None,
        )
        .await
        .assert_status(401);
    let (byo, _) = install(
        &s.app,
        &s.ws,
        &s.token,
        "fake-byo",
        json!({"client_id": "c", "client_secret": "s"}),
    )
    .await;
    // A byo_oauth integration restarts its own flow (reconnect); a custom server has no OAuth flow at all.
    let res = start_mcp(&s.app, &s.token, &byo).await;
    res.assert_status(200);
    assert!(res.json()["oauth_url"].as_str().unwrap().contains("state="));
    let custom = s
        .app
        .post(
            &format!("/api/v1/integrations?workspace_id={}", s.ws.id),
            Some(&s.token),
            json!({"name": "c", "transport": "stdio", "command": "npx"}),
        )
        .await;
    custom.assert_status(201);
    let custom_id = custom.json()["integration_id"]
        .as_str()
        .unwrap()
        .to_string();
    start_mcp(&s.app, &s.token, &custom_id)
        .await
        .assert_status(400);
}

async fn runtime_view(db: Db) {
    let s = setup(
        db,
        FakeConfig {
            expires_in: Some(30),
            ..Default::default()
        },
    )
    .await;
    let id = install_mcp(&s, "fake-mcp").await;
    let res = s
        .app
        .get(
            &format!("/api/v1/integrations/{id}/runtime"),
            Some(&s.token),
        )
        .await;
    res.assert_status(409);
    connect(&s, &id).await;
    let first = s.fake.last_access_token().unwrap();
    s.app.state.clock.advance(Duration::from_secs(20));
    s.fake.set(|c| c.expires_in = Some(3600));
    let res = s
        .app
        .get(
            &format!("/api/v1/integrations/{id}/runtime"),
            Some(&s.token),
        )
        .await;
    res.assert_status(200);
    let newest = s.fake.last_access_token().unwrap();
    assert_ne!(newest, first);
    assert_eq!(s.fake.refresh_requests(), 1);
    let body = res.json();
    assert_eq!(
        body["mcp"]["headers"]["Authorization"],
        format!("Bearer {newest}"),
        "{body}"
    );
    // Elsewhere the token is masked.
    let res = s
        .app
        .get(&format!("/api/v1/integrations/{id}"), Some(&s.token))
        .await;
    assert!(!res.text().contains(&newest));
}

/// Instance A takes the install (and, for mcp_oauth, the start); instance B, on the same database with the same
/// master key, completes the callback; then both refresh concurrently and the provider sees one refresh.
async fn second_instance(db: Db) {
    let s = setup(
        db,
        FakeConfig {
            expires_in: Some(30),
            ..Default::default()
        },
    )
    .await;
    s.fake
        .add_client("byo-c", "client_secret_post", Some("byo-s"));
    let store_b = plugboard_store::connect(&s.app.db.url).await.unwrap();
    let mut cfg = s.app.state.config.clone();
    cfg.master_key = Some(secrecy::SecretString::from(s.app.master_key()));
    let state_b = plugboard_server::App::with_parts(
        cfg,
        store_b,
        s.app.state.catalog.current().catalog.clone(),
    )
    .await
    .unwrap();
    let router_b = plugboard_server::router(state_b.clone());
    let get_b = |uri: String| {
        let r = router_b.clone();
        async move {
            let req = axum::http::Request::get(uri)
                .body(axum::body::Body::empty())
                .unwrap();
            let res = r.oneshot(req).await.unwrap();
            let status = res.status().as_u16();
            let body = axum::body::to_bytes(res.into_body(), usize::MAX)
                .await
                .unwrap();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    };

    // byo_oauth: install on A, callback on B.
    let (byo, body) = install(
        &s.app,
        &s.ws,
        &s.token,
        "fake-byo",
        json!({"client_id": "byo-c", "client_secret": "byo-s"}),
    )
    .await;
    let a = s.fake.approve(body["oauth_url"].as_str().unwrap());
    let (status, page) = get_b(callback_uri(&[("code", &a.code), ("state", &a.state)])).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(status_of(&s.app, &byo).await.0, "active");
    // The replay on A is refused: the state is spent in the shared database.
    assert_page(&callback(&s.app, &a, None).await, 400, &[]);

    // mcp_oauth: start on A, callback on B.
    let mcp = install_mcp(&s, "fake-mcp").await;
    let url = start_ok(&s, &mcp).await;
    let a = s.fake.approve(&url);
    let (status, page) = get_b(callback_uri(&[
        ("code", &a.code),
        ("state", &a.state),
        ("iss", &s.fake.issuer()),
    ]))
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(status_of(&s.app, &mcp).await.0, "active");

    // Concurrent refreshes on both instances (both clocks 20 s on: the 30 s tokens are due): one call to the
    // provider.
    s.app.state.clock.advance(Duration::from_secs(20));
    state_b.clock.advance(Duration::from_secs(20));
    s.fake.set(|c| {
        c.expires_in = Some(3600);
        c.refresh_delay = Duration::from_millis(300);
    });
    let i = s
        .app
        .db
        .store
        .get_integration(&IntegrationId::from(&mcp))
        .await
        .unwrap()
        .unwrap();
    let on_a = (0..4).map(|_| oauth::access_token(&s.app.state, &i));
    let on_b = (0..4).map(|_| oauth::access_token(&state_b, &i));
    let all = futures_util::future::join_all(on_a.chain(on_b)).await;
    assert_eq!(s.fake.refresh_requests(), 1);
    let newest = s.fake.last_access_token().unwrap();
    assert!(all
        .into_iter()
        .all(|t| t.unwrap().expose_secret() == newest));
}

async fn iss_required(db: Db) {
    let s = setup(
        db,
        FakeConfig {
            iss_supported: true,
            ..Default::default()
        },
    )
    .await;
    let id = install_mcp(&s, "fake-mcp").await;
    let url = start_ok(&s, &id).await;
    let a = s.fake.approve(&url);
    let res = callback(&s.app, &a, None).await;
    assert_page(&res, 400, &[&a.code]);
    let (status, reason) = status_of(&s.app, &id).await;
    assert_eq!(status, "error");
    assert!(reason.unwrap().contains("RFC 9207"));
    assert!(s.fake.token_requests().is_empty(), "no exchange");

    let url = start_ok(&s, &id).await;
    let a = s.fake.approve(&url);
    let issuer = s.fake.issuer();
    let res = callback(&s.app, &a, Some(&issuer)).await;
    assert_eq!(res.status.as_u16(), 200, "{}", res.text());
    assert_eq!(status_of(&s.app, &id).await.0, "active");
}
