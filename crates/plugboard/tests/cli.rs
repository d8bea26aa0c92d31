//! The binary as an operator uses it: operator commands print one JSON object (or fail with a message on stderr),
//! and `serve` answers on the configured database, seeing tokens created and revoked by other processes.

// clippy.toml lets `#[test]` functions unwrap, expect and panic; the helpers and `test_on_both_backends!` bodies of
// an integration test crate are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use plugboard_store::testing::{Backend, TestDb};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_plugboard");

struct Env {
    dir: tempfile::TempDir,
    database_url: Option<String>,
    master_key: Option<String>,
}

impl Env {
    fn sqlite() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
            database_url: None,
            master_key: None,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env_remove("PLUGBOARD_DATABASE_URL")
            .env_remove("PLUGBOARD_MASTER_KEY")
            .env_remove("PLUGBOARD_CATALOG_DIR")
            .env_remove("RUST_LOG")
            .env("PLUGBOARD_DATA_DIR", self.dir.path())
            .stdin(Stdio::null());
        if let Some(url) = &self.database_url {
            cmd.env("PLUGBOARD_DATABASE_URL", url);
        }
        if let Some(k) = &self.master_key {
            cmd.env("PLUGBOARD_MASTER_KEY", k);
        }
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs a command that must succeed and print exactly one JSON object.
    fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert_eq!(stdout.lines().count(), 1, "exactly one line: {stdout}");
        let v: Value = serde_json::from_str(&stdout).unwrap();
        assert!(v.is_object());
        v
    }

    /// [`Env::json`] with extra environment variables.
    fn json_with(&self, args: &[&str], vars: &[(&str, &str)]) -> Value {
        let mut cmd = self.command(args);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Runs a command that must fail with a message on stderr and nothing on stdout.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(
            out.stdout.is_empty(),
            "stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(!err.trim().is_empty());
        err
    }

    fn user_workspace_token(&self) -> (String, String, String, String) {
        let user = self.json(&[
            "admin",
            "user",
            "create",
            "--email",
            "ada@example.com",
            "--name",
            "Ada",
        ]);
        let user = user["id"].as_str().unwrap().to_string();
        let ws = self.json(&[
            "admin",
            "workspace",
            "create",
            "--name",
            "Acme",
            "--owner",
            &user,
        ]);
        let ws = ws["id"].as_str().unwrap().to_string();
        let tok = self.json(&[
            "admin", "token", "create", "--user", &user, "--name", "laptop",
        ]);
        (
            user,
            ws,
            tok["id"].as_str().unwrap().to_string(),
            tok["token"].as_str().unwrap().to_string(),
        )
    }
}

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `plugboard serve` on an ephemeral port and waits for its `listening` log line.
fn serve(env: &Env) -> Server {
    let mut child = env
        .command(&["serve"])
        .env("PLUGBOARD_LISTEN", "127.0.0.1:0")
        .env("PLUGBOARD_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if v["fields"]["message"] == "listening" {
                    let _ = tx.send(v["fields"]["addr"].as_str().unwrap_or_default().to_string());
                }
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server did not start");
    Server {
        child,
        base: format!("http://{addr}"),
    }
}

async fn get(url: &str, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[test]
fn operator_commands_print_one_json_object_each() {
    let env = Env::sqlite();
    let migrations = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../migrations/sqlite"
    ))
    .unwrap()
    .count();
    assert_eq!(env.json(&["migrate"])["applied"], migrations);
    assert_eq!(env.json(&["migrate"])["applied"], 0);
    let (user, ws, token_id, token) = env.user_workspace_token();
    assert!(token.starts_with("pb_") && token.len() >= 46, "{token}");
    let bob = env.json(&["admin", "user", "create", "--email", "bob@example.com"]);
    let bob = bob["id"].as_str().unwrap();
    let m = env.json(&[
        "admin",
        "member",
        "add",
        "--workspace",
        &ws,
        "--user",
        bob,
        "--role",
        "MANAGER",
    ]);
    assert_eq!(
        m,
        serde_json::json!({"workspace_id": ws, "user_id": bob, "role": "MANAGER"})
    );
    let crew = env.json(&[
        "admin",
        "crew",
        "create",
        "--workspace",
        &ws,
        "--name",
        "Ops",
    ]);
    assert!(crew["id"].is_string());
    let revoked = env.json(&["admin", "token", "revoke", "--id", &token_id]);
    assert_eq!(
        revoked,
        serde_json::json!({"id": token_id, "revoked": true})
    );
    let _ = user;
}

