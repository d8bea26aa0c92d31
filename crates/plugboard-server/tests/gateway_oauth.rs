//! The gateway in front of an MCP server protected by OAuth: the integration's access token (refreshed when due)
//! goes upstream on every call and never reaches the agent. The authorization server is the fake on loopback (which
//! lets a test see every token), and a real, certified one (npm `oidc-provider`) in front of an MCP server built with
//! the official Python SDK that checks each token at the provider's introspection endpoint. On both backends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod gateway_support;
mod oauth_support;
mod support;

use std::time::Duration;

use gateway_support::agent::{self, text_of};
use gateway_support::install::Server;
use gateway_support::upstream::{self, Mode};
use gateway_support::{agent_token, python_sdk, serve, within, Served};
use oauth_support::{
    app, assert_page, byo_manifest, callback_uri, install, mcp_manifest, start_mcp, ByoOptions,
    Fake, FakeConfig, CALLBACK,
};
use plugboard_server::testing::{test_on_both_backends, Db};
use plugboard_store::Workspace;
use serde_json::json;
use support::idp::{Browser, IdpOptions, TestIdp};

test_on_both_backends! {
    an_oauth_integration_is_called_through_the_gateway_with_its_refreshed_token_which_the_agent_never_sees => refreshed;
    a_python_sdk_server_behind_a_certified_authorization_server_is_called_through_both_endpoints_across_a_refresh => certified;
    a_python_sdk_server_found_by_its_url_alone_is_signed_into_at_its_certified_provider_and_called_across_a_refresh => discovered;
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

/// A connector whose team brings its own client at the certified provider, for the Python SDK's MCP server.
fn certified_manifest(issuer: &str, endpoint: &str) -> String {
    format!(
        r#"
id: certified
name: Certified provider
auth_mode: byo_oauth
fields:
  - {{key: client_id, label: Client ID, type: text, required: true}}
  - {{key: client_secret, label: Client secret, type: password, required: true}}
oauth:
  authorization_url: {issuer}/auth
  token_url: {issuer}/token
  scopes: ["openid", "mcp"]
  pkce: true
  token_auth: client_secret_post
mcp:
  transport: streamable-http
  endpoint: {endpoint}
  headers:
    Authorization: "Bearer ${{oauth.access_token}}"
"#
    )
}

/// The certified provider (access tokens living 3 s) with an account to sign in as, and the Python SDK's MCP server
/// as its resource server.
async fn provider_and_server() -> (TestIdp, Server) {
    let idp = TestIdp::start(IdpOptions {
        connector: Some(3),
        ..IdpOptions::new(CALLBACK)
    })
    .await;
    idp.add_account("owner@example.com", true, None).await;
    let (rs_id, rs_secret) = idp.resource_server.clone();
    let server = python_sdk::start_introspecting(&idp.issuer, &rs_id, &rs_secret).await;
    // It refuses what the provider did not issue.
    let refused = reqwest::Client::new()
        .post(server.url())
        .bearer_auth("not-a-token-of-the-provider")
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    (idp, server)
}

/// Signing in and consenting at the provider, which sends the browser back to Plugboard's callback: the integration
/// is connected.
async fn sign_in(pb: &Served, idp: &TestIdp, oauth_url: &str) {
    let query = Browser::new().authorize(oauth_url, CALLBACK).await;
    let res = pb
        .app
        .get(&format!("/api/v1/connectors/oauth/callback?{query}"), None)
        .await;
    let (_, rs_secret) = &idp.resource_server;
    let page = assert_page(&res, 200, &[rs_secret]);
    assert!(page.contains("data-status=\"active\""), "{page}");
}

/// Calls through the passthrough and the workspace's aggregated endpoint (tools under `{prefix}__`), before and
/// after the first access token expires: the MCP server sees a token the provider calls active every time, the
/// agent never sees it, nor any of `secrets`.
async fn called_across_a_refresh(
    pb: &Served,
    idp: &TestIdp,
    ws: &Workspace,
    owner: &str,
    integration: &str,
    prefix: &str,
    secrets: &[&str],
) {
    let (_, token) = agent_token(&pb.app, owner, ws, None, None).await;
    let endpoints = [
        (pb.passthrough(integration), String::new()),
        (pb.workspace(ws.id.as_str()), format!("{prefix}__")),
    ];
    let mut agents = Vec::new();
    for (url, prefix) in &endpoints {
        let a = within("connect", agent::connect(url, &token)).await;
        let r = a
            .call(&format!("{prefix}echo"), json!({"message": "hello"}))
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}; the provider said: {}", idp.stderr()));
        assert_eq!(text_of(&r), "hello", "{url}");
        // The MCP server saw the access token, and echoes it: the agent gets it redacted.
        let shown = text_of(
            &a.call(&format!("{prefix}show_credentials"), json!({}))
                .await
                .unwrap(),
        );
        assert_eq!(
            shown, "authorization=Bearer [redacted] cookie=None",
            "{url}"
        );
        agents.push(a);
    }

    // Past the first token's lifetime the provider calls it inactive: calls still work, with a refreshed token.
    let issued = idp.stats().await["access_tokens"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    for ((url, prefix), a) in endpoints.iter().zip(&agents) {
        let r = a
            .call(
                &format!("{prefix}echo"),
                json!({"message": "after the refresh"}),
            )
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(text_of(&r), "after the refresh", "{url}");
        let received = a.http.received_text();
        for secret in secrets {
            assert!(!received.contains(secret), "{url}");
        }
    }
    let refreshed = idp.stats().await["access_tokens"].as_u64().unwrap();
    assert!(
        refreshed > issued,
        "no token was refreshed: {issued} → {refreshed}"
    );
}

async fn certified(db: Db) {
    let (idp, server) = provider_and_server().await;
    let pb = serve(app(db, &[certified_manifest(&idp.issuer, &server.url())]).await).await;
    let (ws, owner) = pb.app.workspace().await;
    let (client_id, client_secret) = idp.connector_client.clone();
    let (id, body) = install(
        &pb.app,
        &ws,
        &owner,
        "certified",
        json!({"client_id": client_id, "client_secret": client_secret}),
    )
    .await;
    sign_in(&pb, &idp, body["oauth_url"].as_str().unwrap()).await;
    let (_, rs_secret) = idp.resource_server.clone();
    called_across_a_refresh(
        &pb,
        &idp,
        &ws,
        &owner,
        &id,
        "certified",
        &[&client_secret, &rs_secret],
    )
    .await;
}

/// The MCP way: nothing but the server's URL. Plugboard reads the server's protected resource metadata, finds the
/// provider, registers a client there, and signs in with `resource`.
async fn discovered(db: Db) {
    let (idp, server) = provider_and_server().await;
    let pb = serve(app(db, &[mcp_manifest("certified-mcp", &server.url())]).await).await;
    let (ws, owner) = pb.app.workspace().await;
    let (id, body) = install(&pb.app, &ws, &owner, "certified-mcp", json!({})).await;
    assert_eq!(body["next_step"], "mcp_oauth", "{body}");
    let res = start_mcp(&pb.app, &owner, &id).await;
    res.assert_status(200);
    let oauth_url = res.json()["oauth_url"].as_str().unwrap().to_owned();
    assert!(oauth_url.starts_with(&idp.issuer), "{oauth_url}");
    sign_in(&pb, &idp, &oauth_url).await;
    let (_, rs_secret) = idp.resource_server.clone();
    called_across_a_refresh(&pb, &idp, &ws, &owner, &id, "certified-mcp", &[&rs_secret]).await;
}
