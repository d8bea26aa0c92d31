//! `/mcp/i/{integration_id}` against MCP servers built with `rmcp`, through an `rmcp` agent (and raw HTTP where the
//! test needs to see the wire).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use plugboard_gateway::jsonrpc::code;
use plugboard_gateway::{Outcome, Transport, Via};
use serde_json::json;
use support::agent::{self, error_code, text_of};
use support::upstream::{self, Cuttable, Mode};
use support::{instance, messages, policy, raw_post, within, World, SECRET};

/// Bounds a step that must not hang (a failure guard, not a performance assertion).
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
    let failed = a.call("fail", json!({})).await.unwrap();
    assert_eq!(failed.is_error, Some(true));

    let auth = up.state.seen.header_values("authorization");
    assert!(!auth.is_empty());
    assert!(
        auth.iter().all(|v| v == &format!("Bearer {SECRET}")),
        "{auth:?}"
    );
    assert!(
        up.state.seen.header_values("cookie").is_empty(),
        "the agent's cookie stays home"
    );
    assert!(
        up.state.seen.header_values("x-agent-note").is_empty(),
        "only MCP headers go upstream"
    );
    let sid = a.session_id().expect("a session id");
    assert!(
        sid.starts_with("pbs_"),
        "the agent holds a sealed session id: {sid}"
    );
    let upstream_sids = up.state.seen.header_values("mcp-session-id");
    assert!(!upstream_sids.is_empty() && !upstream_sids.contains(&sid));
    assert!(!a.http.received_text().contains(SECRET));
    assert!(
        !a.http.received_text().contains(&upstream_sids[0]),
        "the upstream's session id is never shown"
    );

    support::eventually("three audited calls", || world.audit().len() == 3).await;
    let audit = world.audit();
    let outcomes: Vec<(String, Outcome)> =
        audit.iter().map(|c| (c.tool.clone(), c.outcome)).collect();
    assert_eq!(
        outcomes,
        vec![
            ("add".to_owned(), Outcome::Ok),
            ("whoami".to_owned(), Outcome::Ok),
            ("fail".to_owned(), Outcome::ToolError)
        ]
    );
    assert!(audit
        .iter()
        .all(|c| c.via == Via::Passthrough && c.integration_id == "int_1"));
    assert!(audit.iter().all(|c| c.caller.token_id == "id_pba_agent"));
    assert!(
        !format!("{audit:?}").contains("\"a\""),
        "no arguments in the audit"
    );
    assert_eq!(world.metrics.lock().unwrap().len(), 3);
    let _ = within("close", a.service.cancel()).await;
}

