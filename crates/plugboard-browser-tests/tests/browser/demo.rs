//! Proves the harness on a two-page demo site served with the console's security headers: a form filled by label,
//! a button clicked by name, a popup that reports back to its opener, a status region, screenshots, and axe-core
//! (on a clean page, and on a page broken on purpose).

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use axum::http::header::{
    CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::FutureExt;

use crate::harness::chrome::locate_tools;
use crate::harness::{self, bounded, describe_violations, serious_or_critical, Browser, Site};

const CSP: &str = "default-src 'self'; script-src 'self'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, content_type),
            (CONTENT_SECURITY_POLICY, CSP),
            (X_FRAME_OPTIONS, "DENY"),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

fn demo_site() -> Router {
    const HTML: &str = "text/html; charset=utf-8";
    Router::new()
        .route(
            "/",
            get(|| async { asset(HTML, include_str!("demo_site/index.html")) }),
        )
        .route(
            "/popup",
            get(|| async { asset(HTML, include_str!("demo_site/popup.html")) }),
        )
        .route(
            "/broken",
            get(|| async { asset(HTML, include_str!("demo_site/broken.html")) }),
        )
        .route(
            "/list",
            get(|| async { asset(HTML, include_str!("demo_site/list.html")) }),
        )
        .route(
            "/list.js",
            get(|| async { asset("text/javascript", include_str!("demo_site/list.js")) }),
        )
        .route(
            "/demo.js",
            get(|| async { asset("text/javascript", include_str!("demo_site/demo.js")) }),
        )
        .route(
            "/popup.js",
            get(|| async { asset("text/javascript", include_str!("demo_site/popup.js")) }),
        )
        .route(
            "/demo.css",
            get(|| async { asset("text/css", include_str!("demo_site/demo.css")) }),
        )
}

const LIMIT: Duration = Duration::from_secs(60);

/// Runs a step expected to fail the test, and returns its panic message.
async fn panic_message(step: impl std::future::Future) -> String {
    match AssertUnwindSafe(step).catch_unwind().await {
        Ok(_) => panic!("the step passed, but it should have failed the test"),
        Err(panic) => match panic.downcast::<String>() {
            Ok(message) => *message,
            Err(panic) => panic
                .downcast::<&str>()
                .map(|s| s.to_string())
                .unwrap_or_default(),
        },
    }
}

#[tokio::test]
async fn a_person_fills_the_form_by_label_completes_the_popup_and_hears_the_outcome() {
    bounded(LIMIT, async {
        let site = Site::serve(demo_site()).await;
        let b = Browser::start().await;

        b.open(&site.url("/")).await;
        b.screenshot("1-form").await;
        b.assert_accessible().await;

        // The page's CSP is in force (its inline script was refused), and axe ran all the same.
        let said: Vec<String> = b.announcements().await.into_iter().map(|a| a.text).collect();
        assert!(said.iter().all(|t| t.is_empty()), "the inline script ran: {said:?}");
        let console = b.console_messages().await;
        assert!(
            console
                .iter()
                .any(|m| m.level == "SEVERE" && m.message.contains("Content Security Policy")),
            "Chromium reported no CSP refusal: {console:?}"
        );

        // The browser refuses a token shorter than the form allows, and nothing is announced.
        b.fill("Display name", "Ada Lovelace").await;
        b.fill("Access token", "short").await;
        b.click_button("Save").await;
        assert!(!b.validation_message("Access token").await.is_empty());
        assert!(b.announcements().await.iter().all(|a| a.text.is_empty()));
        b.screenshot("2-refused").await;

        b.fill("Access token", "a-long-enough-token").await;
        b.select("Scope", "Crew").await;
        assert_eq!(b.validation_message("Access token").await, "");
        b.click_button("Save").await;
        assert_eq!(
            b.wait_for_status("Saved Ada").await,
            "Saved Ada Lovelace (Crew scope)."
        );
        b.screenshot("3-saved").await;

        // The popup: switch to it, act in it, and come back when it closes itself.
        b.click_button("Connect").await;
        let popup = b.switch_to_popup().await;
        b.wait_for_text("asks to read your profile").await;
        b.screenshot("4-popup").await;
        b.assert_accessible().await;
        b.click_button("Allow").await;
        b.wait_for_popup_to_close(popup).await;
        assert_eq!(b.wait_for_status("Connected").await, "Connected as ada.");
        let shot = b.screenshot("5-connected").await;

        let png = std::fs::read(&shot).expect("the screenshot file");
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{} is not a PNG", shot.display());
        assert!(shot.ends_with(
            "demo.a_person_fills_the_form_by_label_completes_the_popup_and_hears_the_outcome-5-connected.png"
        ));
    })
    .await;
}

#[tokio::test]
async fn axe_reports_an_unlabelled_input_and_low_contrast_text() {
    bounded(LIMIT, async {
        let site = Site::serve(demo_site()).await;
        let b = Browser::start().await;
        b.open(&site.url("/broken")).await;
        b.screenshot("broken").await;

        let serious = serious_or_critical(&b.axe_violations().await);
        let label = serious
            .iter()
            .find(|v| v.id == "label")
            .unwrap_or_else(|| panic!("axe missed the unlabelled input: {serious:#?}"));
        assert_eq!(label.impact.as_deref(), Some("critical"));
        assert!(
            label.nodes.iter().any(|n| n.selector() == "#nickname"),
            "{label:#?}"
        );
        let contrast = serious
            .iter()
            .find(|v| v.id == "color-contrast")
            .unwrap_or_else(|| panic!("axe missed the low contrast: {serious:#?}"));
        assert_eq!(contrast.impact.as_deref(), Some("serious"));
        assert!(
            contrast
                .nodes
                .iter()
                .any(|n| n.html.contains("class=\"faint\"")),
            "{contrast:#?}"
        );

        // assert_accessible fails the test with every violation listed.
        let message = panic_message(b.assert_accessible()).await;
        assert_eq!(message, describe_violations(&site.url("/broken"), &serious));
        for expected in [
            "label (critical): Form elements must have labels",
            "#nickname:",
            "color-contrast (serious)",
            "Fix any of the following: Element has insufficient color contrast of 1.42",
        ] {
            assert!(
                message.contains(expected),
                "{expected:?} is not in:\n{message}"
            );
        }

        // A person cannot find the unlabelled input by a name, and neither can the harness.
        assert!(!b.has_field("nickname").await);
    })
    .await;
}

#[tokio::test]
async fn a_repeated_button_name_is_scoped_to_its_row_and_the_confirmation_accepted() {
    bounded(LIMIT, async {
        let site = Site::serve(demo_site()).await;
        let mut b = Browser::start().await;
        b.open(&site.url("/list")).await;
        b.screenshot("1-list").await;
        b.assert_accessible().await;

        // Two buttons are named Delete: the harness will not guess which one a person meant.
        b.set_wait(Duration::from_millis(300));
        let message = panic_message(b.click_button("Delete")).await;
        assert!(
            message.contains(
                "2 visible buttons are named \"Delete\"; scope the search with button_within"
            ),
            "{message}"
        );
        // A control named by aria-label alone is refused: the spec wants a <label>.
        let message = panic_message(b.field("Filter")).await;
        assert!(
            message.contains("The form control named \"Filter\" has no <label>"),
            "{message}"
        );
        assert!(!b.has_field("Filter").await);
        assert!(b.has_field("Search accounts").await);
        b.set_wait(harness::DEFAULT_WAIT);

        // Keyboard: from the search box, Tab reaches the next control and then Ada's Delete.
        b.field("Search accounts")
            .await
            .click()
            .await
            .expect("focus the search box");
        b.press_tab().await;
        assert_eq!(b.focused_name().await, "Filter");
        b.press_tab().await;
        assert_eq!(b.focused_name().await, "Delete");

        let row = b.element_containing("li", "Bob").await;
        b.click_button_within(&row, "Delete").await;
        assert_eq!(b.accept_dialog().await, "Delete Bob?");
        assert_eq!(b.wait_for_status("Deleted").await, "Deleted Bob.");
        let rows = b
            .execute(
                "return [...document.querySelectorAll('li')].map(li => li.innerText);",
                vec![],
            )
            .await;
        assert_eq!(rows, serde_json::json!(["Ada Delete"]));
        b.screenshot("2-deleted").await;
    })
    .await;
}

#[test]
fn a_missing_browser_names_the_apt_packages_to_install() {
    let nowhere = |name: &str| (name == "PATH").then(|| "/nonexistent-plugboard-bin".into());
    let message = locate_tools(&nowhere).expect_err("nothing to find");
    assert!(message.contains("`chromium` is not on PATH"), "{message}");
    assert!(
        message.contains("`chromedriver` is not on PATH"),
        "{message}"
    );
    assert!(
        message.contains("apt-get install -y chromium chromium-driver"),
        "{message}"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("chromium"), "").expect("fake chromium file");
    let only_chromium = |name: &str| match name {
        "PATH" => Some(dir.path().as_os_str().to_owned()),
        "PLUGBOARD_CHROMEDRIVER" => Some("/nonexistent-plugboard-bin/chromedriver".into()),
        _ => None,
    };
    let message = locate_tools(&only_chromium).expect_err("no chromedriver");
    assert!(!message.contains("`chromium`"), "{message}");
    assert!(
        message.contains(
            "PLUGBOARD_CHROMEDRIVER=/nonexistent-plugboard-bin/chromedriver does not exist"
        ),
        "{message}"
    );
    assert!(message.contains("chromium-driver"), "{message}");
}
