//! `/mcp/i/{integration_id}` against MCP servers built with `rmcp`, through an `rmcp` agent.

mod support;

use std::time::Duration;

use serde_json::json;
use support::agent::{self, error_code, text_of};
use support::upstream::{self, Mode};
use support::{instance, World, SECRET};

#[tokio::test]
async fn an_agent_lists_and_calls_tools_with_the_integrations_credentials_and_never_its_own() {
    let up = upstream::start(Mode::Sessions).await;
    let world = World::new();
    world.add("int_1", &up.url(), None, "test");
    world.agent("pba_agent", None);
    let pb = instance(&world, support::config()).await;

    let a = agent::connect(&pb.passthrough_url("int_1"), "pba_agent").await;
    let names = a.tool_names().await;
    assert!(
        names.contains(&"echo".to_owned()) && names.contains(&"whoami".to_owned()),
        "{names:?}"
    );
    let r = a.call("add", json!({"a": 2, "b": 3})).await.unwrap();
    assert_eq!(text_of(&r), "5");
    let who = a.call("whoami", json!({})).await.unwrap();
    assert_eq!(
        text_of(&who),
        "you sent: Bearer [redacted]",
        "the echoed credential is redacted"
    );

    let auth = up.state.seen.header_values("authorization");
    assert!(!auth.is_empty());
    assert!(
        auth.iter().all(|v| v == &format!("Bearer {SECRET}")),
        "{auth:?}"
    );
    assert!(up.state.seen.header_values("cookie").is_empty());
    assert!(up.state.seen.header_values("x-agent-note").is_empty());
    assert!(!a.http.received_text().contains(SECRET));
    let _ = tokio::time::timeout(Duration::from_secs(5), a.service.cancel()).await;
}
