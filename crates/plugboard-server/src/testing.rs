//! In-process test harness: a fresh database (SQLite file or PostgreSQL schema), the real router, and helpers to
//! make users, workspaces and tokens and to send requests with `router.oneshot`.
//!
//! Callers carry their own credential, as crates.io's test helpers do: `app.anonymous().get(uri)`,
//! `app.with_token(&t).post(uri, body)`, or for a workspace made with [`TestApp::team`]:
//! `team.owner.post(…)`, `team.as_manager().await.post(…)`. `caller.by_cookie().await` is the same person signed in
//! with a browser session (through a real sign-in link) sending Plugboard's `Origin`; `.with_origin(…)` changes or
//! drops that header. `app.state.clock.advance(…)` moves time for expiry.

// Test support (behind the `testing` feature, used only by tests): a failed set-up is a failed test, so this module
// may panic, unwrap and expect like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use bytes::Bytes;
use plugboard_catalog::Catalog;
use plugboard_store::testing::TestDb;
use plugboard_store::{Role, User, UserId, Workspace, WorkspaceId};
use secrecy::{ExposeSecret, SecretString};
use tower::ServiceExt;

use crate::api_tokens::generate_token;
use crate::{App, AppState, Config};

pub use plugboard_store::test_on_both_backends;
pub use plugboard_store::testing::{Backend, TestDb as Db};

pub struct TestApp {
    pub db: TestDb,
    pub state: AppState,
    pub router: Router,
}

pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// Asserts the status and, for errors, the contract's error body shape.
    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text()
        );
        if status >= 400 {
            let v = self.json();
            assert!(
                v["error"].is_string() && v["code"].is_string(),
                "error body: {v}"
            );
        }
        self
    }
}

/// A master key generated for one test (base64), so no key file is written.
pub fn test_master_key() -> SecretString {
    plugboard_vault::MasterKey::generate().to_base64()
}

impl TestApp {
    /// The built-in catalog.
    pub async fn new(db: TestDb) -> TestApp {
        Self::build(db, None, |_| {}).await
    }

    pub async fn with_catalog(db: TestDb, catalog: Catalog) -> TestApp {
        Self::build(db, Some(catalog), |_| {}).await
    }

    pub async fn build(
        db: TestDb,
        catalog: Option<Catalog>,
        configure: impl FnOnce(&mut Config),
    ) -> TestApp {
        let data_dir = db.data_dir.clone().unwrap_or_else(std::env::temp_dir);
        let mut config = Config::for_tests(data_dir, db.url.clone());
        config.master_key = Some(test_master_key());
        configure(&mut config);
        let catalog = match catalog {
            Some(c) => c,
            None => Catalog::builtin().expect("built-in catalog"),
        };
        let state = App::with_parts(config, db.store.clone(), catalog)
            .await
            .expect("app state");
        let router = crate::router(state.clone());
        TestApp { db, state, router }
    }

    /// Another instance on the same database and master key (its own connections, caches and revocation poller,
    /// the built-in catalog), as another process would be; the first app keeps the database alive.
    pub async fn another_instance(&self) -> TestApp {
        let db = self.db.reopened().await;
        let master_key = self.master_key();
        Self::build(db, None, |c| c.master_key = Some(master_key.into())).await
    }

    pub fn master_key(&self) -> String {
        self.state
            .config
            .master_key
            .as_ref()
            .map(|k| k.expose_secret().to_string())
            .unwrap_or_default()
    }

    /// A new user with a token.
    pub async fn user(&self, email: &str) -> (User, String) {
        let user = self.db.store.create_user(email, email).await.expect("user");
        let (token, hash) = generate_token();
        self.db
            .store
            .create_token(&user.id, "test", &hash)
            .await
            .expect("token");
        (user, token)
    }

    /// A workspace owned by a new user; returns the workspace and the owner's token.
    pub async fn workspace(&self) -> (Workspace, String) {
        let (ws, _, token) = self.workspace_with_owner().await;
        (ws, token)
    }

