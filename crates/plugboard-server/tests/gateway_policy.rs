//! The gateway's settings of an integration through the API: `tools` (allow/deny) and `tool_prefix` in PATCH and
//! in the integration's JSON, with their checks. On both backends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod integration_support;

use integration_support::*;
use plugboard_server::testing::{test_on_both_backends, Db, TestApp};
use serde_json::json;

test_on_both_backends! {
    an_integration_shows_its_default_prefix_and_an_open_policy => defaults;
    a_patch_sets_the_tool_policy_and_the_prefix_and_the_json_returns_them => patch_sets;
    a_prefix_of_the_wrong_shape_or_bad_patterns_are_a_clear_400 => bad_input;
    a_prefix_another_integration_of_the_workspace_uses_is_a_409 => prefix_taken;
    a_null_prefix_goes_back_to_the_first_free_default => prefix_reset;
}

async fn defaults(db: Db) {
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    let one = install_github(&app, &owner, &ws, &github_token(&canary())).await;
    let two = install_github(&app, &owner, &ws, &github_token(&canary())).await;
    let custom = app
        .post(
            &format!("/api/v1/integrations?workspace_id={}", ws.id),
            Some(&owner),
            json!({"name": "Internal Tools (prod)", "transport": "streamable-http",
                   "endpoint": "https://mcp.internal.example.com/mcp"}),
        )
        .await;
    custom.assert_status(201);
    let custom = custom.json()["integration_id"]
        .as_str()
        .unwrap()
        .to_string();
    let get = |id: String| {
        let app = &app;
        let owner = owner.clone();
        async move {
            app.get(&format!("/api/v1/integrations/{id}"), Some(&owner))
                .await
                .json()
        }
    };
    let (one, two, custom) = (get(one).await, get(two).await, get(custom).await);
    assert_eq!(one["tool_prefix"], "github");
    assert_eq!(two["tool_prefix"], "github-2");
    assert_eq!(custom["tool_prefix"], "internal-tools-prod");
    assert_eq!(one["tools"], json!({"allow": [], "deny": []}));
}

async fn patch_sets(db: Db) {
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    let id = install_github(&app, &owner, &ws, &github_token(&canary())).await;
    let res = patch(
        &app,
        &owner,
        &id,
        json!({"tools": {"allow": ["get_*", "list_*"], "deny": ["*secret*"]}, "tool_prefix": "gh"}),
    )
    .await;
    res.assert_status(200);
    let v = res.json();
    assert_eq!(
        v["tools"],
        json!({"allow": ["get_*", "list_*"], "deny": ["*secret*"]})
    );
    assert_eq!(v["tool_prefix"], "gh");
    let again = app
        .get(&format!("/api/v1/integrations/{id}"), Some(&owner))
        .await
        .json();
    assert_eq!(again["tools"], v["tools"]);
    assert_eq!(again["tool_prefix"], "gh");
    // A policy is replaced whole: an omitted list is empty.
    let v = patch(&app, &owner, &id, json!({"tools": {"deny": ["delete_*"]}}))
        .await
        .json();
    assert_eq!(v["tools"], json!({"allow": [], "deny": ["delete_*"]}));
    assert_eq!(v["tool_prefix"], "gh");
    // Audited as a change of those keys.
    let log = app
        .get(
            &format!("/api/v1/audit?workspace_id={}", ws.id),
            Some(&owner),
        )
        .await
        .json();
    let update = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "integration.update")
        .unwrap()
        .clone();
    assert!(update.to_string().contains("tools"), "{update}");
}

async fn bad_input(db: Db) {
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    let id = install_github(&app, &owner, &ws, &github_token(&canary())).await;
    let long = "x".repeat(129);
    let many: Vec<String> = (0..101).map(|i| format!("t{i}")).collect();
    for (body, mentions) in [
        (json!({"tool_prefix": ""}), "tool_prefix"),
        (json!({"tool_prefix": "Has Caps"}), "tool_prefix"),
        (json!({"tool_prefix": "a__b"}), "tool_prefix"),
        (json!({"tool_prefix": "-start"}), "tool_prefix"),
        (json!({"tool_prefix": "x".repeat(49)}), "tool_prefix"),
        (json!({"tool_prefix": 7}), "tool_prefix"),
        (json!({"tools": ["a"]}), "tools"),
        (json!({"tools": {"allow": "a"}}), "tools.allow"),
        (json!({"tools": {"deny": [1]}}), "tools.deny"),
        (json!({"tools": {"allow": [""]}}), "tools.allow"),
        (json!({"tools": {"deny": [long]}}), "tools.deny"),
        (json!({"tools": {"allow": many}}), "tools.allow"),
        (json!({"tools": {"block": []}}), "block"),
    ] {
        let res = patch(&app, &owner, &id, body.clone()).await;
        res.assert_status(400);
        let msg = res.json()["error"].as_str().unwrap().to_string();
        assert!(msg.contains(mentions), "{body}: {msg}");
    }
    let v = app
        .get(&format!("/api/v1/integrations/{id}"), Some(&owner))
        .await
        .json();
    assert_eq!(v["tool_prefix"], "github");
    assert_eq!(v["tools"], json!({"allow": [], "deny": []}));
}

async fn prefix_taken(db: Db) {
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    let (other_ws, other_owner) = app.workspace().await;
    let one = install_github(&app, &owner, &ws, &github_token(&canary())).await;
    let two = install_github(&app, &owner, &ws, &github_token(&canary())).await;
    let res = patch(&app, &owner, &two, json!({"tool_prefix": "github"})).await;
    res.assert_status(409);
    let v = res.json();
    assert_eq!(v["code"], "tool_prefix_taken");
    assert!(v["error"].as_str().unwrap().contains("github"), "{v}");
    // Another workspace may use it.
    let theirs = install_github(&app, &other_owner, &other_ws, &github_token(&canary())).await;
    patch(&app, &other_owner, &theirs, json!({"tool_prefix": "code"}))
        .await
        .assert_status(200);
    patch(&app, &owner, &one, json!({"tool_prefix": "code"}))
        .await
        .assert_status(200);
    patch(&app, &owner, &two, json!({"tool_prefix": "github"}))
        .await
        .assert_status(200);
}

async fn prefix_reset(db: Db) {
    let app = TestApp::new(db).await;
    let (ws, owner) = app.workspace().await;
    let one = install_github(&app, &owner, &ws, &github_token(&canary())).await;
    let two = install_github(&app, &owner, &ws, &github_token(&canary())).await;
    let prefix = |res: plugboard_server::testing::TestResponse| {
        res.assert_status(200);
        res.json()["tool_prefix"].as_str().unwrap().to_string()
    };
    assert_eq!(
        prefix(patch(&app, &owner, &one, json!({"tool_prefix": "code"})).await),
        "code"
    );
    // `github` is free again: the reset takes it...
    assert_eq!(
        prefix(patch(&app, &owner, &two, json!({"tool_prefix": "mine"})).await),
        "mine"
    );
    assert_eq!(
        prefix(patch(&app, &owner, &one, json!({"tool_prefix": null})).await),
        "github"
    );
    // ...and a second one gets the next free default, never another integration's prefix.
    assert_eq!(
        prefix(patch(&app, &owner, &two, json!({"tool_prefix": null})).await),
        "github-2"
    );
    // Resetting to the default it already has keeps it.
    assert_eq!(
        prefix(patch(&app, &owner, &one, json!({"tool_prefix": null})).await),
        "github"
    );
}
