//! `plugboard vault rotate` while the server serves: runtime reads hammer every integration during the rotation and
//! none fails; afterwards every secret is sealed under the new key and the old keys are gone. Rotations started at
//! once (two processes) do one pass over the secrets between them. On both backends.

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
    two_rotations_at_once_do_one_pass_over_the_secrets_and_agree_on_the_new_key => two_rotations_at_once;
    the_lease_of_a_crashed_rotation_expires_and_the_next_rotation_then_runs => crashed_rotation_lease;
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

/// Installs `n` GitHub integrations; returns their ids and the bearer value each must read back.
async fn install_many(
    app: &TestApp,
    owner: &str,
    ws: &plugboard_store::Workspace,
    n: usize,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for i in 0..n {
        let pat = github_token(&format!("many{i}"));
        out.push((
            install_github(app, owner, ws, &pat).await,
            format!("Bearer {pat}"),
        ));
    }
    out
}

async fn two_rotations_at_once(db: Db) {
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    let expected = install_many(&app, &owner, &ws, 12).await;
    let secrets = app.db.store.count_secrets().await.unwrap();
    assert_eq!(secrets, 12);
    let master = MasterKey::from_base64(&app.master_key()).unwrap();
    // The second rotation runs on its own connection pool, as another process would.
    let other = plugboard_store::connect(&app.db.url).await.unwrap();
    let (a, b) = tokio::join!(
        plugboard_server::vault::rotate(app.db.store.clone(), &master),
        plugboard_server::vault::rotate(other, &master),
    );
    let (key_a, rewrapped_a) = a.expect("first rotation");
    let (key_b, rewrapped_b) = b.expect("second rotation");
    assert_eq!(
        key_a, key_b,
        "the waiting rotation finishes the running one's work"
    );
    assert_eq!(
        rewrapped_a + rewrapped_b,
        u64::try_from(secrets).unwrap(),
        "one pass over the secrets in total"
    );
    let keys = app.db.store.data_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].id, key_a);
    for (id, needle) in &expected {
        let res = runtime(&app, &owner, id).await;
        res.assert_status(200);
        assert!(res.text().contains(needle.as_str()));
    }
    // The lease is gone: a later rotation starts at once and makes a new key.
    let (key_c, rewrapped_c) = plugboard_server::vault::rotate(app.db.store.clone(), &master)
        .await
        .unwrap();
    assert_ne!(key_c, key_a);
    assert_eq!(rewrapped_c, 12);
}

async fn crashed_rotation_lease(db: Db) {
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    let expected = install_many(&app, &owner, &ws, 3).await;
    // A rotation that crashed holding the lease, which it last renewed long enough ago that 1.5 s of it remain.
    let now = plugboard_store::now_ms();
    let crashed = app
        .db
        .store
        .try_lease(
            plugboard_server::vault::ROTATION_LEASE,
            "gone-host pid 1 #dead",
            "dk_never_made",
            now - 28_500,
            now + 1_500,
        )
        .await
        .unwrap();
    assert!(crashed.taken);
    let master = MasterKey::from_base64(&app.master_key()).unwrap();
    let started = std::time::Instant::now();
    let (key, rewrapped) = plugboard_server::vault::rotate(app.db.store.clone(), &master)
        .await
        .expect("the rotation runs once the crashed one's lease expired");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(1_000),
        "it waited for the lease instead of running beside its holder"
    );
    assert_eq!(rewrapped, 3);
    for (id, needle) in &expected {
        for s in app
            .db
            .store
            .integration_secrets(&IntegrationId::from(id.as_str()))
            .await
            .unwrap()
        {
            assert_eq!(s.key_id, key);
        }
        assert!(runtime(&app, &owner, id)
            .await
            .text()
            .contains(needle.as_str()));
    }
}
