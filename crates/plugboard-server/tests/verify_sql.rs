//! SQL verify probes against the real local PostgreSQL at 127.0.0.1:5432 (user `postgres`). Each test that needs it
//! passes with a note when that server is not reachable. The guard tests use recording listeners instead.

// clippy.toml lets `#[test]` functions unwrap, expect and panic; the helpers and `test_on_both_backends!` bodies of
// an integration test crate are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod verify_support;

use std::time::Duration;

use serde_json::json;
use verify_support::*;

/// The built-in PostgreSQL manifest's shape: fields, a derived DSN, a sql verify.
fn postgres_manifest(id: &str, dsn_suffix: &str) -> String {
    format!(
        r#"id: {id}
name: PostgreSQL {id}
auth_mode: conn_string
fields:
  - {{key: host, label: Host, type: text, required: true}}
  - {{key: port, label: Port, type: number, required: true, default: "5432"}}
  - {{key: database, label: Database, type: text, required: true}}
  - {{key: user, label: User, type: text, required: true}}
  - {{key: password, label: Password, type: password, required: true}}
derived:
  dsn: "postgres://${{field.user|url}}:${{field.password|url}}@${{field.host}}:${{field.port}}/${{field.database|url}}{dsn_suffix}"
mcp: {{transport: stdio, command: npx}}
verify:
  sql: {{driver: postgres, dsn: "${{derived.dsn}}"}}
"#
    )
}

/// A manifest whose DSN is typed whole (to test the key=value form and what a DSN may name).
fn raw_dsn_manifest(id: &str, driver: &str) -> String {
    format!(
        r#"id: {id}
name: Raw {id}
auth_mode: conn_string
fields:
  - {{key: dsn, label: Connection string, type: password, required: true}}
mcp: {{transport: stdio, command: npx}}
verify:
  sql: {{driver: {driver}, dsn: "${{field.dsn}}"}}
"#
    )
}

fn manifests() -> Vec<String> {
    vec![
        postgres_manifest("pg", ""),
        postgres_manifest("pg-plain", "?sslmode=disable"),
        postgres_manifest("pg-tls", "?sslmode=require"),
        postgres_manifest("pg-verified", "?sslmode=verify-full"),
        raw_dsn_manifest("pg-raw", "postgres"),
        raw_dsn_manifest("my-raw", "mysql"),
    ]
}

/// The local PostgreSQL the tests log in to: `PLUGBOARD_TEST_DATABASE_URL`'s server and credentials when it names
/// one on 127.0.0.1 / localhost, else `postgres@127.0.0.1:5432` (trust auth on the dev and CI machines).
struct LocalPg {
    port: u16,
    user: String,
    password: String,
}

async fn local_pg() -> Option<LocalPg> {
    let mut pg = LocalPg {
        port: 5432,
        user: "postgres".to_owned(),
        password: String::new(),
    };
    if let Some(url) = std::env::var("PLUGBOARD_TEST_DATABASE_URL")
        .ok()
        .and_then(|u| url::Url::parse(&u).ok())
    {
        if matches!(url.host_str(), Some("127.0.0.1" | "localhost")) {
            pg.port = url.port().unwrap_or(5432);
            if !url.username().is_empty() {
                pg.user = url.username().to_owned();
            }
            pg.password = url.password().unwrap_or_default().to_owned();
        }
    }
    let up = matches!(
        tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::TcpStream::connect(("127.0.0.1", pg.port))
        )
        .await,
        Ok(Ok(_))
    );
    if !up {
        eprintln!(
            "PostgreSQL is not reachable at 127.0.0.1:{}: SQL verify test not run",
            pg.port
        );
        return None;
    }
    Some(pg)
}

/// Form values for the local server; the password is the real one when known (any value passes trust auth).
fn fields_for(pg: &LocalPg, database: &str, user: &str) -> serde_json::Value {
    let password = if pg.password.is_empty() {
        "pw-Secret-123"
    } else {
        pg.password.as_str()
    };
    json!({"host": "127.0.0.1", "port": pg.port.to_string(), "database": database, "user": user, "password": password})
}

