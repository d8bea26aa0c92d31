//! The gateway in front of an MCP server protected by OAuth: the integration's access token (issued by a fake
//! authorization server on loopback, refreshed when due) goes upstream on every call and never reaches the agent.
//! On both backends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod gateway_support;
mod oauth_support;

use std::time::Duration;

use gateway_support::agent::{self, text_of};
use gateway_support::upstream::{self, Mode};
use gateway_support::{agent_token, serve, within};
use oauth_support::{
    app, assert_page, byo_manifest, callback_uri, install, ByoOptions, Fake, FakeConfig,
};
use plugboard_server::testing::{test_on_both_backends, Db};
use serde_json::json;

test_on_both_backends! {
    an_oauth_integration_is_called_through_the_gateway_with_its_refreshed_token_which_the_agent_never_sees => refreshed;
}

const CLIENT_ID: &str = "gateway-client";
const CLIENT_SECRET: &str = "gateway-client-secret-5f1c2a";

/// The tests' connector signing in with the team's own OAuth client at the fake authorization server, with its MCP
/// server at `endpoint`.
fn manifest(fake: &Fake, endpoint: &str) -> String {
    let options = ByoOptions {
        pkce: true,
        token_auth: "client_secret_post",
    };
    byo_manifest(fake, &options).replace(
        &format!("endpoint: {}/mcp", fake.base),
        &format!("endpoint: {endpoint}"),
    )
}

async fn refreshed(db: Db) {
    // Access tokens that live 2 s: due for a refresh after half of that.
    let fake = Fake::spawn(FakeConfig {
        expires_in: Some(2),
        ..Default::default()
    })
    .await;
    fake.add_client(CLIENT_ID, "client_secret_post", Some(CLIENT_SECRET));
    let up = upstream::start(Mode::Sessions).await;
    let pb = serve(app(db, &[manifest(&fake, &up.url())]).await).await;
    let (ws, owner) = pb.app.workspace().await;
    let (id, body) = install(
        &pb.app,
        &ws,
        &owner,
        "fake-byo",
        json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}),
    )
    .await;
    let approved = fake.approve(body["oauth_url"].as_str().unwrap());
    let res = pb
        .app
        .get(
            &callback_uri(&[("code", &approved.code), ("state", &approved.state)]),
            None,
        )
        .await;
    assert_page(&res, 200, &[&approved.code, CLIENT_SECRET]);
    let (_, token) = agent_token(&pb.app, &owner, &ws, None, None).await;

    let a = within("connect", agent::connect(&pb.passthrough(&id), &token)).await;
    let sent_upstream = |up: &upstream::Upstream| {
        up.state
            .seen
            .header_values("authorization")
            .last()
            .cloned()
            .unwrap()
    };
    let shown = text_of(&a.call("whoami", json!({})).await.unwrap());
    let first = fake.last_access_token().unwrap();
    assert_eq!(sent_upstream(&up), format!("Bearer {first}"));
    assert!(shown.starts_with("you sent: "), "{shown}");
    assert!(
        !shown.contains(&first),
        "the agent saw the access token: {shown}"
    );

    // Once the token is due, the next call refreshes it and the upstream gets the new one.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let shown = text_of(&a.call("whoami", json!({})).await.unwrap());
    let second = fake.last_access_token().unwrap();
    assert_ne!(second, first);
    assert!(fake.refresh_requests() >= 1);
    assert_eq!(sent_upstream(&up), format!("Bearer {second}"));
    assert!(
        !shown.contains(&second),
        "the agent saw the access token: {shown}"
    );

    let received = a.http.received_text();
    for secret in [first.as_str(), second.as_str(), CLIENT_SECRET] {
        assert!(
            !received.contains(secret),
            "the agent received a credential"
        );
    }
}
