//! `/mcp/crew/{id}` and `/mcp/workspace/{id}`: Plugboard's own MCP server over several upstreams.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use plugboard_gateway::jsonrpc::code;
use plugboard_gateway::{IntegrationStatus, Outcome, Scope, Transport, Via};
use serde_json::json;
use support::agent::{self, error_code, text_of, Era};
use support::upstream::{self, Cuttable, Mode};
use support::{instance, messages, policy, raw_post, within, World, CREW, SECRET, WORKSPACE};

#[tokio::test]
async fn the_tools_of_every_reachable_integration_are_merged_under_their_prefixes() {
    let one = upstream::start(Mode::Sessions).await;
    let two = upstream::start(Mode::StatelessJson).await;
    let world = World::new();
    world.add("int_1", &one.url(), None, "one");
    world.add("int_2", &two.url(), Some(CREW), "two");
    world.add(
        "int_other_crew",
        &two.url(),
        Some(support::OTHER_CREW),
        "other",
    );
    world.add_with("int_stdio", "", None, "stdio", Default::default(), |i| {
        i.transport = Transport::Stdio
    });
    world.add_with(
        "int_off",
        &one.url(),
        None,
        "off",
        Default::default(),
        |i| i.enabled = false,
    );
    world.add_with(
        "int_wait",
        &one.url(),
        None,
        "wait",
        Default::default(),
        |i| i.status = IntegrationStatus::PendingOauth,
    );
    // Nothing listens there: left out of the list, with a warning, and the list still answers.
    world.add("int_broken", "http://127.0.0.1:9/mcp", None, "broken");
    world.agent("pba_crew", Some(CREW));
    let pb = instance(&world, support::config()).await;

    let a = agent::connect(&pb.crew_url(CREW), "pba_crew").await;
    let names = a.tool_names().await;
    assert!(
        names.contains(&"one__echo".to_owned()) && names.contains(&"two__add".to_owned()),
        "{names:?}"
    );
    assert!(
        names.iter().all(|n| n.starts_with("one__") || n.starts_with("two__")),
        "only enabled, active, streamable-http integrations of this crew and the workspace: {names:?}"
    );
    assert_eq!(names.len(), 16);

    let r = a.call("one__add", json!({"a": 1, "b": 2})).await.unwrap();
    assert_eq!(text_of(&r), "3");
    let r = a.call("two__echo", json!({"text": "hi"})).await.unwrap();
    assert_eq!(text_of(&r), "hi");
    assert_eq!(one.state.seen.calls_of("add"), 1);
    assert_eq!(two.state.seen.calls_of("echo"), 1);
    let who = a.call("one__whoami", json!({})).await.unwrap();
    assert_eq!(text_of(&who), "you sent: Bearer [redacted]");
    assert!(one
        .state
        .seen
        .header_values("authorization")
        .iter()
        .all(|v| v == &format!("Bearer {SECRET}")));
    assert!(one.state.seen.header_values("cookie").is_empty());
    assert!(!a.http.received_text().contains(SECRET));

    let err = a.call("other__echo", json!({})).await.unwrap_err();
    assert_eq!(error_code(&err), Some(code::INVALID_PARAMS as i32), "{err}");
    let err = a.call("echo", json!({})).await.unwrap_err();
    assert_eq!(error_code(&err), Some(code::INVALID_PARAMS as i32));

    support::eventually("audited", || world.audit().len() == 3).await;
    let audit = world.audit();
    assert!(audit
        .iter()
        .all(|c| c.via == Via::Aggregated(Scope::Crew(CREW.to_owned()))));
    assert_eq!(audit[0].tool, "add");
    assert_eq!(audit[0].integration_id, "int_1");
    assert_eq!(audit[1].integration_id, "int_2");
}

