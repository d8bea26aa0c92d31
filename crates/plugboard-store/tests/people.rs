//! The people area of the store (sessions, sign-in links, tokens, workspaces, members, crews), on SQLite and
//! (when configured) PostgreSQL: the invariants the store keeps whoever asks.

// clippy.toml lets `#[test]` functions unwrap, expect and panic; the helpers and `test_on_both_backends!` bodies of
// an integration test crate are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use plugboard_store::testing::TestDb;
use plugboard_store::*;

plugboard_store::test_on_both_backends! {
    every_revocation_grows_the_credential_generation => generation;
    a_sign_in_link_is_spent_once_even_when_opened_twice_at_once => link_once;
    a_session_is_found_by_hash_touched_at_most_once_a_minute_and_ended => session_lifecycle;
    a_token_use_is_recorded_at_most_once_a_minute => token_touch;
    two_owners_demoting_each_other_at_once_leave_one_owner => last_owner_race;
    a_role_change_is_a_compare_and_set => role_cas;
    deleting_a_workspace_destroys_its_integrations_and_vault_entries => delete_workspace;
    a_crew_with_integrations_is_not_deleted => crew_in_use;
    a_user_is_removed_with_their_credentials_unless_they_hold_a_workspace => remove_user;
    adding_a_member_by_email_creates_the_user_once => add_by_email;
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
        .create_user("ada@example.com", "Ada")
        .await
        .unwrap();
    let ws = db.store.create_workspace("Acme", &user.id).await.unwrap();
    (user, ws)
}

fn session(user: &UserId, hash: &[u8], now: i64) -> NewSession {
    NewSession {
        id: SessionId::generate(),
        secret_hash: hash.to_vec(),
        user_id: user.clone(),
        created_at: now,
        expires_at: now + 1_000_000,
    }
}

async fn generation(db: TestDb) {
    let (user, _) = owner_and_workspace(&db).await;
    let g0 = db.store.credential_generation().await.unwrap();
    let t = db.store.create_token(&user.id, "t", b"h1").await.unwrap();
    assert_eq!(
        db.store.credential_generation().await.unwrap(),
        g0,
        "creating revokes nothing"
    );
    db.store.revoke_token(&t.id).await.unwrap();
    let g1 = db.store.credential_generation().await.unwrap();
    assert_eq!(g1, g0 + 1);
    db.store.revoke_token(&t.id).await.unwrap();
    assert_eq!(
        db.store.credential_generation().await.unwrap(),
        g1,
        "revoking twice changes nothing"
    );
    let now = now_ms();
    db.store
        .create_session(&session(&user.id, b"s1", now), None, 0, None)
        .await
        .unwrap();
    assert!(db.store.end_session(b"s1", None).await.unwrap());
    assert_eq!(db.store.credential_generation().await.unwrap(), g1 + 1);
    assert!(!db.store.end_session(b"s1", None).await.unwrap());
    let t2 = db.store.create_token(&user.id, "t2", b"h2").await.unwrap();
    assert!(db
        .store
        .revoke_own_token(&t2.id, &user.id, audit(None, "token_revoked"))
        .await
        .unwrap());
    assert_eq!(db.store.credential_generation().await.unwrap(), g1 + 2);
}

async fn link_once(db: TestDb) {
    let (user, _) = owner_and_workspace(&db).await;
    let now = now_ms();
    db.store
        .create_sign_in_link(b"link", &user.id, now, now + 60_000)
        .await
        .unwrap();
    db.store
        .create_sign_in_link(b"old", &user.id, now - 120_000, now - 60_000)
        .await
        .unwrap();
    let store = db.store.clone();
    let a = tokio::spawn({
        let s = store.clone();
        async move { s.use_sign_in_link(b"link", now).await.unwrap() }
    });
    let b = tokio::spawn(async move { store.use_sign_in_link(b"link", now).await.unwrap() });
    let mut outcomes = vec![a.await.unwrap(), b.await.unwrap()];
    outcomes.sort_by_key(|o| matches!(o, LinkUse::SignIn(_)));
    assert_eq!(
        outcomes,
        vec![LinkUse::AlreadyUsed, LinkUse::SignIn(user.id.clone())]
    );
    assert_eq!(
        db.store.use_sign_in_link(b"old", now).await.unwrap(),
        LinkUse::Expired
    );
    assert_eq!(
        db.store.use_sign_in_link(b"nope", now).await.unwrap(),
        LinkUse::Unknown
    );
    assert!(matches!(
        db.store
            .create_sign_in_link(b"x", &UserId::from("nobody"), now, now + 1)
            .await,
        Err(StoreError::NotFound("user"))
    ));
}

