//! OAuth grants, the refresh lock and registered clients, on SQLite and (when configured) PostgreSQL.

// clippy.toml lets `#[test]` functions unwrap, expect and panic; the helpers and `test_on_both_backends!` bodies of
// an integration test crate are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use plugboard_store::testing::TestDb;
use plugboard_store::*;

plugboard_store::test_on_both_backends! {
    starting_a_flow_replaces_unused_states_and_writes_metadata_and_secrets => flow_start;
    writing_tokens_bumps_the_version_and_sets_status_and_expiry => token_write;
    the_refresh_lock_is_a_compare_and_set_with_a_lease => refresh_lock;
    a_locked_token_write_needs_the_lock => locked_write;
    registered_clients_are_kept_per_issuer_and_redirect_uri => clients;
    a_confidential_client_is_forgotten_with_the_integration_holding_its_secret => client_cascade;
    deleting_an_integration_deletes_its_grant => grant_cascade;
}

async fn integration(db: &TestDb) -> (Integration, Workspace) {
    let user = db
        .store
        .create_user(&format!("{}@example.com", new_id()), "U")
        .await
        .unwrap();
    let ws = db.store.create_workspace("Acme", &user.id).await.unwrap();
    if db.store.active_data_key_id().await.unwrap().is_none() {
        db.store.insert_data_key("dk1", b"w", true).await.unwrap();
    }
    let i = db
        .store
        .create_integration(NewIntegration {
            id: IntegrationId::generate(),
            workspace_id: ws.id.clone(),
            crew_id: None,
            connector_id: Some("x".into()),
            name: "X".into(),
            auth_mode: IntegrationAuthMode::parse("mcp_oauth").unwrap(),
            status: IntegrationStatus::PendingOauth,
            mcp: "{}".into(),
            created_by: user.id.clone(),
            secrets: vec![],
            oauth_state: None,
            audit: NewAudit {
                workspace_id: Some(ws.id.clone()),
                actor_id: None,
                action: "integration.create".into(),
                target: None,
                detail: serde_json::json!({}),
            },
            idempotency: None,
        })
        .await
        .unwrap();
    (i, ws)
}

fn secret(name: &str, byte: u8) -> NewSecret {
    NewSecret {
        name: name.into(),
        key_id: "dk1".into(),
        ciphertext: vec![byte; 4],
    }
}

fn state(hash: &[u8]) -> NewOAuthState {
    NewOAuthState {
        state_hash: hash.to_vec(),
        flow: OAuthFlow::Mcp,
        redirect_uri: "http://x/cb".into(),
        issuer: Some("https://as.example".into()),
        iss_required: false,
        expires_at: now_ms() + 600_000,
    }
}

fn grant() -> NewOAuthGrant {
    NewOAuthGrant {
        flow: OAuthFlow::Mcp,
        issuer: Some("https://as.example".into()),
        token_endpoint: Some("https://as.example/token".into()),
        resource: Some("https://mcp.example/mcp".into()),
        client_id: Some("client-1".into()),
        token_auth: Some(ClientAuthMethod::None),
    }
}

fn start(id: &str, hash: &[u8]) -> OAuthFlowStart {
    OAuthFlowStart {
        integration_id: id.into(),
        state: state(hash),
        grant: Some(grant()),
        upsert_secrets: vec![secret("oauth.pkce_verifier", 1)],
        delete_secrets: vec![],
        audit: None,
    }
}

fn write(id: &str) -> OAuthTokenWrite {
    OAuthTokenWrite {
        integration_id: id.into(),
        flow: OAuthFlow::Mcp,
        upsert_secrets: vec![secret("oauth.access_token", 2)],
        delete_secrets: vec!["oauth.pkce_verifier".into()],
        expires_at: Some(Some(12345)),
        status: Some((IntegrationStatus::Active, None)),
        lock_owner: None,
        audit: None,
        written_at: now_ms(),
    }
}

