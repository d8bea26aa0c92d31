//! Both endpoint kinds against an MCP server built with the official Python SDK (`support/python_sdk/server.py`,
//! the SDK pinned and installed with pip on first use), which accepts only the integration's bearer token.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use plugboard_gateway::jsonrpc::code;
use plugboard_gateway::Outcome;
use serde_json::json;
use support::agent::{self, error_code, text_of};
use support::{policy, python_sdk, within, SECRET, WORKSPACE};

/// The passthrough URL (tools under their own names) and the workspace's aggregated URL (tools under `py__`).
fn endpoints(pb: &support::Instance) -> [(String, &'static str); 2] {
    [
        (pb.passthrough_url("int_py"), ""),
        (pb.workspace_url(WORKSPACE), "py__"),
    ]
}

fn count(prefix: &str, steps: u64) -> rmcp::model::CallToolRequestParams {
    let mut p = rmcp::model::CallToolRequestParams::new(format!("{prefix}count"));
    p.arguments = json!({ "steps": steps }).as_object().cloned();
    p
}

#[tokio::test]
async fn a_python_sdk_server_is_listed_called_and_streams_progress_through_both_endpoints_with_its_policy(
) {
    let server = python_sdk::start(SECRET).await;
    let (world, pb) =
        support::one_integration("int_py", &server.url(), "py", policy(&[], &["delete_*"])).await;

    for (url, prefix) in endpoints(&pb) {
        let name = |t: &str| format!("{prefix}{t}");
        let mut a = agent::connect(&url, "pba_agent").await;
        let names = a.tool_names().await;
        for t in ["echo", "count", "show_credentials", "calls"] {
            assert!(names.contains(&name(t)), "{url}: {names:?}");
        }
        assert!(
            !names.contains(&name("delete_everything")),
            "{url}: a denied tool is not listed: {names:?}"
        );

        let r = a
            .call(&name("echo"), json!({"message": "hello from the agent"}))
            .await
            .unwrap();
        assert_eq!(text_of(&r), "hello from the agent", "{url}");

        // Three progress notifications, then the result.
        let peer = a.service.peer().clone();
        let call = tokio::spawn(async move { peer.call_tool(count(prefix, 3)).await });
        for step in 1..=3 {
            let p = within("progress", a.progress.recv()).await.unwrap();
            assert_eq!(p.progress, step as f64, "{url}");
        }
        let r = within("the count", call).await.unwrap().unwrap();
        assert_eq!(text_of(&r), "counted to 3", "{url}");

        // The server got the integration's token (its auth let the calls in) and no cookie of the agent's; what it
        // echoes back reaches the agent without the token.
        let r = a.call(&name("show_credentials"), json!({})).await.unwrap();
        let shown = text_of(&r);
        assert_eq!(
            shown, "authorization=Bearer [redacted] cookie=None",
            "{url}"
        );

        // A denied call is answered by the gateway and never reaches the server.
        let err = a
            .call(&name("delete_everything"), json!({}))
            .await
            .unwrap_err();
        assert_eq!(error_code(&err), Some(code::TOOL_DENIED as i32), "{err}");
        let r = a.call(&name("calls"), json!({})).await.unwrap();
        assert!(!text_of(&r).contains("delete"), "{url}: {}", text_of(&r));

        assert!(!a.http.received_text().contains(SECRET), "{url}");
        let _ = within("close", a.service.cancel()).await;
    }
    support::eventually("audited", || {
        let audit = world.audit();
        let n = |tool: &str, outcome: Outcome| {
            audit
                .iter()
                .filter(|c| c.tool == tool && c.outcome == outcome)
                .count()
        };
        n("echo", Outcome::Ok) == 2
            && n("count", Outcome::Ok) == 2
            && n("delete_everything", Outcome::Denied) == 2
    })
    .await;
}

#[tokio::test]
async fn a_python_sdk_server_killed_mid_call_gives_each_endpoint_a_json_rpc_error() {
    support::killed_mid_call_on_both_endpoints(
        || python_sdk::start(SECRET),
        "py",
        "count",
        json!({"steps": 100}),
    )
    .await;
}

#[tokio::test]
async fn a_python_sdk_server_that_refuses_the_integrations_token_gives_the_agent_a_clear_error_without_it(
) {
    let server = python_sdk::start("some-other-token").await;
    let (_world, pb) =
        support::one_integration("int_py", &server.url(), "py", Default::default()).await;
    let err = match agent::connect_era(
        &pb.passthrough_url("int_py"),
        "pba_agent",
        agent::Era::Legacy(rmcp::model::ProtocolVersion::LATEST_WITH_INITIALIZE),
    )
    .await
    {
        Ok(_) => panic!("the agent connected through a server that refuses the token"),
        Err(e) => e,
    };
    assert!(
        err.contains("refused this integration's credentials"),
        "{err}"
    );
    assert!(!err.contains(SECRET), "{err}");
}

#[tokio::test]
async fn agents_of_every_protocol_version_reach_a_python_sdk_server_through_both_endpoints() {
    let server = python_sdk::start(SECRET).await;
    let (_world, pb) =
        support::one_integration("int_py", &server.url(), "py", Default::default()).await;
    for era in [
        agent::Era::Legacy(rmcp::model::ProtocolVersion::V_2025_03_26),
        agent::Era::Legacy(rmcp::model::ProtocolVersion::V_2025_06_18),
        agent::Era::Legacy(rmcp::model::ProtocolVersion::V_2025_11_25),
        agent::Era::Modern,
    ] {
        for (url, prefix) in endpoints(&pb) {
            let a = agent::connect_era(&url, "pba_agent", era.clone())
                .await
                .unwrap_or_else(|e| panic!("{era:?} at {url}: {e}"));
            let r = a
                .call(&format!("{prefix}echo"), json!({"message": "any era"}))
                .await
                .unwrap_or_else(|e| panic!("{era:?} at {url}: {e}"));
            assert_eq!(text_of(&r), "any era", "{era:?} at {url}");
        }
    }
}

#[tokio::test]
async fn every_streamable_http_flavour_of_the_python_sdk_is_served_through_both_endpoints() {
    for flavour in python_sdk::FLAVOURS {
        let server = python_sdk::start_flavour(SECRET, flavour).await;
        let (_world, pb) =
            support::one_integration("int_py", &server.url(), "py", Default::default()).await;
        for (url, prefix) in endpoints(&pb) {
            let mut a = agent::connect(&url, "pba_agent").await;
            let names = a.tool_names().await;
            assert!(
                names.contains(&format!("{prefix}echo")),
                "{flavour} {url}: {names:?}"
            );
            let r = a
                .call(&format!("{prefix}echo"), json!({"message": flavour}))
                .await
                .unwrap_or_else(|e| panic!("{flavour} at {url}: {e}"));
            assert_eq!(text_of(&r), flavour, "{url}");
            // A long call answers in the end (with its progress when the flavour streams).
            let peer = a.service.peer().clone();
            let r = within("the count", peer.call_tool(count(prefix, 2)))
                .await
                .unwrap_or_else(|e| panic!("{flavour} at {url}: {e}"));
            assert_eq!(text_of(&r), "counted to 2", "{flavour} {url}");
            if flavour == "sessions" {
                assert!(a.progress.try_recv().is_ok(), "{url}: progress");
            }
            assert!(!a.http.received_text().contains(SECRET), "{url}");
        }
    }
}
