//! Both endpoint kinds against the reference MCP server nobody here wrote: `@modelcontextprotocol/server-everything`
//! over streamable HTTP (installed from the pinned lock file on first use).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use plugboard_gateway::jsonrpc::code;
use plugboard_gateway::Outcome;
use serde_json::json;
use support::agent::{self, error_code, text_of};
use support::everything;
use support::{instance, policy, within, World, SECRET, WORKSPACE};

fn long_running(duration: u64, steps: u64) -> rmcp::model::CallToolRequestParams {
    let mut p = rmcp::model::CallToolRequestParams::new("trigger-long-running-operation");
    p.arguments = json!({"duration": duration, "steps": steps})
        .as_object()
        .cloned();
    p
}

fn prefixed(
    mut p: rmcp::model::CallToolRequestParams,
    prefix: &str,
) -> rmcp::model::CallToolRequestParams {
    p.name = format!("{prefix}__{}", p.name).into();
    p
}

#[tokio::test]
async fn the_reference_server_is_listed_called_and_streams_progress_through_both_endpoints() {
    let everything = everything::start().await;
    let world = World::new();
    world.add_with(
        "int_ev",
        &everything.url(),
        None,
        "ev",
        policy(&[], &["get-env", "trigger-sampling*"]),
        |_| {},
    );
    world.agent("pba_agent", None);
    let pb = instance(&world, support::config()).await;

    for (url, prefix) in [
        (pb.passthrough_url("int_ev"), None),
        (pb.workspace_url(WORKSPACE), Some("ev")),
    ] {
        let name = |t: &str| match prefix {
            Some(p) => format!("{p}__{t}"),
            None => t.to_owned(),
        };
        let mut a = agent::connect(&url, "pba_agent").await;
        let names = a.tool_names().await;
        assert!(names.contains(&name("echo")), "{url}: {names:?}");
        assert!(
            names.contains(&name("trigger-long-running-operation")),
            "{names:?}"
        );
        assert!(
            !names.contains(&name("get-env")),
            "denied tools are not listed: {names:?}"
        );

        let r = a
            .call(&name("echo"), json!({"message": "hello gateway"}))
            .await
            .unwrap();
        assert!(text_of(&r).contains("hello gateway"), "{}", text_of(&r));
        let err = a.call(&name("get-env"), json!({})).await.unwrap_err();
        assert_eq!(error_code(&err), Some(code::TOOL_DENIED as i32), "{err}");

        // Two progress notifications, then the result.
        let mut params = long_running(1, 2);
        if let Some(p) = prefix {
            params = prefixed(params, p);
        }
        let peer = a.service.peer().clone();
        let call = tokio::spawn(async move { peer.call_tool(params).await });
        for step in 1..=2 {
            let p = within("progress", a.progress.recv()).await.unwrap();
            assert_eq!(p.progress, step as f64, "{url}");
        }
        let r = within("the long operation", call).await.unwrap().unwrap();
        assert!(
            text_of(&r).contains("Long running operation completed"),
            "{}",
            text_of(&r)
        );
        assert!(!a.http.received_text().contains(SECRET));
        let _ = within("close", a.service.cancel()).await;
    }
    support::eventually("audited", || {
        world
            .audit()
            .iter()
            .filter(|c| c.tool == "echo" && c.outcome == Outcome::Ok)
            .count()
            == 2
    })
    .await;
}

#[tokio::test]
async fn the_reference_server_killed_mid_call_gives_each_endpoint_a_json_rpc_error() {
    support::killed_mid_call_on_both_endpoints(
        everything::start,
        "ev",
        "trigger-long-running-operation",
        json!({"duration": 30, "steps": 30}),
    )
    .await;
}
