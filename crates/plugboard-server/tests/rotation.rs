//! `plugboard vault rotate` while the server serves: runtime reads hammer every integration during the rotation and
//! none fails; afterwards every secret is sealed under the new key and the old keys are gone. On both backends.

// clippy.toml lets `#[test]` functions unwrap, expect and panic; the helpers and `test_on_both_backends!` bodies of
// an integration test crate are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod integration_support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use integration_support::*;
use plugboard_server::testing::{test_on_both_backends, Db, TestApp};
use plugboard_store::IntegrationId;
use plugboard_vault::MasterKey;
use serde_json::json;

test_on_both_backends! {
    rotation_while_runtime_reads_run_fails_no_read_and_leaves_no_secret_under_an_old_key => rotate_under_load;
}

async fn rotate_under_load(db: Db) {
    let app = Arc::new(TestApp::new(db).await);
    let (ws, owner) = app.workspace().await;
    // Integrations with one and with several vault entries, custom ones included.
    let mut expected = Vec::new();
    for i in 0..4 {
        let pat = github_token(&format!("rot{i}"));
        let id = install_github(&app, &owner, &ws, &pat).await;
        expected.push((id, format!("Bearer {pat}")));
    }
    let pg = install(
        &app,
        &owner,
        &ws,
        "postgres",
        json!({"fields": {"host": "db.example.com", "database": "d", "user": "u", "password": "rotating"}}),
    )
    .await["integration_id"]
        .as_str()
        .unwrap()
        .to_string();
    let custom = app
        .post(
            &format!("/api/v1/integrations?workspace_id={}", ws.id),
            Some(&owner),
            json!({"name": "c", "transport": "streamable-http", "endpoint": "https://x.example.com/",
                   "headers": {"Authorization": {"value": "Bearer custom-secret", "secret": true}}}),
        )
        .await
        .json()["integration_id"]
        .as_str()
        .unwrap()
        .to_string();
    expected.push((pg, r#""POSTGRES_PASSWORD":"rotating""#.into()));
    expected.push((custom, "Bearer custom-secret".into()));
    let old_keys: Vec<String> = app
        .db
        .store
        .data_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(old_keys.len(), 1);

    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::new();
    for worker in 0..4 {
        let (app, owner, expected, stop, reads) = (
            app.clone(),
            owner.clone(),
            expected.clone(),
            stop.clone(),
            reads.clone(),
        );
        readers.push(tokio::spawn(async move {
            let mut n = worker;
            while !stop.load(Ordering::Relaxed) {
                let (id, needle) = &expected[n % expected.len()];
                let res = runtime(&app, &owner, id).await;
                assert_eq!(
                    res.status.as_u16(),
                    200,
                    "read failed during rotation: {}",
                    res.text()
                );
                assert!(
                    res.text().contains(needle.as_str()),
                    "wrong value during rotation"
                );
                reads.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
        }));
    }
    let master = MasterKey::from_base64(&app.master_key()).unwrap();
    let (new_key, rewrapped) = plugboard_server::vault::rotate(app.db.store.clone(), &master)
        .await
        .unwrap();
    // Keep reading a little after the rotation finished (the old key is gone by now).
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.expect("no reader failed");
    }
    assert!(
        reads.load(Ordering::Relaxed) > 20,
        "readers ran: {}",
        reads.load(Ordering::Relaxed)
    );
    // 4 tokens + 6 postgres parts + 1 custom header.
    assert_eq!(rewrapped, 11);
    assert!(!old_keys.contains(&new_key));

    let keys = app.db.store.data_keys().await.unwrap();
    assert_eq!(keys.len(), 1, "old keys deleted once unused");
    assert_eq!(keys[0].id, new_key);
    assert!(keys[0].active);
    assert!(app
        .db
        .store
        .secrets_not_under(&new_key, 1000)
        .await
        .unwrap()
        .is_empty());
    for (id, needle) in &expected {
        for s in app
            .db
            .store
            .integration_secrets(&IntegrationId::from(id))
            .await
            .unwrap()
        {
            assert_eq!(s.key_id, new_key);
        }
        let res = runtime(&app, &owner, id).await;
        res.assert_status(200);
        assert!(res.text().contains(needle.as_str()));
    }
    // New values go under the new key.
    let id = install_github(&app, &owner, &ws, &github_token("after")).await;
    let rows = app
        .db
        .store
        .integration_secrets(&IntegrationId::from(&id))
        .await
        .unwrap();
    assert_eq!(rows[0].key_id, new_key);
}
