//! The web console in Chromium, as a person uses it, with only the accessible names the spec fixes: sign in, find
//! GitHub by searching, see the browser refuse an invalid token, verify against a provider on loopback (both
//! outcomes), install, see it in the integrations list, replace its credential, complete a byo_oauth install through
//! the popup, delete; a VIEWER sees no install controls; markup and script in manifests and names never run.
//! axe-core on every page; a screenshot of each under `target/screenshots/`.

use std::time::Duration;

use plugboard_catalog::{parse_manifest, Catalog, Entry};
use plugboard_server::testing::{test_on_both_backends, Backend, Db, TestApp};
use plugboard_store::{Role, UserId};
use serde_json::json;

use crate::harness::{bounded, BoundSite, Browser, Site};
use crate::provider::{Provider, BAD_TOKEN, GOOD_TOKEN, OTHER_GOOD_TOKEN};

test_on_both_backends! {
    a_person_installs_github_and_an_oauth_app_from_the_catalog_and_manages_them => journey;
}

/// GitHub as the built-in catalog has it, its verify call sent to the loopback provider instead of GitHub.
fn github(provider: &Provider) -> Entry {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../catalog/github.yaml"
    ))
    .expect("the built-in GitHub manifest");
    let text = text.replace("https://api.github.com/user", &provider.url("/user"));
    parse_manifest("github.yaml", &text).expect("GitHub manifest")
}

/// A byo_oauth connector whose authorization server is the loopback provider.
fn oauth_app(provider: &Provider) -> Entry {
    let yaml = format!(
        r##"
id: acme-tracker
name: Acme Tracker
description: Tickets and projects from Acme Tracker, with your own OAuth app
category: productivity
brand: {{logo: acme, color: "#7b2ff7"}}
auth_mode: byo_oauth
fields:
  - {{key: client_id, label: Client ID, type: text, required: true, placeholder: "acme-…"}}
  - {{key: client_secret, label: Client secret, type: password, required: true}}
oauth:
  authorization_url: {base}/authorize
  token_url: {base}/token
  scopes: [read, write]
  pkce: true
mcp:
  transport: streamable-http
  endpoint: {base}/mcp
  headers: {{Authorization: "Bearer ${{oauth.access_token}}"}}
docs:
  setup_md: |
    Create an OAuth app in **Acme Tracker → Settings → Developers**, with the redirect URI Plugboard shows.
"##,
        base = provider.site.origin()
    );
    parse_manifest("acme-tracker.yaml", &yaml).expect("OAuth manifest")
}

/// The built-in catalog with GitHub pointed at the provider, plus the OAuth app (and `extra`).
fn catalog(provider: &Provider, extra: Vec<Entry>) -> Catalog {
    let mut entries: Vec<Entry> = Catalog::builtin()
        .expect("built-in catalog")
        .entries()
        .iter()
        .map(|e| {
            if e.id() == "github" {
                github(provider)
            } else {
                e.clone()
            }
        })
        .collect();
    entries.push(oauth_app(provider));
    entries.extend(extra);
    Catalog::from_entries(entries).expect("catalog")
}

/// The app on loopback: its public URL is its own origin (cookies, the Origin check, OAuth redirects), and the
/// egress guard lets it reach the provider on 127.0.0.1.
async fn serve(db: Db, catalog: Catalog) -> (TestApp, Site) {
    let bound = BoundSite::bind().await;
    let origin = bound.origin().to_string();
    let app = TestApp::build(db, Some(catalog), |c| {
        c.public_url = origin;
        c.egress_allow_cidrs = vec!["127.0.0.1/32".parse().unwrap()];
        c.probe_timeout = Duration::from_secs(5);
    })
    .await;
    let site = bound.serve(app.router.clone());
    (app, site)
}

