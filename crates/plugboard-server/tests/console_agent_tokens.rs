//! The console's agent-tokens page, rendered in-process through the real router (the browser test in
//! `plugboard-browser-tests` drives it in Chromium): ADMIN+ only, its controls and list, names escaped, never a
//! token. On both backends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use plugboard_server::testing::{test_on_both_backends, Db, TestApp};
use serde_json::json;

test_on_both_backends! {
    admins_see_the_agent_tokens_page_with_its_controls_and_others_neither_the_page_nor_the_link => by_role;
    the_agent_tokens_page_lists_tokens_with_their_scope_escaped_and_without_the_secret => listing;
}

async fn by_role(db: Db) {
    let app = TestApp::new(db).await;
    let team = app.team().await;
    let page = format!("/w/{}/agent-tokens", team.id());
    let admin = team.as_admin().await;
    let res = admin.get(&page).await;
    assert_eq!(res.status, 200);
    let html = res.text();
    assert!(html.contains(">Create agent token</button>"), "{html}");
    assert!(html.contains("<label for=\"agent-token-name\">Agent token name</label>"));
    assert!(html.contains("<label for=\"agent-token-crew\">Reaches</label>"));
    assert!(html.contains("<label for=\"agent-token-days\">Expires after (days)</label>"));
    assert!(html.contains("role=\"status\"") && html.contains("role=\"alert\""));
    assert!(html.contains("This workspace has no agent tokens"));
    let catalog = admin.get(&format!("/w/{}/catalog", team.id())).await.text();
    assert!(catalog.contains(">Agent tokens</a>"), "admins get the tab");
    for caller in [
        team.as_manager().await,
        team.as_member().await,
        team.as_viewer().await,
    ] {
        let res = caller.get(&page).await;
        assert_eq!(res.status, 403, "{}", res.text());
        assert!(!res.text().contains("Create agent token"));
        let catalog = caller
            .get(&format!("/w/{}/catalog", team.id()))
            .await
            .text();
        assert!(!catalog.contains(">Agent tokens</a>"), "no tab below ADMIN");
    }
}

async fn listing(db: Db) {
    let app = TestApp::new(db).await;
    let team = app.team().await;
    let ws = team.id().to_string();
    let crew = team
        .owner
        .post(
            &format!("/api/v1/workspaces/{ws}/crews"),
            json!({"name": "Ops <b>crew</b>"}),
        )
        .await
        .json();
    let mut tokens = Vec::new();
    for body in [
        json!({"name": "<script>alert(1)</script>bot", "crew_id": crew["id"]}),
        json!({"name": "wide", "expires_in_days": 3}),
    ] {
        let res = team
            .owner
            .post(&format!("/api/v1/workspaces/{ws}/agent-tokens"), body)
            .await;
        res.assert_status(201);
        tokens.push(res.json()["token"].as_str().unwrap().to_owned());
    }
    let html = team
        .owner
        .get(&format!("/w/{ws}/agent-tokens"))
        .await
        .text();
    assert!(
        !html.contains("<script>alert(1)</script>"),
        "escaped: {html}"
    );
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;bot"),
        "{html}"
    );
    assert!(
        html.contains("Crew Ops &#60;b&#62;crew&#60;/b&#62;"),
        "the crew's name: {html}"
    );
    assert!(html.contains("Whole workspace"));
    assert!(html.contains("data-path=\"/api/v1/agent-tokens/"));
    assert!(html.contains("data-confirm=\"Revoke the agent token wide?"));
    for t in &tokens {
        assert!(!html.contains(&t[4..]), "a token is never shown again");
    }
    assert!(
        html.contains("data-token-empty hidden"),
        "the empty note is hidden"
    );
}