#[test]
fn operator_commands_fail_with_a_message_and_no_json() {
    let env = Env::sqlite();
    let (user, ws, _, _) = env.user_workspace_token();
    assert!(env
        .fails(&["admin", "user", "create", "--email", "ada@example.com"])
        .contains("already exists"));
    assert!(env
        .fails(&["admin", "user", "create", "--email", "not-an-email"])
        .contains("email"));
    assert!(env
        .fails(&[
            "admin",
            "workspace",
            "create",
            "--name",
            "X",
            "--owner",
            "nobody"
        ])
        .contains("nobody"));
    assert!(env
        .fails(&[
            "admin",
            "member",
            "add",
            "--workspace",
            &ws,
            "--user",
            &user,
            "--role",
            "KING"
        ])
        .contains("VIEWER"));
    assert!(env
        .fails(&[
            "admin",
            "member",
            "add",
            "--workspace",
            "nope",
            "--user",
            &user,
            "--role",
            "VIEWER"
        ])
        .contains("workspace"));
    assert!(env
        .fails(&[
            "admin",
            "crew",
            "create",
            "--workspace",
            "nope",
            "--name",
            "x"
        ])
        .contains("workspace"));
    assert!(env
        .fails(&["admin", "token", "create", "--user", "nobody"])
        .contains("nobody"));
    assert!(env
        .fails(&["admin", "token", "revoke", "--id", "nope"])
        .contains("nope"));
}

#[test]
fn bad_configuration_fails_at_start_saying_how_to_fix_it() {
    let env = Env::sqlite();
    let cases = [
        ("PLUGBOARD_LISTEN", "nowhere", "host:port"),
        (
            "PLUGBOARD_DATABASE_URL",
            "mysql://x",
            "sqlite:// or postgres://",
        ),
        ("PLUGBOARD_PUBLIC_URL", "ftp://x", "http(s)"),
        (
            "PLUGBOARD_EGRESS_ALLOW_CIDRS",
            "10.0.0.0/99",
            "PLUGBOARD_EGRESS_ALLOW_CIDRS",
        ),
        ("PLUGBOARD_PROBE_TIMEOUT_MS", "soon", "milliseconds"),
        ("PLUGBOARD_LOG_FORMAT", "xml", "pretty"),
        (
            "PLUGBOARD_VERIFY_RATE_PER_MINUTE",
            "0",
            "PLUGBOARD_VERIFY_RATE_PER_MINUTE",
        ),
        ("PLUGBOARD_MASTER_KEY", "c2hvcnQ=", "32"),
    ];
    for (var, value, hint) in cases {
        let out = env.command(&["serve"]).env(var, value).output().unwrap();
        assert!(!out.status.success(), "{var}={value} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(hint), "{var}={value}: {err}");
        assert!(!err.contains("c2hvcnQ="), "the key must not be echoed");
    }
}

#[test]
fn catalog_lint_reports_every_bad_file_and_exits_accordingly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        "id: a\nname: A\nauth_mode: none\nmcp: {transport: stdio, command: npx}\n",
    )
    .unwrap();
    let env = Env::sqlite();
    let v = env.json(&["catalog", "lint", dir.path().to_str().unwrap()]);
    assert_eq!(v, serde_json::json!({"valid": 1, "invalid": []}));
    std::fs::write(
        dir.path().join("b.yaml"),
        "id: b\nname: B\nauth_mode: none\nbogus: 1\nmcp: {transport: stdio, command: x}\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("c.json"), "{").unwrap();
    let out = env.run(&["catalog", "lint", dir.path().to_str().unwrap()]);
    assert!(!out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], 1);
    let invalid = v["invalid"].as_array().unwrap();
    assert_eq!(invalid.len(), 2);
    assert!(
        invalid[0]["error"].as_str().unwrap().contains("bogus"),
        "{v}"
    );
    let builtin = env.json(&[
        "catalog",
        "lint",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../catalog"),
    ]);
    assert!(builtin["valid"].as_u64().unwrap() >= 12);
}