fn fields(database: &str, user: &str) -> serde_json::Value {
    json!({"host": "127.0.0.1", "port": "5432", "database": database, "user": user, "password": "pw-Secret-123"})
}

async fn allowed_app() -> plugboard_server::testing::TestApp {
    app(
        sqlite().await,
        catalog(&manifests()),
        true,
        Duration::from_secs(10),
    )
    .await
}

#[tokio::test]
async fn right_credentials_answer_ok_over_tls_and_plain() {
    let Some(pg) = local_pg().await else {
        return;
    };
    let app = allowed_app().await;
    let (ws, token) = manager(&app).await;
    for connector in ["pg", "pg-plain", "pg-tls"] {
        let (ok, message) = verify(
            &app,
            &token,
            connector,
            &ws,
            fields_for(&pg, "postgres", &pg.user),
        )
        .await;
        if connector == "pg-tls" && message.contains("server does not support TLS") {
            eprintln!("the local PostgreSQL has no TLS: sslmode=require not checkable here");
            continue;
        }
        assert!(ok, "{connector}: {message}");
        assert_eq!(message, "");
    }
    // The key=value form, and localhost by name.
    let (ok, message) = verify(
        &app,
        &token,
        "pg-raw",
        &ws,
        json!({"dsn": format!(
            "host=localhost port={} user={} password='{}' dbname=postgres sslmode=prefer",
            pg.port, pg.user, pg.password
        )}),
    )
    .await;
    assert!(ok, "{message}");
}

