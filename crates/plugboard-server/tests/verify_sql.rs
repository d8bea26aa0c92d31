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

// --- MySQL / MariaDB ---------------------------------------------------------------------------------------------

/// The built-in MySQL manifest's shape, with an `ssl-mode` appended to the DSN.
fn mysql_manifest(id: &str, dsn_suffix: &str) -> String {
    format!(
        r#"id: {id}
name: MySQL {id}
auth_mode: conn_string
fields:
  - {{key: host, label: Host, type: text, required: true}}
  - {{key: port, label: Port, type: number, required: true, default: "3306"}}
  - {{key: database, label: Database, type: text, required: false}}
  - {{key: user, label: User, type: text, required: true}}
  - {{key: password, label: Password, type: password, required: true}}
derived:
  dsn: "mysql://${{field.user|url}}:${{field.password|url}}@${{field.host}}:${{field.port}}/${{field.database|url}}{dsn_suffix}"
mcp: {{transport: stdio, command: npx}}
verify:
  sql: {{driver: mysql, dsn: "${{derived.dsn}}"}}
"#
    )
}

async fn mysql_app() -> plugboard_server::testing::TestApp {
    let mut manifests = manifests();
    manifests.push(mysql_manifest("my", ""));
    manifests.push(mysql_manifest("my-plain", "?ssl-mode=DISABLED"));
    manifests.push(mysql_manifest("my-tls", "?ssl-mode=REQUIRED"));
    manifests.push(mysql_manifest("my-bad-mode", "?ssl-mode=sometimes"));
    manifests.push(mysql_manifest("my-verified", "?ssl-mode=VERIFY_IDENTITY"));
    app(
        sqlite().await,
        catalog(&manifests),
        true,
        Duration::from_secs(10),
    )
    .await
}

/// The local MariaDB's root (no password) runs SQL through the `mariadb` (or `mysql`) client.
fn mariadb_root(sql: &str) -> bool {
    ["mariadb", "mysql"].iter().any(|bin| {
        std::process::Command::new(bin)
            .args(["-uroot", "-h127.0.0.1", "-P3306", "--batch", "-e", sql])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    })
}

/// A user with a password on the local MariaDB (127.0.0.1:3306), dropped again at the end of the test.
struct MariaUser {
    name: String,
    password: &'static str,
}

/// A password with characters that must be percent-encoded in the DSN.
const MY_PASSWORD: &str = "pw-Secret/123@x";

impl MariaUser {
    async fn create(tag: &str) -> Option<MariaUser> {
        let up = matches!(
            tokio::time::timeout(
                Duration::from_secs(2),
                tokio::net::TcpStream::connect(("127.0.0.1", 3306))
            )
            .await,
            Ok(Ok(_))
        );
        let name = format!("pbv_{tag}_{}", std::process::id());
        let sql = format!(
            "DROP USER IF EXISTS '{name}'@'%', '{name}'@'localhost'; \
             CREATE USER '{name}'@'%' IDENTIFIED BY '{MY_PASSWORD}'; \
             CREATE USER '{name}'@'localhost' IDENTIFIED BY '{MY_PASSWORD}'; \
             GRANT SELECT ON test.* TO '{name}'@'%'; GRANT SELECT ON test.* TO '{name}'@'localhost';"
        );
        if !up || !mariadb_root(&sql) {
            eprintln!("MariaDB is not usable at 127.0.0.1:3306 as root: MySQL verify test not run");
            return None;
        }
        Some(MariaUser {
            name,
            password: MY_PASSWORD,
        })
    }

    fn fields(&self, database: &str, password: &str) -> serde_json::Value {
        json!({"host": "127.0.0.1", "port": "3306", "database": database, "user": self.name, "password": password})
    }
}

impl Drop for MariaUser {
    fn drop(&mut self) {
        let name = &self.name;
        mariadb_root(&format!(
            "DROP USER IF EXISTS '{name}'@'%', '{name}'@'localhost'"
        ));
    }
}