/// Signs the browser in as a person does: opens a one-time sign-in link (as `plugboard admin login-link` prints
/// it), which sets the session cookie and leads to the first workspace.
async fn sign_in(b: &Browser, app: &TestApp, site: &Site, user_id: &UserId) {
    let link = plugboard_server::people::create_sign_in_link(
        &*app.state.store,
        site.origin(),
        user_id,
        plugboard_store::now_ms(),
    )
    .await
    .expect("a sign-in link");
    b.open(&link.url).await;
}

/// Presses Tab until the focused control is named `name` (at most 10 times), as a keyboard user moves on.
async fn tab_to(b: &Browser, name: &str) {
    for _ in 0..10 {
        b.press_tab().await;
        if b.focused_name().await == name {
            return;
        }
    }
    panic!(
        "Tab never reached {name:?}; the focus is on {:?}",
        b.focused_name().await
    );
}

async fn journey(db: Db) {
    bounded(Duration::from_secs(120), async {
        let provider = Provider::start().await;
        let (app, site) = serve(db, catalog(&provider, Vec::new())).await;
        let (ws, owner, token) = app.workspace_with_owner().await;
        let b = Browser::start().await;

        // Signed out: the sign-in page says how to get in.
        b.open(&site.url("/")).await;
        b.wait_for_text("plugboard admin login-link --user USER_ID")
            .await;
        b.screenshot("01-sign-in").await;
        b.assert_accessible().await;

        sign_in(&b, &app, &site, &owner.id).await;
        b.wait_for_path(&format!("/w/{}/catalog", ws.id)).await;
        b.wait_for_text("Catalog").await;

        // A crew first, to install for it.
        b.click_link("Crews").await;
        b.wait_for_text("No crews yet").await;
        b.fill("Crew name", "Platform").await;
        b.click_button("Create crew").await;
        b.wait_for_status("Created the crew.").await;
        b.screenshot("02a-crews").await;
        b.assert_accessible().await;
        b.click_link("Catalog").await;
        b.screenshot("02-catalog").await;
        b.assert_accessible().await;

        // Find GitHub by searching.
        b.fill("Search", "GitHub").await;
        b.wait_for_text("connectors").await;
        assert!(!b.has_link("Slack").await, "the search narrows the catalog");
        b.screenshot("03-catalog-search").await;
        b.click_link("GitHub").await;
        b.wait_for_path(&format!("/w/{}/connectors/github", ws.id))
            .await;
        b.screenshot("04-connector").await;
        b.assert_accessible().await;

        // An invalid token: the browser refuses it, nothing is sent.
        b.fill("Personal access token", "ghp_short").await;
        let refusal = b.validation_message("Personal access token").await;
        assert!(refusal.contains("at least 40 characters"), "{refusal}");
        b.click_button("Install").await;
        b.wait_for_text("Must be at least 40 characters long.")
            .await;
        assert!(
            b.announcements().await.iter().all(|a| a.text.is_empty()),
            "nothing was sent"
        );
        b.screenshot("05-refused").await;

        // Verify: the provider says no, then yes.
        b.fill("Personal access token", BAD_TOKEN).await;
        assert_eq!(b.validation_message("Personal access token").await, "");
        b.click_button("Verify").await;
        let refused = b.wait_for_alert("Bad credentials").await;
        assert!(refused.contains("provider answered 401"), "{refused}");
        b.screenshot("06-verify-refused").await;
        // Keyboard only: from the field, Tab to Verify and press Enter.
        b.fill("Personal access token", GOOD_TOKEN).await;
        tab_to(&b, "Verify").await;
        b.press_enter().await;
        b.wait_for_status("ok").await;
        b.screenshot("07-verify-ok").await;
        b.assert_accessible().await;

        // Install with a name; it shows up in the integrations list, active.
        b.fill("Name", "GitHub (platform team)").await;
        b.select("Install for", "Crew: Platform").await;
        b.click_button("Install").await;
        b.wait_for_status("Installed \u{201c}GitHub (platform team)\u{201d}: active.")
            .await;
        b.screenshot("08-installed").await;
        b.click_link("Integrations").await;
        let row = b.element_containing("tr", "GitHub (platform team)").await;
        let text = row.text().await.unwrap();
        assert!(
            text.contains("active") && text.contains("Crew: Platform"),
            "{text}"
        );
        b.screenshot("09-integrations").await;
        b.assert_accessible().await;

        // Replace the credential (write-only: the field is empty, the stored value is never shown).
        b.click_link("GitHub (platform team)").await;
        b.wait_for_text("Replace credentials").await;
        assert_eq!(b.value_of("Personal access token").await, "");
        assert!(!b.page_text().await.contains(GOOD_TOKEN));
        b.screenshot("10-integration").await;
        b.assert_accessible().await;
        b.fill("Personal access token", OTHER_GOOD_TOKEN).await;
        b.click_button("Save").await;
        b.wait_for_status("credentials replaced").await;
        let integration_id = b.url().await.rsplit('/').next().unwrap().to_string();
        let runtime = app
            .get(
                &format!("/api/v1/integrations/{integration_id}/runtime"),
                Some(&token),
            )
            .await
            .json();
        assert_eq!(
            runtime["mcp"]["headers"]["Authorization"],
            format!("Bearer {OTHER_GOOD_TOKEN}"),
            "the new token is the one stored"
        );
        // Rename and disable with the same Save.
        b.fill("Name", "GitHub (platform)").await;
        b.set_checked("Enabled", false).await;
        b.click_button("Save").await;
        b.wait_for_status("renamed, disabled").await;
        b.screenshot("11-saved").await;

        // byo_oauth: Install opens the provider in a popup; the page notices the callback and shows `active`.
        b.open(&site.url(&format!("/w/{}/catalog", ws.id))).await;
        b.fill("Search", "acme").await;
        b.click_link("Acme Tracker").await;
        b.fill("Client ID", "acme-client-1").await;
        b.fill("Client secret", "acme-secret-1").await;
        assert!(
            !b.has_button("Verify").await,
            "an OAuth connector is checked by signing in"
        );
        b.click_button("Install").await;
        let popup = b.switch_to_popup().await;
        b.wait_for_text("Allow Plugboard to use your Fake Provider account?")
            .await;
        b.click_button("Authorize").await;
        b.wait_for_popup_to_close(popup).await;
        b.wait_for_status("is connected: active").await;
        assert_eq!(provider.pending_codes(), 0, "the code was exchanged");
        b.screenshot("12-oauth-connected").await;

        // Denied in the popup: the page says so (error); Reconnect on the integration's page, allowed this time.
        b.fill("Name", "Acme (second)").await;
        b.click_button("Install").await;
        let popup = b.switch_to_popup().await;
        b.click_button("Deny").await;
        b.wait_for_popup_to_close(popup).await;
        let denied = b.wait_for_alert("is in error").await;
        assert!(denied.contains("access_denied"), "{denied}");
        b.click_link("Open the integration").await;
        b.wait_for_text("Reconnect opens its sign-in").await;
        b.screenshot("13-oauth-error").await;
        b.assert_accessible().await;
        b.click_button("Reconnect").await;
        let popup = b.switch_to_popup().await;
        b.click_button("Authorize").await;
        b.wait_for_popup_to_close(popup).await;
        b.wait_for_status("is connected: active").await;
        b.screenshot("14-reconnected").await;

        // Delete, after the confirmation.
        b.open(&site.url(&format!("/w/{}/integrations", ws.id)))
            .await;
        b.element_containing("tr", "Acme (second)").await;
        b.click_link("GitHub (platform)").await;
        b.click_button("Delete").await;
        let question = b.accept_dialog().await;
        assert!(
            question.contains("Delete \u{201c}GitHub (platform)\u{201d}?"),
            "{question}"
        );
        b.wait_for_path(&format!("/w/{}/integrations", ws.id)).await;
        b.wait_for_text("Acme Tracker").await;
        assert!(!b.page_text().await.contains("GitHub (platform)"));
        b.screenshot("15-after-delete").await;

        // The audit log tells the story.
        b.click_link("Audit log").await;
        b.wait_for_text("integration.delete").await;
        b.screenshot("16-audit").await;
        b.assert_accessible().await;

        // Members: add one, change the role.
        b.click_link("Members").await;
        b.fill("Email", "bob@example.com").await;
        b.select("Role", "Viewer").await;
        b.click_button("Add member").await;
        b.wait_for_status("Added the member.").await;
        b.select("Role of bob@example.com", "Manager").await;
        let row = b.element_containing("tr", "bob@example.com").await;
        b.click_button_within(&row, "Save").await;
        b.wait_for_status("Changed the role of bob@example.com.")
            .await;
        assert_eq!(b.value_of("Role of bob@example.com").await, "MANAGER");
        b.screenshot("17-members").await;
        b.assert_accessible().await;

        // Personal API tokens: created (shown once), then revoked.
        b.click_link("API tokens").await;
        b.fill("Token name", "laptop").await;
        b.click_button("Create token").await;
        b.wait_for_status("Created the token \u{201c}laptop\u{201d}")
            .await;
        let shown = b
            .execute(
                "return document.getElementById('new-token').textContent;",
                vec![],
            )
            .await;
        let new_token = shown.as_str().unwrap().to_string();
        assert!(new_token.starts_with("pb_"), "{new_token}");
        assert_eq!(
            app.get("/api/v1/me", Some(&new_token)).await.status,
            200,
            "the token works"
        );
        b.screenshot("18-token-created").await;
        b.assert_accessible().await;
        b.open(&site.url("/account/tokens")).await;
        assert!(!b.page_text().await.contains(&new_token), "shown only once");
        let row = b.element_containing("tr", "laptop").await;
        b.click_button_within(&row, "Delete").await;
        b.accept_dialog().await;
        b.wait_for_status("Revoked the token laptop.").await;
        // A revocation reaches every cache within a second.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(
            app.get("/api/v1/me", Some(&new_token)).await.status,
            401,
            "revoked"
        );
        b.screenshot("19-tokens").await;

        // Sign out: back to the sign-in page, and the console needs signing in again.
        b.click_button("Sign out").await;
        b.wait_for_text("Sign in to Plugboard").await;
        b.open(&site.url(&format!("/w/{}/catalog", ws.id))).await;
        b.wait_for_path("/").await;
    })
    .await;
}

