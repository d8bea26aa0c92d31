//! The store's behaviour, run on SQLite and (when configured) PostgreSQL.

// clippy.toml lets `#[test]` functions unwrap, expect and panic; the helpers and `test_on_both_backends!` bodies of
// an integration test crate are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use plugboard_store::testing::TestDb;
use plugboard_store::*;

plugboard_store::test_on_both_backends! {
    migrating_twice_applies_nothing_the_second_time => migrating_twice;
    a_workspace_owner_becomes_its_owner_member => workspace_owner;
    adding_a_member_again_changes_the_role => member_role_change;
    user_emails_are_unique_case_insensitively => unique_emails;
    a_crew_needs_an_existing_workspace => crew_needs_workspace;
    tokens_are_found_by_hash_until_revoked => token_lifecycle;
    only_one_data_key_is_active_at_a_time => one_active_key;
    an_integration_is_written_with_all_its_secrets_or_not_at_all => integration_atomic;
    replacing_secrets_destroys_the_old_ones_under_the_prefix_only => replace_secrets;
    deleting_an_integration_destroys_its_vault_entries => delete_destroys;
    an_oauth_state_is_consumed_once_and_never_after_expiry => oauth_state_once;
    an_idempotency_record_is_kept_with_the_integration => idempotency;
    rewrap_is_a_compare_and_set_and_unused_keys_can_be_deleted => rewrap_cas;
    the_audit_log_lists_newest_first_per_workspace => audit_listing;
    audit_pages_follow_a_cursor_without_skipping_entries_of_the_same_millisecond => audit_pages;
    a_batch_of_audit_entries_is_written_whole_and_each_entry_is_listed => audit_batch;
    committed_changes_grow_the_write_epoch_and_audit_batches_do_not => write_epoch;
}

async fn setup(db: &TestDb) -> (User, Workspace) {
    let user = db
        .store
        .create_user("Ada@Example.com", "Ada")
        .await
        .unwrap();
    let ws = db.store.create_workspace("Acme", &user.id).await.unwrap();
    (user, ws)
}

fn audit(ws: &WorkspaceId, action: &str) -> NewAudit {
    NewAudit {
        workspace_id: Some(ws.clone()),
        actor_id: None,
        action: action.to_string(),
        target: None,
        detail: serde_json::json!({}),
    }
}

fn new_integration(ws: &Workspace, user: &User, key_id: &str) -> NewIntegration {
    let id = IntegrationId::generate();
    NewIntegration {
        id: id.clone(),
        workspace_id: ws.id.clone(),
        crew_id: None,
        connector_id: Some("github".into()),
        name: "GitHub".into(),
        auth_mode: IntegrationAuthMode::parse("pat").unwrap(),
        status: IntegrationStatus::Active,
        mcp: "{}".into(),
        created_by: user.id.clone(),
        secrets: vec![NewSecret {
            name: "field.token".into(),
            key_id: key_id.into(),
            ciphertext: vec![1, 2, 3],
        }],
        oauth_state: None,
        audit: audit(&ws.id, "integration.create"),
        idempotency: None,
    }
}

async fn migrating_twice(db: TestDb) {
    assert_eq!(db.store.migrate().await.unwrap(), 0);
    db.store.ping().await.unwrap();
}

async fn workspace_owner(db: TestDb) {
    let (user, ws) = setup(&db).await;
    assert_eq!(
        db.store.member_role(&ws.id, &user.id).await.unwrap(),
        Some(Role::Owner)
    );
    assert_eq!(
        db.store.get_workspace(&ws.id).await.unwrap().unwrap().name,
        "Acme"
    );
    let err = db
        .store
        .create_workspace("x", &UserId::from("nobody"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound("user")));
}

async fn member_role_change(db: TestDb) {
    let (_, ws) = setup(&db).await;
    let bob = db
        .store
        .create_user("bob@example.com", "Bob")
        .await
        .unwrap();
    assert_eq!(db.store.member_role(&ws.id, &bob.id).await.unwrap(), None);
    db.store
        .add_member(&ws.id, &bob.id, Role::Viewer)
        .await
        .unwrap();
    db.store
        .add_member(&ws.id, &bob.id, Role::Manager)
        .await
        .unwrap();
    assert_eq!(
        db.store.member_role(&ws.id, &bob.id).await.unwrap(),
        Some(Role::Manager)
    );
    assert!(matches!(
        db.store
            .add_member(&WorkspaceId::from("nope"), &bob.id, Role::Viewer)
            .await
            .unwrap_err(),
        StoreError::NotFound("workspace")
    ));
}

