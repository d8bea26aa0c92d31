//! Benchmark baseline for installs: the same rows an install writes (integration, one sealed secret, the audit
//! entry, in one transaction, same pool and durability settings), made directly through the store with sqlx in one
//! process — no HTTP, no authentication, no validation, no encryption.
//!
//! `cargo run --release -p plugboard-store --example install_baseline -- <database-url> <seconds> <concurrency> [existing]
//! [full|normal]` (the last: SQLite's `synchronous`, default full, as the server's) prints
//! `{"installs": N, "unavailable": U, "seconds": S, "per_sec": R}` (U: writes that waited longer than the store's
//! timeout for the database, counted and not retried, as the server answers them 503).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use plugboard_store::{
    new_id, ConnectOptions, IntegrationAuthMode, IntegrationId, IntegrationStatus, NewAudit,
    NewIntegration, NewSecret, SqliteSynchronous, Store, UserId, WorkspaceId,
};

fn integration(ws: &WorkspaceId, user: &UserId, key: &str) -> NewIntegration {
    let id = IntegrationId::generate();
    NewIntegration {
        id: id.clone(),
        workspace_id: ws.clone(),
        crew_id: None,
        connector_id: Some("github".into()),
        name: "GitHub".into(),
        auth_mode: IntegrationAuthMode::Connector(plugboard_catalog::AuthMode::Pat),
        status: IntegrationStatus::Active,
        mcp: r#"{"transport":"streamable-http","endpoint":"https://api.githubcopilot.com/mcp/","headers":{"Authorization":"Bearer ${field.token}"}}"#.into(),
        created_by: user.clone(),
        secrets: vec![NewSecret { name: "field.token".into(), key_id: key.to_string(), ciphertext: vec![7u8; 69] }],
        oauth_state: None,
        audit: NewAudit {
            workspace_id: Some(ws.clone()),
            actor_id: Some(user.clone()),
            action: "integration.install".into(),
            target: Some(id.to_string()),
            detail: serde_json::json!({"connector_id": "github"}),
        },
        idempotency: None,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "sqlite://bench-baseline.db".into());
    let seconds: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let concurrency: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(64);
    let existing: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(0);
    let sqlite_synchronous = match args.get(5).map(String::as_str) {
        Some("normal") => SqliteSynchronous::Normal,
        _ => SqliteSynchronous::Full,
    };
    let options = ConnectOptions {
        create: true,
        sqlite_synchronous,
        ..ConnectOptions::default()
    };
    let store: Arc<dyn Store> = plugboard_store::connect_with(&url, options).await?;
    store.migrate().await?;
    let user = store
        .create_user(&format!("{}@bench.example", new_id()), "bench")
        .await?;
    let ws = store.create_workspace("bench", &user.id).await?;
    let key = format!("dk_{}", &new_id()[..16]);
    store.insert_data_key(&key, &[0u8; 61], false).await?;
    for _ in 0..existing {
        store
            .create_integration(integration(&ws.id, &user.id, &key))
            .await?;
    }
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (store, done, ws, user, key) = (
            store.clone(),
            done.clone(),
            ws.id.clone(),
            user.id.clone(),
            key.clone(),
        );
        let failed = failed.clone();
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                match store
                    .create_integration(integration(&ws, &user, &key))
                    .await
                {
                    Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                    // Counted like wrk's non-2xx answers: a write that waited too long for the database.
                    Err(e) if e.is_unavailable() => failed.fetch_add(1, Ordering::Relaxed),
                    Err(e) => return Err(e),
                };
            }
            Ok::<(), plugboard_store::StoreError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    println!(
        "{}",
        serde_json::json!({
            "installs": n,
            "unavailable": failed.load(Ordering::Relaxed),
            "seconds": elapsed,
            "per_sec": n as f64 / elapsed
        })
    );
    Ok(())
}
