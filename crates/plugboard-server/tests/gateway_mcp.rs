//! The MCP gateway end to end, through HTTP on a served Plugboard: an `rmcp` agent lists and calls tools through
//! `/mcp/i/{id}`, `/mcp/crew/{id}` and `/mcp/workspace/{id}` of integrations made through the API, against `rmcp`
//! MCP servers on loopback that require the integration's bearer token. Policies, token scopes, revocation and
//! expiry, redaction, stdio, audit, metrics and a killed upstream. On both backends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod gateway_support;

use std::time::Duration;

use axum::http::Method;
use gateway_support::agent::{self, error_code, text_of};
use gateway_support::upstream::{self, Cuttable, Mode};
use gateway_support::*;
use plugboard_gateway::jsonrpc::code;
use plugboard_server::testing::{test_on_both_backends, Db};
use plugboard_store::Role;
use serde_json::{json, Value};

test_on_both_backends! {
    an_agent_lists_and_calls_tools_through_every_endpoint_kind_with_the_integrations_credentials => every_kind;
    a_denied_tool_is_not_listed_and_its_call_never_reaches_the_upstream => policy;
    agent_tokens_of_another_crew_or_revoked_or_expired_are_refused_before_mcp => refusals;
    no_credential_of_the_integration_reaches_the_agent => no_credential;
    a_stdio_integration_is_409_not_proxyable_and_left_out_of_the_aggregated_list => stdio;
    a_member_may_use_the_gateway_with_a_personal_token_and_a_viewer_may_not => people;
    every_tools_call_is_audited_as_gateway_call_without_arguments_and_counted_in_the_metrics => audit_and_metrics;
    an_upstream_killed_mid_call_is_a_json_rpc_error_not_a_hang => killed_upstream;
    a_revoked_agent_token_fails_on_another_instance_within_a_second => revoked_elsewhere;
    revoking_an_agent_token_ends_the_event_streams_it_is_still_reading_on_both_endpoint_kinds => revoked_mid_stream;
    removing_a_person_or_disabling_the_integration_ends_the_event_streams_still_open => access_lost_mid_stream;
    a_call_not_yet_answered_when_its_integration_is_disabled_gets_the_refusal_a_new_request_would => disabled_before_answer;
    disabling_an_integration_through_another_instance_ends_the_streams_open_on_this_one => disabled_elsewhere_mid_stream;
    an_integration_disabled_through_one_instance_is_refused_by_another_soon_after => disabled_elsewhere;
    an_aggregated_session_opened_on_one_instance_continues_on_another => session_elsewhere;
    instances_running_together_take_equal_shares_of_each_integrations_bound => shared_bound;
    a_served_instance_is_present_while_it_runs_and_leaves_when_it_stops => presence_while_served;
    a_graceful_stop_writes_the_audit_entries_of_every_call_answered_before_it => audit_written_on_stop;
    a_graceful_stop_ends_the_server_streams_it_relays_instead_of_waiting_for_them => server_streams_end_on_stop;
}

/// A served Plugboard, a workspace with its owner's token, and an upstream requiring `Bearer <secret>`.
struct Setup {
    pb: Served,
    ws: plugboard_store::Workspace,
    owner: String,
    secret: String,
    up: upstream::Upstream,
}

async fn setup(db: Db, mode: Mode) -> Setup {
    let pb = plugboard(db).await;
    let (ws, owner) = pb.app.workspace().await;
    let secret = secret();
    let up = upstream::start_with(mode, Some(format!("Bearer {secret}"))).await;
    Setup {
        pb,
        ws,
        owner,
        secret,
        up,
    }
}