async fn session_lifecycle(db: TestDb) {
    let (user, _) = owner_and_workspace(&db).await;
    let now = now_ms();
    let s = session(&user.id, b"secret-hash", now);
    db.store.create_session(&s, None, 0, None).await.unwrap();
    let found = db
        .store
        .session_by_hash(b"secret-hash")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.id.clone(), found.user_id.clone(), found.last_used_at),
        (s.id.clone(), user.id.clone(), now)
    );
    assert!(
        !db.store
            .touch_session(&s.id, now + 59_999, 60_000)
            .await
            .unwrap(),
        "within the minute"
    );
    assert!(db
        .store
        .touch_session(&s.id, now + 60_000, 60_000)
        .await
        .unwrap());
    assert_eq!(
        db.store
            .session_by_hash(b"secret-hash")
            .await
            .unwrap()
            .unwrap()
            .last_used_at,
        now + 60_000
    );
    // A new session replaces the one the browser presented, and purges those that ended by time.
    let stale = session(&user.id, b"stale", now - 10);
    db.store
        .create_session(&stale, None, 0, None)
        .await
        .unwrap();
    let next = session(&user.id, b"next", now + 70_000);
    db.store
        .create_session(&next, Some(b"secret-hash"), now - 5, None)
        .await
        .unwrap();
    assert!(db
        .store
        .session_by_hash(b"secret-hash")
        .await
        .unwrap()
        .is_none());
    assert!(
        db.store.session_by_hash(b"stale").await.unwrap().is_none(),
        "idle one purged"
    );
    assert!(db.store.session_by_hash(b"next").await.unwrap().is_some());
}

async fn token_touch(db: TestDb) {
    let (user, _) = owner_and_workspace(&db).await;
    let now = now_ms();
    let rec = db
        .store
        .create_personal_token(
            &NewToken {
                user_id: user.id.clone(),
                name: "ci".into(),
                token_hash: b"th".to_vec(),
                created_at: now,
                expires_at: Some(now + 86_400_000),
            },
            audit(None, "token_created"),
        )
        .await
        .unwrap();
    let owner = db.store.token_owner(b"th").await.unwrap().unwrap();
    assert_eq!(
        (owner.expires_at, owner.last_used_at),
        (Some(now + 86_400_000), None)
    );
    assert!(
        db.store.touch_token(&rec.id, now, 60_000).await.unwrap(),
        "first use"
    );
    assert!(!db
        .store
        .touch_token(&rec.id, now + 1_000, 60_000)
        .await
        .unwrap());
    assert!(db
        .store
        .touch_token(&rec.id, now + 60_000, 60_000)
        .await
        .unwrap());
    let listed = db.store.list_tokens(&user.id, false).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].last_used_at, Some(now + 60_000));
}

async fn last_owner_race(db: TestDb) {
    let (ada, ws) = owner_and_workspace(&db).await;
    let bob = db
        .store
        .create_user("bob@example.com", "Bob")
        .await
        .unwrap();
    db.store
        .add_member(&ws.id, &bob.id, Role::Owner)
        .await
        .unwrap();
    let store: Arc<dyn Store> = db.store.clone();
    let demote = |user: UserId| {
        let s = store.clone();
        let ws = ws.id.clone();
        tokio::spawn(async move {
            s.change_member_role(
                &ws,
                &user,
                Role::Owner,
                Role::Admin,
                audit(Some(&ws), "member_role_changed"),
            )
            .await
            .unwrap()
        })
    };
    let (a, b) = (demote(ada.id.clone()), demote(bob.id.clone()));
    let mut outcomes = vec![a.await.unwrap(), b.await.unwrap()];
    outcomes.sort_by_key(|o| *o == MemberChange::Done);
    assert_eq!(outcomes, vec![MemberChange::LastOwner, MemberChange::Done]);
    let owners = db
        .store
        .list_members(&ws.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.role == Role::Owner)
        .count();
    assert_eq!(owners, 1);
    let last = db
        .store
        .list_members(&ws.id)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.role == Role::Owner)
        .unwrap();
    assert_eq!(
        db.store
            .remove_member(
                &ws.id,
                &last.user_id,
                Role::Owner,
                audit(Some(&ws.id), "member_removed")
            )
            .await
            .unwrap(),
        MemberChange::LastOwner
    );
}