#[tokio::test]
async fn an_unknown_database_answers_ok_false_with_the_servers_reason() {
    let Some(pg) = local_pg().await else {
        return;
    };
    let app = allowed_app().await;
    let (ws, token) = manager(&app).await;
    let (ok, message) = verify(
        &app,
        &token,
        "pg",
        &ws,
        fields_for(&pg, "no_such_db_plugboard", &pg.user),
    )
    .await;
    assert!(!ok);
    assert!(
        message.contains(r#"database "no_such_db_plugboard" does not exist"#),
        "{message}"
    );
}

#[tokio::test]
async fn an_unknown_role_answers_ok_false_with_the_servers_reason() {
    let Some(pg) = local_pg().await else {
        return;
    };
    let app = allowed_app().await;
    let (ws, token) = manager(&app).await;
    let (ok, message) = verify(
        &app,
        &token,
        "pg",
        &ws,
        fields_for(&pg, "postgres", "no_such_role_plugboard"),
    )
    .await;
    assert!(!ok);
    // Under trust auth the server names the missing role; under password auth it does not reveal whether it exists.
    assert!(
        message.contains(r#"role "no_such_role_plugboard" does not exist"#)
            || message
                .contains(r#"password authentication failed for user "no_such_role_plugboard""#),
        "{message}"
    );
    assert!(!message.contains("pw-Secret-123"));
}

#[tokio::test]
async fn a_wrong_password_answers_ok_false_with_the_servers_reason() {
    let Some(pg) = local_pg().await else {
        return;
    };
    let app = allowed_app().await;
    let (ws, token) = manager(&app).await;
    let mut f = fields_for(&pg, "postgres", &pg.user);
    f["password"] = json!("Wrong-Password-987");
    let (ok, message) = verify(&app, &token, "pg", &ws, f).await;
    assert!(!message.contains("Wrong-Password-987"), "{message}");
    if ok {
        eprintln!("the local PostgreSQL does not check passwords (trust auth): wrong-password case not checkable here");
        return;
    }
    assert!(
        message.contains("password authentication failed"),
        "{message}"
    );
}

#[tokio::test]
async fn verify_full_refuses_a_certificate_no_public_root_signed() {
    let Some(pg) = local_pg().await else {
        return;
    };
    let app = allowed_app().await;
    let (ws, token) = manager(&app).await;
    // The local server's certificate is self-signed (or it has no TLS at all): either way verify-full fails.
    let (ok, message) = verify(
        &app,
        &token,
        "pg-verified",
        &ws,
        fields_for(&pg, "postgres", &pg.user),
    )
    .await;
    assert!(!ok, "{message}");
    assert!(
        message.contains("certificate") || message.contains("TLS"),
        "{message}"
    );
}

#[tokio::test]
async fn an_unreachable_database_answers_ok_false_with_the_reason() {
    let port = closed_port().await;
    let app = allowed_app().await;
    let (ws, token) = manager(&app).await;
    let mut f = fields("postgres", "postgres");
    f["port"] = json!(port.to_string());
    let (ok, message) = verify(&app, &token, "pg", &ws, f).await;
    assert!(!ok);
    assert!(
        message.starts_with("could not reach the database"),
        "{message}"
    );
}

#[tokio::test]
async fn a_database_outside_allow_cidrs_is_blocked_and_never_connected() {
    let listener = silent("127.0.0.1").await;
    let app = app(
        sqlite().await,
        catalog(&manifests()),
        false,
        Duration::from_secs(5),
    )
    .await;
    let (ws, token) = manager(&app).await;
    let mut f = fields("postgres", "postgres");
    f["port"] = json!(listener.addr.port().to_string());
    let (ok, message) = verify(&app, &token, "pg", &ws, f).await;
    assert!(!ok);
    assert!(message.starts_with("blocked: "), "{message}");
    let dsn = format!(
        "host=127.0.0.1 port={} user=postgres password=pw-Secret-123 dbname=postgres",
        listener.addr.port()
    );
    let (ok, message) = verify(&app, &token, "pg-raw", &ws, json!({"dsn": dsn})).await;
    assert!(!ok);
    assert!(message.starts_with("blocked: "), "{message}");
    let mysql = format!("mysql://root:pw@127.0.0.1:{}/db", listener.addr.port());
    let (ok, message) = verify(&app, &token, "my-raw", &ws, json!({"dsn": mysql})).await;
    assert!(!ok);
    assert!(message.starts_with("blocked: "), "{message}");
    assert_eq!(listener.connections(), 0);
}

#[tokio::test]
async fn unix_sockets_and_invalid_connection_strings_are_refused() {
    let app = allowed_app().await;
    let (ws, token) = manager(&app).await;
    for dsn in [
        "host=/var/run/postgresql user=postgres dbname=postgres",
        "postgresql://postgres@%2Fvar%2Frun%2Fpostgresql/postgres",
    ] {
        let (ok, message) = verify(&app, &token, "pg-raw", &ws, json!({"dsn": dsn})).await;
        assert!(!ok);
        assert!(
            message.contains("unix sockets are not allowed"),
            "{dsn}: {message}"
        );
    }
    for dsn in ["user=postgres dbname=postgres", "not a dsn at all = = ="] {
        let (ok, message) = verify(&app, &token, "pg-raw", &ws, json!({"dsn": dsn})).await;
        assert!(!ok, "{dsn}: {message}");
    }
}

#[tokio::test]
async fn mysql_is_reached_through_the_guard_but_its_credentials_are_not_checked() {
    // A fake MySQL server: a protocol-10 greeting, then nothing.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut payload = vec![0x0a];
            payload.extend_from_slice(b"8.0.36-fake\0");
            payload.extend_from_slice(&[0; 20]);
            let len = payload.len();
            let mut packet = vec![len as u8, 0, 0, 0];
            packet.extend_from_slice(&payload);
            let _ = sock.write_all(&packet).await;
        }
    });
    let app = allowed_app().await;
    let (ws, token) = manager(&app).await;
    let dsn = format!("mysql://root:pw-Secret-123@127.0.0.1:{port}/db");
    let (ok, message) = verify(&app, &token, "my-raw", &ws, json!({"dsn": dsn})).await;
    assert!(ok, "{message}");
    assert!(
        message.contains("8.0.36-fake") && message.contains("not checked"),
        "{message}"
    );
}