#[tokio::test]
async fn mysql_the_right_password_signs_in_and_runs_a_query() {
    let Some(user) = MariaUser::create("ok").await else {
        return;
    };
    let app = mysql_app().await;
    let (ws, token) = manager(&app).await;
    for (connector, database) in [("my", "test"), ("my-plain", "test"), ("my", "")] {
        let (ok, message) = verify(
            &app,
            &token,
            connector,
            &ws,
            user.fields(database, user.password),
        )
        .await;
        assert!(ok, "{connector} {database:?}: {message}");
        assert_eq!(message, "");
    }
}

#[tokio::test]
async fn mysql_a_wrong_password_answers_ok_false_with_the_servers_reason_redacted() {
    let Some(user) = MariaUser::create("wrong").await else {
        return;
    };
    let app = mysql_app().await;
    let (ws, token) = manager(&app).await;
    let (ok, message) = verify(
        &app,
        &token,
        "my",
        &ws,
        user.fields("test", "Wrong-Password-987"),
    )
    .await;
    assert!(!ok, "{message}");
    assert!(message.contains("Access denied"), "{message}");
    assert!(message.contains(&user.name), "{message}");
    assert!(!message.contains("Wrong-Password-987"), "{message}");
}

#[tokio::test]
async fn mysql_a_database_the_user_may_not_use_answers_ok_false() {
    let Some(user) = MariaUser::create("db").await else {
        return;
    };
    let app = mysql_app().await;
    let (ws, token) = manager(&app).await;
    let (ok, message) = verify(&app, &token, "my", &ws, user.fields("mysql", user.password)).await;
    assert!(!ok, "{message}");
    assert!(message.contains("Access denied"), "{message}");
    assert!(!message.contains(MY_PASSWORD), "{message}");
}

#[tokio::test]
async fn mysql_required_tls_against_a_server_without_it_answers_ok_false_and_a_bad_mode_is_named() {
    let Some(user) = MariaUser::create("tls").await else {
        return;
    };
    let app = mysql_app().await;
    let (ws, token) = manager(&app).await;
    let (ok, message) = verify(
        &app,
        &token,
        "my-tls",
        &ws,
        user.fields("test", user.password),
    )
    .await;
    if ok {
        eprintln!("the local MariaDB offers TLS: the no-TLS case is not checkable here");
    } else {
        assert!(message.contains("does not offer TLS"), "{message}");
    }
    let (ok, message) = verify(
        &app,
        &token,
        "my-bad-mode",
        &ws,
        user.fields("test", user.password),
    )
    .await;
    assert!(!ok);
    assert!(message.contains("ssl-mode"), "{message}");
}

// A fake MySQL 8 server (the third party, faked on loopback) for what MariaDB cannot show: the caching_sha2_password
// fast path, and a switch to the account's own method. It checks the scrambles with mysql_common's functions.

mod fake_mysql {
    use mysql_common::auth::plugins::caching_sha2_password::scramble_sha256;
    use mysql_common::auth::plugins::mysql_native_password::scramble_native;
    use mysql_common::constants::{CapabilityFlags, StatusFlags};
    use mysql_common::io::ParseBuf;
    use mysql_common::packets::{AuthSwitchRequest, HandshakePacket, HandshakeResponse};
    use mysql_common::proto::MySerialize;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    pub const PASSWORD: &str = "fake-Secret-42";
    const NONCE: [u8; 20] = *b"abcdefghijklmnopqrst";
    const SWITCH_NONCE: [u8; 20] = *b"ABCDEFGHIJKLMNOPQRST";

    async fn send(sock: &mut TcpStream, seq: u8, payload: &[u8]) {
        let len = payload.len() as u32;
        let [a, b, c, _] = len.to_le_bytes();
        let mut p = vec![a, b, c, seq];
        p.extend_from_slice(payload);
        sock.write_all(&p).await.expect("write");
    }

    async fn recv(sock: &mut TcpStream) -> (u8, Vec<u8>) {
        let mut h = [0u8; 4];
        sock.read_exact(&mut h).await.expect("header");
        let len = usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16;
        let mut payload = vec![0u8; len];
        sock.read_exact(&mut payload).await.expect("payload");
        (h[3], payload)
    }

    const OK: &[u8] = &[0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00];