    /// A workspace owned by a new user; returns the workspace, the owner and the owner's token.
    pub async fn workspace_with_owner(&self) -> (Workspace, User, String) {
        let (owner, token) = self
            .user(&format!("owner-{}@example.com", plugboard_store::new_id()))
            .await;
        let ws = self
            .db
            .store
            .create_workspace("Test workspace", &owner.id)
            .await
            .expect("workspace");
        (ws, owner, token)
    }

    /// A new member of `ws` with `role`; returns their token.
    pub async fn member(&self, ws: &Workspace, role: Role) -> String {
        self.member_user(ws, role).await.1
    }

    /// A new member of `ws` with `role`; returns the user and their token.
    pub async fn member_user(&self, ws: &Workspace, role: Role) -> (User, String) {
        let (user, token) = self
            .user(&format!(
                "{}-{}@example.com",
                role.as_str().to_lowercase(),
                plugboard_store::new_id()
            ))
            .await;
        self.db
            .store
            .add_member(&ws.id, &user.id, role)
            .await
            .expect("member");
        (user, token)
    }

    /// Signs `user_id` in through a real sign-in link (`GET /auth/link/…`); returns the session cookie's value.
    pub async fn session_for(&self, user_id: &UserId) -> String {
        let link = crate::people::create_sign_in_link(
            self.db.store.as_ref(),
            &self.state.config.public_url,
            user_id,
            self.state.clock.now_ms(),
        )
        .await
        .expect("sign-in link");
        let path = link
            .url
            .strip_prefix(&self.state.config.public_url)
            .expect("the link is under the public URL")
            .to_string();
        let res = self.raw(Method::GET, &path, None, &[], None).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "sign-in: {}", res.text());
        session_from(&res.headers).expect("a session cookie")
    }

    /// The origin of the public URL, as a browser sends it in `Origin`.
    pub fn origin(&self) -> String {
        crate::auth::public_origin(&self.state.config)
    }

    pub async fn request(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> TestResponse {
        let body = body.map(|b| b.to_string().into_bytes());
        self.raw(method, uri, token, &[], body).await
    }

    pub async fn raw(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> TestResponse {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .expect("request");
        let res = self.router.clone().oneshot(req).await.expect("response");
        let status = res.status();
        let headers = res.headers().clone();
        let body = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .expect("body");
        TestResponse {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, uri: &str, token: Option<&str>) -> TestResponse {
        self.request(Method::GET, uri, token, None).await
    }

    pub async fn post(
        &self,
        uri: &str,
        token: Option<&str>,
        body: serde_json::Value,
    ) -> TestResponse {
        self.request(Method::POST, uri, token, Some(body)).await
    }
}

/// The value of the `plugboard_session` cookie a response sets, if it sets one.
pub fn session_from(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.strip_prefix(&format!("{}=", crate::sessions::SESSION_COOKIE)))
        .map(|rest| rest.split(';').next().unwrap_or("").to_string())
        .find(|v| !v.is_empty())
}

/// Someone sending requests: a bearer token, a session cookie (with an `Origin` header), or nothing (anonymous).
#[derive(Clone)]
pub struct Caller<'a> {
    app: &'a TestApp,
    token: Option<String>,
    session: Option<String>,
    origin: Option<String>,
    user_id: Option<UserId>,
}

impl<'a> Caller<'a> {
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The session cookie's value, for a caller signed in with a session.
    pub fn session(&self) -> Option<&str> {
        self.session.as_deref()
    }

    /// Who this is (looked up by the token when the caller was made from a bare token).
    pub async fn user_id(&self) -> UserId {
        if let Some(u) = &self.user_id {
            return u.clone();
        }
        let token = self
            .token
            .as_deref()
            .expect("an anonymous caller is nobody");
        self.app
            .db
            .store
            .token_owner(&crate::api_tokens::hash_token(token))
            .await
            .expect("token lookup")
            .expect("a live token")
            .user_id
    }