#[tokio::test]
async fn a_denied_tool_is_absent_from_the_merged_list_and_its_call_never_reaches_the_upstream() {
    let up = upstream::start(Mode::Sessions).await;
    let world = World::new();
    world.add_with(
        "int_1",
        &up.url(),
        None,
        "gh",
        policy(&["echo", "delete_*"], &["delete_*"]),
        |_| {},
    );
    world.agent("pba_agent", None);
    let pb = instance(&world, support::config()).await;
    let a = agent::connect(&pb.workspace_url(WORKSPACE), "pba_agent").await;
    assert_eq!(a.tool_names().await, vec!["gh__echo".to_owned()]);
    let err = a
        .call("gh__delete_everything", json!({}))
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), Some(code::TOOL_DENIED as i32));
    assert!(err.to_string().contains("tool policy"), "{err}");
    let err = a.call("gh__whoami", json!({})).await.unwrap_err();
    assert_eq!(error_code(&err), Some(code::TOOL_DENIED as i32));
    assert!(err.to_string().contains("not allowed"), "{err}");
    assert_eq!(up.state.seen.calls_of("delete_everything"), 0);
    assert_eq!(up.state.seen.calls_of("whoami"), 0);
    support::eventually("denials audited", || {
        world
            .audit()
            .iter()
            .filter(|c| c.outcome == Outcome::Denied)
            .count()
            == 2
    })
    .await;
}

#[tokio::test]
async fn progress_reaches_the_agent_with_its_own_token_while_the_call_runs() {
    let up = upstream::start(Mode::Sessions).await;
    let world = World::new();
    world.add("int_1", &up.url(), None, "up");
    world.agent("pba_agent", None);
    let pb = instance(&world, support::config()).await;
    let mut a = agent::connect(&pb.workspace_url(WORKSPACE), "pba_agent").await;
    let call = a.spawn_call("up__slow", json!({"steps": 3}));
    within("the call starts", up.state.seen.wait_started(1)).await;
    let mut token = None;
    for step in 1..=3 {
        up.state.release_steps(1);
        let p = within("a progress notification", a.progress.recv())
            .await
            .unwrap();
        assert_eq!(p.progress, step as f64);
        assert_eq!(p.message.as_deref(), Some(format!("step {step}").as_str()));
        // The agent's own token every time (the upstream saw the gateway's).
        let t = token.get_or_insert_with(|| p.progress_token.clone());
        assert_eq!(t, &p.progress_token);
        assert!(!format!("{:?}", p.progress_token).contains("plugboard-"));
        if step < 3 {
            assert!(!call.is_finished());
        }
    }
    let r = within("the call ends", call).await.unwrap().unwrap();
    assert_eq!(text_of(&r), "slow done");
}

