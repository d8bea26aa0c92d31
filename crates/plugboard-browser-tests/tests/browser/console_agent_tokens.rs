//! The console's agent-tokens page in Chromium, as an ADMIN uses it: create a token for a crew (shown once, and it
//! works on the gateway), see it listed with its scope, revoke it after the confirmation (dismissing the
//! confirmation keeps it). axe-core on the page; screenshots under `target/screenshots/`.

use std::time::Duration;

use axum::http::Method;
use plugboard_server::testing::{Backend, Db, TestApp};
use plugboard_store::Role;
use serde_json::json;

use crate::harness::{bounded, BoundSite, Browser};

#[tokio::test]
async fn an_admin_creates_an_agent_token_sees_it_once_and_revokes_it_after_confirming() {
    bounded(Duration::from_secs(90), async {
        let db = Db::new(Backend::Sqlite)
            .await
            .expect("SQLite test database");
        let bound = BoundSite::bind().await;
        let origin = bound.origin().to_string();
        let app = TestApp::build(db, None, |c| c.public_url = origin).await;
        let site = bound.serve(app.router.clone());
        let team = app.team().await;
        let ws = team.id().to_string();
        team.owner
            .post(
                &format!("/api/v1/workspaces/{ws}/crews"),
                json!({"name": "Ops"}),
            )
            .await
            .assert_status(201);
        let (admin, _) = app.member_user(&team.ws, Role::Admin).await;
        let b = Browser::start().await;
        let link = plugboard_server::people::create_sign_in_link(
            &*app.state.store,
            site.origin(),
            &admin.id,
            plugboard_store::now_ms(),
        )
        .await
        .expect("a sign-in link");
        b.open(&link.url).await;
        b.wait_for_path(&format!("/w/{ws}/catalog")).await;

        b.click_link("Agent tokens").await;
        b.wait_for_text("This workspace has no agent tokens").await;
        b.assert_accessible().await;
        b.fill("Agent token name", "triage bot").await;
        b.select("Reaches", "Crew Ops").await;
        b.fill("Expires after (days)", "30").await;
        b.click_button("Create agent token").await;
        b.wait_for_status("Created the agent token \u{201c}triage bot\u{201d}")
            .await;
        let shown = b
            .execute(
                "return document.getElementById('new-token').textContent;",
                vec![],
            )
            .await;
        let token = shown.as_str().unwrap().to_string();
        assert!(token.starts_with("pba_"), "{token}");
        // It is an agent token: the JSON API refuses it, the gateway takes it.
        let api = app.get("/api/v1/me", Some(&token)).await;
        assert_eq!(api.status, 403);
        let crew = app
            .get(
                &format!("/api/v1/workspaces/{ws}/crews"),
                team.owner.token(),
            )
            .await
            .json()[0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let gateway = |token: String, crew: String| {
            let app = &app;
            async move {
                app.raw(
                    Method::POST,
                    &format!("/mcp/crew/{crew}"),
                    Some(&token),
                    &[
                        ("accept", "application/json, text/event-stream"),
                        ("host", "127.0.0.1"),
                    ],
                    Some(
                        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                            "protocolVersion": "2025-06-18", "capabilities": {},
                            "clientInfo": {"name": "t", "version": "1"}}})
                        .to_string()
                        .into_bytes(),
                    ),
                )
                .await
                .status
                .as_u16()
            }
        };
        assert_eq!(gateway(token.clone(), crew.clone()).await, 200);
        b.screenshot("agent-token-created").await;
        b.assert_accessible().await;

        b.open(&site.url(&format!("/w/{ws}/agent-tokens"))).await;
        b.wait_for_text("Crew Ops").await;
        assert!(!b.page_text().await.contains(&token), "shown only once");
        let row = b.element_containing("tr", "triage bot").await;
        b.click_button_within(&row, "Delete").await;
        b.dismiss_dialog().await;
        assert_eq!(
            gateway(token.clone(), crew.clone()).await,
            200,
            "not revoked"
        );
        let row = b.element_containing("tr", "triage bot").await;
        b.click_button_within(&row, "Delete").await;
        b.accept_dialog().await;
        b.wait_for_status("Revoked the agent token triage bot.")
            .await;
        assert_eq!(gateway(token.clone(), crew.clone()).await, 401, "revoked");
        b.wait_for_text("This workspace has no agent tokens").await;
        b.screenshot("agent-tokens-revoked").await;
    })
    .await;
}
