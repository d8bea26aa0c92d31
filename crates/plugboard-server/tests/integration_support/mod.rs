//! Shared by the install / integrations / secrets / rotation tests: installs through the API, raw access to the
//! test database (to scan it for canaries and to tamper with ciphertexts), and log capture.

#![allow(dead_code)]

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use axum::http::Method;
use base64::Engine;
use plugboard_server::testing::{Db, TestApp, TestResponse};
use plugboard_store::Workspace;
use serde_json::{json, Value};

/// A value that must never appear anywhere but `/runtime`.
pub fn canary() -> String {
    format!("canary{}", plugboard_store::new_id())
}

/// A GitHub-shaped token (the manifest wants at least 40 characters) carrying `canary`.
pub fn github_token(canary: &str) -> String {
    format!("ghp_{canary}_{}", "x".repeat(40))
}

pub fn install_uri(connector: &str, ws: &str) -> String {
    format!("/api/v1/connectors/{connector}/install?workspace_id={ws}")
}

/// Installs and asserts 201; returns the response JSON.
pub async fn install(
    app: &TestApp,
    token: &str,
    ws: &Workspace,
    connector: &str,
    body: Value,
) -> Value {
    let res = app
        .post(&install_uri(connector, &ws.id), Some(token), body)
        .await;
    res.assert_status(201);
    res.json()
}

pub async fn install_github(app: &TestApp, token: &str, ws: &Workspace, pat: &str) -> String {
    install(app, token, ws, "github", json!({"fields": {"token": pat}})).await["integration_id"]
        .as_str()
        .expect("integration_id")
        .to_string()
}

pub async fn runtime(app: &TestApp, token: &str, id: &str) -> TestResponse {
    app.get(&format!("/api/v1/integrations/{id}/runtime"), Some(token))
        .await
}

pub async fn patch(app: &TestApp, token: &str, id: &str, body: Value) -> TestResponse {
    app.request(
        Method::PATCH,
        &format!("/api/v1/integrations/{id}"),
        Some(token),
        Some(body),
    )
    .await
}

/// Every form the canary could take in storage or a log: raw, hex, and base64 (standard and URL-safe) at each of
/// the three alignments it can have inside a longer encoded value.
pub fn forms(canary: &str) -> Vec<String> {
    let raw = canary.as_bytes();
    let mut out = vec![
        canary.to_string(),
        raw.iter().map(|b| format!("{b:02x}")).collect(),
        raw.iter().map(|b| format!("{b:02X}")).collect(),
    ];
    for engine in [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::URL_SAFE,
    ] {
        for shift in 0..3usize {
            let mut buf = vec![b'A'; shift];
            buf.extend_from_slice(raw);
            let enc = engine.encode(&buf);
            // Drop the characters that depend on the bytes before (shift) and after (the tail) the canary.
            let skip = if shift == 0 { 0 } else { 4 };
            let core: String = enc
                .chars()
                .skip(skip)
                .take(enc.len().saturating_sub(skip + 4))
                .collect();
            assert!(
                core.len() >= 16,
                "canary too short for a meaningful base64 scan"
            );
            out.push(core);
        }
    }
    out
}

/// Asserts that no form of any canary occurs in `haystack`.
#[track_caller]
pub fn assert_clean(haystack: &[u8], canaries: &[String], place: &str) {
    for c in canaries {
        for f in forms(c) {
            let found = haystack.windows(f.len()).any(|w| w == f.as_bytes());
            assert!(!found, "a form of the canary ({f}) appears in {place}");
        }
    }
}

pub fn is_postgres(db: &Db) -> bool {
    db.url.starts_with("postgres")
}

/// Every byte the database holds: the SQLite file with its `-wal` and `-shm`, or every row of every table of the
/// PostgreSQL test schema as text (bytea shows as hex there).
pub async fn database_dump(db: &Db) -> Vec<(String, Vec<u8>)> {
    if is_postgres(db) {
        let pool = sqlx::PgPool::connect(&db.url).await.expect("connect");
        let tables: Vec<(String,)> = sqlx::query_as(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
        )
        .fetch_all(&pool)
        .await
        .expect("tables");
        assert!(tables.iter().any(|(t,)| t == "secrets"), "{tables:?}");
        let mut out = Vec::new();
        for (t,) in tables {
            let rows: Vec<(String,)> = sqlx::query_as(&format!("SELECT x::text FROM \"{t}\" x"))
                .fetch_all(&pool)
                .await
                .expect("rows");
            let text: String = rows.into_iter().map(|(r,)| r + "\n").collect();
            out.push((format!("postgres table {t}"), text.into_bytes()));
        }
        pool.close().await;
        out
    } else {
        let dir = db.data_dir.clone().expect("sqlite data dir");
        let mut out = Vec::new();
        for name in ["plugboard.db", "plugboard.db-wal", "plugboard.db-shm"] {
            let path = dir.join(name);
            if let Ok(bytes) = std::fs::read(&path) {
                out.push((path.display().to_string(), bytes));
            }
        }
        assert!(out
            .iter()
            .any(|(p, b)| p.ends_with("plugboard.db") && !b.is_empty()));
        out
    }
}

/// Rewrites one secret row directly in the database.
pub async fn set_secret(
    db: &Db,
    integration_id: &str,
    name: &str,
    key_id: &str,
    ciphertext: &[u8],
) {
    let sql =
        "UPDATE secrets SET key_id = $1, ciphertext = $2 WHERE integration_id = $3 AND name = $4";
    let affected = if is_postgres(db) {
        let pool = sqlx::PgPool::connect(&db.url).await.expect("connect");
        let r = sqlx::query(sql)
            .bind(key_id)
            .bind(ciphertext)
            .bind(integration_id)
            .bind(name)
            .execute(&pool)
            .await
            .expect("update")
            .rows_affected();
        pool.close().await;
        r
    } else {
        let pool = sqlx::SqlitePool::connect(&db.url).await.expect("connect");
        let r = sqlx::query(sql)
            .bind(key_id)
            .bind(ciphertext)
            .bind(integration_id)
            .bind(name)
            .execute(&pool)
            .await
            .expect("update")
            .rows_affected();
        pool.close().await;
        r
    };
    assert_eq!(affected, 1);
}

/// Captured log output (TRACE and up), for the whole test binary.
#[derive(Clone)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
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

/// Installs (once) a global subscriber that writes every event and span at TRACE level into a buffer.
pub fn capture_logs() -> LogBuffer {
    static BUF: OnceLock<LogBuffer> = OnceLock::new();
    BUF.get_or_init(|| {
        let buf = LogBuffer(Arc::new(Mutex::new(Vec::new())));
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        buf
    })
    .clone()
}

impl LogBuffer {
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }
}