    fn denied() -> Vec<u8> {
        let mut p = vec![0xff, 0x15, 0x04, b'#'];
        p.extend_from_slice(b"28000Access denied for user 'app'@'127.0.0.1' (using password: YES)");
        p
    }

    /// Set when a client sent the password in clear text to the fake.
    pub static CLEAR_PASSWORD_SEEN: std::sync::atomic::AtomicBool =
        std::sync::atomic::AtomicBool::new(false);

    /// Serves one connection as a server asking for the password in clear text (over a plain connection).
    pub async fn serve_clear_text(mut sock: TcpStream) {
        let caps = CapabilityFlags::CLIENT_PROTOCOL_41
            | CapabilityFlags::CLIENT_SECURE_CONNECTION
            | CapabilityFlags::CLIENT_PLUGIN_AUTH
            | CapabilityFlags::CLIENT_CONNECT_WITH_DB;
        let mut scramble_2 = NONCE[8..].to_vec();
        scramble_2.push(0);
        let mut greeting = Vec::new();
        HandshakePacket::new(
            10,
            &b"8.0.36-fake"[..],
            7,
            NONCE[..8].try_into().expect("8 bytes"),
            Some(scramble_2),
            caps,
            45,
            StatusFlags::empty(),
            Some(&b"mysql_native_password"[..]),
        )
        .serialize(&mut greeting);
        send(&mut sock, 0, &greeting).await;
        let (seq, _) = recv(&mut sock).await;
        let mut req = Vec::new();
        AuthSwitchRequest::new(&b"mysql_clear_password"[..], &b""[..]).serialize(&mut req);
        send(&mut sock, seq + 1, &req).await;
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_millis(500),
            sock.read_to_end(&mut rest),
        )
        .await;
        if rest
            .windows(PASSWORD.len())
            .any(|w| w == PASSWORD.as_bytes())
        {
            CLEAR_PASSWORD_SEEN.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// Serves one connection: greets with caching_sha2_password; `switch` makes the account a
    /// mysql_native_password one (the server then asks the client to switch).
    pub async fn serve_one(mut sock: TcpStream, switch: bool) {
        let caps = CapabilityFlags::CLIENT_PROTOCOL_41
            | CapabilityFlags::CLIENT_SECURE_CONNECTION
            | CapabilityFlags::CLIENT_PLUGIN_AUTH
            | CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
            | CapabilityFlags::CLIENT_LONG_PASSWORD
            | CapabilityFlags::CLIENT_TRANSACTIONS
            | CapabilityFlags::CLIENT_CONNECT_WITH_DB;
        let mut scramble_2 = NONCE[8..].to_vec();
        scramble_2.push(0);
        let mut greeting = Vec::new();
        HandshakePacket::new(
            10,
            &b"8.0.36-fake"[..],
            7,
            NONCE[..8].try_into().expect("8 bytes"),
            Some(scramble_2),
            caps,
            45,
            StatusFlags::empty(),
            Some(&b"caching_sha2_password"[..]),
        )
        .serialize(&mut greeting);
        send(&mut sock, 0, &greeting).await;
        let (seq, response) = recv(&mut sock).await;
        let response: HandshakeResponse<'_> =
            ParseBuf(&response).parse(()).expect("a handshake response");
        assert_eq!(response.user(), b"app");
        assert_eq!(response.db_name(), Some(&b"shop"[..]));
        let mut seq = seq + 1;
        if switch {
            let mut data = SWITCH_NONCE.to_vec();
            data.push(0);
            let mut req = Vec::new();
            AuthSwitchRequest::new(&b"mysql_native_password"[..], data).serialize(&mut req);
            send(&mut sock, seq, &req).await;
            let (s, answer) = recv(&mut sock).await;
            seq = s + 1;
            let expected = scramble_native(&SWITCH_NONCE, PASSWORD.as_bytes()).expect("scramble");
            if answer != expected {
                send(&mut sock, seq, &denied()).await;
                return;
            }
        } else {
            let expected = scramble_sha256(&NONCE, PASSWORD.as_bytes()).expect("scramble");
            if response.scramble_buf() != expected {
                send(&mut sock, seq, &denied()).await;
                return;
            }
            // Fast authentication success, then OK.
            send(&mut sock, seq, &[0x01, 0x03]).await;
            seq += 1;
        }
        send(&mut sock, seq, OK).await;
        let (_, query) = recv(&mut sock).await;
        assert_eq!(query, b"\x03SELECT 1");
        let mut column = vec![0x03];
        column.extend_from_slice(b"def");
        column.extend_from_slice(&[
            0, 0, 0, 1, b'1', 1, b'1', 0x0c, 0x3f, 0, 1, 0, 0, 0, 0x08, 0x81, 0, 0, 0, 0,
        ]);
        let eof = [0xfe, 0, 0, 0x02, 0];
        for (i, p) in [&[0x01][..], &column, &eof, &[0x01, b'1'], &eof]
            .iter()
            .enumerate()
        {
            send(&mut sock, (i + 1) as u8, p).await;
        }
        let (_, quit) = recv(&mut sock).await;
        assert_eq!(quit, b"\x01");
    }
}

async fn fake_mysql_server(switch: bool) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(fake_mysql::serve_one(sock, switch));
        }
    });
    port
}