async fn every_kind(db: Db) {
    let s = setup(db, Mode::Sessions).await;
    let app = &s.pb.app;
    let crew = crew(app, &s.owner, &s.ws, "Ops").await;
    let wide = custom_http(app, &s.owner, &s.ws, None, "Docs", &s.up.url(), &s.secret).await;
    let other =
        upstream::start_with(Mode::StatelessJson, Some(format!("Bearer {}", s.secret))).await;
    let crewed = custom_http(
        app,
        &s.owner,
        &s.ws,
        Some(&crew),
        "Ops Tools",
        &other.url(),
        &s.secret,
    )
    .await;
    let (_, token) = agent_token(app, &s.owner, &s.ws, None, None).await;
    let (_, crew_token) = agent_token(app, &s.owner, &s.ws, Some(&crew), None).await;

    // Passthrough: the upstream's own tools, the upstream's session (sealed).
    let a = within("connect", agent::connect(&s.pb.passthrough(&wide), &token)).await;
    let names = a.tool_names().await;
    assert!(names.contains(&"echo".to_string()), "{names:?}");
    let r = a.call("add", json!({"a": 2, "b": 3})).await.unwrap();
    assert_eq!(text_of(&r), "5");
    let sid = a.session_id().unwrap();
    assert!(sid.starts_with("pbs_"), "{sid}");

    // The workspace's aggregated server: both integrations, under their prefixes.
    let w = within(
        "connect",
        agent::connect(&s.pb.workspace(s.ws.id.as_str()), &token),
    )
    .await;
    let names = w.tool_names().await;
    assert!(names.contains(&"docs__echo".to_string()), "{names:?}");
    assert!(names.contains(&"ops-tools__echo".to_string()), "{names:?}");
    let r = w.call("docs__echo", json!({"text": "hi"})).await.unwrap();
    assert_eq!(text_of(&r), "hi");
    let r = w
        .call("ops-tools__add", json!({"a": 1, "b": 1}))
        .await
        .unwrap();
    assert_eq!(text_of(&r), "2");
    assert!(w.session_id().unwrap().starts_with("pbg_"));

    // The crew's: its own integration and the workspace-scoped one, for the crew's token.
    let c = within("connect", agent::connect(&s.pb.crew(&crew), &crew_token)).await;
    let names = c.tool_names().await;
    assert!(
        names.contains(&"docs__echo".to_string()) && names.contains(&"ops-tools__echo".to_string())
    );
    let r = c
        .call("ops-tools__echo", json!({"text": "crew"}))
        .await
        .unwrap();
    assert_eq!(text_of(&r), "crew");
    // The crew's token also reaches its crew's integration directly.
    let p = within(
        "connect",
        agent::connect(&s.pb.passthrough(&crewed), &crew_token),
    )
    .await;
    assert_eq!(
        text_of(&p.call("echo", json!({"text": "x"})).await.unwrap()),
        "x"
    );

    // The upstreams got the integration's credential, never the agent's token or cookie.
    for seen in [&s.up.state.seen, &other.state.seen] {
        let auth = seen.header_values("authorization");
        assert!(!auth.is_empty());
        assert!(
            auth.iter().all(|v| *v == format!("Bearer {}", s.secret)),
            "{auth:?}"
        );
        assert!(seen.header_values("cookie").is_empty());
    }
    for agent in [&a, &w, &c, &p] {
        let _ = agent.service.peer().clone();
    }
}

async fn policy(db: Db) {
    let s = setup(db, Mode::Sessions).await;
    let app = &s.pb.app;
    let id = custom_http(app, &s.owner, &s.ws, None, "Docs", &s.up.url(), &s.secret).await;
    patch(
        app,
        &s.owner,
        &id,
        json!({"tools": {"deny": ["delete_*"]}, "tool_prefix": "docs"}),
    )
    .await;
    let (_, token) = agent_token(app, &s.owner, &s.ws, None, None).await;

    let a = within("connect", agent::connect(&s.pb.passthrough(&id), &token)).await;
    let names = a.tool_names().await;
    assert!(
        !names.contains(&"delete_everything".to_string()),
        "{names:?}"
    );
    assert!(names.contains(&"echo".to_string()));
    let err = a.call("delete_everything", json!({})).await.unwrap_err();
    assert_eq!(error_code(&err), Some(code::TOOL_DENIED as i32), "{err}");
    assert!(
        err.to_string().contains("delete_*"),
        "names the policy: {err}"
    );

    let w = within(
        "connect",
        agent::connect(&s.pb.workspace(s.ws.id.as_str()), &token),
    )
    .await;
    let names = w.tool_names().await;
    assert!(
        !names.contains(&"docs__delete_everything".to_string()),
        "{names:?}"
    );
    let err = w
        .call("docs__delete_everything", json!({}))
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), Some(code::TOOL_DENIED as i32), "{err}");

    // An allow list: only what it names.
    patch(app, &s.owner, &id, json!({"tools": {"allow": ["echo"]}})).await;
    let w = within(
        "connect",
        agent::connect(&s.pb.workspace(s.ws.id.as_str()), &token),
    )
    .await;
    assert_eq!(w.tool_names().await, ["docs__echo"]);
    let err = w
        .call("docs__add", json!({"a": 1, "b": 2}))
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), Some(code::TOOL_DENIED as i32), "{err}");

    assert_eq!(s.up.state.seen.calls_of("delete_everything"), 0);
    assert_eq!(s.up.state.seen.calls_of("add"), 0);
}

