//! Agent tokens through the API: who may list, create and revoke them, their shapes, the audit log, and that an
//! agent token opens nothing under `/api/v1`. On both backends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use plugboard_server::testing::{test_on_both_backends, Db, TestApp};
use serde_json::json;

test_on_both_backends! {
    an_admin_creates_lists_and_revokes_agent_tokens_and_the_token_is_shown_once => lifecycle;
    only_admins_and_owners_of_the_workspace_manage_its_agent_tokens => roles;
    a_crew_of_another_workspace_or_a_bad_body_is_a_clear_400 => bad_input;
    an_agent_token_on_the_json_api_is_403_agent_token_not_allowed => not_for_the_api;
    creating_and_revoking_agent_tokens_is_in_the_workspace_audit_log_without_the_token => audit;
    the_openapi_document_describes_the_agent_token_endpoints => openapi;
}

async fn lifecycle(db: Db) {
    let app = TestApp::new(db).await;
    let team = app.team().await;
    let ws = team.id().to_string();
    let crew = team
        .owner
        .post(
            &format!("/api/v1/workspaces/{ws}/crews"),
            json!({"name": "Ops"}),
        )
        .await
        .json();
    let crew_id = crew["id"].as_str().unwrap();
    let admin = team.as_admin().await;
    let res = admin
        .post(
            &format!("/api/v1/workspaces/{ws}/agent-tokens"),
            json!({"name": "  triage bot ", "crew_id": crew_id, "expires_in_days": 30}),
        )
        .await;
    res.assert_status(201);
    let created = res.json();
    let token = created["token"].as_str().unwrap();
    assert!(token.starts_with("pba_") && token.len() == 47, "{token}");
    assert_eq!(created.as_object().unwrap().len(), 2, "{created}");
    let id = created["id"].as_str().unwrap();

    let listed = admin
        .get(&format!("/api/v1/workspaces/{ws}/agent-tokens"))
        .await;
    listed.assert_status(200);
    let listed = listed.json();
    let list = listed.as_array().unwrap();
    assert_eq!(list.len(), 1);
    let t = &list[0];
    assert_eq!(t["id"], id);
    assert_eq!(t["name"], "triage bot");
    assert_eq!(t["crew_id"], crew_id);
    assert!(t["created_at"].is_i64() && t["last_used_at"].is_null());
    let expires = t["expires_at"].as_i64().unwrap();
    assert_eq!(
        expires - t["created_at"].as_i64().unwrap(),
        30 * 24 * 3600 * 1000
    );
    let keys: Vec<&String> = t.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 6, "{t}");
    assert!(
        !listed.to_string().contains(&token[4..]),
        "the token is never listed"
    );

    // A workspace token (no crew, no expiry).
    let wide = team
        .owner
        .post(
            &format!("/api/v1/workspaces/{ws}/agent-tokens"),
            json!({"name": "wide"}),
        )
        .await
        .json();
    let list = team
        .owner
        .get(&format!("/api/v1/workspaces/{ws}/agent-tokens"))
        .await
        .json();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(list[1]["crew_id"].is_null() && list[1]["expires_at"].is_null());

    admin
        .delete(&format!("/api/v1/agent-tokens/{id}"))
        .await
        .assert_status(204);
    admin
        .delete(&format!("/api/v1/agent-tokens/{id}"))
        .await
        .assert_status(404);
    let list = admin
        .get(&format!("/api/v1/workspaces/{ws}/agent-tokens"))
        .await
        .json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], wide["id"]);
}

async fn roles(db: Db) {
    let app = TestApp::new(db).await;
    let team = app.team().await;
    let ws = team.id().to_string();
    let created = team
        .owner
        .post(
            &format!("/api/v1/workspaces/{ws}/agent-tokens"),
            json!({"name": "bot"}),
        )
        .await
        .json();
    let id = created["id"].as_str().unwrap();
    let other = app.team().await;
    let outsiders = [
        team.as_viewer().await,
        team.as_member().await,
        team.as_manager().await,
        app.newcomer().await,
        other.owner.clone(),
    ];
    for caller in &outsiders {
        caller
            .get(&format!("/api/v1/workspaces/{ws}/agent-tokens"))
            .await
            .assert_status(403);
        caller
            .post(
                &format!("/api/v1/workspaces/{ws}/agent-tokens"),
                json!({"name": "x"}),
            )
            .await
            .assert_status(403);
        caller
            .delete(&format!("/api/v1/agent-tokens/{id}"))
            .await
            .assert_status(403);
    }
    app.anonymous()
        .get(&format!("/api/v1/workspaces/{ws}/agent-tokens"))
        .await
        .assert_status(401);
    // A browser session works like a token, with Plugboard's Origin for changes.
    let browser = team.owner.by_cookie().await;
    browser
        .post(
            &format!("/api/v1/workspaces/{ws}/agent-tokens"),
            json!({"name": "from the console"}),
        )
        .await
        .assert_status(201);
    let res = browser
        .with_origin(Some("https://evil.example"))
        .delete(&format!("/api/v1/agent-tokens/{id}"))
        .await;
    res.assert_status(403);
    assert_eq!(res.json()["code"], "csrf_rejected");
    browser
        .delete(&format!("/api/v1/agent-tokens/{id}"))
        .await
        .assert_status(204);
    let list = team
        .owner
        .get(&format!("/api/v1/workspaces/{ws}/agent-tokens"))
        .await
        .json();
    assert_eq!(list.as_array().unwrap().len(), 1);
}

