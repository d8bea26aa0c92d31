//! `kill -HUP` on a running `plugboard serve` reloads `PLUGBOARD_CATALOG_DIR`, and a folder that cannot be read
//! keeps the catalog in service; compressed bodies over a real connection.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use common::*;
use serde_json::Value;

fn manifest(id: &str) -> String {
    format!(
        "id: {id}\nname: {id}\ncategory: testing\nauth_mode: none\n\
         mcp: {{transport: streamable-http, endpoint: 'https://{id}.example.com/mcp'}}\n"
    )
}

/// `plugboard serve` on `catalog`; the log messages (JSON lines) arrive on the receiver.
fn serve_catalog(env: &Env, catalog: &std::path::Path) -> (Server, Receiver<Value>) {
    let mut child = env
        .command(&["serve"])
        .env("PLUGBOARD_LISTEN", "127.0.0.1:0")
        .env("PLUGBOARD_LOG_FORMAT", "json")
        .env("PLUGBOARD_CATALOG_DIR", catalog)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                let _ = tx.send(v);
            }
        }
    });
    let addr = loop {
        let v = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server did not start");
        if v["fields"]["message"] == "listening" {
            break v["fields"]["addr"].as_str().unwrap().to_string();
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

/// Waits for a log line with this message (the server logs each reload's outcome).
fn wait_for(rx: &Receiver<Value>, message: &str) -> Value {
    loop {
        let v = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no `{message}` in the log"));
        if v["fields"]["message"] == message {
            return v;
        }
    }
}

fn hangup(server: &Server) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn ids(server: &Server, token: &str) -> Vec<String> {
    let res = get(&format!("{}/api/v1/connectors", server.base), token).await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn sighup_reloads_the_catalog_folder_and_a_folder_that_cannot_be_read_keeps_the_old_one() {
    let env = Env::sqlite();
    let (_, _, _, token) = env.user_workspace_token();
    let catalog = env.dir.path().join("catalog");
    std::fs::create_dir(&catalog).unwrap();
    std::fs::write(catalog.join("a.yaml"), manifest("alpha")).unwrap();
    let (mut server, log) = serve_catalog(&env, &catalog);
    assert_eq!(ids(&server, &token).await, ["alpha"]);

    std::fs::write(catalog.join("b.yaml"), manifest("beta")).unwrap();
    std::fs::write(catalog.join("c.yaml"), "id: broken\n").unwrap();
    hangup(&server);
    let done = wait_for(&log, "catalog reloaded");
    assert_eq!(done["fields"]["loaded"], 2);
    assert_eq!(done["fields"]["skipped"], 1);
    assert_eq!(ids(&server, &token).await, ["alpha", "beta"]);

    std::fs::remove_dir_all(&catalog).unwrap();
    hangup(&server);
    let failed = wait_for(&log, "catalog reload failed");
    assert!(
        failed["fields"]["error"].as_str().unwrap().contains("kept"),
        "{failed}"
    );
    assert_eq!(ids(&server, &token).await, ["alpha", "beta"]);

    // Still serving, compressed bodies included (reqwest without its decoders sees the raw coding).
    let res = reqwest::Client::new()
        .get(format!("{}/api/v1/connectors/beta", server.base))
        .bearer_auth(&token)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-encoding"], "gzip");
    assert_eq!(res.headers()["vary"], "accept-encoding");
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server exited"
    );
}