async fn refusals(db: Db) {
    let s = setup(db, Mode::Sessions).await;
    let app = &s.pb.app;
    let ops = crew(app, &s.owner, &s.ws, "Ops").await;
    let sales = crew(app, &s.owner, &s.ws, "Sales").await;
    let ops_tool = custom_http(
        app,
        &s.owner,
        &s.ws,
        Some(&ops),
        "Ops",
        &s.up.url(),
        &s.secret,
    )
    .await;
    let (_, sales_token) = agent_token(app, &s.owner, &s.ws, Some(&sales), None).await;
    let (other_ws, other_owner) = app.workspace().await;
    let (_, foreign_token) = agent_token(app, &other_owner, &other_ws, None, None).await;
    let post = |uri: String, token: String| async move { initialize(app, &uri, &token).await };
    let ws = s.ws.id.to_string();
    for (uri, token, status) in [
        (format!("/mcp/i/{ops_tool}"), sales_token.clone(), 403),
        (format!("/mcp/crew/{ops}"), sales_token.clone(), 403),
        (format!("/mcp/i/{ops_tool}"), foreign_token.clone(), 403),
        (format!("/mcp/workspace/{ws}"), foreign_token.clone(), 403),
        (
            format!("/mcp/i/{}", plugboard_store::new_id()),
            sales_token.clone(),
            404,
        ),
        (
            format!("/mcp/crew/{}", plugboard_store::new_id()),
            sales_token.clone(),
            404,
        ),
        (format!("/mcp/i/{ops_tool}"), "pba_unknown".to_string(), 401),
        (format!("/mcp/i/{ops_tool}"), "nonsense".to_string(), 401),
    ] {
        let res = post(uri.clone(), token).await;
        res.assert_status(status);
        if status == 403 {
            assert_eq!(res.json()["code"], "forbidden", "{uri}");
        }
    }
    let res = app
        .raw(
            Method::POST,
            &format!("/mcp/i/{ops_tool}"),
            None,
            &[("host", "127.0.0.1")],
            Some(initialize_body()),
        )
        .await;
    res.assert_status(401);

    // Revoked: refused at once on this instance.
    let (id, token) = agent_token(app, &s.owner, &s.ws, Some(&ops), None).await;
    post(format!("/mcp/i/{ops_tool}"), token.clone())
        .await
        .assert_status(200);
    revoke(app, &s.owner, &id).await;
    post(format!("/mcp/i/{ops_tool}"), token.clone())
        .await
        .assert_status(401);

    // Expired.
    let (_, short) = agent_token(app, &s.owner, &s.ws, None, Some(1)).await;
    post(format!("/mcp/workspace/{ws}"), short.clone())
        .await
        .assert_status(200);
    app.state.clock.advance(Duration::from_secs(2 * 24 * 3600));
    let res = post(format!("/mcp/workspace/{ws}"), short).await;
    res.assert_status(401);
    assert_eq!(res.json()["code"], "token_expired");
    assert!(s.up.state.seen.calls.lock().unwrap().is_empty());
}

async fn no_credential(db: Db) {
    let s = setup(db, Mode::Sessions).await;
    let app = &s.pb.app;
    let id = custom_http(app, &s.owner, &s.ws, None, "Docs", &s.up.url(), &s.secret).await;
    let (_, token) = agent_token(app, &s.owner, &s.ws, None, None).await;
    let a = within("connect", agent::connect(&s.pb.passthrough(&id), &token)).await;
    let r = a.call("whoami", json!({})).await.unwrap();
    let shown = text_of(&r);
    assert!(shown.starts_with("you sent: "), "{shown}");
    assert!(!shown.contains(&s.secret), "{shown}");
    let w = within(
        "connect",
        agent::connect(&s.pb.workspace(s.ws.id.as_str()), &token),
    )
    .await;
    let r = w.call("docs__whoami", json!({})).await.unwrap();
    assert!(!text_of(&r).contains(&s.secret));
    // The token the upstream echoed was the integration's (so redaction, not absence, kept it out).
    assert!(s
        .up
        .state
        .seen
        .header_values("authorization")
        .iter()
        .any(|v| v.contains(&s.secret)));
    for agent in [&a, &w] {
        let received = agent.http.received_text();
        assert!(!received.is_empty());
        assert!(
            !received.contains(&s.secret),
            "the agent received the secret"
        );
    }
}