#[tokio::test]
async fn a_viewer_sees_no_install_or_change_controls() {
    bounded(Duration::from_secs(60), async {
        let provider = Provider::start().await;
        let db = Db::new(Backend::Sqlite)
            .await
            .expect("SQLite test database");
        let (app, site) = serve(db, catalog(&provider, Vec::new())).await;
        let team = app.team().await;
        let installed = team
            .owner
            .post(
                &format!(
                    "/api/v1/connectors/github/install?workspace_id={}",
                    team.id()
                ),
                json!({"fields": {"token": GOOD_TOKEN}}),
            )
            .await
            .json();
        let (viewer, _) = app.member_user(&team.ws, Role::Viewer).await;
        let b = Browser::start().await;
        sign_in(&b, &app, &site, &viewer.id).await;
        b.wait_for_path(&format!("/w/{}/catalog", team.id())).await;
        b.open(&site.url(&format!("/w/{}/connectors/github", team.id())))
            .await;
        b.wait_for_text("Installing needs the Manager role").await;
        for name in ["Install", "Verify", "Connect"] {
            assert!(!b.has_button(name).await, "a viewer sees no {name}");
        }
        assert!(!b.has_field("Personal access token").await);
        b.screenshot("viewer-connector").await;
        b.assert_accessible().await;
        b.open(&site.url(&format!(
            "/w/{}/integrations/{}",
            team.id(),
            installed["integration_id"].as_str().unwrap()
        )))
        .await;
        b.wait_for_text("Changing an integration needs the Manager role")
            .await;
        for name in ["Save", "Delete", "Reconnect"] {
            assert!(!b.has_button(name).await, "a viewer sees no {name}");
        }
        assert!(
            !b.has_link("Audit log").await,
            "the audit log is for admins"
        );
        b.click_link("Members").await;
        b.wait_for_text("Adding people and changing roles needs the Admin role")
            .await;
        for name in ["Add member", "Delete", "Save"] {
            assert!(!b.has_button(name).await, "a viewer sees no {name}");
        }
        b.assert_accessible().await;
        b.click_link("Crews").await;
        b.wait_for_text("A manager of the workspace can create crews")
            .await;
        assert!(!b.has_button("Create crew").await);
        b.screenshot("viewer-integration").await;
        b.assert_accessible().await;
    })
    .await;
}

