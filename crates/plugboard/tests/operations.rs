//! Operating the binary: commands run from the wrong place refuse instead of creating a database, logs are plain
//! text unless on a terminal, the master key from a file, backups taken under load and restored, and rotations
//! started together.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use plugboard_store::testing::{Backend, TestDb};
use serde_json::{json, Value};

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const OTHER_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

#[cfg(unix)]
fn write_key_file(path: &Path, contents: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

// ---- the wrong folder ----

#[test]
fn an_operator_command_run_where_there_is_no_database_refuses_and_creates_nothing() {
    let env = Env::sqlite();
    let expected = env.dir.path().join("plugboard.db");
    let backup = env.dir.path().join("copy.db");
    let backup = backup.to_str().unwrap();
    let commands: [&[&str]; 6] = [
        &["admin", "user", "create", "--email", "ada@example.com"],
        &[
            "admin",
            "workspace",
            "create",
            "--name",
            "A",
            "--owner",
            "u",
        ],
        &["admin", "token", "create", "--user", "u"],
        &["admin", "token", "revoke", "--id", "t"],
        &["vault", "rotate"],
        &["backup", backup],
    ];
    for args in commands {
        let err = env.fails(args);
        assert!(
            err.contains(&format!("no database at {}", expected.display())),
            "{args:?}: {err}"
        );
        assert!(
            err.contains("--data-dir") && err.contains("PLUGBOARD_DATABASE_URL"),
            "{err}"
        );
        assert!(err.contains("plugboard migrate"), "{err}");
    }
    assert!(
        files_in(env.dir.path()).is_empty(),
        "created: {:?}",
        files_in(env.dir.path())
    );

    // The default data dir is ./data, relative to where the command runs: named as an absolute path.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = env
        .command(&["admin", "user", "create", "--email", "ada@example.com"])
        .env_remove("PLUGBOARD_DATA_DIR")
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let expected = elsewhere.path().join("data").join("plugboard.db");
    assert!(err.contains(&expected.display().to_string()), "{err}");
    assert!(files_in(elsewhere.path()).is_empty());

    // `migrate` is how a database is made; then the same command works.
    env.json(&["migrate"]);
    env.json(&["admin", "user", "create", "--email", "ada@example.com"]);
}

#[tokio::test]
async fn an_operator_command_on_a_postgres_database_without_plugboard_tables_refuses_without_showing_the_password(
) {
    let Some(base) = plugboard_store::testing::postgres_url() else {
        eprintln!("PLUGBOARD_TEST_DATABASE_URL is not set: PostgreSQL variant not run");
        return;
    };
    // The same server and database, but a schema nothing was ever migrated into; a password in the URL.
    let with_password = base.replacen("://postgres@", "://postgres:hunter2secret@", 1);
    let sep = if with_password.contains('?') {
        '&'
    } else {
        '?'
    };
    let url = format!(
        "{with_password}{sep}options=-c%20search_path%3Dnever_migrated_{}",
        plugboard_store::new_id()
    );
    let env = Env {
        dir: tempfile::tempdir().unwrap(),
        database_url: Some(url),
        master_key: Some(KEY.into()),
    };
    for args in [
        &["admin", "user", "create", "--email", "ada@example.com"][..],
        &["vault", "rotate"][..],
    ] {
        let err = env.fails(args);
        assert!(err.contains("has no Plugboard tables"), "{err}");
        assert!(err.contains("plugboard migrate"), "{err}");
        assert!(!err.contains("hunter2secret"), "{err}");
    }
}

// ---- logs ----

#[test]
fn pretty_logs_written_to_a_file_carry_no_colour_codes() {
    let env = Env::sqlite();
    let log_path = env.dir.path().join("serve.log");
    let mut child = env
        .command(&["serve"])
        .env("PLUGBOARD_LISTEN", "127.0.0.1:0")
        .env("PLUGBOARD_LOG_FORMAT", "pretty")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let mut text = String::new();
    for _ in 0..300 {
        text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if text.contains("listening") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(text.contains("listening"), "server did not start: {text}");
    assert!(text.contains("WARN") && text.contains("INFO"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "escape codes in a log file: {text:?}"
    );
}

#[cfg(unix)]
#[test]
fn pretty_logs_are_coloured_on_a_terminal_only() {
    let env = Env::sqlite();
    env.json(&["migrate"]);
    // A warning from an operator command: the development key file is readable by others.
    let key = env.dir.path().join("master.key");
    write_key_file(&key, &format!("{KEY}\n"), 0o644);
    let piped = env.run(&["vault", "rotate"]);
    assert!(
        piped.status.success(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    let stderr = String::from_utf8(piped.stderr).unwrap();
    assert!(
        stderr.contains("WARN") && stderr.contains("chmod 600"),
        "{stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "escape codes in a pipe: {stderr:?}"
    );

    // script(1) runs the command on a pseudo-terminal.
    let script = std::process::Command::new("script")
        .arg("--version")
        .output();
    if !script.is_ok_and(|o| o.status.success()) {
        eprintln!("script(1) is not installed: the terminal half of this test is not run");
        return;
    }
    let line = format!("{BIN} vault rotate");
    let tty = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("PLUGBOARD_DATA_DIR", env.dir.path())
        .env_remove("PLUGBOARD_DATABASE_URL")
        .env_remove("PLUGBOARD_MASTER_KEY")
        .env_remove("PLUGBOARD_MASTER_KEY_FILE")
        .env_remove("PLUGBOARD_LOG_FORMAT")
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&tty.stdout);
    assert!(text.contains("chmod 600"), "{text}");
    assert!(
        text.contains("\u{1b}["),
        "no colour on a terminal: {text:?}"
    );
}

// ---- the master key from a file ----

#[cfg(unix)]
#[test]
fn the_master_key_can_come_from_a_private_file_ending_in_a_newline() {
    let env = Env::sqlite();
    let key_file = env.dir.path().join("key");
    write_key_file(&key_file, &format!("{KEY}\n"), 0o600);
    let (_, _, _, token) = env.user_workspace_token();
    let mut cmd = env.command(&["serve"]);
    cmd.env("PLUGBOARD_MASTER_KEY_FILE", &key_file);
    let server = serve_with(cmd);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let res = get(&format!("{}/api/v1/connectors", server.base), &token).await;
        assert_eq!(res.status(), 200);
    });
    drop(server);
    assert!(
        !env.dir.path().join("master.key").exists(),
        "no development key was made"
    );
    // The vault it made opens with the same key given by the file (mode 0400 too) or in the environment, and
    // not with another.
    write_key_file(&key_file, KEY, 0o400);
    let rotated = env
        .command(&["vault", "rotate"])
        .env("PLUGBOARD_MASTER_KEY_FILE", &key_file)
        .output()
        .unwrap();
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    let by_env = env
        .command(&["vault", "rotate"])
        .env("PLUGBOARD_MASTER_KEY", KEY)
        .output()
        .unwrap();
    assert!(by_env.status.success());
    let wrong = env
        .command(&["vault", "rotate"])
        .env("PLUGBOARD_MASTER_KEY", OTHER_KEY)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("master key does not open"));
}

#[cfg(unix)]
#[test]
fn a_master_key_file_its_group_or_others_can_read_or_write_is_refused_saying_how_to_fix_it() {
    let env = Env::sqlite();
    env.json(&["migrate"]);
    let key_file = env.dir.path().join("master-key.b64");
    for mode in [0o644, 0o640, 0o604, 0o620, 0o602, 0o660] {
        write_key_file(&key_file, &format!("{KEY}\n"), mode);
        for command in [&["serve"][..], &["vault", "rotate"][..]] {
            let out = env
                .command(command)
                .env("PLUGBOARD_MASTER_KEY_FILE", &key_file)
                .env("PLUGBOARD_LISTEN", "127.0.0.1:0")
                .output()
                .unwrap();
            assert!(
                !out.status.success(),
                "mode {mode:o} accepted by {command:?}"
            );
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains(&format!("chmod 600 {}", key_file.display())),
                "{mode:o}: {err}"
            );
            assert!(err.contains(&format!("mode 0{mode:o}")), "{err}");
            assert!(!err.contains(KEY), "the key must not be echoed");
        }
    }
    // A systemd credential: the unit's user reads it through an ACL, which shows as group permission.
    let credentials = env.dir.path().join("credentials");
    std::fs::create_dir(&credentials).unwrap();
    let credential = credentials.join("plugboard-master-key");
    write_key_file(&credential, KEY, 0o440);
    let out = env
        .command(&["vault", "rotate"])
        .env("PLUGBOARD_MASTER_KEY_FILE", &credential)
        .env("CREDENTIALS_DIRECTORY", &credentials)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Outside a credentials directory the same file is refused.
    let out = env
        .command(&["vault", "rotate"])
        .env("PLUGBOARD_MASTER_KEY_FILE", &credential)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[cfg(unix)]
#[test]
fn a_key_file_that_is_missing_empty_or_not_a_key_fails_saying_why() {
    let env = Env::sqlite();
    env.json(&["migrate"]);
    let key_file = env.dir.path().join("k");
    let cases: [(Option<&str>, &str); 4] = [
        (None, "no such file"),
        (Some("\n"), "is empty"),
        (Some("not base64 at all, but secret-looking\n"), "base64"),
        (Some("c2hvcnQ=\n"), "32"),
    ];
    for (contents, hint) in cases {
        let _ = std::fs::remove_file(&key_file);
        if let Some(c) = contents {
            write_key_file(&key_file, c, 0o600);
        }
        let out = env
            .command(&["serve"])
            .env("PLUGBOARD_MASTER_KEY_FILE", &key_file)
            .env("PLUGBOARD_LISTEN", "127.0.0.1:0")
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("PLUGBOARD_MASTER_KEY_FILE") && err.contains(hint),
            "{hint}: {err}"
        );
        assert!(
            !err.contains("secret-looking") && !err.contains("c2hvcnQ"),
            "{err}"
        );
    }
    let big = "A".repeat(5000);
    write_key_file(&key_file, &big, 0o600);
    let err = env.fails(&[
        "vault",
        "rotate",
        "--master-key-file",
        key_file.to_str().unwrap(),
    ]);
    assert!(
        err.contains("5000 bytes") && !err.contains(&big[..100]),
        "{err}"
    );
}

