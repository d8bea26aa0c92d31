//! Database outages (PostgreSQL): the app talks to PostgreSQL through a TCP proxy on loopback that the test starts
//! and can stop (every connection closed, new ones closed at once) or freeze (connections accepted, nothing
//! answered), so a stopped and a frozen server are simulated without touching the shared PostgreSQL.
//!
//! Every request is guarded by a generous bound so that a hang fails the test instead of stalling it; nothing here
//! asserts a duration.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod gateway_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use plugboard_server::testing::{Backend, Db, TestApp, TestResponse};
use plugboard_store::ConnectOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Forward,
    /// A stopped server: connections are closed, new ones closed at once.
    Stopped,
    /// A frozen server: connections stay open, nothing is answered.
    Frozen,
}

/// A TCP proxy in front of PostgreSQL whose behaviour the test switches.
struct Proxy {
    addr: SocketAddr,
    mode: Arc<watch::Sender<Mode>>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, _) = watch::channel(Mode::Forward);
        let mode = Arc::new(tx);
        let m = mode.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                match *m.borrow() {
                    Mode::Stopped => {
                        drop(client);
                        continue;
                    }
                    Mode::Frozen => {
                        held.push(client);
                        continue;
                    }
                    Mode::Forward => {}
                }
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pipe(cr, sw, m.subscribe()));
                tokio::spawn(pipe(sr, cw, m.subscribe()));
            }
        });
        Proxy { addr, mode }
    }

    fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