async fn role_cas(db: TestDb) {
    let (_, ws) = owner_and_workspace(&db).await;
    let bob = db
        .store
        .create_user("bob@example.com", "Bob")
        .await
        .unwrap();
    db.store
        .add_member(&ws.id, &bob.id, Role::Admin)
        .await
        .unwrap();
    let a = || audit(Some(&ws.id), "member_role_changed");
    assert_eq!(
        db.store
            .change_member_role(&ws.id, &bob.id, Role::Viewer, Role::Member, a())
            .await
            .unwrap(),
        MemberChange::RoleChanged(Role::Admin)
    );
    assert_eq!(
        db.store
            .change_member_role(&ws.id, &bob.id, Role::Admin, Role::Viewer, a())
            .await
            .unwrap(),
        MemberChange::Done
    );
    assert_eq!(
        db.store.member_role(&ws.id, &bob.id).await.unwrap(),
        Some(Role::Viewer)
    );
    let nobody = UserId::generate();
    assert_eq!(
        db.store
            .change_member_role(&ws.id, &nobody, Role::Viewer, Role::Admin, a())
            .await
            .unwrap(),
        MemberChange::NotMember
    );
    assert_eq!(
        db.store
            .remove_member(&WorkspaceId::generate(), &bob.id, Role::Viewer, a())
            .await
            .unwrap(),
        MemberChange::NotMember
    );
    assert_eq!(
        db.store
            .remove_member(&ws.id, &bob.id, Role::Viewer, a())
            .await
            .unwrap(),
        MemberChange::Done
    );
    assert_eq!(db.store.member_role(&ws.id, &bob.id).await.unwrap(), None);
    let actions: Vec<String> = db
        .store
        .list_audit(&ws.id, 10, None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.action)
        .collect();
    assert_eq!(
        actions.len(),
        2,
        "only the changes that happened are audited: {actions:?}"
    );
}