#[tokio::test]
async fn mysql_caching_sha2_fast_path_and_a_switch_to_native_password_sign_in() {
    let app = mysql_app().await;
    let (ws, token) = manager(&app).await;
    for switch in [false, true] {
        let port = fake_mysql_server(switch).await;
        let fields = |password: &str| json!({"host": "127.0.0.1", "port": port.to_string(), "database": "shop", "user": "app", "password": password});
        let (ok, message) = verify(&app, &token, "my", &ws, fields(fake_mysql::PASSWORD)).await;
        assert!(ok, "switch={switch}: {message}");
        let (ok, message) = verify(&app, &token, "my", &ws, fields("Wrong-Password-987")).await;
        assert!(!ok, "switch={switch}");
        assert!(message.contains("Access denied"), "{message}");
        assert!(!message.contains("Wrong-Password-987"), "{message}");
    }
}

#[tokio::test]
async fn mysql_a_server_asking_for_the_password_in_clear_text_without_tls_never_gets_it() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let served = tokio::spawn(async move {
        if let Ok((sock, _)) = listener.accept().await {
            fake_mysql::serve_clear_text(sock).await;
        }
    });
    let app = mysql_app().await;
    let (ws, token) = manager(&app).await;
    let fields = json!({"host": "127.0.0.1", "port": port.to_string(), "database": "shop", "user": "app",
                        "password": fake_mysql::PASSWORD});
    let (ok, message) = verify(&app, &token, "my", &ws, fields).await;
    assert!(!ok);
    assert!(message.contains("clear text"), "{message}");
    served.await.expect("the fake server ran");
    assert!(!fake_mysql::CLEAR_PASSWORD_SEEN.load(std::sync::atomic::Ordering::SeqCst));
}

#[tokio::test]
async fn mysql_a_server_that_greets_and_hangs_up_or_is_not_mysql_answers_ok_false() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let mut n = 0;
        while let Ok((mut sock, _)) = listener.accept().await {
            n += 1;
            let packet = if n == 1 {
                // A protocol-10 greeting cut short, then the connection closes.
                let mut payload = vec![0x0a];
                payload.extend_from_slice(b"8.0.36-fake\0");
                payload.extend_from_slice(&[0; 20]);
                let mut p = vec![payload.len() as u8, 0, 0, 0];
                p.extend_from_slice(&payload);
                p
            } else {
                b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec()
            };
            let _ = sock.write_all(&packet).await;
        }
    });
    let app = mysql_app().await;
    let (ws, token) = manager(&app).await;
    for _ in 0..2 {
        let dsn = format!("mysql://root:pw-Secret-123@127.0.0.1:{port}/db");
        let (ok, message) = verify(&app, &token, "my-raw", &ws, json!({"dsn": dsn})).await;
        assert!(!ok, "{message}");
        assert!(!message.contains("pw-Secret-123"), "{message}");
    }
}