async fn stdio(db: Db) {
    let s = setup(db, Mode::Sessions).await;
    let app = &s.pb.app;
    let res = app
        .post(
            &format!("/api/v1/integrations?workspace_id={}", s.ws.id),
            Some(&s.owner),
            json!({"name": "Local", "transport": "stdio", "command": "uvx", "args": ["tool"]}),
        )
        .await;
    res.assert_status(201);
    let local = res.json()["integration_id"].as_str().unwrap().to_owned();
    custom_http(app, &s.owner, &s.ws, None, "Docs", &s.up.url(), &s.secret).await;
    let (_, token) = agent_token(app, &s.owner, &s.ws, None, None).await;
    let res = initialize(app, &format!("/mcp/i/{local}"), &token).await;
    res.assert_status(409);
    assert_eq!(res.json()["code"], "not_proxyable");
    let w = within(
        "connect",
        agent::connect(&s.pb.workspace(s.ws.id.as_str()), &token),
    )
    .await;
    let names = w.tool_names().await;
    assert!(names.iter().all(|n| n.starts_with("docs__")), "{names:?}");
}

async fn people(db: Db) {
    let s = setup(db, Mode::Sessions).await;
    let app = &s.pb.app;
    let id = custom_http(app, &s.owner, &s.ws, None, "Docs", &s.up.url(), &s.secret).await;
    let member = app.member(&s.ws, Role::Member).await;
    let viewer = app.member(&s.ws, Role::Viewer).await;
    let a = within("connect", agent::connect(&s.pb.passthrough(&id), &member)).await;
    assert_eq!(
        text_of(&a.call("echo", json!({"text": "m"})).await.unwrap()),
        "m"
    );
    let w = within(
        "connect",
        agent::connect(&s.pb.workspace(s.ws.id.as_str()), &member),
    )
    .await;
    assert_eq!(
        text_of(&w.call("docs__echo", json!({"text": "m"})).await.unwrap()),
        "m"
    );
    for uri in [
        format!("/mcp/i/{id}"),
        format!("/mcp/workspace/{}", s.ws.id),
    ] {
        let res = initialize(app, &uri, &viewer).await;
        res.assert_status(403);
    }
}

/// The workspace's audit entries with this action.
async fn audit_entries(
    app: &plugboard_server::testing::TestApp,
    owner: &str,
    ws: &str,
) -> Vec<Value> {
    let log = app
        .get(
            &format!("/api/v1/audit?workspace_id={ws}&limit=200"),
            Some(owner),
        )
        .await
        .json();
    log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "gateway_call")
        .cloned()
        .collect()
}