#[test]
fn the_master_key_and_a_key_file_together_are_refused() {
    let env = Env::sqlite();
    let out = env
        .command(&["serve"])
        .env("PLUGBOARD_MASTER_KEY", KEY)
        .env("PLUGBOARD_MASTER_KEY_FILE", env.dir.path().join("k"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("PLUGBOARD_MASTER_KEY and PLUGBOARD_MASTER_KEY_FILE are both set"),
        "{err}"
    );
    assert!(!err.contains(KEY));
    assert!(files_in(env.dir.path()).is_empty());
}

// ---- backups ----

#[test]
fn a_backup_of_a_postgres_database_says_to_use_pg_dump() {
    let env = Env {
        dir: tempfile::tempdir().unwrap(),
        database_url: Some("postgres://plugboard:hunter2secret@127.0.0.1:1/plugboard".into()),
        master_key: None,
    };
    let dest = env.dir.path().join("b.db");
    let err = env.fails(&["backup", dest.to_str().unwrap()]);
    assert!(
        err.contains("pg_dump") && err.contains("pg_restore"),
        "{err}"
    );
    assert!(!err.contains("hunter2secret"), "{err}");
    assert!(!dest.exists());
}

#[test]
fn a_backup_never_overwrites_a_file() {
    let env = Env::sqlite();
    env.json(&["migrate"]);
    let dest = env.dir.path().join("precious.txt");
    std::fs::write(&dest, "keep me").unwrap();
    let err = env.fails(&["backup", dest.to_str().unwrap()]);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "keep me");
}