#[tokio::test]
async fn a_denied_tool_is_absent_from_the_list_and_its_call_never_reaches_the_upstream() {
    let up = upstream::start(Mode::Sessions).await;
    let world = World::new();
    world.add_with(
        "int_1",
        &up.url(),
        None,
        "test",
        policy(&[], &["delete_*", "hang"]),
        |_| {},
    );
    world.agent("pba_agent", None);
    let pb = instance(&world, support::config()).await;
    let a = agent::connect(&pb.passthrough_url("int_1"), "pba_agent").await;

    let names = a.tool_names().await;
    assert!(
        !names.contains(&"delete_everything".to_owned()),
        "{names:?}"
    );
    assert!(!names.contains(&"hang".to_owned()));
    assert!(names.contains(&"echo".to_owned()));
    let err = a.call("delete_everything", json!({})).await.unwrap_err();
    assert_eq!(error_code(&err), Some(code::TOOL_DENIED as i32));
    assert!(err.to_string().contains("tool policy"), "{err}");
    assert!(
        err.to_string().contains("delete_*"),
        "the error names the policy: {err}"
    );
    assert_eq!(up.state.seen.calls_of("delete_everything"), 0);

    // An allow list: only what it names.
    world.set_policy("int_1", policy(&["echo", "add"], &[]));
    assert_eq!(
        a.tool_names().await,
        vec!["add".to_owned(), "echo".to_owned()]
    );
    let err = a.call("whoami", json!({})).await.unwrap_err();
    assert_eq!(error_code(&err), Some(code::TOOL_DENIED as i32));
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
async fn a_batch_cannot_smuggle_a_denied_call_past_the_policy() {
    let up = upstream::start(Mode::StatelessJson).await;
    let (_world, pb) =
        support::one_integration("int_1", &up.url(), "test", policy(&[], &["delete_*"])).await;
    let call = |id: i64, name: &str| json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":name,"arguments":{}}});

    // Only denied calls: answered by the gateway, nothing sent.
    let before = up.state.seen.requests.lock().unwrap().len();
    let resp = raw_post(
        &pb.passthrough_url("int_1"),
        "pba_agent",
        None,
        json!([call(1, "delete_everything")]),
    )
    .await;
    let msgs = messages(resp).await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["error"]["code"], json!(code::TOOL_DENIED));
    assert_eq!(
        up.state.seen.requests.lock().unwrap().len(),
        before,
        "nothing reached the upstream"
    );

    // A mixed batch: the denied call is taken out whatever the upstream does with the rest.
    let _ = raw_post(
        &pb.passthrough_url("int_1"),
        "pba_agent",
        None,
        json!([call(2, "echo"), call(3, "delete_everything")]),
    )
    .await;
    // Duplicate keys: the gateway checks the name it parsed and sends exactly what it checked.
    let sneaky = r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","name":"delete_everything","arguments":{}}}"#;
    let resp = reqwest::Client::new()
        .post(pb.passthrough_url("int_1"))
        .bearer_auth("pba_agent")
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(sneaky)
        .send()
        .await
        .unwrap();
    let msgs = messages(resp).await;
    assert_eq!(
        msgs[0]["error"]["code"],
        json!(code::TOOL_DENIED),
        "{msgs:?}"
    );
    assert_eq!(up.state.seen.calls_of("delete_everything"), 0);
}