async fn audit_and_metrics(db: Db) {
    let s = setup(db, Mode::Sessions).await;
    let app = &s.pb.app;
    let id = custom_http(app, &s.owner, &s.ws, None, "Docs", &s.up.url(), &s.secret).await;
    patch(app, &s.owner, &id, json!({"tools": {"deny": ["delete_*"]}})).await;
    let (token_id, token) = agent_token(app, &s.owner, &s.ws, None, None).await;
    let canary = format!("argument{}", plugboard_store::new_id());
    let a = within("connect", agent::connect(&s.pb.passthrough(&id), &token)).await;
    a.call("echo", json!({"text": canary})).await.unwrap();
    a.call("delete_everything", json!({"why": canary}))
        .await
        .unwrap_err();
    let w = within(
        "connect",
        agent::connect(&s.pb.workspace(s.ws.id.as_str()), &token),
    )
    .await;
    w.call("docs__echo", json!({"text": canary})).await.unwrap();
    let ws = s.ws.id.to_string();
    eventually("three gateway_call entries", || async {
        audit_entries(app, &s.owner, &ws).await.len() >= 3
    })
    .await;
    let entries = audit_entries(app, &s.owner, &ws).await;
    let text = serde_json::to_string(&entries).unwrap();
    assert!(!text.contains(&canary), "no arguments or results: {text}");
    let detail = |e: &Value| -> Value {
        match e["detail"].as_str() {
            Some(s) => serde_json::from_str(s).unwrap(),
            None => e["detail"].clone(),
        }
    };
    let mut seen: Vec<(String, String, String)> = entries
        .iter()
        .map(|e| {
            let d = detail(e);
            assert_eq!(e["target"], id.as_str(), "{e}");
            assert_eq!(d["agent_token_id"], token_id.as_str(), "{e}");
            assert!(d["duration_ms"].is_u64(), "{e}");
            (
                d["tool"].as_str().unwrap().to_owned(),
                d["outcome"].as_str().unwrap().to_owned(),
                d["via"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            (
                "delete_everything".into(),
                "denied".into(),
                "passthrough".into()
            ),
            ("echo".into(), "ok".into(), "passthrough".into()),
            ("echo".into(), "ok".into(), "workspace".into()),
        ]
    );
    let page = app
        .state
        .metrics
        .render(app.state.store.pool_stats())
        .unwrap();
    let count = |outcome: &str| {
        let series =
            format!("plugboard_gateway_calls_total{{integration=\"{id}\",outcome=\"{outcome}\"}} ");
        page.lines()
            .find_map(|l| l.strip_prefix(series.as_str()))
            .map_or(0, |v| v.trim().parse::<u64>().unwrap())
    };
    assert_eq!(count("ok"), 2);
    assert_eq!(count("denied"), 1);
}

async fn killed_upstream(db: Db) {
    let s = setup(db, Mode::Sessions).await;
    let app = &s.pb.app;
    let cut = Cuttable::start(s.up.addr).await;
    let id = custom_http(app, &s.owner, &s.ws, None, "Docs", &cut.url(), &s.secret).await;
    let (_, token) = agent_token(app, &s.owner, &s.ws, None, None).await;
    let a = within("connect", agent::connect(&s.pb.passthrough(&id), &token)).await;
    let call = a.spawn_call("hang", json!({}));
    within("the call starts", s.up.state.seen.wait_started(1)).await;
    cut.kill();
    let err = within("the error after the kill", call)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(error_code(&err), Some(code::UPSTREAM as i32), "{err}");
    assert!(!err.to_string().contains(&s.secret));
}

async fn revoked_elsewhere(db: Db) {
    let s = setup(db, Mode::Sessions).await;
    let other = second_instance(&s.pb).await;
    let app = &s.pb.app;
    let id = custom_http(app, &s.owner, &s.ws, None, "Docs", &s.up.url(), &s.secret).await;
    let (token_id, token) = agent_token(app, &s.owner, &s.ws, None, None).await;
    let uri = format!("/mcp/i/{id}");
    let post = |token: String| {
        let (other, uri) = (&other, &uri);
        async move { initialize(&other.app, uri, &token).await.status.as_u16() }
    };
    assert_eq!(post(token.clone()).await, 200);
    revoke(app, &s.owner, &token_id).await;
    let start = std::time::Instant::now();
    loop {
        if post(token.clone()).await == 401 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "the revocation did not reach the other instance within a second"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn disabled_elsewhere(db: Db) {
    let s = setup(db, Mode::Sessions).await;
    let other = second_instance(&s.pb).await;
    let app = &s.pb.app;
    let id = custom_http(app, &s.owner, &s.ws, None, "Docs", &s.up.url(), &s.secret).await;
    let (_, token) = agent_token(app, &s.owner, &s.ws, None, None).await;
    let uri = format!("/mcp/i/{id}");
    let post = |pb: &'static str| {
        let on = if pb == "other" { &other.app } else { app };
        let (uri, token) = (&uri, &token);
        async move { initialize(on, uri, token).await.status.as_u16() }
    };
    // Both instances have looked the integration up (and remember it).
    assert_eq!(post("this").await, 200);
    assert_eq!(post("other").await, 200);
    patch(app, &s.owner, &id, json!({"enabled": false})).await;
    // The instance that made the change applies it to the very next call.
    assert_eq!(post("this").await, 409);
    // The other one within its access cache's lifetime (one second; the bound here leaves room for a slow machine).
    let start = std::time::Instant::now();
    loop {
        if post("other").await == 409 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the other instance still used the disabled integration after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn session_elsewhere(db: Db) {
    let s = setup(db, Mode::Sessions).await;
    let other = second_instance(&s.pb).await;
    let app = &s.pb.app;
    custom_http(app, &s.owner, &s.ws, None, "Docs", &s.up.url(), &s.secret).await;
    let (_, token) = agent_token(app, &s.owner, &s.ws, None, None).await;
    let (_, another_token) = agent_token(app, &s.owner, &s.ws, None, None).await;
    let path = format!("/mcp/workspace/{}", s.ws.id);
    let a = within("connect", agent::connect(&s.pb.url(&path), &token)).await;
    assert_eq!(
        text_of(&a.call("docs__echo", json!({"text": "one"})).await.unwrap()),
        "one"
    );
    let sid = a.session_id().unwrap();
    assert!(sid.starts_with("pbg_"), "{sid}");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let call = |token: String| {
        let client = client.clone();
        let url = other.url(&path);
        let sid = sid.clone();
        async move {
            client
                .post(url)
                .bearer_auth(token)
                .header("accept", "application/json, text/event-stream")
                .header("content-type", "application/json")
                .header("mcp-session-id", sid)
                .header("mcp-protocol-version", "2025-11-25")
                .body(
                    json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                           "params": {"name": "docs__echo", "arguments": {"text": "two"}}})
                    .to_string(),
                )
                .send()
                .await
                .unwrap()
        }
    };
    let res = within("the call on the second instance", call(token.clone())).await;
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    assert!(body.contains("two"), "{body}");
    assert!(!body.contains(&s.secret));
    // The session belongs to the token that opened it.
    let res = within("another token", call(another_token)).await;
    assert_eq!(res.status(), 404);
}

async fn revoked_mid_stream(db: Db) {
    let s = setup(db, Mode::Sessions).await;
    let app = &s.pb.app;
    let id = custom_http(app, &s.owner, &s.ws, None, "Docs", &s.up.url(), &s.secret).await;
    let (token_id, token) = agent_token(app, &s.owner, &s.ws, None, None).await;
    // A call that never answers through each endpoint kind: its answer is an event stream left open.
    let mut calls = Vec::new();
    let mut agents = Vec::new();
    for (url, name) in [
        (s.pb.passthrough(&id), "hang"),
        (s.pb.workspace(s.ws.id.as_str()), "docs__hang"),
    ] {
        let a = within("connect", agent::connect(&url, &token)).await;
        calls.push(a.spawn_call(name, Value::Null));
        agents.push(a);
    }
    within("both calls start", s.up.state.seen.wait_started(2)).await;
    revoke(app, &s.owner, &token_id).await;
    // Each stream ends (long before the gateway's 60 s timeout): the agent's call fails instead of waiting on.
    for call in calls {
        let ended = within("the stream ends after the revocation", call)
            .await
            .unwrap();
        assert!(ended.is_err(), "{ended:?}");
    }
}

async fn access_lost_mid_stream(db: Db) {
    let s = setup(db, Mode::Sessions).await;
    let app = &s.pb.app;
    let id = custom_http(app, &s.owner, &s.ws, None, "Docs", &s.up.url(), &s.secret).await;
    let (_, token) = agent_token(app, &s.owner, &s.ws, None, None).await;
    let (member, member_token) = app.member_user(&s.ws, Role::Member).await;
    // Calls that never answer: the member's through each endpoint kind, the agent's through the passthrough.
    let hang = |url: String, credential: &str, name: &'static str| {
        let credential = credential.to_owned();
        tokio::spawn(async move {
            let a = agent::connect(&url, &credential).await;
            a.service
                .peer()
                .call_tool(rmcp::model::CallToolRequestParams::new(name))
                .await
        })
    };
    let member_calls = [
        hang(s.pb.passthrough(&id), &member_token, "hang"),
        hang(
            s.pb.workspace(s.ws.id.as_str()),
            &member_token,
            "docs__hang",
        ),
    ];
    let agent_call = hang(s.pb.passthrough(&id), &token, "hang");
    within("the three calls start", s.up.state.seen.wait_started(3)).await;

    // The person leaves the workspace: their streams end (long before the gateway's 60 s timeout)...
    app.request(
        Method::DELETE,
        &format!("/api/v1/workspaces/{}/members/{}", s.ws.id, member.id),
        Some(&s.owner),
        None,
    )
    .await
    .assert_status(204);
    for call in member_calls {
        let ended = within("the member's stream ends", call).await.unwrap();
        assert!(ended.is_err(), "{ended:?}");
    }
    // ...and the agent's, whose access is unchanged, goes on until the integration is disabled.
    assert!(!agent_call.is_finished());
    patch(app, &s.owner, &id, json!({"enabled": false})).await;
    let ended = within("the agent's stream ends", agent_call).await.unwrap();
    assert!(ended.is_err(), "{ended:?}");
}

async fn disabled_before_answer(db: Db) {
    let s = setup(db, Mode::Sessions).await;
    let app = &s.pb.app;
    let id = custom_http(app, &s.owner, &s.ws, None, "Docs", &s.up.url(), &s.secret).await;
    let (_, token) = agent_token(app, &s.owner, &s.ws, None, None).await;
    let uri = format!("/mcp/i/{id}");
    let init = initialize(app, &uri, &token).await;
    init.assert_status(200);
    let session = init.headers["mcp-session-id"].to_str().unwrap().to_owned();
    let send = |body: Value| {
        let (uri, token, session) = (&uri, &token, &session);
        async move {
            app.raw(
                Method::POST,
                uri,
                Some(token),
                &[
                    ("accept", "application/json, text/event-stream"),
                    ("host", "127.0.0.1"),
                    ("mcp-session-id", session),
                    ("mcp-protocol-version", "2025-06-18"),
                ],
                Some(body.to_string().into_bytes()),
            )
            .await
        }
    };
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await
        .assert_status(202);
    // A call whose answer has not started (the upstream sends nothing yet) when the integration is disabled.
    let (answer, ()) = tokio::join!(
        within(
            "the call is refused",
            send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                        "params": {"name": "hang", "arguments": {}}}))
        ),
        async {
            within("the call starts", s.up.state.seen.wait_started(1)).await;
            patch(app, &s.owner, &id, json!({"enabled": false})).await;
        }
    );
    answer.assert_status(409);
    assert_eq!(answer.json()["code"], "integration_disabled");
}