async fn names(db: &TestDb, id: &IntegrationId) -> Vec<String> {
    db.store
        .integration_secrets(id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect()
}

async fn flow_start(db: TestDb) {
    let (i, _) = integration(&db).await;
    db.store
        .start_oauth_flow(start(&i.id, b"one"))
        .await
        .unwrap();
    let mut second = start(&i.id, b"two");
    second.upsert_secrets = vec![secret("oauth.pkce_verifier", 9)];
    db.store.start_oauth_flow(second).await.unwrap();
    let now = now_ms();
    assert!(
        db.store
            .consume_oauth_state(b"one", now)
            .await
            .unwrap()
            .is_none(),
        "the first state was replaced"
    );
    let row = db
        .store
        .consume_oauth_state(b"two", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.flow, OAuthFlow::Mcp);
    assert_eq!(row.issuer.as_deref(), Some("https://as.example"));
    let g = db.store.get_oauth_grant(&i.id).await.unwrap().unwrap();
    assert_eq!(g.client_id.as_deref(), Some("client-1"));
    assert_eq!(g.resource.as_deref(), Some("https://mcp.example/mcp"));
    assert_eq!(g.version, 0);
    assert_eq!(g.expires_at, None);
    let secrets = db.store.integration_secrets(&i.id).await.unwrap();
    assert_eq!(secrets.len(), 1);
    assert_eq!(secrets[0].ciphertext, vec![9; 4]);
}

async fn token_write(db: TestDb) {
    let (i, _) = integration(&db).await;
    db.store.start_oauth_flow(start(&i.id, b"s")).await.unwrap();
    assert!(db.store.write_oauth_tokens(write(&i.id)).await.unwrap());
    let g = db.store.get_oauth_grant(&i.id).await.unwrap().unwrap();
    assert_eq!(g.version, 1);
    assert_eq!(g.expires_at, Some(12345));
    assert_eq!(names(&db, &i.id).await, vec!["oauth.access_token"]);
    let got = db.store.get_integration(&i.id).await.unwrap().unwrap();
    assert_eq!(got.status, IntegrationStatus::Active);

    // A write that leaves the expiry alone, on an integration without a grant row yet (byo_oauth).
    let (j, _) = integration(&db).await;
    let mut w = write(&j.id);
    w.flow = OAuthFlow::Byo;
    w.expires_at = None;
    w.status = Some((IntegrationStatus::Error, Some("nope".into())));
    assert!(db.store.write_oauth_tokens(w).await.unwrap());
    let g = db.store.get_oauth_grant(&j.id).await.unwrap().unwrap();
    assert_eq!(
        (g.flow.as_str(), g.version, g.expires_at),
        ("byo_oauth", 1, None)
    );
    let got = db.store.get_integration(&j.id).await.unwrap().unwrap();
    assert_eq!(
        (got.status.as_str(), got.status_reason.as_deref()),
        ("error", Some("nope"))
    );
}

async fn refresh_lock(db: TestDb) {
    let (i, _) = integration(&db).await;
    assert!(
        !db.store
            .try_lock_oauth_refresh(&i.id, "a", 100, 200)
            .await
            .unwrap(),
        "no grant row, no lock"
    );
    db.store.write_oauth_tokens(write(&i.id)).await.unwrap();
    assert!(db
        .store
        .try_lock_oauth_refresh(&i.id, "a", 100, 200)
        .await
        .unwrap());
    assert!(!db
        .store
        .try_lock_oauth_refresh(&i.id, "b", 150, 250)
        .await
        .unwrap());
    // The lease ended: another owner may take over.
    assert!(db
        .store
        .try_lock_oauth_refresh(&i.id, "b", 201, 300)
        .await
        .unwrap());
    db.store.release_oauth_refresh(&i.id, "a").await.unwrap();
    assert_eq!(
        db.store
            .get_oauth_grant(&i.id)
            .await
            .unwrap()
            .unwrap()
            .lock_owner
            .as_deref(),
        Some("b"),
        "releasing someone else's lock does nothing"
    );
    db.store.release_oauth_refresh(&i.id, "b").await.unwrap();
    assert!(db
        .store
        .try_lock_oauth_refresh(&i.id, "c", 250, 350)
        .await
        .unwrap());
}

async fn locked_write(db: TestDb) {
    let (i, _) = integration(&db).await;
    db.store.write_oauth_tokens(write(&i.id)).await.unwrap();
    let mut w = write(&i.id);
    w.lock_owner = Some("a".into());
    w.upsert_secrets = vec![secret("oauth.access_token", 7)];
    assert!(
        !db.store.write_oauth_tokens(w.clone()).await.unwrap(),
        "not holding the lock"
    );
    let now = now_ms();
    assert!(db
        .store
        .try_lock_oauth_refresh(&i.id, "a", now, now + 1000)
        .await
        .unwrap());
    assert!(db.store.write_oauth_tokens(w.clone()).await.unwrap());
    let g = db.store.get_oauth_grant(&i.id).await.unwrap().unwrap();
    assert_eq!((g.version, g.lock_owner), (2, None));
    let s = db.store.integration_secrets(&i.id).await.unwrap();
    assert_eq!(s[0].ciphertext, vec![7; 4]);
    assert!(
        !db.store.write_oauth_tokens(w).await.unwrap(),
        "the lock was released by the write"
    );
}

async fn clients(db: TestDb) {
    assert!(db
        .store
        .get_oauth_client("https://as", "http://x/cb")
        .await
        .unwrap()
        .is_none());
    let c = OAuthClientRow {
        issuer: "https://as".into(),
        redirect_uri: "http://x/cb".into(),
        client_id: "c1".into(),
        token_auth: ClientAuthMethod::None,
        secret_integration_id: None,
        client_secret_expires_at: None,
        created_at: 1,
    };
    db.store.put_oauth_client(c.clone()).await.unwrap();
    assert_eq!(
        db.store
            .get_oauth_client("https://as", "http://x/cb")
            .await
            .unwrap(),
        Some(c.clone())
    );
    assert!(db
        .store
        .get_oauth_client("https://as", "http://y/cb")
        .await
        .unwrap()
        .is_none());
    let c2 = OAuthClientRow {
        client_id: "c2".into(),
        ..c
    };
    db.store.put_oauth_client(c2.clone()).await.unwrap();
    assert_eq!(
        db.store
            .get_oauth_client("https://as", "http://x/cb")
            .await
            .unwrap(),
        Some(c2)
    );
    db.store
        .delete_oauth_client("https://as", "http://x/cb")
        .await
        .unwrap();
    assert!(db
        .store
        .get_oauth_client("https://as", "http://x/cb")
        .await
        .unwrap()
        .is_none());
}

async fn client_cascade(db: TestDb) {
    let (i, ws) = integration(&db).await;
    db.store
        .put_oauth_client(OAuthClientRow {
            issuer: "https://as".into(),
            redirect_uri: "http://x/cb".into(),
            client_id: "c1".into(),
            token_auth: ClientAuthMethod::Post,
            secret_integration_id: Some(i.id.clone()),
            client_secret_expires_at: Some(0),
            created_at: 1,
        })
        .await
        .unwrap();
    let audit = NewAudit {
        workspace_id: Some(ws.id.clone()),
        actor_id: None,
        action: "integration.delete".into(),
        target: None,
        detail: serde_json::json!({}),
    };
    assert!(db.store.delete_integration(&i.id, audit).await.unwrap());
    assert!(db
        .store
        .get_oauth_client("https://as", "http://x/cb")
        .await
        .unwrap()
        .is_none());
}

async fn grant_cascade(db: TestDb) {
    let (i, ws) = integration(&db).await;
    db.store.start_oauth_flow(start(&i.id, b"s")).await.unwrap();
    db.store.write_oauth_tokens(write(&i.id)).await.unwrap();
    let audit = NewAudit {
        workspace_id: Some(ws.id.clone()),
        actor_id: None,
        action: "integration.delete".into(),
        target: None,
        detail: serde_json::json!({}),
    };
    assert!(db.store.delete_integration(&i.id, audit).await.unwrap());
    assert!(db.store.get_oauth_grant(&i.id).await.unwrap().is_none());
}