/// Copies one direction; stops (closing both ends) when the proxy is stopped, holds the bytes while it is frozen.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            r = from.read(&mut buf) => match r { Ok(0) | Err(_) => return, Ok(n) => n },
            changed = mode.changed() => {
                if changed.is_err() || *mode.borrow() == Mode::Stopped {
                    return;
                }
                continue;
            }
        };
        loop {
            let current = *mode.borrow_and_update();
            match current {
                Mode::Forward => break,
                Mode::Stopped => return,
                Mode::Frozen => {
                    if mode.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

const DB_TIMEOUT: Duration = Duration::from_millis(400);
/// Only there to turn a hang into a failure.
const HANG_GUARD: Duration = Duration::from_secs(30);

async fn guarded<F: std::future::Future<Output = TestResponse>>(what: &str, f: F) -> TestResponse {
    tokio::time::timeout(HANG_GUARD, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer (the request hangs)"))
}

#[track_caller]
fn assert_database_unavailable(res: &TestResponse, what: &str) {
    assert_eq!(
        res.status.as_u16(),
        503,
        "{what}: expected 503, got {} {}",
        res.status,
        res.text()
    );
    assert_eq!(res.json()["code"], "database_unavailable", "{what}");
    assert!(res.json()["error"].is_string(), "{what}");
    let retry: u64 = res
        .headers
        .get("retry-after")
        .unwrap_or_else(|| panic!("{what}: no Retry-After"))
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1, "{what}");
}

/// The app on PostgreSQL through a proxy, with a short database timeout; `None` without a test server.
async fn app_behind_proxy() -> Option<(Db, TestApp, Proxy)> {
    let Some(db) = Db::new(Backend::Postgres).await else {
        eprintln!("PLUGBOARD_TEST_DATABASE_URL is not set: PostgreSQL outage test not run");
        return None;
    };
    let mut url = url::Url::parse(&db.url).unwrap();
    let upstream = tokio::net::lookup_host((
        url.host_str().unwrap().to_string(),
        url.port().unwrap_or(5432),
    ))
    .await
    .unwrap()
    .next()
    .unwrap();
    let proxy = Proxy::start(upstream).await;
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(proxy.addr.port())).unwrap();
    let options = ConnectOptions {
        timeout: DB_TIMEOUT,
        ..ConnectOptions::default()
    };
    let store = plugboard_store::connect_with(url.as_str(), options)
        .await
        .unwrap();
    let mut handle = db.handle();
    handle.store = store;
    handle.url = url.to_string();
    let app = TestApp::build(handle, None, |c| {
        c.db_timeout = DB_TIMEOUT;
        // The gateway test's MCP server is on loopback.
        c.egress_allow_cidrs = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    Some((db, app, proxy))
}

async fn outage_answers_503_and_recovers(mode: Mode) {
    let Some((_db, app, proxy)) = app_behind_proxy().await else {
        return;
    };
    let (ws, owner, token) = app.workspace_with_owner().await;
    let list = format!("/api/v1/integrations?workspace_id={}", ws.id);
    app.with_token(&token).get(&list).await.assert_status(200);
    app.anonymous().get("/readyz").await.assert_status(200);
    // A token never used yet: its lookup needs the database.
    let (_, fresh_token) = app.user("fresh@example.com").await;
    let cookie = app.session_for(&owner.id).await;
    // A session that was never looked up by this instance's cache: signing in through another instance.
    let other = app.another_instance().await;
    let other_cookie = other.session_for(&owner.id).await;

    proxy.set(mode);
    let res = guarded("list", app.with_token(&token).get(&list)).await;
    assert_database_unavailable(&res, "an API request");
    let res = guarded(
        "token lookup",
        app.with_token(&fresh_token).get("/api/v1/me"),
    )
    .await;
    assert_database_unavailable(&res, "a token lookup");
    let res = guarded("session", app.with_session(&other_cookie).get("/api/v1/me")).await;
    assert_database_unavailable(&res, "a session lookup");
    let res = guarded(
        "install",
        app.with_token(&token).post(
            &format!("/api/v1/connectors/github/install?workspace_id={}", ws.id),
            serde_json::json!({"name": "gh", "fields": {"token": "ghp_x"}}),
        ),
    )
    .await;
    assert_database_unavailable(&res, "an install");
    let res = guarded("readyz", app.anonymous().get("/readyz")).await;
    assert_database_unavailable(&res, "/readyz");
    app.anonymous().get("/healthz").await.assert_status(200);

    // Back: the same app answers again without a restart.
    proxy.set(Mode::Forward);
    guarded("readyz after", app.anonymous().get("/readyz"))
        .await
        .assert_status(200);
    guarded("list after", app.with_token(&token).get(&list))
        .await
        .assert_status(200);
    guarded(
        "token after",
        app.with_token(&fresh_token).get("/api/v1/me"),
    )
    .await
    .assert_status(200);
    guarded("session after", app.with_session(&cookie).get("/api/v1/me"))
        .await
        .assert_status(200);
}

#[tokio::test]
async fn a_stopped_postgres_answers_503_database_unavailable_and_service_resumes_when_it_is_back() {
    outage_answers_503_and_recovers(Mode::Stopped).await;
}

#[tokio::test]
async fn a_frozen_postgres_answers_503_database_unavailable_instead_of_hanging_and_service_resumes()
{
    outage_answers_503_and_recovers(Mode::Frozen).await;
}

#[tokio::test]
async fn a_sqlite_database_locked_by_another_writer_answers_503_database_unavailable_then_resumes()
{
    use sqlx::Connection;
    let db = Db::new(Backend::Sqlite).await.unwrap();
    let url = db.url.clone();
    let options = ConnectOptions {
        timeout: DB_TIMEOUT,
        ..ConnectOptions::default()
    };
    let mut handle = db.handle();
    handle.store = plugboard_store::connect_with(&url, options).await.unwrap();
    let app = TestApp::build(handle, None, |c| c.db_timeout = DB_TIMEOUT).await;
    let (ws, token) = app.workspace().await;
    let crews = format!("/api/v1/workspaces/{}/crews", ws.id);
    let mut other = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();
    let res = guarded(
        "write while locked",
        app.with_token(&token)
            .post(&crews, serde_json::json!({"name": "ops"})),
    )
    .await;
    assert_database_unavailable(&res, "a write while another process holds the write lock");
    // Reads go on (WAL).
    app.with_token(&token).get(&crews).await.assert_status(200);
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    guarded(
        "write after",
        app.with_token(&token)
            .post(&crews, serde_json::json!({"name": "ops"})),
    )
    .await
    .assert_status(201);
}

#[tokio::test]
async fn a_database_outage_cuts_no_gateway_stream_of_a_valid_token_and_a_revocation_after_it_still_does(
) {
    use gateway_support::upstream;
    let Some((_db, app, proxy)) = app_behind_proxy().await else {
        return;
    };
    let pb = gateway_support::serve(app).await;
    let (ws, owner) = pb.app.workspace().await;
    let secret = gateway_support::secret();
    let up = upstream::start_with(upstream::Mode::Sessions, Some(format!("Bearer {secret}"))).await;
    gateway_support::custom_http(&pb.app, &owner, &ws, None, "Docs", &up.url(), &secret).await;
    let (token_id, token) = gateway_support::agent_token(&pb.app, &owner, &ws, None, None).await;
    // A call that never answers, through the aggregated endpoint: its event stream stays open.
    let a = gateway_support::within(
        "connect",
        gateway_support::agent::connect(&pb.workspace(ws.id.as_str()), &token),
    )
    .await;
    let call = a.spawn_call("docs__hang", serde_json::Value::Null);
    gateway_support::within("the call starts", up.state.seen.wait_started(1)).await;

    // The database goes away while the stream is open: the checks of its token cannot be answered, and decide nothing.
    proxy.set(Mode::Stopped);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !call.is_finished(),
        "the outage cut the stream of a valid token"
    );
    proxy.set(Mode::Forward);

    // Back: a revocation still cuts it.
    let deadline = std::time::Instant::now() + HANG_GUARD;
    loop {
        let res = pb
            .app
            .request(
                axum::http::Method::DELETE,
                &format!("/api/v1/agent-tokens/{token_id}"),
                Some(&owner),
                None,
            )
            .await;
        if res.status.as_u16() == 204 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the revocation never went through: {} {}",
            res.status,
            res.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!call.is_finished(), "cut before the revocation");
    let ended = gateway_support::within("the cut after the revocation", call)
        .await
        .unwrap();
    assert!(ended.is_err(), "{ended:?}");
}
