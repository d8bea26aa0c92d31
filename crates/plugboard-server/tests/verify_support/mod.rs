//! Shared helpers for the verify tests: loopback providers that count connections and requests, test catalogs and
//! apps.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::serve::ListenerExt;
use axum::Router;
use plugboard_catalog::{parse_manifest, Catalog};
use plugboard_server::testing::{Db, TestApp};
use plugboard_store::Workspace;
use serde_json::Value;

/// A server on loopback that counts the TCP connections it accepted and the HTTP requests it answered.
pub struct Provider {
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

impl Provider {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Serves `router` on `ip` (any loopback address) at a free port.
pub async fn serve(ip: &str, router: Router) -> Provider {
    let listener = tokio::net::TcpListener::bind((ip, 0))
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("addr");
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let c = connections.clone();
    let listener = listener.tap_io(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
    });
    let r = requests.clone();
    let router = router.layer(middleware::from_fn(move |req: Request, next: Next| {
        let r = r.clone();
        async move {
            r.fetch_add(1, Ordering::SeqCst);
            next.run(req).await
        }
    }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Provider {
        addr,
        connections,
        requests,
    }
}

/// A raw TCP listener that counts connections and never answers (holds them open).
pub struct Silent {
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl Silent {
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

pub async fn silent(ip: &str) -> Silent {
    let listener = tokio::net::TcpListener::bind((ip, 0))
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("addr");
    let connections = Arc::new(AtomicUsize::new(0));
    let c = connections.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            held.push(sock);
        }
    });
    Silent { addr, connections }
}

/// A loopback port with nothing listening.
pub async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    port
}

/// A catalog from YAML manifests.
pub fn catalog(manifests: &[String]) -> Catalog {
    let entries = manifests
        .iter()
        .enumerate()
        .map(|(i, m)| parse_manifest(&format!("test-{i}.yaml"), m).expect("test manifest"))
        .collect();
    Catalog::from_entries(entries).expect("catalog")
}

/// An app over `db` with this catalog; `allow_loopback` opens 127.0.0.1/32 only.
pub async fn app(db: Db, catalog: Catalog, allow_loopback: bool, timeout: Duration) -> TestApp {
    TestApp::build(db, Some(catalog), move |config| {
        config.egress_allow_cidrs = if allow_loopback {
            vec!["127.0.0.1/32".parse().expect("cidr")]
        } else {
            Vec::new()
        };
        config.probe_timeout = timeout;
    })
    .await
}

pub async fn sqlite() -> Db {
    Db::new(plugboard_server::testing::Backend::Sqlite)
        .await
        .expect("sqlite test database")
}

/// A workspace and a MANAGER's token on it.
pub async fn manager(app: &TestApp) -> (Workspace, String) {
    let (ws, _owner) = app.workspace().await;
    let token = app.member(&ws, plugboard_store::Role::Manager).await;
    (ws, token)
}

pub fn verify_uri(connector: &str, ws: &Workspace) -> String {
    format!(
        "/api/v1/connectors/{connector}/verify?workspace_id={}",
        ws.id
    )
}

/// Verifies and returns `(ok, message)`, asserting a 200 with exactly those two keys.
pub async fn verify(
    app: &TestApp,
    token: &str,
    connector: &str,
    ws: &Workspace,
    fields: Value,
) -> (bool, String) {
    let res = app
        .post(
            &verify_uri(connector, ws),
            Some(token),
            serde_json::json!({ "fields": fields }),
        )
        .await;
    res.assert_status(200);
    let v = res.json();
    eprintln!("VERIFY {connector}: {v}");
    let obj = v.as_object().expect("object");
    assert_eq!(obj.len(), 2, "exactly ok and message: {v}");
    (
        v["ok"].as_bool().expect("ok is a bool"),
        v["message"]
            .as_str()
            .expect("message is a string")
            .to_owned(),
    )
}

/// A pat manifest whose verify is an HTTP request (`verify` is the YAML of the `http` block, indented by 4).
pub fn pat_http(id: &str, http_block: &str) -> String {
    format!(
        r#"id: {id}
name: Test {id}
auth_mode: pat
fields:
  - {{key: token, label: Token, type: password, required: true}}
  - {{key: user, label: User, type: text, required: false}}
mcp:
  transport: stdio
  command: npx
verify:
  http:
{http_block}
"#
    )
}
