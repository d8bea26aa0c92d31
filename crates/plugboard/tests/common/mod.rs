//! Running the binary as an operator does: a data dir, the environment, one JSON object per command, a server.

#![allow(dead_code)] // each test file uses its own part of these helpers

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_plugboard");

pub struct Env {
    pub dir: tempfile::TempDir,
    pub database_url: Option<String>,
    pub master_key: Option<String>,
}

impl Env {
    pub fn sqlite() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
            database_url: None,
            master_key: None,
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env_remove("PLUGBOARD_DATABASE_URL")
            .env_remove("PLUGBOARD_MASTER_KEY")
            .env_remove("PLUGBOARD_MASTER_KEY_FILE")
            .env_remove("PLUGBOARD_CATALOG_DIR")
            .env_remove("PLUGBOARD_SQLITE_SYNCHRONOUS")
            .env_remove("PLUGBOARD_LOG_FORMAT")
            .env_remove("CREDENTIALS_DIRECTORY")
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

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs a command that must succeed and print exactly one JSON object.
    pub fn json(&self, args: &[&str]) -> Value {
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
    pub fn json_with(&self, args: &[&str], vars: &[(&str, &str)]) -> Value {
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
    pub fn fails(&self, args: &[&str]) -> String {
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

    /// Sets the database up (as the server would on its first start) and makes a user, a workspace it owns and a
    /// token for it: (user id, workspace id, token id, token).
    pub fn user_workspace_token(&self) -> (String, String, String, String) {
        self.json(&["migrate"]);
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

pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `plugboard serve` on an ephemeral port and waits for its `listening` log line.
pub fn serve(env: &Env) -> Server {
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

pub async fn get(url: &str, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}