/// Starts `serve` from a prepared command and waits for its `listening` line.
fn serve_with(mut cmd: std::process::Command) -> Server {
    let mut child = cmd
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
            } else {
                let _ = tx.send(format!("!{line}"));
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server did not start");
    assert!(!addr.starts_with('!'), "server failed: {addr}");
    Server {
        child,
        base: format!("http://{addr}"),
    }
}

fn pat(n: usize) -> String {
    format!("ghp_backup{n:06}_{}", "x".repeat(40))
}

async fn install(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    ws: &str,
    n: usize,
) -> Option<String> {
    let res = client
        .post(format!(
            "{base}/api/v1/connectors/github/install?workspace_id={ws}"
        ))
        .bearer_auth(token)
        .json(&json!({"fields": {"token": pat(n)}}))
        .send()
        .await
        .ok()?;
    if res.status() != 201 {
        return None;
    }
    let v: Value = res.json().await.ok()?;
    v["integration_id"].as_str().map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_under_install_load_restores_every_install_acknowledged_before_it_began() {
    let env = Env {
        dir: tempfile::tempdir().unwrap(),
        database_url: None,
        master_key: Some(KEY.into()),
    };
    let (_, ws, _, token) = env.user_workspace_token();
    let server = serve_with(env.command(&["serve"]));
    let client = reqwest::Client::new();

    // Writers install continuously; each acknowledged install is recorded with whether the backup had begun.
    let backup_began = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged: Arc<Mutex<HashMap<String, (usize, bool)>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..4 {
        let (client, base, token, ws) = (
            client.clone(),
            server.base.clone(),
            token.clone(),
            ws.clone(),
        );
        let (began, stop, acknowledged) =
            (backup_began.clone(), stop.clone(), acknowledged.clone());
        writers.push(tokio::spawn(async move {
            let mut n = w * 100_000;
            while !stop.load(Ordering::SeqCst) {
                if let Some(id) = install(&client, &base, &token, &ws, n).await {
                    // Read after the answer arrived: `true` means acknowledged before the backup began.
                    let before = !began.load(Ordering::SeqCst);
                    acknowledged.lock().unwrap().insert(id, (n, before));
                }
                n += 1;
            }
        }));
    }
    // Let some installs land, then back up while they go on.
    while acknowledged.lock().unwrap().len() < 40 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let copy = env.dir.path().join("backup.db");
    backup_began.store(true, Ordering::SeqCst);
    let taken = env.run(&["backup", copy.to_str().unwrap()]);
    let during = acknowledged.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    drop(server);
    assert!(
        taken.status.success(),
        "{}",
        String::from_utf8_lossy(&taken.stderr)
    );
    let report: Value = serde_json::from_slice(&taken.stdout).unwrap();
    assert_eq!(report["path"], copy.to_str().unwrap());
    assert_eq!(report["bytes"], std::fs::metadata(&copy).unwrap().len());
    let acknowledged = acknowledged.lock().unwrap().clone();
    let before: Vec<(&String, usize)> = acknowledged
        .iter()
        .filter(|(_, (_, before))| *before)
        .map(|(id, (n, _))| (id, *n))
        .collect();
    assert!(before.len() >= 40);
    assert!(
        acknowledged.len() > during || during > before.len(),
        "the writers kept installing around the backup"
    );

    // Restore into a fresh data dir: the copy becomes its plugboard.db; the same master key opens it.
    let restored = Env {
        dir: tempfile::tempdir().unwrap(),
        database_url: None,
        master_key: Some(KEY.into()),
    };
    std::fs::copy(&copy, restored.dir.path().join("plugboard.db")).unwrap();
    let server = serve_with(restored.command(&["serve"]));
    for (id, n) in before {
        let res = get(
            &format!("{}/api/v1/integrations/{id}/runtime", server.base),
            &token,
        )
        .await;
        assert_eq!(
            res.status(),
            200,
            "install {id} acknowledged before the backup is missing"
        );
        let body = res.text().await.unwrap();
        assert!(
            body.contains(&pat(n)),
            "install {id} reads back its own token"
        );
    }
}

// ---- rotations started together ----

async fn two_rotation_processes_do_one_pass(env: Env) {
    let (_, ws, _, token) = env.user_workspace_token();
    let server = serve_with(env.command(&["serve"]));
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for n in 0..8 {
        ids.push((
            install(&client, &server.base, &token, &ws, n)
                .await
                .expect("install"),
            n,
        ));
    }
    let spawn = || {
        env.command(&["vault", "rotate"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let mut rewrapped = 0;
    let mut keys = Vec::new();
    let mut waited = 0;
    for out in [&a, &b] {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(!err.contains("already exists"), "{err}");
        if err.contains("waiting for it to finish") {
            waited += 1;
        }
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        rewrapped += v["rewrapped"].as_u64().unwrap();
        keys.push(v["key_id"].as_str().unwrap().to_string());
    }
    assert_eq!(
        rewrapped, 8,
        "one pass over the 8 secrets between the two runs"
    );
    assert_eq!(keys[0], keys[1]);
    assert!(waited <= 1);
    for (id, n) in ids {
        let res = get(
            &format!("{}/api/v1/integrations/{id}/runtime", server.base),
            &token,
        )
        .await;
        assert_eq!(res.status(), 200);
        assert!(res.text().await.unwrap().contains(&pat(n)));
    }
}

#[tokio::test]
async fn two_vault_rotate_processes_at_once_on_sqlite_do_one_pass_and_agree() {
    two_rotation_processes_do_one_pass(Env {
        dir: tempfile::tempdir().unwrap(),
        database_url: None,
        master_key: Some(KEY.into()),
    })
    .await;
}

#[tokio::test]
async fn two_vault_rotate_processes_at_once_on_postgres_do_one_pass_and_agree() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        eprintln!("PLUGBOARD_TEST_DATABASE_URL is not set: PostgreSQL variant not run");
        return;
    };
    two_rotation_processes_do_one_pass(Env {
        dir: tempfile::tempdir().unwrap(),
        database_url: Some(db.url.clone()),
        master_key: Some(KEY.into()),
    })
    .await;
}
