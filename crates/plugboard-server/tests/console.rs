//! The web console's pages, rendered in-process through the real router (the browser tests in
//! `plugboard-browser-tests` drive the same pages in Chromium): who sees what, security headers, escaping of
//! manifest and user values, HTML errors for pages and JSON errors for the API, the static files. Also reports (never
//! asserts) each page's render time and weight. On both backends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use plugboard_catalog::{parse_manifest, Catalog};
use plugboard_server::testing::{test_on_both_backends, Db, TestApp};
use serde_json::json;

test_on_both_backends! {
    signed_out_the_home_page_says_how_to_get_a_sign_in_link => signed_out_home;
    every_page_carries_a_strict_content_security_policy_and_no_inline_script => security_headers;
    a_viewer_sees_no_install_controls_and_a_manager_sees_verify_and_install => install_controls_by_role;
    markup_and_script_in_manifests_and_names_render_as_text => escaping;
    pages_answer_errors_as_pages_and_the_api_answers_json => errors;
    the_integrations_pages_show_status_words_and_the_audit_log_pages => integrations_and_audit;
    pages_render_in_milliseconds_and_weigh_little => render_report;
    signed_in_the_home_page_leads_to_the_first_workspace_or_says_how_to_get_one => signed_in_home;
    the_members_crews_and_tokens_pages_show_controls_by_role => people_pages;
}

async fn signed_in_home(db: Db) {
    let app = TestApp::new(db).await;
    let (_, lonely) = app.user("lonely@example.com").await;
    let html = body(&app.with_token(&lonely).get("/").await);
    assert!(
        html.contains("You are not a member of any workspace yet"),
        "{html}"
    );
    assert!(
        html.contains("<label for=\"workspace-name\">Workspace name</label>"),
        "{html}"
    );
    let team = app.team().await;
    let res = team.owner.get("/").await;
    assert_eq!(res.status, 303);
    assert_eq!(
        res.headers["location"],
        format!("/w/{}/catalog", team.id()).as_str()
    );
}

async fn people_pages(db: Db) {
    let app = TestApp::new(db).await;
    let team = app.team().await;
    let members = format!("/w/{}/members", team.id());
    let crews = format!("/w/{}/crews", team.id());
    let owner_members = body(&team.owner.get(&members).await);
    assert!(
        owner_members.contains(">Add member</button>"),
        "{owner_members}"
    );
    assert!(
        owner_members.contains(">Delete</button>"),
        "{owner_members}"
    );
    let manager = team.as_manager().await;
    let manager_members = body(&manager.get(&members).await);
    assert!(
        !manager_members.contains(">Add member</button>"),
        "{manager_members}"
    );
    let manager_crews = body(&manager.get(&crews).await);
    assert!(
        manager_crews.contains(">Create crew</button>"),
        "managers create crews"
    );
    let viewer = team.as_viewer().await;
    let viewer_crews = body(&viewer.get(&crews).await);
    assert!(
        !viewer_crews.contains(">Create crew</button>"),
        "{viewer_crews}"
    );
    let tokens = body(&viewer.get("/account/tokens").await);
    assert!(tokens.contains(">Create token</button>"), "{tokens}");
    assert!(
        !tokens.contains(viewer.token().unwrap()),
        "a token's secret is never listed"
    );
}

const HOSTILE: &str = r##"
id: hostile
name: "<script>alert('name')</script>Evil"
description: "<img src=x onerror=alert('desc')>"
category: "<b>cat</b>"
brand: {logo: "https://tracker.example/logo.png", color: "#ffffff"}
auth_mode: pat
fields:
  - key: token
    label: "<i>Token</i>"
    type: password
    required: true
    placeholder: "\"><script>alert('ph')</script>"
    help: "Get one [here](javascript:alert('help')) or <script>alert('help2')</script> [docs](https://docs.example.com)"
    validation: {pattern: "^tok_\"><script>"}
  - {key: mode, label: Mode, type: select, choices: ["<a>", "b\"c"]}
