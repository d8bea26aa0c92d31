//! The management API (`/api/v1/me`, workspaces, members, crews, tokens): every endpoint × every role, a
//! non-member and the signed out, by bearer token and by session cookie (with and without Plugboard's `Origin`);
//! the OWNER rules, the last OWNER, crews in use, deleting a workspace with its vault entries, the audit log, bad
//! input, and the OpenAPI document. On both backends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod integration_support;

use axum::http::Method;
use integration_support::*;
use plugboard_server::testing::{test_on_both_backends, Caller, Db, TestApp};
use plugboard_store::{Role, WorkspaceId};
use serde_json::{json, Value};

test_on_both_backends! {
    every_endpoint_answers_every_caller_by_token_and_by_cookie_as_specified => matrix;
    the_answers_have_the_specified_shapes => shapes;
    only_an_owner_grants_owner_or_changes_or_removes_an_owner => owner_rules;
    the_last_owner_can_be_neither_demoted_nor_removed => last_owner;
    a_member_may_remove_themself => leaving;
    adding_an_existing_member_is_a_conflict_and_a_new_email_makes_a_user => adding;
    a_crew_with_integrations_installed_is_not_deleted => crew_in_use;
    deleting_a_workspace_removes_its_crews_integrations_and_vault_entries => delete_workspace;
    every_change_is_in_the_workspace_audit_log_with_who_and_when => audit;
    a_token_is_revoked_only_by_its_owner => token_owner_only;
    bad_input_is_a_clear_400_and_stores_nothing => bad_input;
    the_openapi_document_describes_every_people_endpoint => openapi;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    Me,
    ListWorkspaces,
    CreateWorkspace,
    GetWorkspace,
    RenameWorkspace,
    DeleteWorkspace,
    ListMembers,
    AddMember,
    ChangeRole,
    RemoveMember,
    ListCrews,
    CreateCrew,
    RenameCrew,
    DeleteCrew,
    ListTokens,
    CreateToken,
    RevokeToken,
}

const ENDPOINTS: [Endpoint; 17] = [
    Endpoint::Me,
    Endpoint::ListWorkspaces,
    Endpoint::CreateWorkspace,
    Endpoint::GetWorkspace,
    Endpoint::RenameWorkspace,
    Endpoint::DeleteWorkspace,
    Endpoint::ListMembers,
    Endpoint::AddMember,
    Endpoint::ChangeRole,
    Endpoint::RemoveMember,
    Endpoint::ListCrews,
    Endpoint::CreateCrew,
    Endpoint::RenameCrew,
    Endpoint::DeleteCrew,
    Endpoint::ListTokens,
    Endpoint::CreateToken,
    Endpoint::RevokeToken,
];

/// The minimum role on the workspace; `None`: anyone signed in.
fn min_role(e: Endpoint) -> Option<Role> {
    use Endpoint::*;
    match e {
        Me | ListWorkspaces | CreateWorkspace | ListTokens | CreateToken | RevokeToken => None,
        GetWorkspace | ListMembers | ListCrews => Some(Role::Viewer),
        CreateCrew | RenameCrew => Some(Role::Manager),
        RenameWorkspace | AddMember | ChangeRole | RemoveMember | DeleteCrew => Some(Role::Admin),
        DeleteWorkspace => Some(Role::Owner),
    }
}