#[tokio::test]
async fn a_denied_call_without_a_usable_id_or_behind_a_duplicate_method_key_never_reaches_the_upstream(
) {
    let up = upstream::start(Mode::StatelessJson).await;
    let (world, pb) =
        support::one_integration("int_1", &up.url(), "test", policy(&[], &["delete_*"])).await;
    let post = |body: String| {
        reqwest::Client::new()
            .post(pb.passthrough_url("int_1"))
            .bearer_auth("pba_agent")
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let call = r#""method":"tools/call","params":{"name":"delete_everything","arguments":{}}"#;
    // As a notification, and with ids that are not strings or numbers: nothing to answer, nothing sent.
    for id in ["", r#""id":null,"#, r#""id":true,"#, r#""id":{"a":1},"#] {
        let resp = post(format!(r#"{{"jsonrpc":"2.0",{id}{call}}}"#))
            .await
            .unwrap();
        assert_eq!(resp.status(), 202, "{id}");
    }
    // An empty batch is not a request.
    let resp = post("[]".to_owned()).await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        messages(resp).await[0]["error"]["code"],
        json!(code::INVALID_REQUEST)
    );
    // In a batch with an allowed call, which goes on alone (whatever the upstream makes of a batch).
    let resp = post(format!(
        r#"[{{"jsonrpc":"2.0",{call}}},{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"hi"}}}}}}]"#
    ))
    .await
    .unwrap();
    let _ = resp.bytes().await;
    // Two method keys: the gateway reads the last (a ping), and sends only what it read.
    let resp = post(format!(
        r#"{{"jsonrpc":"2.0","id":8,{call},"method":"ping"}}"#
    ))
    .await
    .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let _ = resp.bytes().await;

    let bodies = up.state.seen.bodies.lock().unwrap().clone();
    // Each body as the upstream reads it: one method per message, never the denied call.
    for b in &bodies {
        assert_eq!(
            b.matches(r#""method""#).count(),
            b.matches(r#""jsonrpc""#).count(),
            "{b}"
        );
        assert!(
            !(b.contains("tools/call") && b.contains("delete_everything")),
            "a denied call reached the upstream: {b}"
        );
    }
    assert!(bodies.iter().any(|b| b.contains(r#""id":7"#)), "{bodies:?}");
    assert!(bodies.iter().any(|b| b.contains(r#""ping""#)), "{bodies:?}");
    support::eventually("the denials audited", || {
        world
            .audit()
            .iter()
            .filter(|c| c.tool == "delete_everything" && c.outcome == Outcome::Denied)
            .count()
            == 5
    })
    .await;
}

#[tokio::test]
async fn progress_notifications_reach_the_agent_one_by_one_while_the_call_runs() {
    let up = upstream::start(Mode::Sessions).await;
    let world = World::new();
    world.add("int_1", &up.url(), None, "test");
    world.agent("pba_agent", None);
    let pb = instance(&world, support::config()).await;
    let mut a = agent::connect(&pb.passthrough_url("int_1"), "pba_agent").await;

    let peer = a.service.peer().clone();
    let call = tokio::spawn(async move {
        let mut params = rmcp::model::CallToolRequestParams::new("slow");
        params.arguments = json!({"steps": 3}).as_object().cloned();
        let mut meta = rmcp::model::RequestMetaObject::default();
        meta.set_progress_token(rmcp::model::ProgressToken(
            rmcp::model::NumberOrString::String("agent-token-1".into()),
        ));
        params.meta = Some(meta);
        peer.call_tool(params).await
    });
    within("the call starts", up.state.seen.wait_started(1)).await;
    for step in 1..=3 {
        // The next step is released only after this one's notification arrived: the stream is not held back.
        up.state.release_steps(1);
        let p = within("a progress notification", a.progress.recv())
            .await
            .unwrap();
        assert_eq!(p.progress, step as f64);
        if step < 3 {
            assert!(
                !call.is_finished(),
                "the call cannot end before its last step"
            );
        }
    }
    let result = within("the call ends", call).await.unwrap().unwrap();
    assert_eq!(text_of(&result), "slow done");
}

#[tokio::test]
async fn concurrent_agents_keep_their_own_upstream_sessions() {
    let up = upstream::start(Mode::Sessions).await;
    let world = World::new();
    world.add("int_1", &up.url(), None, "test");
    world.agent("pba_a", None);
    world.agent("pba_b", None);
    let pb = instance(&world, support::config()).await;
    let a = agent::connect(&pb.passthrough_url("int_1"), "pba_a").await;
    let b = agent::connect(&pb.passthrough_url("int_1"), "pba_b").await;

    let count = |agent: &agent::Agent| {
        let peer = agent.service.peer().clone();
        async move {
            let mut seen = Vec::new();
            for _ in 0..5 {
                let r = peer
                    .call_tool(rmcp::model::CallToolRequestParams::new("counter"))
                    .await
                    .unwrap();
                seen.push(text_of(&r));
            }
            seen
        }
    };
    let (sa, sb) = tokio::join!(count(&a), count(&b));
    let expected: Vec<String> = (1..=5).map(|n| n.to_string()).collect();
    assert_eq!(sa, expected, "agent a counts in its own session");
    assert_eq!(sb, expected, "agent b counts in its own session");

    // Another token presenting a's session id gets an unknown session, never a's upstream session.
    let a_sid = a.session_id().unwrap();
    let resp = raw_post(
        &pb.passthrough_url("int_1"),
        "pba_b",
        Some(&a_sid),
        json!({"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"counter"}}),
    )
    .await;
    assert_eq!(resp.status(), 404);
    let body = resp.text().await.unwrap();
    assert!(
        body.contains(&code::SESSION_NOT_FOUND.to_string()),
        "{body}"
    );
    // A forged or tampered id is unknown too.
    let resp = raw_post(
        &pb.passthrough_url("int_1"),
        "pba_a",
        Some("pbs_forged"),
        json!({"jsonrpc":"2.0","id":1,"method":"ping"}),
    )
    .await;
    assert_eq!(resp.status(), 404);
    assert_eq!(up.state.seen.calls_of("counter"), 10);
}

#[tokio::test]
async fn requests_beyond_the_integration_limit_wait_and_then_are_refused() {
    let up = upstream::start(Mode::Sessions).await;
    let world = World::new();
    world.add("int_1", &up.url(), None, "test");
    for t in ["pba_1", "pba_2", "pba_3"] {
        world.agent(t, None);
    }
    let mut config = support::config();
    config.limits.per_integration = 2;
    config.limits.queue_wait = Duration::from_millis(300);
    let pb = instance(&world, config).await;
    let mut agents = Vec::new();
    for t in ["pba_1", "pba_2", "pba_3"] {
        agents.push(agent::connect(&pb.passthrough_url("int_1"), t).await);
    }
    let first = agents[0].spawn_call("slow", json!({"steps": 1}));
    let second = agents[1].spawn_call("slow", json!({"steps": 1}));
    within("two calls in flight", up.state.seen.wait_started(2)).await;
    let err = agents[2]
        .call("echo", json!({"text": "x"}))
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), Some(code::BUSY as i32), "{err}");
    assert!(err.to_string().contains("2 requests in progress"), "{err}");
    up.state.release_steps(2);
    assert!(within("first", first).await.unwrap().is_ok());
    assert!(within("second", second).await.unwrap().is_ok());
    // Once slots are free again, the third agent gets through.
    let r = agents[2]
        .call("echo", json!({"text": "now"}))
        .await
        .unwrap();
    assert_eq!(text_of(&r), "now");
    assert_eq!(up.state.seen.calls_of("echo"), 1);
    support::eventually("the refusal is audited", || {
        world.audit().iter().any(|c| c.outcome == Outcome::Limited)
    })
    .await;
}

#[tokio::test]
async fn one_token_cannot_take_more_than_its_share_across_integrations() {
    let up = upstream::start(Mode::Sessions).await;
    let world = World::new();
    world.add("int_1", &up.url(), None, "one");
    world.add("int_2", &up.url(), None, "two");
    world.agent("pba_greedy", None);
    world.agent("pba_other", None);
    let mut config = support::config();
    config.limits.per_token = 1;
    config.limits.queue_wait = Duration::from_millis(200);
    let pb = instance(&world, config).await;
    let greedy1 = agent::connect(&pb.passthrough_url("int_1"), "pba_greedy").await;
    let greedy2 = agent::connect(&pb.passthrough_url("int_2"), "pba_greedy").await;
    let other = agent::connect(&pb.passthrough_url("int_2"), "pba_other").await;
    let running = greedy1.spawn_call("slow", json!({"steps": 1}));
    within("the greedy call runs", up.state.seen.wait_started(1)).await;
    let err = greedy2
        .call("echo", json!({"text": "more"}))
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), Some(code::BUSY as i32));
    assert!(err.to_string().contains("this token"), "{err}");
    let ok = other.call("echo", json!({"text": "fine"})).await.unwrap();
    assert_eq!(text_of(&ok), "fine");
    up.state.release_steps(1);
    assert!(within("the greedy call ends", running)
        .await
        .unwrap()
        .is_ok());
}

#[tokio::test]
async fn an_upstream_killed_mid_call_answers_a_json_rpc_error_and_nothing_hangs() {
    let up = upstream::start(Mode::Sessions).await;
    let cut = Cuttable::start(up.addr).await;
    let world = World::new();
    world.add("int_1", &cut.url(), None, "test");
    world.agent("pba_agent", None);
    let pb = instance(&world, support::config()).await;
    let a = agent::connect(&pb.passthrough_url("int_1"), "pba_agent").await;
    let call = a.spawn_call("slow", json!({"steps": 5}));
    within("the call starts", up.state.seen.wait_started(1)).await;
    cut.kill();
    let err = within("the error after the kill", call)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(error_code(&err), Some(code::UPSTREAM as i32), "{err}");
    assert!(!err.to_string().contains(SECRET));
    support::eventually("the failure is audited", || {
        world
            .audit()
            .iter()
            .any(|c| c.tool == "slow" && c.outcome == Outcome::UpstreamError)
    })
    .await;
}

#[tokio::test]
async fn a_silent_upstream_is_cut_after_the_gateway_timeout() {
    let up = upstream::start(Mode::Sessions).await;
    let world = World::new();
    world.add("int_1", &up.url(), None, "test");
    world.agent("pba_agent", None);
    let mut config = support::config();
    config.timeout = Duration::from_millis(500);
    let pb = instance(&world, config).await;
    let a = agent::connect(&pb.passthrough_url("int_1"), "pba_agent").await;
    let err = within("the timeout", a.call("hang", json!({})))
        .await
        .unwrap_err();
    assert_eq!(
        error_code(&err),
        Some(code::UPSTREAM_TIMEOUT as i32),
        "{err}"
    );
    assert!(err.to_string().contains("500 ms"), "{err}");
    support::eventually("the timeout is audited", || {
        world
            .audit()
            .iter()
            .any(|c| c.tool == "hang" && c.outcome == Outcome::Timeout)
    })
    .await;
}

#[tokio::test]
async fn an_upstream_redirecting_to_another_origin_is_an_error_and_is_not_followed() {
    let elsewhere = upstream::start(Mode::StatelessJson).await;
    let (addr, _task) = upstream::redirecting(elsewhere.url()).await;
    let world = World::new();
    world.add("int_1", &format!("http://{addr}/mcp"), None, "test");
    world.agent("pba_agent", None);
    let pb = instance(&world, support::config()).await;
    let resp = raw_post(
        &pb.passthrough_url("int_1"),
        "pba_agent",
        None,
        support::initialize_body(1),
    )
    .await;
    let msgs = messages(resp).await;
    assert_eq!(msgs[0]["error"]["code"], json!(code::UPSTREAM), "{msgs:?}");
    let message = msgs[0]["error"]["message"].as_str().unwrap();
    assert!(message.contains("another origin"), "{message}");
    assert!(
        elsewhere.state.seen.requests.lock().unwrap().is_empty(),
        "the other origin was never contacted"
    );
}

#[tokio::test]
async fn integrations_the_gateway_cannot_relay_get_the_contract_errors() {
    let up = upstream::start(Mode::Sessions).await;
    let world = World::new();
    world.add("int_ok", &up.url(), None, "ok");
    world.add_with("int_stdio", "", None, "stdio", Default::default(), |i| {
        i.transport = Transport::Stdio
    });
    world.add_with("int_off", &up.url(), None, "off", Default::default(), |i| {
        i.enabled = false
    });
    world.add("int_crew_b", &up.url(), Some(support::OTHER_CREW), "crewb");
    world.agent("pba_crew_a", Some(support::CREW));
    let pb = instance(&world, support::config()).await;
    let init = support::initialize_body(1);
    for (id, status, code) in [
        ("int_stdio", 409, "not_proxyable"),
        ("int_off", 409, "integration_disabled"),
        ("nope", 404, "not_found"),
        ("int_crew_b", 403, "forbidden"),
    ] {
        let resp = raw_post(&pb.passthrough_url(id), "pba_crew_a", None, init.clone()).await;
        assert_eq!(resp.status(), status, "{id}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["code"], json!(code), "{id}: {body}");
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    let resp = raw_post(
        &pb.passthrough_url("int_ok"),
        "pba_unknown",
        None,
        init.clone(),
    )
    .await;
    assert_eq!(resp.status(), 401);
    let resp = raw_post(&pb.passthrough_url("int_ok"), "pba_crew_a", None, init).await;
    assert_eq!(
        resp.status(),
        200,
        "a crew token reaches workspace-scoped integrations"
    );
}

#[tokio::test]
async fn an_upstream_that_echoes_the_credential_in_an_error_never_shows_it_to_the_agent() {
    let router = axum::Router::new().fallback(|headers: http::HeaderMap| async move {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        (
            http::StatusCode::INTERNAL_SERVER_ERROR,
            [("content-type", "text/plain"), ("x-debug", "ignored")],
            format!(
                "upstream exploded while using {auth} (base64: {})",
                base64_of(&auth)
            ),
        )
    });
    let (_pb, resp) = initialize_through(router, support::config()).await;
    assert_eq!(resp.status(), 500);
    assert!(
        resp.headers().get("x-debug").is_none(),
        "only MCP headers come back"
    );
    let body = resp.text().await.unwrap();
    assert!(!body.contains(SECRET), "{body}");
    assert!(!body.contains(&base64_of(SECRET)[..20]), "{body}");
    assert!(body.contains("[redacted]"), "{body}");
}

/// `router` served as the only integration's MCP server, and an agent's `initialize` through the passthrough: the
/// gateway (kept while the answer is read) and its answer.
async fn initialize_through(
    router: axum::Router,
    config: plugboard_gateway::GatewayConfig,
) -> (support::Instance, reqwest::Response) {
    let (addr, upstream) = support::serve(router).await;
    // The upstream lives as long as the test's runtime.
    drop(upstream);
    let world = World::new();
    world.add("int_1", &format!("http://{addr}/mcp"), None, "test");
    world.agent("pba_agent", None);
    let pb = instance(&world, config).await;
    let resp = raw_post(
        &pb.passthrough_url("int_1"),
        "pba_agent",
        None,
        support::initialize_body(1),
    )
    .await;
    (pb, resp)
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn a_json_answering_upstream_is_filtered_and_audited_the_same_way() {
    let up = upstream::start(Mode::StatelessJson).await;
    let (world, pb) =
        support::one_integration("int_1", &up.url(), "test", policy(&[], &["delete_*"])).await;
    let url = pb.passthrough_url("int_1");
    let resp = raw_post(&url, "pba_agent", None, support::initialize_body(1)).await;
    assert_eq!(resp.status(), 200);
    let list = messages(
        raw_post(
            &url,
            "pba_agent",
            None,
            json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}),
        )
        .await,
    )
    .await;
    let names: Vec<&str> = list[0]["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"echo") && !names.contains(&"delete_everything"),
        "{names:?}"
    );
    let who = messages(
        raw_post(
            &url,
            "pba_agent",
            None,
            json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"whoami"}}),
        )
        .await,
    )
    .await;
    let text = who[0]["result"]["content"][0]["text"].as_str().unwrap();
    assert_eq!(text, "you sent: Bearer [redacted]");
    support::eventually("audited", || {
        world
            .audit()
            .iter()
            .any(|c| c.tool == "whoami" && c.outcome == Outcome::Ok)
    })
    .await;
}

#[tokio::test]
async fn the_servers_stream_and_the_end_of_a_session_are_relayed() {
    let up = upstream::start(Mode::Sessions).await;
    let world = World::new();
    world.add("int_1", &up.url(), None, "test");
    world.agent("pba_agent", None);
    let mut config = support::config();
    config.limits.streams_per_token = 1;
    let pb = instance(&world, config).await;
    let url = pb.passthrough_url("int_1");
    let init = raw_post(&url, "pba_agent", None, support::initialize_body(1)).await;
    let sid = init
        .headers()
        .get("mcp-session-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let _ = raw_post(
        &url,
        "pba_agent",
        Some(&sid),
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
    )
    .await;
    let client = reqwest::Client::new();
    let get = || {
        client
            .get(&url)
            .bearer_auth("pba_agent")
            .header("accept", "text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .header("mcp-session-id", &sid)
            .send()
    };
    let stream = get().await.unwrap();
    assert_eq!(stream.status(), 200);
    assert!(stream.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    // One open stream per token here: the second is refused at once.
    let second = get().await.unwrap();
    assert_eq!(second.status(), 429);
    drop(stream);

    let deleted = client
        .delete(&url)
        .bearer_auth("pba_agent")
        .header("mcp-session-id", &sid)
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    let after = raw_post(
        &url,
        "pba_agent",
        Some(&sid),
        json!({"jsonrpc":"2.0","id":5,"method":"tools/list"}),
    )
    .await;
    assert_eq!(
        after.status(),
        404,
        "the upstream ended the session; its 404 reaches the agent"
    );
}

#[tokio::test]
async fn an_sse_answer_ends_once_every_request_has_its_answer_even_if_the_server_keeps_its_stream_open(
) {
    // The server answers the request, then never ends its stream.
    let router = axum::Router::new().fallback(|| async {
        let answer = json!({"jsonrpc": "2.0", "id": 1, "result": {"protocolVersion": "2025-06-18",
            "capabilities": {}, "serverInfo": {"name": "held", "version": "1"}}});
        let first = futures_util::stream::once(async move {
            Ok::<_, std::convert::Infallible>(bytes::Bytes::from(format!("data: {answer}\n\n")))
        });
        let body = axum::body::Body::from_stream(futures_util::StreamExt::chain(
            first,
            futures_util::stream::pending(),
        ));
        ([("content-type", "text/event-stream")], body)
    });
    // Silence is tolerated far longer than the guard below, so only the answer can end the stream.
    let mut config = support::config();
    config.timeout = Duration::from_secs(3600);
    let (_pb, resp) = initialize_through(router, config).await;
    assert_eq!(resp.status(), 200);
    // The whole body arrives (the stream ends), with the answer in it.
    let body = within("the end of the answer's stream", resp.text())
        .await
        .unwrap();
    assert!(body.contains(r#""serverInfo":{"name":"held""#), "{body}");
}

#[tokio::test]
async fn a_long_call_that_only_sends_keep_alives_starts_its_answer_before_the_result() {
    // The server sends the event that only gives an id to resume from, then a keep-alive comment, and answers only
    // when the test says so.
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let released = Arc::new(std::sync::Mutex::new(Some(released)));
    let router = axum::Router::new().fallback(move || {
        let released = released.lock().unwrap().take();
        async move {
            let answer = json!({"jsonrpc": "2.0", "id": 1, "result": {"protocolVersion": "2025-06-18",
                "capabilities": {}, "serverInfo": {"name": "slow", "version": "1"}}});
            let early = futures_util::stream::iter([
                Ok::<_, std::convert::Infallible>(bytes::Bytes::from_static(b"id: 0\ndata:\n\n")),
                Ok(bytes::Bytes::from_static(b": keep-alive\n\n")),
            ]);
            let late = futures_util::stream::once(async move {
                if let Some(released) = released {
                    let _ = released.await;
                }
                Ok(bytes::Bytes::from(format!("id: 1\ndata: {answer}\n\n")))
            });
            let body = axum::body::Body::from_stream(futures_util::StreamExt::chain(early, late));
            ([("content-type", "text/event-stream")], body)
        }
    });
    let (_pb, resp) = within(
        "the head of the answer, before the result",
        initialize_through(router, support::config()),
    )
    .await;
    assert_eq!(resp.status(), 200);
    release.send(()).unwrap();
    let body = within("the rest of the answer", resp.text()).await.unwrap();
    let ping = body
        .find(": keep-alive")
        .expect("the keep-alive is relayed");
    let result = body
        .find(r#""serverInfo":{"name":"slow""#)
        .expect("the result");
    assert!(ping < result, "{body}");
}

#[tokio::test]
async fn a_quick_answer_comes_with_the_resume_id_event_before_it() {
    let router = axum::Router::new().fallback(|| async {
        let answer = json!({"jsonrpc": "2.0", "id": 1, "result": {"protocolVersion": "2025-06-18",
            "capabilities": {}, "serverInfo": {"name": "quick", "version": "1"}}});
        let body = axum::body::Body::from(format!("id: 0\ndata:\n\nid: 1\ndata: {answer}\n\n"));
        ([("content-type", "text/event-stream")], body)
    });
    let (_pb, resp) = initialize_through(router, support::config()).await;
    assert_eq!(resp.status(), 200);
    let body = within("the answer", resp.text()).await.unwrap();
    assert!(body.starts_with("id: 0\n"), "{body}");
    assert!(body.contains(r#""serverInfo":{"name":"quick""#), "{body}");
}

#[tokio::test]
async fn with_an_open_policy_a_call_without_a_name_is_refused_and_a_named_one_goes_through() {
    let up = upstream::start(Mode::StatelessJson).await;
    let world = World::new();
    world.add("int_1", &up.url(), None, "test");
    world.agent("pba_agent", None);
    let pb = instance(&world, support::config()).await;
    let before = up.state.seen.requests.lock().unwrap().len();
    let resp = raw_post(
        &pb.passthrough_url("int_1"),
        "pba_agent",
        None,
        json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{}}}),
    )
    .await;
    let msgs = messages(resp).await;
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(msgs[0]["id"], json!(1));
    assert_eq!(msgs[0]["error"]["code"], json!(code::INVALID_PARAMS));
    assert_eq!(
        up.state.seen.requests.lock().unwrap().len(),
        before,
        "nothing reached the upstream"
    );
    let resp = raw_post(
        &pb.passthrough_url("int_1"),
        "pba_agent",
        None,
        json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}),
    )
    .await;
    let msgs = messages(resp).await;
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert!(msgs[0].get("result").is_some(), "{msgs:?}");
    assert_eq!(up.state.seen.calls_of("echo"), 1);
    support::eventually("the echo call's audit entry", || {
        world
            .audit()
            .iter()
            .any(|c| c.tool == "echo" && c.outcome == Outcome::Ok)
    })
    .await;
}