    /// The same person signed in with a new browser session (through a sign-in link), sending Plugboard's
    /// `Origin` and no bearer token.
    pub async fn by_cookie(&self) -> Caller<'a> {
        let user_id = self.user_id().await;
        let session = self.app.session_for(&user_id).await;
        Caller {
            app: self.app,
            token: None,
            session: Some(session),
            origin: Some(self.app.origin()),
            user_id: Some(user_id),
        }
    }

    /// This caller with another `Origin` header (`None`: without one).
    pub fn with_origin(&self, origin: Option<&str>) -> Caller<'a> {
        Caller {
            origin: origin.map(str::to_string),
            ..self.clone()
        }
    }

    pub async fn get(&self, uri: &str) -> TestResponse {
        self.send(Method::GET, uri, None).await
    }

    pub async fn post(&self, uri: &str, body: serde_json::Value) -> TestResponse {
        self.send(Method::POST, uri, Some(body)).await
    }

    pub async fn patch(&self, uri: &str, body: serde_json::Value) -> TestResponse {
        self.send(Method::PATCH, uri, Some(body)).await
    }

    pub async fn delete(&self, uri: &str) -> TestResponse {
        self.send(Method::DELETE, uri, None).await
    }

    /// Any method with an optional JSON body.
    pub async fn send(
        &self,
        method: Method,
        uri: &str,
        body: Option<serde_json::Value>,
    ) -> TestResponse {
        self.raw(method, uri, &[], body.map(|b| b.to_string().into_bytes()))
            .await
    }

    /// Any method, extra headers, raw body bytes.
    pub async fn raw(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> TestResponse {
        let cookie = self
            .session
            .as_ref()
            .map(|s| format!("{}={s}", crate::sessions::SESSION_COOKIE));
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if let Some(c) = &cookie {
            all.push(("cookie", c));
        }
        if let Some(o) = &self.origin {
            all.push(("origin", o));
        }
        self.app.raw(method, uri, self.token(), &all, body).await
    }
}

/// A workspace, its owner, and members made on demand.
pub struct Team<'a> {
    pub app: &'a TestApp,
    pub ws: Workspace,
    pub owner: Caller<'a>,
}

impl<'a> Team<'a> {
    pub fn id(&self) -> &WorkspaceId {
        &self.ws.id
    }

    /// A new member with `role`, as a caller with a bearer token (`.by_cookie()` for a browser session).
    pub async fn as_role(&self, role: Role) -> Caller<'a> {
        let (user, token) = self.app.member_user(&self.ws, role).await;
        Caller {
            user_id: Some(user.id),
            ..self.app.with_token(&token)
        }
    }

    pub async fn as_viewer(&self) -> Caller<'a> {
        self.as_role(Role::Viewer).await
    }

    pub async fn as_member(&self) -> Caller<'a> {
        self.as_role(Role::Member).await
    }

    pub async fn as_manager(&self) -> Caller<'a> {
        self.as_role(Role::Manager).await
    }

    pub async fn as_admin(&self) -> Caller<'a> {
        self.as_role(Role::Admin).await
    }
}

impl TestApp {
    /// A caller without a token.
    pub fn anonymous(&self) -> Caller<'_> {
        Caller {
            app: self,
            token: None,
            session: None,
            origin: None,
            user_id: None,
        }
    }

    /// A caller with this bearer token.
    pub fn with_token(&self, token: &str) -> Caller<'_> {
        Caller {
            token: Some(token.to_string()),
            ..self.anonymous()
        }
    }

    /// A caller with this session cookie, sending Plugboard's `Origin`.
    pub fn with_session(&self, session: &str) -> Caller<'_> {
        Caller {
            session: Some(session.to_string()),
            origin: Some(self.origin()),
            ..self.anonymous()
        }
    }

    /// A new user (a member of nothing) with a token, as a caller.
    pub async fn newcomer(&self) -> Caller<'_> {
        let (user, token) = self
            .user(&format!(
                "newcomer-{}@example.com",
                plugboard_store::new_id()
            ))
            .await;
        Caller {
            user_id: Some(user.id),
            ..self.with_token(&token)
        }
    }

    /// A new workspace with its owner as a caller; `team.as_manager()` and friends add members.
    pub async fn team(&self) -> Team<'_> {
        let (ws, owner, token) = self.workspace_with_owner().await;
        Team {
            app: self,
            ws,
            owner: Caller {
                user_id: Some(owner.id),
                ..self.with_token(&token)
            },
        }
    }
}