async fn serve_sees_tokens_from_other_processes(env: Env) {
    let (_, _, token_id, token) = env.user_workspace_token();
    let server = serve(&env);
    let res = reqwest::get(format!("{}/readyz", server.base))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let list = get(&format!("{}/api/v1/connectors", server.base), &token).await;
    assert_eq!(list.status(), 200);
    let items: Value = list.json().await.unwrap();
    assert!(items.as_array().unwrap().len() >= 12);
    // A token made after start works on the next request.
    let user = env.json(&["admin", "user", "create", "--email", "late@example.com"]);
    let late = env.json(&[
        "admin",
        "token",
        "create",
        "--user",
        user["id"].as_str().unwrap(),
    ]);
    let late_token = late["token"].as_str().unwrap();
    assert_eq!(
        get(&format!("{}/api/v1/connectors", server.base), late_token)
            .await
            .status(),
        200
    );
    // A revoked one fails within one second.
    env.json(&["admin", "token", "revoke", "--id", &token_id]);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        get(&format!("{}/api/v1/connectors", server.base), &token)
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn serve_on_sqlite_sees_tokens_created_and_revoked_by_the_cli() {
    serve_sees_tokens_from_other_processes(Env::sqlite()).await;
}

#[tokio::test]
async fn serve_on_postgres_sees_tokens_created_and_revoked_by_the_cli() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        eprintln!("PLUGBOARD_TEST_DATABASE_URL is not set: PostgreSQL variant not run");
        return;
    };
    let env = Env {
        dir: tempfile::tempdir().unwrap(),
        database_url: Some(db.url.clone()),
        master_key: Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into()),
    };
    serve_sees_tokens_from_other_processes(env).await;
}

#[tokio::test]
async fn postgres_without_a_master_key_refuses_to_start() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let env = Env {
        dir: tempfile::tempdir().unwrap(),
        database_url: Some(db.url.clone()),
        master_key: None,
    };
    let err = env.fails(&["serve"]);
    assert!(
        err.contains("PLUGBOARD_MASTER_KEY") && err.contains("openssl rand -base64 32"),
        "{err}"
    );
}

#[test]
fn a_wrong_master_key_fails_at_start_not_at_first_decrypt() {
    let env = Env::sqlite();
    {
        let server = serve(&env);
        drop(server);
    }
    let key_file = env.dir.path().join("master.key");
    let meta = std::fs::metadata(&key_file).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    let other = Env {
        dir: tempfile::tempdir().unwrap(),
        database_url: Some(format!(
            "sqlite://{}",
            env.dir.path().join("plugboard.db").display()
        )),
        master_key: Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into()),
    };
    let err = other.fails(&["serve"]);
    assert!(err.contains("master key does not open"), "{err}");
}