async fn bad_input(db: Db) {
    let app = TestApp::new(db).await;
    let team = app.team().await;
    let ws = team.id().to_string();
    let other = app.team().await;
    let foreign = other
        .owner
        .post(
            &format!("/api/v1/workspaces/{}/crews", other.id()),
            json!({"name": "Theirs"}),
        )
        .await
        .json();
    let uri = format!("/api/v1/workspaces/{ws}/agent-tokens");
    for (body, code, mentions) in [
        (
            json!({"name": "x", "crew_id": foreign["id"]}),
            "invalid_field",
            "crew_id",
        ),
        (
            json!({"name": "x", "crew_id": "nope"}),
            "invalid_field",
            "crew_id",
        ),
        (
            json!({"name": "x", "crew_id": 5}),
            "invalid_field",
            "crew_id",
        ),
        (json!({"name": ""}), "invalid_field", "name"),
        (json!({}), "invalid_field", "name"),
        (
            json!({"name": "x", "expires_in_days": 0}),
            "invalid_field",
            "expires_in_days",
        ),
        (json!({"name": "x", "scope": "all"}), "", "scope"),
    ] {
        let res = team.owner.post(&uri, body.clone()).await;
        res.assert_status(400);
        let v = res.json();
        if !code.is_empty() {
            assert_eq!(v["code"], code, "{body}: {v}");
        }
        assert!(
            v["error"].as_str().unwrap().contains(mentions),
            "{body}: {v}"
        );
    }
    // An id of the wrong shape is answered as an unknown id (and never reaches the database).
    team.owner
        .get("/api/v1/workspaces/nope/agent-tokens")
        .await
        .assert_status(403);
    team.owner
        .delete("/api/v1/agent-tokens/nope")
        .await
        .assert_status(404);
    team.owner
        .delete(&format!(
            "/api/v1/agent-tokens/{}",
            plugboard_store::new_id()
        ))
        .await
        .assert_status(404);
    let list = team.owner.get(&uri).await.json();
    assert!(list.as_array().unwrap().is_empty());
}

async fn not_for_the_api(db: Db) {
    let app = TestApp::new(db).await;
    let other = app.another_instance().await;
    let team = app.team().await;
    let ws = team.id().to_string();
    let created = team
        .owner
        .post(
            &format!("/api/v1/workspaces/{ws}/agent-tokens"),
            json!({"name": "bot"}),
        )
        .await
        .json();
    let (id, token) = (
        created["id"].as_str().unwrap(),
        created["token"].as_str().unwrap(),
    );
    for uri in [
        "/api/v1/me".to_string(),
        format!("/api/v1/workspaces/{ws}/agent-tokens"),
        format!("/api/v1/integrations?workspace_id={ws}"),
    ] {
        let res = app.with_token(token).get(&uri).await;
        res.assert_status(403);
        assert_eq!(res.json()["code"], "agent_token_not_allowed", "{uri}");
    }
    let res = app
        .with_token(token)
        .delete(&format!("/api/v1/agent-tokens/{id}"))
        .await;
    res.assert_status(403);
    assert_eq!(res.json()["code"], "agent_token_not_allowed");
    other
        .with_token(token)
        .get("/api/v1/me")
        .await
        .assert_status(403);
    // Something that only looks like one is just unauthenticated.
    app.with_token("pba_not-a-token")
        .get("/api/v1/me")
        .await
        .assert_status(401);
    // An expired agent token is still not a key to the API.
    let short = team
        .owner
        .post(
            &format!("/api/v1/workspaces/{ws}/agent-tokens"),
            json!({"name": "short", "expires_in_days": 1}),
        )
        .await
        .json();
    app.state.clock.advance(Duration::from_secs(2 * 24 * 3600));
    let res = app
        .with_token(short["token"].as_str().unwrap())
        .get("/api/v1/me")
        .await;
    res.assert_status(403);
    // Revoked: not a token at all any more.
    team.owner
        .delete(&format!("/api/v1/agent-tokens/{id}"))
        .await
        .assert_status(204);
    app.with_token(token)
        .get("/api/v1/me")
        .await
        .assert_status(401);
}

async fn audit(db: Db) {
    let app = TestApp::new(db).await;
    let team = app.team().await;
    let ws = team.id().to_string();
    let created = team
        .owner
        .post(
            &format!("/api/v1/workspaces/{ws}/agent-tokens"),
            json!({"name": "bot"}),
        )
        .await
        .json();
    let (id, token) = (
        created["id"].as_str().unwrap(),
        created["token"].as_str().unwrap(),
    );
    team.owner
        .delete(&format!("/api/v1/agent-tokens/{id}"))
        .await
        .assert_status(204);
    let log = team
        .owner
        .get(&format!("/api/v1/audit?workspace_id={ws}"))
        .await;
    log.assert_status(200);
    let text = log.text();
    assert!(
        !text.contains(&token[4..]),
        "the token is not in the audit log"
    );
    let log = log.json();
    let entries = log["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"agent_token_created"), "{actions:?}");
    assert!(actions.contains(&"agent_token_revoked"), "{actions:?}");
    for e in entries {
        if e["action"].as_str().unwrap().starts_with("agent_token_") {
            assert_eq!(e["target"], id, "{e}");
        }
    }
}

async fn openapi(db: Db) {
    let app = TestApp::new(db).await;
    let doc = app.get("/api/openapi.json", None).await.json();
    let paths = &doc["paths"];
    for (path, methods) in [
        ("/api/v1/workspaces/{id}/agent-tokens", &["get", "post"][..]),
        ("/api/v1/agent-tokens/{id}", &["delete"][..]),
    ] {
        for m in methods {
            assert!(paths[path][m].is_object(), "{path} {m}");
        }
    }
}