fn success(e: Endpoint) -> u16 {
    use Endpoint::*;
    match e {
        CreateWorkspace | AddMember | CreateCrew | CreateToken => 201,
        DeleteWorkspace | RemoveMember | DeleteCrew | RevokeToken => 204,
        _ => 200,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    SignedOut,
    /// A member (OWNER) of another workspace only.
    Outsider,
    Role(Role),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    Bearer,
    /// The session cookie with Plugboard's `Origin`.
    Cookie,
    /// The session cookie without any `Origin`.
    CookieNoOrigin,
}

/// Builds the request of `endpoint` for `caller` (whose role on `ws` is `who`), with a fresh target for the
/// changes that consume one (a workspace to delete, a member to change or remove, a crew to delete, a token).
async fn request_for(
    app: &TestApp,
    ws: &WorkspaceId,
    shared_crew: &str,
    who: Who,
    caller: &Caller<'_>,
    endpoint: Endpoint,
) -> (Method, String, Option<Value>) {
    use Endpoint::*;
    let w = format!("/api/v1/workspaces/{ws}");
    let fresh_member = || async {
        let (user, _) = app
            .member_user(
                &plugboard_store::Workspace {
                    id: ws.clone(),
                    name: String::new(),
                    created_at: 0,
                },
                Role::Viewer,
            )
            .await;
        user.id
    };
    match endpoint {
        Me => (Method::GET, "/api/v1/me".into(), None),
        ListWorkspaces => (Method::GET, "/api/v1/workspaces".into(), None),
        CreateWorkspace => (
            Method::POST,
            "/api/v1/workspaces".into(),
            Some(json!({"name": "New"})),
        ),
        GetWorkspace => (Method::GET, w, None),
        RenameWorkspace => (Method::PATCH, w, Some(json!({"name": "Renamed"}))),
        DeleteWorkspace => {
            // A workspace of its own, where the caller has the same role as on `ws`.
            let target = match who {
                Who::Role(role) if caller.token().is_some() || caller.session().is_some() => {
                    let (victim, _) = app.workspace().await;
                    app.db
                        .store
                        .add_member(&victim.id, &caller.user_id().await, role)
                        .await
                        .unwrap();
                    victim.id
                }
                _ => app.workspace().await.0.id,
            };
            (Method::DELETE, format!("/api/v1/workspaces/{target}"), None)
        }
        ListMembers => (Method::GET, format!("{w}/members"), None),
        AddMember => (
            Method::POST,
            format!("{w}/members"),
            Some(
                json!({"email": format!("new-{}@example.com", plugboard_store::new_id()), "role": "MEMBER"}),
            ),
        ),
        ChangeRole => (
            Method::PATCH,
            format!("{w}/members/{}", fresh_member().await),
            Some(json!({"role": "MEMBER"})),
        ),
        RemoveMember => (
            Method::DELETE,
            format!("{w}/members/{}", fresh_member().await),
            None,
        ),
        ListCrews => (Method::GET, format!("{w}/crews"), None),
        CreateCrew => (
            Method::POST,
            format!("{w}/crews"),
            Some(json!({"name": "Ops"})),
        ),
        RenameCrew => (
            Method::PATCH,
            format!("/api/v1/crews/{shared_crew}"),
            Some(json!({"name": "Ops 2"})),
        ),
        DeleteCrew => {
            let crew = app.db.store.create_crew(ws, "doomed").await.unwrap();
            (Method::DELETE, format!("/api/v1/crews/{}", crew.id), None)
        }
        ListTokens => (Method::GET, "/api/v1/tokens".into(), None),
        CreateToken => (
            Method::POST,
            "/api/v1/tokens".into(),
            Some(json!({"name": "t"})),
        ),
        RevokeToken => {
            // One of the caller's own tokens (the signed out get someone's).
            let owner = match who {
                Who::SignedOut => {
                    app.user(&format!("x-{}@example.com", plugboard_store::new_id()))
                        .await
                        .0
                        .id
                }
                _ => caller.user_id().await,
            };
            let (_, hash) = plugboard_server::auth::generate_token();
            let rec = app
                .db
                .store
                .create_token(&owner, "victim", &hash)
                .await
                .unwrap();
            (Method::DELETE, format!("/api/v1/tokens/{}", rec.id), None)
        }
    }
}

async fn matrix(db: Db) {
    let app = TestApp::new(db).await;
    let team = app.team().await;
    let outsider_team = app.team().await;
    let crew = app.db.store.create_crew(team.id(), "Shared").await.unwrap();
    let mut callers: Vec<(Who, Via, Caller<'_>)> =
        vec![(Who::SignedOut, Via::Bearer, app.anonymous())];
    let mut people = vec![(Who::Outsider, outsider_team.owner.clone())];
    for role in Role::ALL {
        let caller = if role == Role::Owner {
            team.owner.clone()
        } else {
            team.as_role(role).await
        };
        people.push((Who::Role(role), caller));
    }
    for (who, caller) in people {
        let browser = caller.by_cookie().await;
        callers.push((who, Via::Bearer, caller));
        callers.push((who, Via::CookieNoOrigin, browser.with_origin(None)));
        callers.push((who, Via::Cookie, browser));
    }
    let mut checked = 0;
    for endpoint in ENDPOINTS {
        for (who, via, caller) in &callers {
            let (method, uri, body) =
                request_for(&app, team.id(), crew.id.as_str(), *who, caller, endpoint).await;
            let safe = method == Method::GET;
            let expected = match (who, via) {
                (Who::SignedOut, _) => 401,
                (_, Via::CookieNoOrigin) if !safe => 403,
                (Who::Outsider, _) => match min_role(endpoint) {
                    None => success(endpoint),
                    Some(_) => 403,
                },
                (Who::Role(r), _) => match min_role(endpoint) {
                    Some(min) if *r < min => 403,
                    _ => success(endpoint),
                },
            };
            let res = caller.send(method.clone(), &uri, body).await;
            assert_eq!(
                res.status.as_u16(),
                expected,
                "{endpoint:?} as {who:?} via {via:?} ({method} {uri}): {}",
                res.text()
            );
            if expected >= 400 {
                res.assert_status(expected);
                let code = res.json()["code"].as_str().unwrap().to_string();
                let want = match expected {
                    401 => "unauthenticated",
                    _ if *via == Via::CookieNoOrigin && !safe => "csrf_rejected",
                    _ => "forbidden",
                };
                assert_eq!(code, want, "{endpoint:?} as {who:?} via {via:?}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 17 * (1 + 6 * 3));
}

async fn shapes(db: Db) {
    let app = TestApp::new(db).await;
    let team = app.team().await;
    let me = team.owner.get("/api/v1/me").await.json();
    let owner = team.owner.user_id().await;
    let user = app.db.store.get_user(&owner).await.unwrap().unwrap();
    assert_eq!(
        me,
        json!({"id": owner, "email": user.email, "name": user.name,
               "workspaces": [{"id": team.id(), "name": "Test workspace", "role": "OWNER"}]})
    );
    let created = team
        .owner
        .post("/api/v1/workspaces", json!({"name": "  Acme  "}))
        .await;
    created.assert_status(201);
    let c = created.json();
    assert_eq!(c.as_object().unwrap().len(), 2);
    assert_eq!(c["name"], "Acme");
    let id = c["id"].as_str().unwrap().to_string();
    let list = team.owner.get("/api/v1/workspaces").await.json();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[1], json!({"id": id, "name": "Acme", "role": "OWNER"}));
    let ws = team
        .owner
        .get(&format!("/api/v1/workspaces/{id}"))
        .await
        .json();
    let mut keys: Vec<&String> = ws.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["created_at", "id", "name"]);
    assert!(ws["created_at"].as_i64().unwrap() > 1_600_000_000_000);
    let renamed = team
        .owner
        .patch(
            &format!("/api/v1/workspaces/{id}"),
            json!({"name": "Acme Inc"}),
        )
        .await;
    renamed.assert_status(200);
    assert_eq!(renamed.json()["name"], "Acme Inc");
    assert_eq!(renamed.json()["created_at"], ws["created_at"]);
    let members = team
        .owner
        .get(&format!("/api/v1/workspaces/{id}/members"))
        .await
        .json();
    assert_eq!(
        members,
        json!([{"user_id": owner, "email": user.email, "name": user.name, "role": "OWNER"}])
    );
    let crew = team
        .owner
        .post(
            &format!("/api/v1/workspaces/{id}/crews"),
            json!({"name": "Ops"}),
        )
        .await;
    crew.assert_status(201);
    let crew_id = crew.json()["id"].as_str().unwrap().to_string();
    assert_eq!(crew.json(), json!({"id": crew_id, "name": "Ops"}));
    assert_eq!(
        team.owner
            .get(&format!("/api/v1/workspaces/{id}/crews"))
            .await
            .json(),
        json!([{"id": crew_id, "name": "Ops"}])
    );
    let renamed = team
        .owner
        .patch(&format!("/api/v1/crews/{crew_id}"), json!({"name": "SRE"}))
        .await;
    assert_eq!(renamed.json(), json!({"id": crew_id, "name": "SRE"}));
    let token = team
        .owner
        .post("/api/v1/tokens", json!({"name": "laptop"}))
        .await;
    token.assert_status(201);
    let t = token.json();
    let mut keys: Vec<&String> = t.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["id", "token"]);
    let secret = t["token"].as_str().unwrap().to_string();
    assert!(secret.starts_with("pb_") && secret.len() == 46);
    let tokens = team.owner.get("/api/v1/tokens").await;
    assert!(!tokens.text().contains(&secret), "never the secret");
    let entry = tokens
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == t["id"])
        .unwrap()
        .clone();
    assert_eq!(
        entry,
        json!({"id": t["id"], "name": "laptop", "created_at": entry["created_at"], "last_used_at": null, "expires_at": null})
    );
    app.with_token(&secret)
        .get("/api/v1/me")
        .await
        .assert_status(200);
}

fn member_uri(ws: &WorkspaceId, user: &impl std::fmt::Display) -> String {
    format!("/api/v1/workspaces/{ws}/members/{user}")
}

async fn owner_rules(db: Db) {
    let app = TestApp::new(db).await;
    let team = app.team().await;
    let admin = team.as_admin().await;
    let owner_id = team.owner.user_id().await;
    let members = format!("/api/v1/workspaces/{}/members", team.id());
    // ADMIN cannot grant OWNER, by adding or by changing a role; ADMIN grants up to ADMIN.
    let res = admin
        .post(&members, json!({"email": "o@example.com", "role": "OWNER"}))
        .await;
    res.assert_status(403);
    assert!(res.json()["error"]
        .as_str()
        .unwrap()
        .contains("only an OWNER"));
    assert!(
        app.db
            .store
            .find_user_by_email("o@example.com")
            .await
            .unwrap()
            .is_none(),
        "nothing stored"
    );
    let added = admin
        .post(&members, json!({"email": "a@example.com", "role": "ADMIN"}))
        .await;
    added.assert_status(201);
    let a_id = added.json()["user_id"].as_str().unwrap().to_string();
    admin
        .patch(&member_uri(team.id(), &a_id), json!({"role": "OWNER"}))
        .await
        .assert_status(403);
    admin
        .patch(&member_uri(team.id(), &a_id), json!({"role": "VIEWER"}))
        .await
        .assert_status(200);
    // ADMIN cannot change or remove an OWNER; cannot make themself OWNER.
    admin
        .patch(&member_uri(team.id(), &owner_id), json!({"role": "ADMIN"}))
        .await
        .assert_status(403);
    admin
        .delete(&member_uri(team.id(), &owner_id))
        .await
        .assert_status(403);
    let admin_id = admin.user_id().await;
    admin
        .patch(&member_uri(team.id(), &admin_id), json!({"role": "OWNER"}))
        .await
        .assert_status(403);
    assert_eq!(
        app.db
            .store
            .member_role(team.id(), &owner_id)
            .await
            .unwrap(),
        Some(Role::Owner)
    );
    // An OWNER grants OWNER, and changes and removes OWNERs.
    team.owner
        .patch(&member_uri(team.id(), &a_id), json!({"role": "OWNER"}))
        .await
        .assert_status(200);
    team.owner
        .patch(&member_uri(team.id(), &a_id), json!({"role": "MANAGER"}))
        .await
        .assert_status(200);
    team.owner
        .patch(&member_uri(team.id(), &a_id), json!({"role": "OWNER"}))
        .await
        .assert_status(200);
    team.owner
        .delete(&member_uri(team.id(), &a_id))
        .await
        .assert_status(204);
    let o = team
        .owner
        .post(
            &members,
            json!({"email": "o2@example.com", "role": "OWNER"}),
        )
        .await;
    o.assert_status(201);
    assert_eq!(o.json()["role"], "OWNER");
    // A MANAGER manages no members.
    let manager = team.as_manager().await;
    manager
        .post(
            &members,
            json!({"email": "m@example.com", "role": "VIEWER"}),
        )
        .await
        .assert_status(403);
    // Unknown member: 404; an id of another shape is answered the same way.
    let res = team
        .owner
        .patch(
            &member_uri(team.id(), &plugboard_store::UserId::generate()),
            json!({"role": "VIEWER"}),
        )
        .await;
    res.assert_status(404);
    let unknown = res.json();
    let res = team
        .owner
        .patch(&member_uri(team.id(), &"nope"), json!({"role": "VIEWER"}))
        .await;
    res.assert_status(404);
    assert_eq!(res.json(), unknown);
}

async fn last_owner(db: Db) {
    let app = TestApp::new(db).await;
    let team = app.team().await;
    let owner_id = team.owner.user_id().await;
    let me = member_uri(team.id(), &owner_id);
    let res = team.owner.patch(&me, json!({"role": "ADMIN"})).await;
    res.assert_status(409);
    assert_eq!(res.json()["code"], "last_owner");
    assert!(res.json()["error"]
        .as_str()
        .unwrap()
        .contains("at least one OWNER"));
    let res = team.owner.delete(&me).await;
    res.assert_status(409);
    assert_eq!(res.json()["code"], "last_owner");
    // By cookie too.
    let browser = team.owner.by_cookie().await;
    browser.delete(&me).await.assert_status(409);
    assert_eq!(
        app.db
            .store
            .member_role(team.id(), &owner_id)
            .await
            .unwrap(),
        Some(Role::Owner)
    );
    // With a second OWNER the first may step down.
    let second = team.as_role(Role::Owner).await;
    team.owner
        .patch(&me, json!({"role": "ADMIN"}))
        .await
        .assert_status(200);
    let second_id = second.user_id().await;
    second
        .delete(&member_uri(team.id(), &second_id))
        .await
        .assert_status(409);
}

async fn leaving(db: Db) {
    let app = TestApp::new(db).await;
    let team = app.team().await;
    for role in [Role::Viewer, Role::Member, Role::Manager] {
        let member = team.as_role(role).await.by_cookie().await;
        let id = member.user_id().await;
        member
            .get(&format!("/api/v1/workspaces/{}", team.id()))
            .await
            .assert_status(200);
        member
            .delete(&member_uri(team.id(), &id))
            .await
            .assert_status(204);
        member
            .get(&format!("/api/v1/workspaces/{}", team.id()))
            .await
            .assert_status(403);
        // Gone: removing again is 403 (no longer a member), not 404.
        member
            .delete(&member_uri(team.id(), &id))
            .await
            .assert_status(403);
    }
    // A VIEWER removes nobody else.
    let viewer = team.as_viewer().await;
    let other = team.as_viewer().await.user_id().await;
    viewer
        .delete(&member_uri(team.id(), &other))
        .await
        .assert_status(403);
}

async fn adding(db: Db) {
    let app = TestApp::new(db).await;
    let team = app.team().await;
    let members = format!("/api/v1/workspaces/{}/members", team.id());
    let res = team
        .owner
        .post(
            &members,
            json!({"email": " Grace.Hopper@Example.COM ", "role": "MANAGER"}),
        )
        .await;
    res.assert_status(201);
    let m = res.json();
    assert_eq!(m["email"], "grace.hopper@example.com");
    assert_eq!(m["name"], "grace.hopper");
    assert_eq!(m["role"], "MANAGER");
    let again = team
        .owner
        .post(
            &members,
            json!({"email": "grace.hopper@example.com", "role": "ADMIN"}),
        )
        .await;
    again.assert_status(409);
    assert_eq!(again.json()["code"], "already_member");
    assert_eq!(
        app.db
            .store
            .member_role(team.id(), &m["user_id"].as_str().unwrap().into())
            .await
            .unwrap(),
        Some(Role::Manager)
    );
    // The same person added to another workspace is the same user.
    let other = app.team().await;
    let res = other
        .owner
        .post(
            &format!("/api/v1/workspaces/{}/members", other.id()),
            json!({"email": "grace.hopper@example.com", "role": "VIEWER"}),
        )
        .await;
    assert_eq!(res.json()["user_id"], m["user_id"]);
    // An added user can be signed in and sees both workspaces.
    let grace = app.with_session(
        &app.session_for(&m["user_id"].as_str().unwrap().into())
            .await,
    );
    assert_eq!(
        grace
            .get("/api/v1/workspaces")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

async fn crew_in_use(db: Db) {
    let app = TestApp::new(db).await;
    let team = app.team().await;
    let crew = team
        .owner
        .post(
            &format!("/api/v1/workspaces/{}/crews", team.id()),
            json!({"name": "Ops"}),
        )
        .await
        .json();
    let crew_id = crew["id"].as_str().unwrap();
    let installed = team
        .owner
        .post(
            &format!("/api/v1/integrations?workspace_id={}", team.id()),
            json!({"name": "c", "crew_id": crew_id, "transport": "stdio", "command": "x"}),
        )
        .await;
    installed.assert_status(201);
    let integration = installed.json()["integration_id"]
        .as_str()
        .unwrap()
        .to_string();
    let res = team.owner.delete(&format!("/api/v1/crews/{crew_id}")).await;
    res.assert_status(409);
    assert_eq!(res.json()["code"], "crew_in_use");
    assert!(res.json()["error"]
        .as_str()
        .unwrap()
        .contains("1 integration is installed"));
    assert!(app
        .db
        .store
        .get_crew(&crew_id.into())
        .await
        .unwrap()
        .is_some());
    team.owner
        .delete(&format!("/api/v1/integrations/{integration}"))
        .await
        .assert_status(204);
    team.owner
        .delete(&format!("/api/v1/crews/{crew_id}"))
        .await
        .assert_status(204);
    team.owner
        .delete(&format!("/api/v1/crews/{crew_id}"))
        .await
        .assert_status(404);
    team.owner
        .patch(&format!("/api/v1/crews/{crew_id}"), json!({"name": "x"}))
        .await
        .assert_status(404);
}

async fn delete_workspace(db: Db) {
    let app = TestApp::new(db).await;
    let team = app.team().await;
    let other = app.team().await;
    let member = team.as_member().await;
    let owner = team.owner.token().unwrap().to_string();
    let crew = app.db.store.create_crew(team.id(), "Ops").await.unwrap();
    let pat = github_token(&canary());
    install_github(&app, &owner, &team.ws, &pat).await;
    install(
        &app,
        &owner,
        &team.ws,
        "github",
        json!({"crew_id": crew.id, "fields": {"token": pat}}),
    )
    .await;
    install_github(
        &app,
        other.owner.token().unwrap(),
        &other.ws,
        &github_token(&canary()),
    )
    .await;
    assert_eq!(app.db.store.count_secrets().await.unwrap(), 3);
    // An ADMIN may not; the OWNER may, by cookie.
    team.as_admin()
        .await
        .delete(&format!("/api/v1/workspaces/{}", team.id()))
        .await
        .assert_status(403);
    let browser = team.owner.by_cookie().await;
    browser
        .delete(&format!("/api/v1/workspaces/{}", team.id()))
        .await
        .assert_status(204);
    assert_eq!(
        app.db.store.count_secrets().await.unwrap(),
        1,
        "its vault entries are gone, the other's kept"
    );
    assert!(app.db.store.get_crew(&crew.id).await.unwrap().is_none());
    assert!(app
        .db
        .store
        .list_integrations(team.id(), None)
        .await
        .unwrap()
        .is_empty());
    member
        .get(&format!("/api/v1/workspaces/{}", team.id()))
        .await
        .assert_status(403);
    assert_eq!(member.get("/api/v1/workspaces").await.json(), json!([]));
    browser
        .delete(&format!("/api/v1/workspaces/{}", team.id()))
        .await
        .assert_status(403);
    // The deletion itself is on record.
    let log = app.db.store.list_audit(team.id(), 50, None).await.unwrap();
    assert_eq!(log[0].action, "workspace_deleted");
    assert_eq!(log[0].actor_id.as_ref(), Some(&browser.user_id().await));
}

async fn audit(db: Db) {
    let app = TestApp::new(db).await;
    let admin_team = app.team().await;
    let browser = admin_team.owner.by_cookie().await;
    let actor = browser.user_id().await;
    let ws = browser
        .post("/api/v1/workspaces", json!({"name": "Audited"}))
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let base = format!("/api/v1/workspaces/{ws}");
    browser
        .patch(&base, json!({"name": "Audited 2"}))
        .await
        .assert_status(200);
    let m = browser
        .post(
            &format!("{base}/members"),
            json!({"email": "bob@example.com", "role": "VIEWER"}),
        )
        .await
        .json();
    let bob = m["user_id"].as_str().unwrap().to_string();
    browser
        .patch(
            &member_uri(&ws.as_str().into(), &bob),
            json!({"role": "ADMIN"}),
        )
        .await
        .assert_status(200);
    browser
        .delete(&member_uri(&ws.as_str().into(), &bob))
        .await
        .assert_status(204);
    let crew = browser
        .post(&format!("{base}/crews"), json!({"name": "Ops"}))
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    browser
        .patch(&format!("/api/v1/crews/{crew}"), json!({"name": "SRE"}))
        .await
        .assert_status(200);
    browser
        .delete(&format!("/api/v1/crews/{crew}"))
        .await
        .assert_status(204);
    let created = browser
        .post("/api/v1/tokens", json!({"name": "ci"}))
        .await
        .json();
    browser
        .delete(&format!(
            "/api/v1/tokens/{}",
            created["id"].as_str().unwrap()
        ))
        .await
        .assert_status(204);
    // Refused changes leave no entry.
    browser
        .patch(
            &member_uri(&ws.as_str().into(), &actor),
            json!({"role": "VIEWER"}),
        )
        .await
        .assert_status(409);
    let page = browser
        .get(&format!("/api/v1/audit?workspace_id={ws}"))
        .await
        .json();
    let entries = page["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .rev()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "workspace_created",
            "workspace_renamed",
            "member_added",
            "member_role_changed",
            "member_removed",
            "crew_created",
            "crew_renamed",
            "crew_deleted"
        ],
        "token events concern no workspace"
    );
    for e in entries {
        assert_eq!(e["actor_id"], actor);
        assert_eq!(e["workspace_id"], ws.as_str());
        assert!(e["created_at"].as_i64().unwrap() > 1_600_000_000_000);
    }
    let by_action = |a: &str| entries.iter().find(|e| e["action"] == a).unwrap().clone();
    assert_eq!(
        by_action("workspace_renamed")["detail"],
        json!({"from": "Audited", "to": "Audited 2"})
    );
    assert_eq!(by_action("member_added")["target"], bob.as_str());
    assert_eq!(by_action("member_role_changed")["detail"]["from"], "VIEWER");
    assert_eq!(by_action("member_role_changed")["detail"]["to"], "ADMIN");
    assert_eq!(by_action("crew_renamed")["detail"]["to"], "SRE");
    assert!(!page
        .to_string()
        .contains(created["token"].as_str().unwrap()));
}

async fn token_owner_only(db: Db) {
    let app = TestApp::new(db).await;
    let team = app.team().await;
    let created = team
        .owner
        .post("/api/v1/tokens", json!({"name": "mine"}))
        .await
        .json();
    let id = created["id"].as_str().unwrap();
    let token = created["token"].as_str().unwrap();
    // Another person, even an OWNER of the same workspace, cannot see or revoke it.
    let other = team.as_role(Role::Owner).await;
    let res = other.delete(&format!("/api/v1/tokens/{id}")).await;
    res.assert_status(404);
    assert!(!other.get("/api/v1/tokens").await.text().contains(id));
    app.with_token(token)
        .get("/api/v1/me")
        .await
        .assert_status(200);
    // A token may revoke itself; then it is gone from the list and revoking again is 404.
    app.with_token(token)
        .delete(&format!("/api/v1/tokens/{id}"))
        .await
        .assert_status(204);
    app.with_token(token)
        .get("/api/v1/me")
        .await
        .assert_status(401);
    assert!(!team.owner.get("/api/v1/tokens").await.text().contains(id));
    team.owner
        .delete(&format!("/api/v1/tokens/{id}"))
        .await
        .assert_status(404);
    // An id of another shape is answered as an unknown token.
    team.owner
        .delete("/api/v1/tokens/not-a-token-id")
        .await
        .assert_status(404);
}

/// Everything the bad requests could have stored, counted.
async fn counts(
    app: &TestApp,
    ws: &WorkspaceId,
    user: &plugboard_store::UserId,
) -> (usize, usize, usize, usize, String) {
    (
        app.db.store.list_workspaces().await.unwrap().len(),
        app.db.store.list_members(ws).await.unwrap().len(),
        app.db.store.list_crews(ws).await.unwrap().len(),
        app.db.store.list_tokens(user, true).await.unwrap().len(),
        app.db.store.get_workspace(ws).await.unwrap().unwrap().name,
    )
}

async fn bad_input(db: Db) {
    let app = TestApp::new(db).await;
    let team = app.team().await;
    let crew = app.db.store.create_crew(team.id(), "Ops").await.unwrap();
    let owner = team.owner.user_id().await;
    let owner_id = owner.to_string();
    let before = counts(&app, team.id(), &owner).await;
    let w = format!("/api/v1/workspaces/{}", team.id());
    let ten_kb = "n".repeat(10 * 1024);
    let cases: Vec<(Method, String, Value, &str)> = vec![
        (
            Method::POST,
            "/api/v1/workspaces".into(),
            json!({"name": ten_kb}),
            "`name`",
        ),
        (
            Method::POST,
            "/api/v1/workspaces".into(),
            json!({"name": ""}),
            "`name`",
        ),
        (
            Method::POST,
            "/api/v1/workspaces".into(),
            json!({"name": "a\u{0}b"}),
            "`name` contains a NUL",
        ),
        (
            Method::POST,
            "/api/v1/workspaces".into(),
            json!({"name": "a\nb"}),
            "control characters",
        ),
        (
            Method::POST,
            "/api/v1/workspaces".into(),
            json!({}),
            "`name` is required",
        ),
        (
            Method::POST,
            "/api/v1/workspaces".into(),
            json!({"name": "x", "owner": "me"}),
            "unknown key `owner`",
        ),
        (
            Method::POST,
            "/api/v1/workspaces".into(),
            json!(["x"]),
            "JSON object",
        ),
        (Method::PATCH, w.clone(), json!({"name": ten_kb}), "`name`"),
        (
            Method::PATCH,
            w.clone(),
            json!({"name": 42}),
            "`name` must be a string",
        ),
        (
            Method::POST,
            format!("{w}/members"),
            json!({"email": "not-an-email", "role": "VIEWER"}),
            "`email`",
        ),
        (
            Method::POST,
            format!("{w}/members"),
            json!({"email": "a@b", "role": "VIEWER"}),
            "`email`",
        ),
        (
            Method::POST,
            format!("{w}/members"),
            json!({"email": "a b@example.com", "role": "VIEWER"}),
            "`email`",
        ),
        (
            Method::POST,
            format!("{w}/members"),
            json!({"email": "x\u{0}@example.com", "role": "VIEWER"}),
            "`email`",
        ),
        (
            Method::POST,
            format!("{w}/members"),
            json!({"email": format!("{ten_kb}@example.com"), "role": "VIEWER"}),
            "`email`",
        ),
        (
            Method::POST,
            format!("{w}/members"),
            json!({"email": "ok@example.com", "role": "SUPERUSER"}),
            "`role`",
        ),
        (
            Method::POST,
            format!("{w}/members"),
            json!({"email": "ok@example.com"}),
            "`role` is required",
        ),
        (
            Method::POST,
            format!("{w}/members"),
            json!({"email": "ok@example.com", "role": 3}),
            "`role` must be a string",
        ),
        (
            Method::PATCH,
            format!("{w}/members/{owner_id}"),
            json!({"role": "ROOT"}),
            "`role`",
        ),
        (
            Method::POST,
            format!("{w}/crews"),
            json!({"name": ten_kb}),
            "`name`",
        ),
        (
            Method::PATCH,
            format!("/api/v1/crews/{}", crew.id),
            json!({"name": "\u{7}"}),
            "control characters",
        ),
        (
            Method::POST,
            "/api/v1/tokens".into(),
            json!({"name": ten_kb}),
            "`name`",
        ),
        (
            Method::POST,
            "/api/v1/tokens".into(),
            json!({"name": "t", "expires_in_days": -1}),
            "`expires_in_days`",
        ),
        (
            Method::POST,
            "/api/v1/tokens".into(),
            json!({"name": "t", "expires_in_days": "soon"}),
            "`expires_in_days`",
        ),
    ];
    for via_cookie in [false, true] {
        let caller = if via_cookie {
            team.owner.by_cookie().await
        } else {
            team.owner.clone()
        };
        for (method, uri, body, says) in &cases {
            let body = (!body.is_null()).then(|| body.clone());
            let res = caller.send(method.clone(), uri, body).await;
            res.assert_status(400);
            let v = res.json();
            let msg = v["error"].as_str().unwrap();
            assert!(msg.contains(says), "{method} {uri}: {msg}");
            assert!(
                !msg.contains(&ten_kb)
                    && !msg.contains("SUPERUSER")
                    && !msg.contains("not-an-email"),
                "no echo: {msg}"
            );
        }
    }
    let mut after = counts(&app, team.id(), &owner).await;
    // `by_cookie` signs in: sessions are not counted, tokens are.
    after.3 = before.3;
    assert_eq!(after, before, "nothing stored");
    // Bodies that are not JSON at all.
    let res = team
        .owner
        .raw(
            Method::POST,
            "/api/v1/workspaces",
            &[("content-type", "application/json")],
            Some(b"{\"name\": ".to_vec()),
        )
        .await;
    res.assert_status(400);
    let res = team
        .owner
        .raw(
            Method::POST,
            "/api/v1/workspaces",
            &[],
            Some(vec![0xff, 0xfe]),
        )
        .await;
    res.assert_status(400);
}

async fn openapi(db: Db) {
    let app = TestApp::new(db).await;
    let doc = app.get("/api/openapi.json", None).await.json();
    let paths = &doc["paths"];
    for (path, methods) in [
        ("/api/v1/me", &["get"][..]),
        ("/api/v1/workspaces", &["get", "post"]),
        ("/api/v1/workspaces/{id}", &["get", "patch", "delete"]),
        ("/api/v1/workspaces/{id}/members", &["get", "post"]),
        (
            "/api/v1/workspaces/{id}/members/{user_id}",
            &["patch", "delete"],
        ),
        ("/api/v1/workspaces/{id}/crews", &["get", "post"]),
        ("/api/v1/crews/{crew_id}", &["patch", "delete"]),
        ("/api/v1/tokens", &["get", "post"]),
        ("/api/v1/tokens/{id}", &["delete"]),
        ("/auth/oidc/login", &["get"]),
        ("/auth/oidc/callback", &["get"]),
        ("/auth/link/{secret}", &["get"]),
        ("/auth/logout", &["post"]),
    ] {
        for m in methods {
            let op = &paths[path][m];
            assert!(op.is_object(), "{m} {path} missing");
            let responses = op["responses"].as_object().unwrap();
            if path.starts_with("/api/") {
                assert!(responses.contains_key("401"), "{m} {path} documents 401");
                assert_eq!(
                    op["security"],
                    json!([{"bearer": []}, {"session": []}]),
                    "{m} {path}"
                );
            }
            if *m != "get" && path.starts_with("/api/") {
                assert!(
                    responses.contains_key("403"),
                    "{m} {path} documents 403 (csrf_rejected)"
                );
            }
        }
    }
    assert!(paths["/api/v1/crews/{crew_id}"]["delete"]["responses"]["409"].is_object());
    assert!(
        paths["/api/v1/workspaces/{id}/members/{user_id}"]["patch"]["responses"]["409"].is_object()
    );
    for (path, m, schema) in [
        ("/api/v1/workspaces", "post", "NameRequest"),
        (
            "/api/v1/workspaces/{id}/members",
            "post",
            "AddMemberRequest",
        ),
        (
            "/api/v1/workspaces/{id}/members/{user_id}",
            "patch",
            "RoleRequest",
        ),
        ("/api/v1/tokens", "post", "CreateTokenRequest"),
    ] {
        assert_eq!(
            paths[path][m]["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            format!("#/components/schemas/{schema}"),
            "{m} {path}"
        );
    }
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["RoleName"]["enum"],
        json!(["VIEWER", "MEMBER", "MANAGER", "ADMIN", "OWNER"])
    );
    assert_eq!(
        schemas["AddMemberRequest"]["required"],
        json!(["email", "role"])
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["session"],
        json!({"type": "apiKey", "in": "cookie", "name": "plugboard_session", "description": doc["components"]["securitySchemes"]["session"]["description"]})
    );
}
