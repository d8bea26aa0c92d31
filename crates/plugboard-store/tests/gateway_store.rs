//! The gateway area of the store (agent tokens, aggregated sessions, tool prefixes), on SQLite and (when
//! configured) PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use plugboard_store::testing::TestDb;
use plugboard_store::*;

plugboard_store::test_on_both_backends! {
    an_agent_token_is_found_by_hash_until_it_is_revoked_and_revoking_grows_the_generation => agent_token_lifecycle;
    an_agent_token_of_a_crew_of_another_workspace_is_refused => agent_token_foreign_crew;
    deleting_a_crew_or_a_workspace_revokes_its_agent_tokens => agent_tokens_follow_deletions;
    installs_get_default_tool_prefixes_unique_within_their_workspace => default_prefixes;
    a_tool_prefix_taken_in_the_workspace_is_a_conflict_and_policies_are_stored => patch_prefix_and_policy;
    rows_without_a_tool_prefix_get_their_default_when_migrations_run => backfill;
    aggregated_sessions_are_stored_touched_deleted_and_expired => sessions;
}

fn audit(ws: Option<&WorkspaceId>, action: &str) -> NewAudit {
    NewAudit {
        workspace_id: ws.cloned(),
        actor_id: None,
        action: action.to_string(),
        target: None,
        detail: serde_json::json!({}),
    }
}

async fn owner_and_workspace(db: &TestDb) -> (User, Workspace) {
    let user = db
        .store
        .create_user(&format!("{}@example.com", new_id()), "Ada")
        .await
        .unwrap();
    let ws = db.store.create_workspace("Acme", &user.id).await.unwrap();
    (user, ws)
}

fn new_token(ws: &Workspace, user: &User, crew: Option<&CrewId>, hash: &[u8]) -> NewAgentToken {
    NewAgentToken {
        workspace_id: ws.id.clone(),
        crew_id: crew.cloned(),
        name: "bot".into(),
        token_hash: hash.to_vec(),
        created_by: user.id.clone(),
        created_at: 1000,
        expires_at: Some(5000),
    }
}

async fn install(
    db: &TestDb,
    ws: &Workspace,
    user: &User,
    connector: Option<&str>,
    name: &str,
) -> Integration {
    db.store
        .create_integration(NewIntegration {
            id: IntegrationId::generate(),
            workspace_id: ws.id.clone(),
            crew_id: None,
            connector_id: connector.map(str::to_owned),
            name: name.into(),
            auth_mode: IntegrationAuthMode::parse(if connector.is_some() {
                "pat"
            } else {
                "custom"
            })
            .unwrap(),
            status: IntegrationStatus::Active,
            mcp: "{}".into(),
            created_by: user.id.clone(),
            secrets: vec![],
            oauth_state: None,
            audit: audit(Some(&ws.id), "integration.install"),
            idempotency: None,
        })
        .await
        .unwrap()
}