async fn disabled_elsewhere_mid_stream(db: Db) {
    let s = setup(db, Mode::Sessions).await;
    let other = second_instance(&s.pb).await;
    let app = &s.pb.app;
    let id = custom_http(app, &s.owner, &s.ws, None, "Docs", &s.up.url(), &s.secret).await;
    let (_, token) = agent_token(app, &s.owner, &s.ws, None, None).await;
    let a = within("connect", agent::connect(&s.pb.passthrough(&id), &token)).await;
    let call = a.spawn_call("hang", Value::Null);
    within("the call starts", s.up.state.seen.wait_started(1)).await;
    // This instance made no change itself, so it finds out on its periodic access check (every 5 s).
    patch(&other.app, &s.owner, &id, json!({"enabled": false})).await;
    let ended = within("the stream ends", call).await.unwrap();
    assert!(ended.is_err(), "{ended:?}");
}

async fn shared_bound(db: Db) {
    use plugboard_server::gateway_wiring::{gateway, Presence};
    let s = setup(db, Mode::Sessions).await;
    let other = second_instance(&s.pb).await;
    let (one, two) = (&s.pb.app.state, &other.app.state);
    let bound = gateway(one).integration_share().0;
    assert_eq!(bound, 64, "the spec's bound, with one instance");
    let (p1, p2) = (Presence::new(), Presence::new());
    assert_eq!(p1.announce(one).await.unwrap(), 1);
    assert_eq!(p2.announce(two).await.unwrap(), 2);
    assert_eq!(p1.announce(one).await.unwrap(), 2);
    assert_eq!(gateway(one).integration_share(), (32, 2));
    assert_eq!(gateway(two).integration_share(), (32, 2));
    let page = one.metrics.render(one.store.pool_stats()).unwrap();
    assert!(
        page.lines().any(|l| l == "plugboard_gateway_instances 2"),
        "{page}"
    );
    // A third instance that stopped without a word: counted until its presence expires, then not.
    let now = plugboard_store::now_ms();
    let store = &one.store;
    store
        .try_lease("instance:gone", "gone", "serving", now - 60_000, now - 1)
        .await
        .unwrap();
    store
        .try_lease("not-an-instance", "x", "", now, now + 60_000)
        .await
        .unwrap();
    assert_eq!(p1.announce(one).await.unwrap(), 2);
    store
        .try_lease("instance:late", "late", "serving", now, now + 60_000)
        .await
        .unwrap();
    assert_eq!(p1.announce(one).await.unwrap(), 3);
    assert_eq!(gateway(one).integration_share(), (21, 3));
    store.release_lease("instance:late", "late").await.unwrap();

    // The share holds through HTTP: with two instances, one instance sends at most 32 calls at once to an upstream.
    assert_eq!(p2.announce(two).await.unwrap(), 2);
    let id = custom_http(
        &s.pb.app,
        &s.owner,
        &s.ws,
        None,
        "Docs",
        &s.up.url(),
        &s.secret,
    )
    .await;
    let (_, token) = agent_token(&s.pb.app, &s.owner, &s.ws, None, None).await;
    // Three sessions (an rmcp client keeps at most 16 requests of one session in flight).
    let mut agents = Vec::new();
    for _ in 0..3 {
        agents.push(within("connect", agent::connect(&other.passthrough(&id), &token)).await);
    }
    let calls: Vec<_> = (0..33)
        .map(|i| agents[i % 3].spawn_call("slow", json!({"steps": 1})))
        .collect();
    within("32 calls in flight", s.up.state.seen.wait_started(32)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started =
        s.up.state
            .seen
            .started_count
            .load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(started, 32, "the 33rd waits for a slot");
    s.up.state.release_steps(33);
    for c in calls {
        assert!(within("call", c).await.unwrap().is_ok());
    }
}

async fn presence_while_served(db: Db) {
    let scratch = tempfile::tempdir().unwrap();
    let data_dir = db
        .data_dir
        .clone()
        .unwrap_or_else(|| scratch.path().to_path_buf());
    let mut config = plugboard_server::Config::for_tests(data_dir, db.url.clone());
    config.master_key = Some(plugboard_server::testing::test_master_key());
    let state = plugboard_server::App::with_parts(
        config,
        db.store.clone(),
        plugboard_catalog::Catalog::builtin().unwrap(),
    )
    .await
    .unwrap();
    let application = plugboard_server::Application::bind(state).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(application.run_until(async {
        let _ = stopped.await;
    }));
    let present = || async {
        db.store
            .count_leases("instance:", plugboard_store::now_ms())
            .await
            .unwrap()
    };
    eventually("the instance announces itself", || async {
        present().await == 1
    })
    .await;
    let _ = stop.send(());
    within("the server stops", server).await.unwrap().unwrap();
    assert_eq!(present().await, 0, "a graceful stop ends the presence");
}

/// A Plugboard served by `Application::run_until` (as `plugboard serve` runs), with one passthrough integration of
/// an upstream in `mode` and an agent connected to it through the gateway, so a test can stop it gracefully.
struct Stoppable {
    app: plugboard_server::testing::TestApp,
    ws: plugboard_store::Workspace,
    owner: String,
    up: upstream::Upstream,
    agent: agent::Agent,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn stoppable(
    db: Db,
    mode: Mode,
    configure: impl FnOnce(&mut plugboard_server::Config),
) -> Stoppable {
    let app = plugboard_server::testing::TestApp::build(db, None, |c| {
        allow_loopback(c);
        configure(c);
    })
    .await;
    let (ws, owner) = app.workspace().await;
    let secret = secret();
    let up = upstream::start_with(mode, Some(format!("Bearer {secret}"))).await;
    let id = custom_http(&app, &owner, &ws, None, "Docs", &up.url(), &secret).await;
    let (_, token) = agent_token(&app, &owner, &ws, None, None).await;
    let application = plugboard_server::Application::bind(app.state.clone())
        .await
        .unwrap();
    let url = format!("http://127.0.0.1:{}/mcp/i/{id}", application.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(application.run_until(async {
        let _ = stopped.await;
    }));
    let agent = within("connect", agent::connect(&url, &token)).await;
    Stoppable {
        app,
        ws,
        owner,
        up,
        agent,
        stop,
        server,
    }
}

async fn audit_written_on_stop(db: Db) {
    // Without sessions the agent holds no server stream open, which would keep the stop waiting for it.
    let Stoppable {
        app,
        ws,
        owner,
        up,
        agent: a,
        stop,
        server,
    } = stoppable(db, Mode::StatelessJson, |_| {}).await;
    a.call("echo", json!({"text": "before the stop"}))
        .await
        .unwrap();
    // A call still running when the stop comes, answered only once the server has stopped taking requests and is
    // waiting for the last ones (after its half-second linger): its entry is recorded moments before the process
    // would exit.
    let slow = a.spawn_call("slow", json!({"steps": 1}));
    within("the slow call starts", up.state.seen.wait_started(1)).await;
    let _ = stop.send(());
    tokio::time::sleep(Duration::from_millis(800)).await;
    up.state.release_steps(1);
    within("the slow call", slow).await.unwrap().unwrap();
    drop(a);
    within("the server stops", server).await.unwrap().unwrap();
    // Read at once, not eventually: the entries are written (batched, a little after each call) before the server
    // has stopped.
    let mut tools: Vec<String> = audit_entries(&app, &owner, ws.id.as_str())
        .await
        .iter()
        .map(|e| {
            let d: Value = match e["detail"].as_str() {
                Some(text) => serde_json::from_str(text).unwrap(),
                None => e["detail"].clone(),
            };
            d["tool"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    tools.sort();
    assert_eq!(tools, ["echo", "slow"]);
}

async fn server_streams_end_on_stop(db: Db) {
    // With sessions, the agent's client keeps the server's stream (a GET) open through the gateway. A drain deadline
    // (probe timeout + 20 s) far beyond `within`'s 30 s: a stop that waited for that stream would hang past it.
    let Stoppable {
        up,
        agent: a,
        stop,
        server,
        ..
    } = stoppable(db, Mode::Sessions, |c| {
        c.probe_timeout = Duration::from_secs(60)
    })
    .await;
    a.call("echo", json!({"text": "hello"})).await.unwrap();
    eventually("the agent's server stream is open", || async {
        // The GET: the request of the session without a body.
        up.state
            .seen
            .requests
            .lock()
            .unwrap()
            .iter()
            .any(|h| h.contains_key("mcp-session-id") && !h.contains_key("content-type"))
    })
    .await;
    let _ = stop.send(());
    within("the server stops", server).await.unwrap().unwrap();
    drop(a);
}