async fn delete_workspace(db: TestDb) {
    let (user, ws) = owner_and_workspace(&db).await;
    let (_, other) = {
        let u = db
            .store
            .create_user("eve@example.com", "Eve")
            .await
            .unwrap();
        let w = db.store.create_workspace("Other", &u.id).await.unwrap();
        (u, w)
    };
    db.store.insert_data_key("dk1", b"w", true).await.unwrap();
    let crew = db.store.create_crew(&ws.id, "Ops").await.unwrap();
    for (w, crew_id) in [(&ws, Some(crew.id.clone())), (&ws, None), (&other, None)] {
        let id = IntegrationId::generate();
        db.store
            .create_integration(NewIntegration {
                id: id.clone(),
                workspace_id: w.id.clone(),
                crew_id,
                connector_id: Some("github".into()),
                name: "GitHub".into(),
                auth_mode: IntegrationAuthMode::parse("pat").unwrap(),
                status: IntegrationStatus::Active,
                mcp: "{}".into(),
                created_by: if w.id == ws.id {
                    user.id.clone()
                } else {
                    db.store.list_members(&other.id).await.unwrap()[0]
                        .user_id
                        .clone()
                },
                secrets: vec![NewSecret {
                    name: "field.token".into(),
                    key_id: "dk1".into(),
                    ciphertext: vec![1],
                }],
                oauth_state: None,
                audit: audit(Some(&w.id), "integration.install"),
                idempotency: None,
            })
            .await
            .unwrap();
    }
    assert_eq!(db.store.count_secrets().await.unwrap(), 3);
    assert!(db
        .store
        .delete_workspace(&ws.id, audit(Some(&ws.id), "workspace_deleted"))
        .await
        .unwrap());
    assert_eq!(
        db.store.count_secrets().await.unwrap(),
        1,
        "only the other workspace's entry is left"
    );
    assert!(db.store.get_workspace(&ws.id).await.unwrap().is_none());
    assert!(db.store.get_crew(&crew.id).await.unwrap().is_none());
    assert!(db
        .store
        .list_integrations(&ws.id, None)
        .await
        .unwrap()
        .is_empty());
    assert!(db.store.user_workspaces(&user.id).await.unwrap().is_empty());
    assert_eq!(
        db.store
            .list_integrations(&other.id, None)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(!db
        .store
        .delete_workspace(&ws.id, audit(Some(&ws.id), "workspace_deleted"))
        .await
        .unwrap());
}

async fn crew_in_use(db: TestDb) {
    let (user, ws) = owner_and_workspace(&db).await;
    db.store.insert_data_key("dk1", b"w", true).await.unwrap();
    let crew = db.store.create_crew(&ws.id, "Ops").await.unwrap();
    let id = IntegrationId::generate();
    db.store
        .create_integration(NewIntegration {
            id: id.clone(),
            workspace_id: ws.id.clone(),
            crew_id: Some(crew.id.clone()),
            connector_id: None,
            name: "x".into(),
            auth_mode: IntegrationAuthMode::parse("pat").unwrap(),
            status: IntegrationStatus::Active,
            mcp: "{}".into(),
            created_by: user.id.clone(),
            secrets: vec![],
            oauth_state: None,
            audit: audit(Some(&ws.id), "integration.install"),
            idempotency: None,
        })
        .await
        .unwrap();
    let a = || audit(Some(&ws.id), "crew_deleted");
    assert_eq!(
        db.store.delete_crew(&crew.id, a()).await.unwrap(),
        CrewDeletion::InUse(1)
    );
    assert!(db.store.get_crew(&crew.id).await.unwrap().is_some());
    db.store
        .delete_integration(&id, audit(Some(&ws.id), "integration.delete"))
        .await
        .unwrap();
    assert_eq!(
        db.store.delete_crew(&crew.id, a()).await.unwrap(),
        CrewDeletion::Deleted
    );
    assert_eq!(
        db.store.delete_crew(&crew.id, a()).await.unwrap(),
        CrewDeletion::NotFound
    );
}

async fn remove_user(db: TestDb) {
    let (ada, ws) = owner_and_workspace(&db).await;
    let bob = db
        .store
        .create_user("bob@example.com", "Bob")
        .await
        .unwrap();
    db.store
        .add_member(&ws.id, &bob.id, Role::Member)
        .await
        .unwrap();
    let now = now_ms();
    db.store
        .create_session(&session(&bob.id, b"bob-session", now), None, 0, None)
        .await
        .unwrap();
    db.store
        .create_token(&bob.id, "t", b"bob-token")
        .await
        .unwrap();
    db.store
        .create_sign_in_link(b"bob-link", &bob.id, now, now + 60_000)
        .await
        .unwrap();
    let a = || audit(None, "user_removed");
    assert_eq!(
        db.store.remove_user(&ada.id, a()).await.unwrap(),
        UserRemoval::LastOwner(ws.id.clone())
    );
    let g = db.store.credential_generation().await.unwrap();
    assert_eq!(
        db.store.remove_user(&bob.id, a()).await.unwrap(),
        UserRemoval::Removed
    );
    assert!(db.store.credential_generation().await.unwrap() > g);
    assert!(db
        .store
        .session_by_hash(b"bob-session")
        .await
        .unwrap()
        .is_none());
    assert!(db.store.token_owner(b"bob-token").await.unwrap().is_none());
    assert_eq!(
        db.store.use_sign_in_link(b"bob-link", now).await.unwrap(),
        LinkUse::Unknown
    );
    assert_eq!(db.store.list_members(&ws.id).await.unwrap().len(), 1);
    assert_eq!(
        db.store.remove_user(&bob.id, a()).await.unwrap(),
        UserRemoval::NotFound
    );
}

async fn add_by_email(db: TestDb) {
    let (_, ws) = owner_and_workspace(&db).await;
    let a = || audit(Some(&ws.id), "member_added");
    let first = db
        .store
        .add_member_by_email(&ws.id, " Grace@Example.com ", "grace", Role::Viewer, a())
        .await
        .unwrap();
    let MemberAdded::Added {
        member,
        user_created,
    } = first
    else {
        panic!("{first:?}")
    };
    assert!(user_created);
    assert_eq!(
        (member.email.as_str(), member.role),
        ("grace@example.com", Role::Viewer)
    );
    let again = db
        .store
        .add_member_by_email(&ws.id, "grace@example.com", "x", Role::Admin, a())
        .await
        .unwrap();
    assert_eq!(again, MemberAdded::AlreadyMember(member.clone()));
    assert_eq!(db.store.list_users().await.unwrap().len(), 2);
    let entry = &db.store.list_audit(&ws.id, 10, None).await.unwrap()[0];
    assert_eq!(entry.target.as_deref(), Some(member.user_id.as_str()));
    assert_eq!(
        db.store
            .add_member_by_email(
                &WorkspaceId::generate(),
                "x@example.com",
                "x",
                Role::Viewer,
                a()
            )
            .await
            .unwrap(),
        MemberAdded::NoWorkspace
    );
}