/// A private MariaDB server with TLS (a self-signed certificate) and `require_secure_transport`, started by the test
/// from the machine's MariaDB binaries in a temporary folder, and stopped when dropped.
struct TlsMaria {
    _dir: tempfile::TempDir,
    port: u16,
    child: std::process::Child,
}

impl TlsMaria {
    async fn start() -> Option<TlsMaria> {
        use std::process::{Command, Stdio};
        let dir = tempfile::tempdir().ok()?;
        let d = dir.path();
        let quiet = |c: &mut Command| c.stdout(Stdio::null()).stderr(Stdio::null()).status();
        let installed = quiet(Command::new("mariadb-install-db").args([
            "--no-defaults",
            &format!("--datadir={}", d.join("data").display()),
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--user=root",
        ]))
        .is_ok_and(|s| s.success());
        let cert = quiet(Command::new("openssl").args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-keyout",
            &d.join("key.pem").display().to_string(),
            "-out",
            &d.join("cert.pem").display().to_string(),
        ]))
        .is_ok_and(|s| s.success());
        if !installed || !cert {
            eprintln!("mariadb-install-db or openssl is missing: the MySQL TLS test is not run");
            return None;
        }
        let port = closed_port().await;
        let child = Command::new("mariadbd")
            .args([
                "--no-defaults".to_owned(),
                format!("--datadir={}", d.join("data").display()),
                format!("--port={port}"),
                "--bind-address=127.0.0.1".to_owned(),
                format!("--socket={}", d.join("sock").display()),
                format!("--pid-file={}", d.join("pid").display()),
                format!("--ssl-cert={}", d.join("cert.pem").display()),
                format!("--ssl-key={}", d.join("key.pem").display()),
                "--require-secure-transport=ON".to_owned(),
                "--user=root".to_owned(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let server = TlsMaria {
            _dir: dir,
            port,
            child,
        };
        let sql = format!(
            "CREATE USER 'tls_user'@'%' IDENTIFIED BY '{MY_PASSWORD}'; GRANT SELECT ON mysql.* TO 'tls_user'@'%';"
        );
        for _ in 0..100 {
            let ok = Command::new("mariadb")
                .args([
                    "-uroot",
                    "-h127.0.0.1",
                    &format!("-P{port}"),
                    "--ssl",
                    "--batch",
                    "-e",
                    &sql,
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Some(server);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!("the private MariaDB did not start: the MySQL TLS test is not run");
        None
    }

    fn fields(&self, password: &str) -> serde_json::Value {
        json!({"host": "127.0.0.1", "port": self.port.to_string(), "database": "mysql", "user": "tls_user", "password": password})
    }
}

impl Drop for TlsMaria {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn mysql_signs_in_over_tls_when_the_server_offers_it_and_checks_the_certificate_when_asked() {
    let Some(server) = TlsMaria::start().await else {
        return;
    };
    let app = mysql_app().await;
    let (ws, token) = manager(&app).await;
    // The server refuses any connection without TLS, so these successes were made over TLS.
    for connector in ["my", "my-tls"] {
        let (ok, message) = verify(&app, &token, connector, &ws, server.fields(MY_PASSWORD)).await;
        assert!(ok, "{connector}: {message}");
    }
    let (ok, message) = verify(
        &app,
        &token,
        "my-tls",
        &ws,
        server.fields("Wrong-Password-987"),
    )
    .await;
    assert!(!ok);
    assert!(message.contains("Access denied"), "{message}");
    assert!(!message.contains("Wrong-Password-987"), "{message}");
    // Without TLS the server says no to the same, right, password (MariaDB words it as an access denial).
    let (ok, message) = verify(&app, &token, "my-plain", &ws, server.fields(MY_PASSWORD)).await;
    assert!(!ok);
    assert!(
        message.contains("insecure transport") || message.contains("Access denied"),
        "{message}"
    );
    // The certificate is self-signed: checking it against the public roots fails.
    let (ok, message) = verify(&app, &token, "my-verified", &ws, server.fields(MY_PASSWORD)).await;
    assert!(!ok);
    assert!(
        message.contains("TLS") || message.contains("certificate"),
        "{message}"
    );
    assert!(!message.contains(MY_PASSWORD), "{message}");
}