mcp: {transport: streamable-http, endpoint: "https://mcp.example.com/mcp", headers: {Authorization: "Bearer ${field.token}"}}
docs:
  setup_md: |
    # Setup
    <script>alert('setup')</script>
    [click](javascript:alert('setup-link')) and [ok](https://example.com/ok)
    <a href="javascript:alert(3)">raw</a>
    ![tracker](https://tracker.example/pixel.png)
"##;

fn hostile_catalog() -> Catalog {
    let github = Catalog::builtin().unwrap().get("github").unwrap().clone();
    Catalog::from_entries(vec![
        github,
        parse_manifest("hostile.yaml", HOSTILE).unwrap(),
    ])
    .unwrap()
}

fn body(res: &plugboard_server::testing::TestResponse) -> String {
    res.text()
}

async fn signed_out_home(db: Db) {
    let app = TestApp::new(db).await;
    let res = app.anonymous().get("/").await;
    assert_eq!(res.status, 200);
    assert!(res.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = body(&res);
    assert!(
        html.contains("plugboard admin login-link --user USER_ID"),
        "{html}"
    );
    assert!(!html.contains("Sign in with"), "no OIDC configured");

    // A page that needs a session sends a signed-out person to the sign-in page.
    let (ws, _) = app.workspace().await;
    let res = app.anonymous().get(&format!("/w/{}/catalog", ws.id)).await;
    assert_eq!(res.status, 303);
    assert_eq!(res.headers["location"], "/");
}

async fn security_headers(db: Db) {
    let app = TestApp::new(db).await;
    let team = app.team().await;
    for path in [
        "/".to_string(),
        format!("/w/{}/catalog", team.id()),
        format!("/w/{}/connectors/github", team.id()),
        format!("/w/{}/integrations", team.id()),
        format!("/w/{}/audit", team.id()),
    ] {
        let res = team.owner.get(&path).await;
        assert!(
            res.status.is_success() || res.status.is_redirection(),
            "{path}: {}",
            res.status
        );
        let csp = res.headers["content-security-policy"].to_str().unwrap();
        for part in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "connect-src 'self'",
        ] {
            assert!(csp.contains(part), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe"), "{path}: {csp}");
        assert_eq!(res.headers["x-frame-options"], "DENY");
        assert_eq!(res.headers["x-content-type-options"], "nosniff");
        assert!(res.headers.contains_key("referrer-policy"));
        let html = body(&res);
        assert!(!html.contains("<script>"), "{path}: an inline script");
        assert!(!html.contains(" style="), "{path}: an inline style");
        assert!(
            !html.contains("src=\"http"),
            "{path}: a third-party resource in {html}"
        );
        assert!(
            !html.contains("stylesheet\" href=\"http"),
            "{path}: a third-party style in {html}"
        );
    }
    // Static files: hashed names, cached for a year.
    let html = body(&team.owner.get(&format!("/w/{}/catalog", team.id())).await);
    let js = html
        .split("src=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert!(
        js.starts_with("/static/console.") && js.ends_with(".js"),
        "{js}"
    );
    let res = app.anonymous().get(js).await;
    assert_eq!(res.status, 200);
    assert_eq!(
        res.headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(res.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert_eq!(app.anonymous().get("/static/console.js").await.status, 404);
}

async fn install_controls_by_role(db: Db) {
    let app = TestApp::new(db).await;
    let team = app.team().await;
    let path = format!("/w/{}/connectors/github", team.id());
    let viewer = team.as_viewer().await;
    let html = body(&viewer.get(&path).await);
    assert!(!html.contains(">Install</button>"), "{html}");
    assert!(!html.contains(">Verify</button>"), "{html}");
    assert!(html.contains("Installing needs the Manager role"), "{html}");
    let manager = team.as_manager().await;
    let html = body(&manager.get(&path).await);
    assert!(
        html.contains(">Install</button>") && html.contains(">Verify</button>"),
        "{html}"
    );
    // The manifest's rules are in the page: the label, required, the pattern as a data attribute.
    assert!(html.contains("<label for=\"field-token\">"), "{html}");
    assert!(html.contains("data-min-length=\"40\""), "{html}");
    assert!(html.contains(" required"), "{html}");
    // The audit log is ADMIN+: a manager gets a page saying so, and no link to it.
    assert!(!html.contains("/audit\""), "{html}");
    let res = manager.get(&format!("/w/{}/audit", team.id())).await;
    assert_eq!(res.status, 403);
    assert!(body(&res).contains("have access to this"));
}

async fn escaping(db: Db) {
    let app = TestApp::with_catalog(db, hostile_catalog()).await;
    let team = app.team().await;
    let catalog = body(&team.owner.get(&format!("/w/{}/catalog", team.id())).await);
    let page = body(
        &team
            .owner
            .get(&format!("/w/{}/connectors/hostile", team.id()))
            .await,
    );
    for html in [&catalog, &page] {
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(!html.contains("<b>cat"), "{html}");
        assert!(!html.to_lowercase().contains("javascript:alert"), "{html}");
        assert!(
            !html.contains("tracker.example"),
            "no third-party request: {html}"
        );
    }
    assert!(
        catalog.contains("&#60;script&#62;alert(&#39;name&#39;)&#60;/script&#62;Evil"),
        "{catalog}"
    );
    assert!(page.contains("&#60;i&#62;Token&#60;/i&#62;"), "{page}");
    assert!(
        page.contains("placeholder=\"&#34;&#62;&#60;script&#62;"),
        "{page}"
    );
    assert!(
        page.contains("data-pattern=\"^tok_&#34;&#62;&#60;script&#62;\""),
        "{page}"
    );
    assert!(
        page.contains("<a href=\"https://example.com/ok\" rel=\"noopener noreferrer\""),
        "{page}"
    );
    assert!(page.contains("<h3>Setup</h3>"), "{page}");

    // A user's names are escaped too.
    let res = team
        .owner
        .post(
            &format!("/api/v1/connectors/github/install?workspace_id={}", team.id()),
            json!({"name": "<script>alert('integration')</script>", "fields": {"token": "ghp_abcdefghijklmnopqrstuvwxyz0123456789"}}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.text());
    let id = res.json()["integration_id"].as_str().unwrap().to_string();
    for path in [
        format!("/w/{}/integrations", team.id()),
        format!("/w/{}/integrations/{id}", team.id()),
    ] {
        let html = body(&team.owner.get(&path).await);
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(
            html.contains("&#60;script&#62;alert(&#39;integration&#39;)&#60;/script&#62;"),
            "{html}"
        );
    }
}

async fn errors(db: Db) {
    let app = TestApp::new(db).await;
    let team = app.team().await;
    // An unknown connector, integration or workspace: pages.
    let res = team
        .owner
        .get(&format!("/w/{}/connectors/nope", team.id()))
        .await;
    assert_eq!(res.status, 404);
    assert!(res.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(body(&res).contains("Not found"));
    let res = team.owner.get("/w/not-a-workspace/catalog").await;
    assert_eq!(res.status, 403);
    assert!(res.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let other = app.team().await;
    let res = team.owner.get(&format!("/w/{}/catalog", other.id())).await;
    assert_eq!(res.status, 403, "a workspace of others");
    let res = team
        .owner
        .get(&format!(
            "/w/{}/integrations/cxxxxxxxxxxxxxxxxxxxxxxx",
            team.id()
        ))
        .await;
    assert_eq!(res.status, 404);
    // An unknown address: a page for a browser, JSON for the API.
    let res = app
        .raw(
            axum::http::Method::GET,
            "/no/such/page",
            None,
            &[("accept", "text/html")],
            None,
        )
        .await;
    assert_eq!(res.status, 404);
    assert!(res.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    app.anonymous().get("/api/v1/nope").await.assert_status(404);
    let res = app
        .raw(
            axum::http::Method::GET,
            "/api/v1/nope",
            None,
            &[("accept", "text/html")],
            None,
        )
        .await;
    res.assert_status(404);
}

async fn integrations_and_audit(db: Db) {
    let app = TestApp::new(db).await;
    let team = app.team().await;
    let list = body(
        &team
            .owner
            .get(&format!("/w/{}/integrations", team.id()))
            .await,
    );
    assert!(
        list.contains("Nothing installed yet"),
        "an empty state that says what to do: {list}"
    );
    let audit = body(&team.owner.get(&format!("/w/{}/audit", team.id())).await);
    assert!(audit.contains("Nothing happened here yet"), "{audit}");

    for n in 0..3 {
        let res = team
            .owner
            .post(
                &format!("/api/v1/connectors/github/install?workspace_id={}", team.id()),
                json!({"name": format!("GitHub {n}"), "fields": {"token": "ghp_abcdefghijklmnopqrstuvwxyz0123456789"}}),
            )
            .await;
        assert_eq!(res.status, 201);
    }
    let res = team
        .owner
        .post(
            &format!(
                "/api/v1/connectors/linear/install?workspace_id={}",
                team.id()
            ),
            json!({}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.text());
    let list = body(
        &team
            .owner
            .get(&format!("/w/{}/integrations", team.id()))
            .await,
    );
    assert!(list.contains("GitHub 2"), "{list}");
    assert!(
        list.contains("<span class=\"status active\">active</span>"),
        "{list}"
    );
    assert!(
        list.contains("<span class=\"status pending_oauth\">pending_oauth</span>"),
        "{list}"
    );

    // The audit log, two entries a page: the same paging as the API.
    let first = body(
        &team
            .owner
            .get(&format!("/w/{}/audit?limit=2", team.id()))
            .await,
    );
    assert!(first.contains("integration.install"), "{first}");
    let older = first
        .split("href=\"")
        .find(|s| s.contains("/audit?before="))
        .expect("a link to older entries")
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    let second = body(&team.owner.get(&format!("{older}&limit=2")).await);
    assert!(second.contains("Newest entries"), "{second}");
    let res = team
        .owner
        .get(&format!("/w/{}/audit?limit=0", team.id()))
        .await;
    assert_eq!(res.status, 400, "the API's own check of `limit`");
}

/// Render times (in-process, through the router, median of 50) and weights of every page, printed for the README.
/// Never asserted: timings depend on the machine.
async fn render_report(db: Db) {
    let app = TestApp::new(db).await;
    let team = app.team().await;
    let res = team
        .owner
        .post(
            &format!(
                "/api/v1/connectors/github/install?workspace_id={}",
                team.id()
            ),
            json!({"fields": {"token": "ghp_abcdefghijklmnopqrstuvwxyz0123456789"}}),
        )
        .await;
    let id = res.json()["integration_id"].as_str().unwrap().to_string();
    let pages = [
        ("sign-in", "/".to_string(), false),
        ("catalog", format!("/w/{}/catalog", team.id()), true),
        (
            "connector (github)",
            format!("/w/{}/connectors/github", team.id()),
            true,
        ),
        (
            "connector (postgres)",
            format!("/w/{}/connectors/postgres", team.id()),
            true,
        ),
        (
            "integrations",
            format!("/w/{}/integrations", team.id()),
            true,
        ),
        (
            "integration",
            format!("/w/{}/integrations/{id}", team.id()),
            true,
        ),
        ("audit log", format!("/w/{}/audit", team.id()), true),
    ];
    let mut report = String::from("\npage | median render (ms) | HTML bytes\n---|---|---\n");
    for (name, path, signed_in) in pages {
        let caller = if signed_in {
            team.owner.clone()
        } else {
            app.anonymous()
        };
        let mut times: Vec<Duration> = Vec::new();
        let mut bytes = 0;
        for _ in 0..50 {
            let start = Instant::now();
            let res = caller.get(&path).await;
            times.push(start.elapsed());
            assert_eq!(res.status, 200, "{path}");
            bytes = res.body.len();
        }
        times.sort();
        report.push_str(&format!(
            "{name} | {:.2} | {bytes}\n",
            times[times.len() / 2].as_secs_f64() * 1000.0
        ));
    }
    let mut assets = 0;
    for name in plugboard_server::assets::names() {
        assets += app
            .anonymous()
            .get(plugboard_server::assets::url(name))
            .await
            .body
            .len();
    }
    report.push_str(&format!(
        "static files (CSS, JS, icon), once | | {assets}\n"
    ));
    println!("{report}");
}