const HOSTILE: &str = r##"
id: hostile
name: "<script>window.pwned = 'name'</script>Evil <b>tool</b>"
description: "<img src=x onerror=\"window.pwned = 'desc'\">"
category: "<i>cat</i>"
brand: {logo: "https://tracker.invalid/logo.png", color: "#ffffff"}
auth_mode: pat
fields:
  - key: token
    label: "Token <script>window.pwned = 'label'</script>"
    type: password
    required: true
    placeholder: "\"><script>window.pwned = 'placeholder'</script>"
    help: "Get one [here](javascript:window.pwned='help') or <script>window.pwned = 'help2'</script>"
mcp: {transport: streamable-http, endpoint: "https://mcp.invalid/mcp", headers: {Authorization: "Bearer ${field.token}"}}
docs:
  setup_md: |
    # Setup
    <script>window.pwned = 'setup'</script>
    [click me](javascript:window.pwned='setup-link') and [the docs](https://docs.invalid/ok)
    <a href="javascript:window.pwned='raw'">raw link</a>
    ![tracker](https://tracker.invalid/pixel.png)
"##;

#[tokio::test]
async fn markup_and_script_in_manifests_and_names_never_run() {
    bounded(Duration::from_secs(60), async {
        let provider = Provider::start().await;
        let db = Db::new(Backend::Sqlite).await.expect("SQLite test database");
        let hostile = parse_manifest("hostile.yaml", HOSTILE).expect("hostile manifest");
        let posix = parse_manifest("posix.yaml", POSIX).expect("POSIX-class manifest");
        let (app, site) = serve(db, catalog(&provider, vec![hostile, posix])).await;
        let team = app.team().await;
        let res = team
            .owner
            .post(
                &format!("/api/v1/connectors/hostile/install?workspace_id={}", team.id()),
                json!({"name": "<img src=x onerror=\"window.pwned='integration'\"><script>window.pwned='i2'</script>", "fields": {"token": "t"}}),
            )
            .await;
        assert_eq!(res.status, 201, "{}", res.text());
        let owner = team.owner.user_id().await;
        let b = Browser::start().await;
        sign_in(&b, &app, &site, &owner).await;
        b.wait_for_path(&format!("/w/{}/catalog", team.id())).await;
        for (step, path) in [
            ("catalog", format!("/w/{}/catalog?q=evil", team.id())),
            ("connector", format!("/w/{}/connectors/hostile", team.id())),
            ("integrations", format!("/w/{}/integrations", team.id())),
        ] {
            b.open(&site.url(&path)).await;
            b.wait_for_text("Plugboard").await;
            let pwned = b.execute("return window.pwned === undefined ? null : String(window.pwned);", vec![]).await;
            assert_eq!(pwned, serde_json::Value::Null, "script ran on the {step} page");
            b.screenshot(&format!("hostile-{step}")).await;
        }
        // On the connector page: the markup is text, the javascript: links are gone, the https one stays.
        b.open(&site.url(&format!("/w/{}/connectors/hostile", team.id()))).await;
        b.wait_for_text("<script>window.pwned = 'name'</script>Evil <b>tool</b>").await;
        assert!(b.has_field("Token <script>window.pwned = 'label'</script>").await);
        assert!(!b.has_link("here").await && !b.has_link("click me").await && !b.has_link("raw link").await);
        let docs = b.link("the docs (opens in a new tab)").await;
        assert_eq!(docs.attr("rel").await.unwrap().as_deref(), Some("noopener noreferrer"));
        let images = b.execute("return document.querySelectorAll('img[src*=\"invalid\"], img[src=\"x\"]').length;", vec![]).await;
        assert_eq!(images, json!(0), "no image from the manifest is loaded");
        // The browser itself reports no script error and no refused inline script (nothing tried to run).
        let problems: Vec<_> = b
            .console_messages()
            .await
            .into_iter()
            .filter(|m| m.level == "SEVERE")
            .collect();
        assert!(problems.is_empty(), "{problems:?}");
        b.assert_accessible().await;

        // A rule the browser cannot check (a Rust-only pattern): the server's 400 is shown beside the field it names.
        b.open(&site.url(&format!("/w/{}/connectors/posix", team.id()))).await;
        b.fill("Account number", "abc").await;
        assert_eq!(b.validation_message("Account number").await, "", "not checked in the browser");
        b.fill("API key", "key").await;
        b.click_button("Install").await;
        let alert = b.wait_for_alert("Account number: does not match the pattern").await;
        assert!(alert.contains("[[:digit:]]"), "{alert}");
        let beside = b
            .execute("return document.getElementById('field-account-error').textContent;", vec![])
            .await;
        assert!(beside.as_str().unwrap().starts_with("Does not match the pattern"), "{beside}");
        b.screenshot("server-400").await;
    })
    .await;
}

const POSIX: &str = r#"
id: posix
name: Posix Bank
auth_mode: pat
fields:
  - {key: account, label: Account number, type: text, required: true, validation: {pattern: "^[[:digit:]]+$"}}
  - {key: key, label: API key, type: password, required: true}
mcp: {transport: stdio, command: posix-mcp}
"#;

#[tokio::test]
async fn an_mcp_oauth_connector_connects_through_the_popup() {
    bounded(Duration::from_secs(60), async {
        let provider = Provider::start().await;
        let db = Db::new(Backend::Sqlite).await.expect("SQLite test database");
        let remote = parse_manifest(
            "remote.yaml",
            &format!(
                "id: remote-tools\nname: Remote Tools\ndescription: A hosted MCP server that signs you in itself\n\
                 category: utilities\nauth_mode: mcp_oauth\nmcp:\n  transport: streamable-http\n  endpoint: {}/mcp\n\
                 \x20 headers: {{Authorization: \"Bearer ${{oauth.access_token}}\"}}\n",
                provider.site.origin()
            ),
        )
        .expect("mcp_oauth manifest");
        let (app, site) = serve(db, catalog(&provider, vec![remote])).await;
        let (ws, owner, _) = app.workspace_with_owner().await;
        let b = Browser::start().await;
        sign_in(&b, &app, &site, &owner.id).await;
        b.wait_for_path(&format!("/w/{}/catalog", ws.id)).await;
        b.click_link("Remote Tools").await;
        assert!(!b.has_button("Install").await, "mcp_oauth connects in one step");
        b.screenshot("connector").await;
        b.assert_accessible().await;
        b.click_button("Connect").await;
        let popup = b.switch_to_popup().await;
        b.click_button("Authorize").await;
        b.wait_for_popup_to_close(popup).await;
        b.wait_for_status("\u{201c}Remote Tools\u{201d} is connected: active.").await;
        b.screenshot("connected").await;
    })
    .await;
}