async fn agent_token_lifecycle(db: TestDb) {
    let (user, ws) = owner_and_workspace(&db).await;
    let crew = db.store.create_crew(&ws.id, "Ops").await.unwrap();
    let rec = db
        .store
        .create_agent_token(
            &new_token(&ws, &user, Some(&crew.id), b"hash-1"),
            audit(Some(&ws.id), "agent_token_created"),
        )
        .await
        .unwrap();
    assert_eq!(rec.crew_id, Some(crew.id.clone()));
    let owner = db
        .store
        .agent_token_owner(b"hash-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            owner.id.clone(),
            owner.workspace_id.clone(),
            owner.crew_id.clone(),
            owner.expires_at
        ),
        (
            rec.id.clone(),
            ws.id.clone(),
            Some(crew.id.clone()),
            Some(5000)
        )
    );
    assert!(db
        .store
        .agent_token_owner(b"other")
        .await
        .unwrap()
        .is_none());
    // A use is written once a minute at most.
    assert!(db
        .store
        .touch_agent_token(&rec.id, 10_000, 60_000)
        .await
        .unwrap());
    assert!(!db
        .store
        .touch_agent_token(&rec.id, 20_000, 60_000)
        .await
        .unwrap());
    let listed = db.store.list_agent_tokens(&ws.id).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].last_used_at, Some(10_000));

    let g0 = db.store.credential_generation().await.unwrap();
    assert!(db
        .store
        .revoke_agent_token(&rec.id, audit(Some(&ws.id), "agent_token_revoked"))
        .await
        .unwrap());
    assert!(db.store.credential_generation().await.unwrap() > g0);
    assert!(db
        .store
        .agent_token_owner(b"hash-1")
        .await
        .unwrap()
        .is_none());
    assert!(db.store.list_agent_tokens(&ws.id).await.unwrap().is_empty());
    assert!(db
        .store
        .get_agent_token(&rec.id)
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .is_some());
    // Twice is nothing to revoke.
    assert!(!db
        .store
        .revoke_agent_token(&rec.id, audit(Some(&ws.id), "agent_token_revoked"))
        .await
        .unwrap());
    let actions: Vec<String> = db
        .store
        .list_audit(&ws.id, 10, None)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "agent_token_revoked")
            .count(),
        1
    );
}

async fn agent_token_foreign_crew(db: TestDb) {
    let (user, ws) = owner_and_workspace(&db).await;
    let (_, other) = owner_and_workspace(&db).await;
    let foreign = db.store.create_crew(&other.id, "Theirs").await.unwrap();
    let e = db
        .store
        .create_agent_token(
            &new_token(&ws, &user, Some(&foreign.id), b"h"),
            audit(Some(&ws.id), "agent_token_created"),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound("crew")), "{e}");
    assert!(db.store.agent_token_owner(b"h").await.unwrap().is_none());
}

async fn agent_tokens_follow_deletions(db: TestDb) {
    let (user, ws) = owner_and_workspace(&db).await;
    let crew = db.store.create_crew(&ws.id, "Ops").await.unwrap();
    for (crew_id, hash) in [(Some(&crew.id), b"c".as_slice()), (None, b"w".as_slice())] {
        db.store
            .create_agent_token(
                &new_token(&ws, &user, crew_id, hash),
                audit(Some(&ws.id), "x"),
            )
            .await
            .unwrap();
    }
    let g0 = db.store.credential_generation().await.unwrap();
    assert_eq!(
        db.store
            .delete_crew(&crew.id, audit(Some(&ws.id), "crew_deleted"))
            .await
            .unwrap(),
        CrewDeletion::Deleted
    );
    assert!(db.store.agent_token_owner(b"c").await.unwrap().is_none());
    assert!(db.store.agent_token_owner(b"w").await.unwrap().is_some());
    let g1 = db.store.credential_generation().await.unwrap();
    assert!(g1 > g0);
    assert!(db
        .store
        .delete_workspace(&ws.id, audit(None, "workspace_deleted"))
        .await
        .unwrap());
    assert!(db.store.agent_token_owner(b"w").await.unwrap().is_none());
    assert!(db.store.credential_generation().await.unwrap() > g1);
}

async fn default_prefixes(db: TestDb) {
    let (user, ws) = owner_and_workspace(&db).await;
    let (other_user, other) = owner_and_workspace(&db).await;
    let a = install(&db, &ws, &user, Some("github"), "GitHub").await;
    let b = install(&db, &ws, &user, Some("github"), "GitHub (work)").await;
    let c = install(&db, &ws, &user, None, "My Server!").await;
    let d = install(&db, &other, &other_user, Some("github"), "GitHub").await;
    assert_eq!(a.tool_prefix.as_deref(), Some("github"));
    assert_eq!(b.tool_prefix.as_deref(), Some("github-2"));
    assert_eq!(c.tool_prefix.as_deref(), Some("my-server"));
    assert_eq!(
        d.tool_prefix.as_deref(),
        Some("github"),
        "unique per workspace only"
    );
    assert_eq!((a.tool_allow.as_str(), a.tool_deny.as_str()), ("[]", "[]"));
    // A custom server whose own default is one of github's candidates takes it; the next github skips it.
    let e = install(&db, &ws, &user, None, "GitHub 3").await;
    let f = install(&db, &ws, &user, None, "GitHubby").await;
    let g = install(&db, &ws, &user, Some("github"), "GitHub (again)").await;
    assert_eq!(e.tool_prefix.as_deref(), Some("github-3"));
    assert_eq!(f.tool_prefix.as_deref(), Some("githubby"));
    assert_eq!(g.tool_prefix.as_deref(), Some("github-4"));
}