async fn unique_emails(db: TestDb) {
    setup(&db).await;
    let err = db
        .store
        .create_user("ada@example.COM", "Ada 2")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
}

async fn crew_needs_workspace(db: TestDb) {
    let (_, ws) = setup(&db).await;
    let crew = db.store.create_crew(&ws.id, "Ops").await.unwrap();
    assert_eq!(
        db.store
            .get_crew(&crew.id)
            .await
            .unwrap()
            .unwrap()
            .workspace_id,
        ws.id
    );
    assert!(db
        .store
        .create_crew(&WorkspaceId::from("missing"), "x")
        .await
        .is_err());
}

async fn token_lifecycle(db: TestDb) {
    let (user, _) = setup(&db).await;
    let before = db.store.revocation_count().await.unwrap();
    let rec = db
        .store
        .create_token(&user.id, "cli", b"hash-1")
        .await
        .unwrap();
    let owner = db.store.token_owner(b"hash-1").await.unwrap().unwrap();
    assert_eq!(owner.user_id, user.id);
    assert_eq!(owner.token_id, rec.id);
    assert!(db.store.token_owner(b"hash-2").await.unwrap().is_none());
    let revoked = db.store.revoke_token(&rec.id).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(db.store.token_owner(b"hash-1").await.unwrap().is_none());
    assert_eq!(db.store.revocation_count().await.unwrap(), before + 1);
    assert!(matches!(
        db.store
            .revoke_token(&TokenId::from("missing"))
            .await
            .unwrap_err(),
        StoreError::NotFound("token")
    ));
}

async fn one_active_key(db: TestDb) {
    db.store.insert_data_key("dk1", b"w1", true).await.unwrap();
    db.store.insert_data_key("dk2", b"w2", true).await.unwrap();
    let keys = db.store.data_keys().await.unwrap();
    assert_eq!(keys.iter().filter(|k| k.active).count(), 1);
    assert_eq!(
        db.store.active_data_key_id().await.unwrap().as_deref(),
        Some("dk2")
    );
}

async fn integration_atomic(db: TestDb) {
    let (user, ws) = setup(&db).await;
    db.store.insert_data_key("dk1", b"w", true).await.unwrap();
    let mut bad = new_integration(&ws, &user, "dk1");
    bad.secrets.push(NewSecret {
        name: "field.other".into(),
        key_id: "no-such-key".into(),
        ciphertext: vec![9],
    });
    assert!(db.store.create_integration(bad.clone()).await.is_err());
    assert!(db.store.get_integration(&bad.id).await.unwrap().is_none());
    assert_eq!(db.store.count_secrets().await.unwrap(), 0);
    assert!(db
        .store
        .list_audit(&ws.id, 10, None)
        .await
        .unwrap()
        .is_empty());

    let good = new_integration(&ws, &user, "dk1");
    let row = db.store.create_integration(good.clone()).await.unwrap();
    assert_eq!(row.status, IntegrationStatus::Active);
    assert!(row.enabled);
    assert_eq!(
        db.store.integration_secrets(&good.id).await.unwrap().len(),
        1
    );
    assert_eq!(
        db.store
            .list_integrations(&ws.id, None)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(db
        .store
        .list_integrations(&ws.id, Some(&CrewId::from("crew")))
        .await
        .unwrap()
        .is_empty());
}

async fn replace_secrets(db: TestDb) {
    let (user, ws) = setup(&db).await;
    db.store.insert_data_key("dk1", b"w", true).await.unwrap();
    let mut new = new_integration(&ws, &user, "dk1");
    new.secrets.push(NewSecret {
        name: "oauth.access_token".into(),
        key_id: "dk1".into(),
        ciphertext: vec![5],
    });
    db.store.create_integration(new.clone()).await.unwrap();
    let patch = IntegrationPatch {
        name: Some("Renamed".into()),
        enabled: Some(false),
        replace_secrets: Some((
            "field.".into(),
            vec![NewSecret {
                name: "field.pat".into(),
                key_id: "dk1".into(),
                ciphertext: vec![7],
            }],
        )),
        audit: Some(audit(&ws.id, "integration.update")),
        ..Default::default()
    };
    let row = db
        .store
        .update_integration(&new.id, patch)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.name, "Renamed");
    assert!(!row.enabled);
    // Only the `field.` entries were replaced; the OAuth token under another name is untouched.
    let secrets = db.store.integration_secrets(&new.id).await.unwrap();
    let names: Vec<&str> = secrets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["field.pat", "oauth.access_token"]);
    assert!(db
        .store
        .update_integration(&IntegrationId::from("missing"), IntegrationPatch::default())
        .await
        .unwrap()
        .is_none());
}

