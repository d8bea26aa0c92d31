//! The harness against the real Plugboard router, served on loopback the way the console's tests will serve it
//! (`PLUGBOARD_PUBLIC_URL` set to the loopback origin before the app is built), on the OAuth callback page that
//! exists today: it posts its outcome to the window that opened it, then closes itself.

use std::time::Duration;

use axum::http::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use plugboard_server::testing::{Backend, Db, TestApp};

use crate::harness::{bounded, BoundSite, Browser};

const CALLBACK: &str = "/api/v1/connectors/oauth/callback?state=unknown-state&code=x";

/// A stand-in for the console's page that opens the OAuth popup (the console does not exist yet): same origin as
/// the app, listening for the callback page's `plugboard:oauth` message.
fn opener_page() -> Router {
    const HTML: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Opener</title><script src="/__test/opener.js" defer></script></head>
<body><main><h1>Opener</h1><button type="button">Connect</button><p role="status"></p></main></body></html>"#;
    const JS: &str = r#"'use strict';
const status = document.querySelector('[role=status]');
document.querySelector('button').addEventListener('click', () => {
  window.open(CALLBACK, 'oauth', 'popup,width=520,height=640');
  status.textContent = 'Waiting for the sign-in window…';
});
window.addEventListener('message', (event) => {
  if (event.origin !== window.location.origin || !event.data || event.data.type !== 'plugboard:oauth') return;
  status.textContent = `OAuth finished: ${event.data.status}`;
});"#;
    let js = format!("const CALLBACK = {CALLBACK:?};\n{JS}");
    Router::new()
        .route(
            "/__test/opener",
            get(|| async {
                (
                    [
                        (CONTENT_TYPE, "text/html; charset=utf-8"),
                        (CONTENT_SECURITY_POLICY, "default-src 'self'"),
                    ],
                    HTML,
                )
                    .into_response()
            }),
        )
        .route(
            "/__test/opener.js",
            get(move || async move { ([(CONTENT_TYPE, "text/javascript")], js).into_response() }),
        )
}

#[tokio::test]
async fn the_oauth_callback_page_reports_to_its_opener_and_closes_itself() {
    bounded(Duration::from_secs(60), async {
        let bound = BoundSite::bind().await;
        let origin = bound.origin().to_string();
        let db = Db::new(Backend::Sqlite)
            .await
            .expect("a SQLite test database");
        let app = TestApp::build(db, None, |config| config.public_url = origin).await;
        let site = bound.serve(app.router.clone().merge(opener_page()));
        let b = Browser::start().await;

        // Opened directly (no opener), the page stays: read it, check it, keep a picture.
        b.open(&site.url(CALLBACK)).await;
        b.wait_for_text("This sign-in link is no longer valid")
            .await;
        b.screenshot("1-callback").await;
        b.assert_accessible().await;

        // Opened as a popup, it tells its opener and closes.
        b.open(&site.url("/__test/opener")).await;
        b.click_button("Connect").await;
        let popup = b.switch_to_popup().await;
        b.wait_for_popup_to_close(popup).await;
        assert_eq!(
            b.wait_for_status("OAuth finished").await,
            "OAuth finished: error"
        );
        b.screenshot("2-opener").await;
    })
    .await;
}