#[test]
fn catalog_import_registry_writes_one_linted_manifest_per_server_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("servers.json");
    std::fs::write(
        &input,
        serde_json::json!({"servers": [
            {"server": {"name": "com.example/crm", "description": "CRM", "version": "1.0.0",
                        "remotes": [{"type": "streamable-http", "url": "https://mcp.example.com/mcp",
                                     "headers": [{"name": "X-Api-Key", "isRequired": true, "isSecret": true}]}]}},
            {"server": {"name": "io.github.example/notes", "description": "Notes", "version": "0.3.1",
                        "packages": [{"registryType": "npm", "identifier": "@example/notes-mcp", "version": "0.3.1",
                                      "transport": {"type": "stdio"},
                                      "environmentVariables": [{"name": "NOTES_TOKEN", "isSecret": true, "isRequired": true}]}]}},
            {"server": {"name": "com.example/dotnet", "description": "x", "version": "1.0.0",
                        "packages": [{"registryType": "nuget", "identifier": "Example.Mcp", "version": "1.0.0",
                                      "transport": {"type": "stdio"}}]}}
        ]})
        .to_string(),
    )
    .unwrap();
    let out = dir.path().join("imported");
    let env = Env::sqlite();
    let missing = dir.path().join("missing.json");
    let args = [
        "catalog",
        "import-registry",
        "--out",
        out.to_str().unwrap(),
        input.to_str().unwrap(),
        missing.to_str().unwrap(),
    ];
    let v = env.json(&args);
    assert_eq!(v["written"], 2, "{v}");
    let skipped = v["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 2, "{v}");
    assert_eq!(skipped[0]["name"], "com.example/dotnet");
    assert!(skipped[0]["reason"].as_str().unwrap().contains("nuget"));
    assert!(skipped[1]["reason"]
        .as_str()
        .unwrap()
        .contains("cannot read the file"));
    assert!(out.join("example-crm.yaml").is_file());
    assert!(out.join("example-notes.yaml").is_file());
    let lint = env.json(&["catalog", "lint", out.to_str().unwrap()]);
    assert_eq!(lint, serde_json::json!({"valid": 2, "invalid": []}));

    // A second run keeps the files that are there and says so.
    std::fs::write(out.join("example-crm.yaml"), "# edited by hand\n").unwrap();
    let v = env.json(&args[..5]);
    assert_eq!(v["written"], 0, "{v}");
    assert!(v["skipped"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("already exists"));
    assert_eq!(
        std::fs::read_to_string(out.join("example-crm.yaml")).unwrap(),
        "# edited by hand\n"
    );
}

#[test]
fn people_commands_list_users_workspaces_and_tokens_without_secrets() {
    let env = Env::sqlite();
    let (user, ws, token_id, token) = env.user_workspace_token();
    let users = env.json(&["admin", "user", "list"]);
    let items = users["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], user.as_str());
    assert_eq!(items[0]["email"], "ada@example.com");
    assert!(items[0]["created_at"].as_i64().unwrap() > 1_600_000_000_000);
    let workspaces = env.json(&["admin", "workspace", "list"]);
    assert_eq!(workspaces["items"][0]["id"], ws.as_str(), "{workspaces}");
    assert_eq!(workspaces["items"][0]["members"], 1);
    env.json(&["admin", "token", "revoke", "--id", &token_id]);
    let out = env.run(&["admin", "token", "list", "--user", &user]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(!stdout.contains(&token), "never a token");
    let tokens: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(tokens["items"][0]["id"], token_id.as_str());
    assert_eq!(tokens["items"][0]["name"], "laptop");
    assert!(tokens["items"][0]["revoked_at"].is_i64());
    assert!(tokens["items"][0]["last_used_at"].is_null());
    let link = env.json(&["admin", "login-link", "--user", &user]);
    let url = link["url"].as_str().unwrap();
    assert!(url.starts_with("http://127.0.0.1:8080/auth/link/"), "{url}");
    assert_eq!(url.len(), "http://127.0.0.1:8080/auth/link/".len() + 43);
    assert!(link["expires_at"].as_i64().unwrap() > 1_600_000_000_000);
    let err = env.fails(&["admin", "login-link", "--user", "nobody"]);
    assert!(
        err.contains("is not a user id") && err.contains("admin user list"),
        "{err}"
    );
    let err = env.fails(&[
        "admin",
        "token",
        "list",
        "--user",
        "cnosuchuser0000000000000",
    ]);
    assert!(err.contains("no user with id"), "{err}");
    let err = env.fails(&["admin", "user", "remove", "--id", &user]);
    assert!(err.contains("only OWNER"), "{err}");
    for args in [
        &["admin", "login-link", "--help"][..],
        &["admin", "user", "list", "--help"],
        &["admin", "token", "list", "--help"],
    ] {
        let out = env.run(args);
        assert!(out.status.success());
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(help.lines().count() > 2, "{help}");
    }
}

async fn a_link_signs_a_person_into_the_running_server(env: Env) {
    let (user, _, _, _) = env.user_workspace_token();
    let server = serve(&env);
    let link = env.json_with(
        &["admin", "login-link", "--user", &user],
        &[("PLUGBOARD_PUBLIC_URL", &server.base)],
    );
    let url = link["url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&format!("{}/auth/link/", server.base)));
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    let res = browser.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/");
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("plugboard_session=") && cookie.contains("HttpOnly; SameSite=Lax"));
    let cookie = cookie.split(';').next().unwrap().to_string();
    let me = browser
        .get(format!("{}/api/v1/me", server.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["email"], "ada@example.com");
    assert_eq!(me["workspaces"][0]["role"], "OWNER");
    // Used: a page that says so.
    let again = browser.get(&url).send().await.unwrap();
    assert_eq!(again.status(), 410);
    assert!(again.headers().get("set-cookie").is_none());
    assert!(again.text().await.unwrap().contains("already used"));
    // A removed user's session fails within a second (the server polls the credential generation).
    let bob = env.json(&["admin", "user", "create", "--email", "bob@example.com"]);
    let bob = bob["id"].as_str().unwrap();
    let link = env.json_with(
        &["admin", "login-link", "--user", bob],
        &[("PLUGBOARD_PUBLIC_URL", &server.base)],
    );
    let res = browser
        .get(link["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let bob_cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let me = |c: String| {
        let b = browser.clone();
        let url = format!("{}/api/v1/me", server.base);
        async move {
            b.get(url)
                .header("cookie", c)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(me(bob_cookie.clone()).await, 200);
    assert_eq!(
        env.json(&["admin", "user", "remove", "--id", bob])["removed"],
        true
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(me(bob_cookie).await, 401);
    assert_eq!(me(cookie).await, 200);
}

#[tokio::test]
async fn on_sqlite_a_sign_in_link_from_the_cli_signs_a_person_into_the_running_server() {
    a_link_signs_a_person_into_the_running_server(Env::sqlite()).await;
}

#[tokio::test]
async fn on_postgres_a_sign_in_link_from_the_cli_signs_a_person_into_the_running_server() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        eprintln!("PLUGBOARD_TEST_DATABASE_URL is not set: PostgreSQL variant not run");
        return;
    };
    let env = Env {
        dir: tempfile::tempdir().unwrap(),
        database_url: Some(db.url.clone()),
        master_key: Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into()),
    };
    a_link_signs_a_person_into_the_running_server(env).await;
}