async fn delete_destroys(db: TestDb) {
    let (user, ws) = setup(&db).await;
    db.store.insert_data_key("dk1", b"w", true).await.unwrap();
    let mut new = new_integration(&ws, &user, "dk1");
    new.oauth_state = Some(NewOAuthState {
        state_hash: b"s".to_vec(),
        flow: OAuthFlow::Byo,
        redirect_uri: "http://x/cb".into(),
        issuer: None,
        iss_required: false,
        expires_at: now_ms() + 60_000,
    });
    db.store.create_integration(new.clone()).await.unwrap();
    assert!(db
        .store
        .delete_integration(&new.id, audit(&ws.id, "integration.delete"))
        .await
        .unwrap());
    assert_eq!(db.store.count_secrets().await.unwrap(), 0);
    assert!(db
        .store
        .consume_oauth_state(b"s", now_ms())
        .await
        .unwrap()
        .is_none());
    assert!(!db
        .store
        .delete_integration(&new.id, audit(&ws.id, "integration.delete"))
        .await
        .unwrap());
}

async fn oauth_state_once(db: TestDb) {
    let (user, ws) = setup(&db).await;
    db.store.insert_data_key("dk1", b"w", true).await.unwrap();
    let now = now_ms();
    let mut a = new_integration(&ws, &user, "dk1");
    a.oauth_state = Some(NewOAuthState {
        state_hash: b"fresh".to_vec(),
        flow: OAuthFlow::Byo,
        redirect_uri: "http://x/cb".into(),
        issuer: None,
        iss_required: false,
        expires_at: now + 600_000,
    });
    db.store.create_integration(a.clone()).await.unwrap();
    let mut b = new_integration(&ws, &user, "dk1");
    b.oauth_state = Some(NewOAuthState {
        state_hash: b"stale".to_vec(),
        flow: OAuthFlow::Byo,
        redirect_uri: "http://x/cb".into(),
        issuer: None,
        iss_required: false,
        expires_at: now - 1,
    });
    db.store.create_integration(b).await.unwrap();
    let got = db
        .store
        .consume_oauth_state(b"fresh", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.integration_id, a.id);
    assert!(
        db.store
            .consume_oauth_state(b"fresh", now)
            .await
            .unwrap()
            .is_none(),
        "replay"
    );
    assert!(
        db.store
            .consume_oauth_state(b"stale", now)
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    assert!(
        db.store
            .consume_oauth_state(b"unknown", now)
            .await
            .unwrap()
            .is_none(),
        "unknown"
    );
}

async fn idempotency(db: TestDb) {
    let (user, ws) = setup(&db).await;
    db.store.insert_data_key("dk1", b"w", true).await.unwrap();
    let mut a = new_integration(&ws, &user, "dk1");
    a.idempotency = Some(NewIdempotency {
        key: "k1".into(),
        fingerprint: vec![1],
        status: 201,
        response: "{\"integration_id\":\"x\"}".into(),
    });
    db.store.create_integration(a.clone()).await.unwrap();
    let rec = db
        .store
        .idempotency_get(&ws.id, &user.id, "k1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.status, 201);
    let mut b = new_integration(&ws, &user, "dk1");
    b.idempotency = a.idempotency.clone();
    let err = db.store.create_integration(b.clone()).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(db.store.get_integration(&b.id).await.unwrap().is_none());
}

async fn rewrap_cas(db: TestDb) {
    let (user, ws) = setup(&db).await;
    db.store.insert_data_key("old", b"w", true).await.unwrap();
    let a = new_integration(&ws, &user, "old");
    db.store.create_integration(a.clone()).await.unwrap();
    db.store.insert_data_key("new", b"w2", true).await.unwrap();
    assert_eq!(
        db.store.delete_unused_data_keys().await.unwrap(),
        0,
        "old is still used"
    );
    let pending = db.store.secrets_not_under("new", 100).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert!(db
        .store
        .rewrap_secret(&pending[0], "new", &[4, 5])
        .await
        .unwrap());
    assert!(
        !db.store
            .rewrap_secret(&pending[0], "new", &[6])
            .await
            .unwrap(),
        "stale CAS must fail"
    );
    assert!(db
        .store
        .secrets_not_under("new", 100)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(db.store.delete_unused_data_keys().await.unwrap(), 1);
    assert_eq!(db.store.data_keys().await.unwrap().len(), 1);
}

async fn audit_listing(db: TestDb) {
    let (_, ws) = setup(&db).await;
    for i in 0..3 {
        db.store
            .append_audit(audit(&ws.id, &format!("a{i}")))
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    db.store
        .append_audit(audit(&WorkspaceId::from("other"), "x"))
        .await
        .unwrap();
    let rows = db.store.list_audit(&ws.id, 2, None).await.unwrap();
    assert_eq!(
        rows.iter().map(|r| r.action.as_str()).collect::<Vec<_>>(),
        ["a2", "a1"]
    );
}

async fn audit_pages(db: TestDb) {
    let (_, ws) = setup(&db).await;
    // Many entries, several per millisecond: walking the pages must see each exactly once, newest first.
    for i in 0..25 {
        db.store
            .append_audit(audit(&ws.id, &format!("a{i}")))
            .await
            .unwrap();
    }
    db.store
        .append_audit(audit(&WorkspaceId::from("other"), "x"))
        .await
        .unwrap();
    let mut seen: Vec<AuditRow> = Vec::new();
    let mut cursor: Option<(i64, String)> = None;
    loop {
        let page = db
            .store
            .list_audit_page(&ws.id, 4, cursor.as_ref().map(|(t, id)| (*t, id.as_str())))
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 4);
        let last = page.last().unwrap();
        cursor = Some((last.created_at, last.id.clone()));
        seen.extend(page);
    }
    assert_eq!(seen.len(), 25);
    let mut ids: Vec<&str> = seen.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 25, "every entry exactly once");
    assert!(seen
        .windows(2)
        .all(|w| (w[0].created_at, &w[0].id) > (w[1].created_at, &w[1].id)));
    assert!(seen
        .iter()
        .all(|r| r.workspace_id.as_deref() == Some(ws.id.as_str())));
    // A bare time cursor: strictly older than that millisecond.
    let newest = seen[0].created_at;
    let older = db
        .store
        .list_audit_page(&ws.id, 100, Some((newest, "")))
        .await
        .unwrap();
    assert!(older.iter().all(|r| r.created_at < newest));
}

async fn audit_batch(db: TestDb) {
    let (_, ws) = setup(&db).await;
    // More entries than one INSERT takes, with values that need escaping.
    let entries: Vec<NewAudit> = (0..1203)
        .map(|i| {
            let mut a = audit(&ws.id, &format!("gateway_call {i}"));
            a.target = Some(format!("it's \"{i}\""));
            a.detail = serde_json::json!({"tool": format!("t{i}"), "quote": "'\"\\"});
            a
        })
        .collect();
    db.store.append_audit_batch(&entries).await.unwrap();
    db.store.append_audit_batch(&[]).await.unwrap();
    let rows = db.store.list_audit(&ws.id, 5000, None).await.unwrap();
    assert_eq!(rows.len(), 1203);
    let mut actions: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
    actions.sort_unstable();
    actions.dedup();
    assert_eq!(actions.len(), 1203, "every entry once");
    let one = rows.iter().find(|r| r.action == "gateway_call 7").unwrap();
    assert_eq!(one.target.as_deref(), Some("it's \"7\""));
    let detail: serde_json::Value = serde_json::from_str(&one.detail).unwrap();
    assert_eq!(detail, serde_json::json!({"tool": "t7", "quote": "'\"\\"}));
}

async fn write_epoch(db: TestDb) {
    let (_, ws) = setup(&db).await;
    let before = db.store.write_epoch();
    db.store
        .append_audit_batch(&[audit(&ws.id, "a")])
        .await
        .unwrap();
    assert_eq!(
        db.store.write_epoch(),
        before,
        "audit entries change no access"
    );
    db.store
        .rename_workspace(&ws.id, "renamed", audit(&ws.id, "rename"))
        .await
        .unwrap();
    assert!(db.store.write_epoch() > before);
}
