//! The binary's life: `serve` started while its database is down (or goes away right after its migration) waits for
//! it (with `/healthz` up and `/readyz` 503), and SIGTERM answers every request already received before the process
//! exits.
//!
//! Waits are guarded by generous bounds so that a hang fails the test; nothing here asserts a duration.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use plugboard_store::testing::{Backend, TestDb};
use serde_json::Value;

const GUARD: Duration = Duration::from_secs(60);

/// Starts `serve` and returns it with the JSON log lines it writes.
fn spawn_serve(env: &Env, vars: &[(&str, &str)]) -> (Server, mpsc::Receiver<Value>) {
    let mut cmd = env.command(&["serve"]);
    cmd.env("PLUGBOARD_LISTEN", "127.0.0.1:0")
        .env("PLUGBOARD_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let v = serde_json::from_str::<Value>(&line)
                .unwrap_or_else(|_| serde_json::json!({"fields": {"message": line}}));
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + GUARD;
    let addr = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("server did not start");
        if line["fields"]["message"] == "listening" {
            break line["fields"]["addr"].as_str().unwrap().to_string();
        }
    };
    (
        Server {
            child,
            base: format!("http://{addr}"),
        },
        rx,
    )
}

/// One HTTP/1.1 exchange on a raw socket, read until the server closes.
fn raw_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(GUARD)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split(' ').nth(1).unwrap().parse().unwrap();
    (status, out)
}

/// Forwards every connection on `listener` to `upstream` (a PostgreSQL coming up).
fn forward(listener: TcpListener, upstream: String) {
    std::thread::spawn(move || {
        for client in listener.incoming().map_while(Result::ok) {
            let Ok(server) = TcpStream::connect(&upstream) else {
                continue;
            };
            let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut c, mut s) = (client, server);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c, &mut s);
                let _ = s.shutdown(std::net::Shutdown::Both);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s2, &mut c2);
                let _ = c2.shutdown(std::net::Shutdown::Both);
            });
        }
    });
}

#[tokio::test]
async fn serve_started_while_postgres_is_down_waits_for_it_with_healthz_up_and_readyz_503() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        eprintln!("PLUGBOARD_TEST_DATABASE_URL is not set: PostgreSQL start-up test not run");
        return;
    };
    // A port where nothing listens yet: the database is "down".
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut url = url_of(&db.url);
    let upstream = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(port)).unwrap();
    let mut env = Env::sqlite();
    env.database_url = Some(url.to_string());
    env.master_key = Some("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".into());
    let (mut server, logs) = spawn_serve(&env, &[("PLUGBOARD_DB_TIMEOUT_MS", "500")]);
    let addr = server.base.trim_start_matches("http://").to_string();
    let (status, _) = raw_get(&addr, "/healthz");
    assert_eq!(status, 200);
    let (status, body) = raw_get(&addr, "/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("database_unavailable"), "{body}");
    let (status, body) = raw_get(&addr, "/api/v1/connectors");
    assert_eq!(status, 503, "{body}");
    // It says so in the log, once per try: wait for two tries.
    let mut tries = 0;
    let deadline = Instant::now() + GUARD;
    while tries < 2 {
        let line = logs
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("no retry logged");
        if line["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("database is unavailable"))
        {
            tries += 1;
        }
    }
    // The database comes up: the server migrates and serves, without a restart.
    forward(TcpListener::bind(("127.0.0.1", port)).unwrap(), upstream);
    wait_until_ready(&addr);
    let (status, body) = raw_get(&addr, "/api/v1/connectors");
    assert!(status == 200 || status == 401, "{body}");
    // Served after waiting, it stops as one served at once does: it leaves (its presence for the gateway's shared
    // bounds ends at once rather than lapsing).
    let present = || async {
        db.store
            .count_leases("instance:", plugboard_store::now_ms())
            .await
            .unwrap()
    };
    let deadline = Instant::now() + GUARD;
    while present().await == 0 {
        assert!(
            Instant::now() < deadline,
            "the instance never announced itself"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sigterm(&server);
    assert!(exit_status(&mut server).success());
    assert_eq!(present().await, 0, "a graceful stop ends the presence");
}

fn sigterm(server: &Server) {
    let pid = server.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
}

/// Waits (guarded) for the process to exit.
fn exit_status(server: &mut Server) -> std::process::ExitStatus {
    let deadline = Instant::now() + GUARD;
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the process did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn serve_waits_when_its_database_goes_away_between_the_migration_and_the_vault_then_serves() {
    use sqlx::Connection;
    let env = Env::sqlite();
    env.json(&["migrate"]);
    // Another writer holds SQLite's write lock: the migration (nothing to apply) reads and passes, the vault's first
    // data key cannot be written.
    let file = env.dir.path().join("plugboard.db");
    let mut writer = sqlx::SqliteConnection::connect(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut writer)
        .await
        .unwrap();
    let (server, logs) = spawn_serve(&env, &[("PLUGBOARD_DB_TIMEOUT_MS", "300")]);
    let addr = server.base.trim_start_matches("http://").to_string();
    let deadline = Instant::now() + GUARD;
    loop {
        let line = logs
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("no retry logged: the server ended or hung");
        let waiting = line["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("database is unavailable"));
        if waiting
            && line["fields"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("vault"))
        {
            break;
        }
    }
    let (status, body) = raw_get(&addr, "/readyz");
    assert_eq!(status, 503, "{body}");
    sqlx::query("ROLLBACK").execute(&mut writer).await.unwrap();
    drop(writer);
    wait_until_ready(&addr);
}

/// Polls `/readyz` until it answers 200 (503 meanwhile, nothing else).
fn wait_until_ready(addr: &str) {
    let deadline = Instant::now() + GUARD;
    loop {
        let (status, body) = raw_get(addr, "/readyz");
        if status == 200 {
            return;
        }
        assert_eq!(status, 503, "{body}");
        assert!(Instant::now() < deadline, "never became ready");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn url_of(s: &str) -> reqwest::Url {
    reqwest::Url::parse(s).unwrap()
}

#[test]
fn sigterm_answers_every_request_already_received_then_exits() {
    let env = Env::sqlite();
    env.json(&["migrate"]);
    let (mut server, _logs) = spawn_serve(&env, &[]);
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut conns = Vec::new();
    for _ in 0..24 {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(GUARD)).unwrap();
        s.write_all(b"GET /readyz HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        conns.push(s);
    }
    sigterm(&server);
    for mut s in conns {
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{out:?}");
    }
    let status = exit_status(&mut server);
    assert!(status.success(), "{status:?}");
}