#[tokio::test]
async fn a_session_belongs_to_its_token_and_scope_and_ends_with_delete() {
    let up = upstream::start(Mode::Sessions).await;
    let world = World::new();
    world.add("int_1", &up.url(), None, "up");
    world.agent("pba_a", None);
    world.agent("pba_b", None);
    let pb = instance(&world, support::config()).await;
    let url = pb.workspace_url(WORKSPACE);
    let resp = raw_post(&url, "pba_a", None, support::initialize_body(1)).await;
    assert_eq!(resp.status(), 200);
    let sid = resp
        .headers()
        .get("mcp-session-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(sid.starts_with("pbg_"), "{sid}");
    let init = messages(resp).await;
    assert_eq!(init[0]["result"]["protocolVersion"], json!("2025-06-18"));
    assert_eq!(world.sessions.lock().unwrap().len(), 1);
    assert!(
        !world
            .sessions
            .lock()
            .unwrap()
            .keys()
            .any(|k| k.contains(&sid)),
        "only a hash is stored"
    );

    let list = json!({"jsonrpc":"2.0","id":2,"method":"tools/list"});
    let ok = raw_post(&url, "pba_a", Some(&sid), list.clone()).await;
    assert_eq!(ok.status(), 200);
    let tools = messages(ok).await;
    assert!(tools[0]["result"]["tools"].as_array().unwrap().len() > 3);
    // Another token, or the same token on another scope: an unknown session.
    assert_eq!(
        raw_post(&url, "pba_b", Some(&sid), list.clone())
            .await
            .status(),
        404
    );
    assert_eq!(
        raw_post(&pb.crew_url(CREW), "pba_a", Some(&sid), list.clone())
            .await
            .status(),
        404
    );
    assert_eq!(
        raw_post(&url, "pba_a", Some("pbg_nonsense"), list.clone())
            .await
            .status(),
        404
    );

    let deleted = reqwest::Client::new()
        .delete(&url)
        .bearer_auth("pba_a")
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(
        raw_post(&url, "pba_a", Some(&sid), list).await.status(),
        404
    );
    assert!(world.sessions.lock().unwrap().is_empty());
    assert_eq!(
        pb.gateway.open_upstream_clients(),
        0,
        "the session's upstream sessions are closed"
    );
    let get = reqwest::Client::new()
        .get(&url)
        .bearer_auth("pba_a")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
}

#[tokio::test]
async fn a_session_opened_on_one_instance_continues_on_another_and_ends_everywhere() {
    let up = upstream::start(Mode::Sessions).await;
    let world = World::new();
    world.add("int_1", &up.url(), None, "up");
    world.agent("pba_agent", None);
    let first = instance(&world, support::config()).await;
    let second = instance(&world, support::config()).await;
    let resp = raw_post(
        &first.workspace_url(WORKSPACE),
        "pba_agent",
        None,
        support::initialize_body(1),
    )
    .await;
    let sid = resp
        .headers()
        .get("mcp-session-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let call =
        json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"up__counter"}});
    let on_second = messages(
        raw_post(
            &second.workspace_url(WORKSPACE),
            "pba_agent",
            Some(&sid),
            call.clone(),
        )
        .await,
    )
    .await;
    assert_eq!(
        on_second[0]["result"]["content"][0]["text"],
        json!("1"),
        "{on_second:?}"
    );
    let on_first = messages(
        raw_post(
            &first.workspace_url(WORKSPACE),
            "pba_agent",
            Some(&sid),
            call.clone(),
        )
        .await,
    )
    .await;
    assert_eq!(
        on_first[0]["result"]["content"][0]["text"],
        json!("1"),
        "each instance opens its own upstream session"
    );
    let again = messages(
        raw_post(
            &second.workspace_url(WORKSPACE),
            "pba_agent",
            Some(&sid),
            call.clone(),
        )
        .await,
    )
    .await;
    assert_eq!(
        again[0]["result"]["content"][0]["text"],
        json!("2"),
        "and reuses it"
    );

    let deleted = reqwest::Client::new()
        .delete(first.workspace_url(WORKSPACE))
        .bearer_auth("pba_agent")
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    // The other instance trusts its cached copy for at most a second.
    let mut refused = false;
    for _ in 0..40 {
        let status = raw_post(
            &second.workspace_url(WORKSPACE),
            "pba_agent",
            Some(&sid),
            call.clone(),
        )
        .await
        .status();
        if status == 404 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "a deleted session ends on every instance");
}

#[tokio::test]
async fn agents_of_every_protocol_version_are_served() {
    let up = upstream::start(Mode::Sessions).await;
    let modern_up = upstream::start(Mode::StatelessJson).await;
    let world = World::new();
    world.add("int_1", &up.url(), None, "up");
    world.add("int_2", &modern_up.url(), None, "modern");
    world.agent("pba_agent", None);
    let pb = instance(&world, support::config()).await;
    for era in [
        Era::Legacy(rmcp::model::ProtocolVersion::V_2025_03_26),
        Era::Legacy(rmcp::model::ProtocolVersion::V_2025_06_18),
        Era::Legacy(rmcp::model::ProtocolVersion::V_2025_11_25),
        Era::Modern,
    ] {
        for url in [pb.workspace_url(WORKSPACE), pb.passthrough_url("int_2")] {
            let a = agent::connect_era(&url, "pba_agent", era.clone())
                .await
                .unwrap_or_else(|e| panic!("{era:?} at {url}: {e}"));
            let name = if url.contains("/mcp/i/") {
                "add"
            } else {
                "up__add"
            };
            let r = a
                .call(name, json!({"a": 20, "b": 22}))
                .await
                .unwrap_or_else(|e| panic!("{era:?} {url}: {e}"));
            assert_eq!(text_of(&r), "42", "{era:?} at {url}");
        }
    }
}

