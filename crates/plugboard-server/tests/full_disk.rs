//! A full disk under SQLite: writes that cannot be committed answer 507 `insufficient_storage` (never 201), every
//! write acknowledged is readable (also after reopening the database), and service resumes by itself when space
//! returns. The data dir is a small tmpfs mounted by the test, which needs root: otherwise the test says so and
//! passes without running.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::Path;
use std::process::Command;

use plugboard_server::testing::{Backend, Db, TestApp};
use plugboard_store::ConnectOptions;

/// A tmpfs of `size` mounted at a new temp dir, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        ok.then_some(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazily: the pool's connections may still be closing their files in the background.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Fills the filesystem of `path` with a file until it is full; returns the file's path.
fn fill(path: &Path) -> std::path::PathBuf {
    let filler = path.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    loop {
        if f.write_all(&chunk).is_err() {
            break;
        }
    }
    // The last partial chunks too.
    let small = [0u8; 512];
    while f.write_all(&small).is_ok() {}
    let _ = f.sync_all();
    filler
}

#[tokio::test]
async fn a_full_disk_answers_507_acknowledges_only_committed_writes_and_recovers_when_space_returns(
) {
    let Some(disk) = SmallDisk::mount("4m") else {
        eprintln!("cannot mount a tmpfs (needs root): full-disk test not run");
        return;
    };
    let url = format!("sqlite://{}", disk.path().join("plugboard.db").display());
    let store = plugboard_store::connect_with(&url, ConnectOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let mut db = Db::new(Backend::Sqlite).await.unwrap().handle();
    db.store = store;
    db.url = url.clone();
    let app = TestApp::new(db).await;
    let (ws, token) = app.workspace().await;
    let caller = app.with_token(&token);
    let crews = format!("/api/v1/workspaces/{}/crews", ws.id);
    let filler = fill(disk.path());

    // Writes on a full disk: each answer is 201 (and then it is stored) or 507 with the contract body.
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    let long = "x".repeat(150);
    for i in 0..200 {
        let name = format!("crew {i} {long}");
        let res = caller
            .post(&crews, serde_json::json!({ "name": name }))
            .await;
        match res.status.as_u16() {
            201 => acknowledged.push(res.json()["id"].as_str().unwrap().to_string()),
            507 => {
                res.assert_status(507);
                assert_eq!(res.json()["code"], "insufficient_storage");
                refused += 1;
            }
            other => panic!("a write on a full disk answered {other}: {}", res.text()),
        }
    }
    assert!(refused > 0, "the disk never filled up");
    let listed = caller.get(&crews).await;
    listed.assert_status(200);
    let ids: Vec<String> = listed
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    for id in &acknowledged {
        assert!(ids.contains(id), "acknowledged crew {id} is not readable");
    }

    // Space returns: writes succeed again without a restart.
    std::fs::remove_file(&filler).unwrap();
    let res = caller
        .post(&crews, serde_json::json!({ "name": "after" }))
        .await;
    res.assert_status(201);
    acknowledged.push(res.json()["id"].as_str().unwrap().to_string());

    // Everything acknowledged is there after reopening the database.
    let reopened = plugboard_store::connect(&url).await.unwrap();
    let stored = reopened.list_crews(&ws.id).await.unwrap();
    for id in &acknowledged {
        assert!(
            stored.iter().any(|c| c.id.as_str() == id),
            "acknowledged crew {id} is lost after reopening"
        );
    }
}