async fn patch_prefix_and_policy(db: TestDb) {
    let (user, ws) = owner_and_workspace(&db).await;
    let a = install(&db, &ws, &user, Some("github"), "GitHub").await;
    let b = install(&db, &ws, &user, Some("linear"), "Linear").await;
    let e = db
        .store
        .update_integration(
            &b.id,
            IntegrationPatch {
                tool_prefix: Some("github".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e}");
    let updated = db
        .store
        .update_integration(
            &a.id,
            IntegrationPatch {
                tool_prefix: Some("gh".into()),
                tools: Some((r#"["read_*"]"#.into(), r#"["*delete*"]"#.into())),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.tool_prefix.as_deref(), Some("gh"));
    assert_eq!(updated.tool_allow, r#"["read_*"]"#);
    assert_eq!(updated.tool_deny, r#"["*delete*"]"#);
    assert!(updated.updated_at >= a.updated_at);
    // The freed prefix can be taken now.
    let moved = db
        .store
        .update_integration(
            &b.id,
            IntegrationPatch {
                tool_prefix: Some("github".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(moved.tool_prefix.as_deref(), Some("github"));
}

async fn backfill(db: TestDb) {
    let (user, ws) = owner_and_workspace(&db).await;
    let a = install(&db, &ws, &user, Some("github"), "GitHub").await;
    let b = install(&db, &ws, &user, None, "Custom One").await;
    // As rows from before migration 0006 look.
    db.exec("UPDATE integrations SET tool_prefix = NULL").await;
    assert_eq!(db.store.migrate().await.unwrap(), 0);
    let a = db.store.get_integration(&a.id).await.unwrap().unwrap();
    let b = db.store.get_integration(&b.id).await.unwrap().unwrap();
    assert_eq!(a.tool_prefix.as_deref(), Some("github"));
    assert_eq!(b.tool_prefix.as_deref(), Some("custom-one"));
    assert_eq!(db.store.assign_default_tool_prefixes().await.unwrap(), 0);
}

async fn sessions(db: TestDb) {
    let row = GatewaySessionRow {
        id_hash: "ab".repeat(32),
        token_id: "tok".into(),
        scope: "crew:c1".into(),
        protocol_version: "2025-06-18".into(),
        created_at: 1000,
        last_seen_at: 1000,
    };
    db.store.insert_gateway_session(&row).await.unwrap();
    assert_eq!(
        db.store.gateway_session(&row.id_hash).await.unwrap(),
        Some(row.clone())
    );
    db.store
        .touch_gateway_session(&row.id_hash, 5000)
        .await
        .unwrap();
    assert_eq!(
        db.store
            .gateway_session(&row.id_hash)
            .await
            .unwrap()
            .unwrap()
            .last_seen_at,
        5000
    );
    let other = GatewaySessionRow {
        id_hash: "cd".repeat(32),
        ..row.clone()
    };
    db.store.insert_gateway_session(&other).await.unwrap();
    assert_eq!(
        db.store.delete_idle_gateway_sessions(2000).await.unwrap(),
        1
    );
    assert!(db
        .store
        .gateway_session(&other.id_hash)
        .await
        .unwrap()
        .is_none());
    assert!(db.store.delete_gateway_session(&row.id_hash).await.unwrap());
    assert!(!db.store.delete_gateway_session(&row.id_hash).await.unwrap());
}