#[tokio::test]
async fn an_upstream_killed_mid_call_gives_the_agent_an_error_and_the_next_call_reconnects() {
    let up = upstream::start(Mode::Sessions).await;
    let cut = Cuttable::start(up.addr).await;
    let world = World::new();
    world.add("int_1", &cut.url(), None, "up");
    world.agent("pba_agent", None);
    let pb = instance(&world, support::config()).await;
    let a = agent::connect(&pb.workspace_url(WORKSPACE), "pba_agent").await;
    assert!(a.tool_names().await.contains(&"up__slow".to_owned()));
    let call = a.spawn_call("up__slow", json!({"steps": 5}));
    within("the call starts", up.state.seen.wait_started(1)).await;
    cut.kill();
    let err = within("the error after the kill", call)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(error_code(&err), Some(code::UPSTREAM as i32), "{err}");
    support::eventually("audited", || {
        world
            .audit()
            .iter()
            .any(|c| c.tool == "slow" && c.outcome == Outcome::UpstreamError)
    })
    .await;
    // The upstream is back at another address: the next call opens a new upstream session.
    world.set_endpoint("int_1", &up.url());
    let r = within("the next call", a.call("up__echo", json!({"text": "back"})))
        .await
        .unwrap();
    assert_eq!(text_of(&r), "back");
}

#[tokio::test]
async fn upstream_sessions_are_opened_once_per_session_and_integration_and_reused() {
    let up = upstream::start(Mode::Sessions).await;
    let world = World::new();
    world.add("int_1", &up.url(), None, "up");
    world.agent("pba_agent", None);
    let pb = instance(&world, support::config()).await;
    let a = agent::connect(&pb.workspace_url(WORKSPACE), "pba_agent").await;
    for i in 0..3 {
        let r = a.call("up__counter", json!({})).await.unwrap();
        assert_eq!(
            text_of(&r),
            (i + 1).to_string(),
            "the same upstream session every time"
        );
    }
    assert_eq!(pb.gateway.open_upstream_clients(), 1);
    let materialized = *world.materialized.lock().unwrap();
    assert!(
        materialized <= 2,
        "credentials are cached, not decrypted per call: {materialized}"
    );
    let b = agent::connect(&pb.workspace_url(WORKSPACE), "pba_agent").await;
    let r = b.call("up__counter", json!({})).await.unwrap();
    assert_eq!(
        text_of(&r),
        "1",
        "another session of the same token gets its own upstream session"
    );
    assert_eq!(pb.gateway.open_upstream_clients(), 2);
}

#[tokio::test]
async fn scopes_the_caller_cannot_use_get_the_contract_errors() {
    let world = World::new();
    world.agent("pba_crew", Some(CREW));
    let pb = instance(&world, support::config()).await;
    let init = support::initialize_body(1);
    let other = raw_post(
        &pb.crew_url(support::OTHER_CREW),
        "pba_crew",
        None,
        init.clone(),
    )
    .await;
    assert_eq!(other.status(), 403);
    let body: serde_json::Value = other.json().await.unwrap();
    assert_eq!(body["code"], json!("forbidden"));
    let unknown = raw_post(&pb.crew_url("crew_unknown"), "pba_crew", None, init.clone()).await;
    assert_eq!(unknown.status(), 404);
    let ws = raw_post(&pb.workspace_url("ws_other"), "pba_crew", None, init).await;
    assert_eq!(ws.status(), 403);
}

#[tokio::test]
async fn the_janitor_closes_idle_upstream_sessions_and_expires_idle_sessions() {
    let up = upstream::start(Mode::Sessions).await;
    let world = World::new();
    world.add("int_1", &up.url(), None, "up");
    world.agent("pba_agent", None);
    let mut config = support::config();
    config.upstream_idle = Duration::ZERO;
    config.session_idle = Duration::ZERO;
    let pb = instance(&world, config).await;
    let a = agent::connect(&pb.workspace_url(WORKSPACE), "pba_agent").await;
    a.call("up__echo", json!({"text": "x"})).await.unwrap();
    assert_eq!(pb.gateway.open_upstream_clients(), 1);
    assert_eq!(world.sessions.lock().unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(5)).await;
    pb.gateway.sweep().await;
    assert_eq!(pb.gateway.open_upstream_clients(), 0);
    assert!(world.sessions.lock().unwrap().is_empty());
}
