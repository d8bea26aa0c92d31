//! The browser-test harness: a headless Chromium per test, driven over WebDriver (`fantoccini`), with helpers that
//! find things the way a person does (by the text of a label, the name of a button, the words in a status region),
//! popup windows, screenshots under `target/screenshots/`, and axe-core in the page. See `docs/testing.md`.
//!
//! Every helper panics with a message that says what it looked for, what the page had instead, and the page's URL:
//! a browser test reads like a person's steps, and its failure like a bug report.

#![allow(dead_code)] // each test module uses a different part of the harness

mod axe;
pub mod chrome;
mod commands;
mod find;
mod site;

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::wd::{Capabilities, WindowHandle};
use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value as Json};
use tempfile::TempDir;

// The harness's whole API, whichever parts the current tests use.
#[allow(unused_imports)]
pub use axe::{describe_violations, serious_or_critical, Violation, ViolationNode};
#[allow(unused_imports)]
pub use find::Announcement;
#[allow(unused_imports)]
pub use site::{BoundSite, Site};

use chrome::{Driver, CHROMIUM_FLAGS};

/// How long a helper waits for something to appear (an element, a status text, a popup) before failing.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(5);

/// Runs `test` and fails if it takes longer than `limit` (the browser is dropped, and cleaned up, either way):
/// a hung page fails one test instead of the suite.
pub async fn bounded(limit: Duration, test: impl Future<Output = ()>) {
    if tokio::time::timeout(limit, test).await.is_err() {
        panic!("the browser test took longer than {limit:?}");
    }
}

/// A headless Chromium for one test. Dropping it ends the session, stops ChromeDriver and removes the profile,
/// also when the test panics.
pub struct Browser {
    client: Client,
    session_id: String,
    main_window: WindowHandle,
    test_name: String,
    wait: Duration,
    driver: Driver,
    profile: TempDir,
}

/// A popup window opened by the page (`window.open`), e.g. an OAuth authorization window.
#[derive(Debug, Clone)]
pub struct Popup {
    pub handle: WindowHandle,
}

impl Browser {
    /// Starts ChromeDriver and a fresh headless Chromium (new profile). Screenshots are named after the current
    /// test (the test thread's name). Panics, saying which apt packages to install, when Chromium or ChromeDriver
    /// is missing.
    pub async fn start() -> Browser {
        // The test's path (`demo::a_person_fills_…`, or `…::sqlite` under test_on_both_backends), `::` as `.`.
        let name = std::thread::current()
            .name()
            .unwrap_or("browser")
            .replace("::", ".");
        Browser::start_named(&name).await
    }

    /// As [`Browser::start`], with the name used for screenshots given explicitly.
    pub async fn start_named(test_name: &str) -> Browser {
        let tools = chrome::tools();
        let profile = tempfile::Builder::new()
            .prefix("plugboard-chromium-")
            .tempdir()
            .expect("a temporary Chromium profile");
        let driver = Driver::start(&tools.chromedriver, profile.path()).await;
        let user_data_dir = profile.path().join("profile");

        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", user_data_dir.display()));
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": tools.chromium,
                "args": args,
            },
            "goog:loggingPrefs": { "browser": "ALL" },
            "timeouts": { "implicit": 0, "pageLoad": 20_000, "script": 20_000 },
        });
        let caps: Capabilities = match caps {
            Json::Object(map) => map,
            _ => unreachable!("capabilities are an object"),
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .unwrap_or_else(|e| {
                chrome::kill_leftover_chromium(&user_data_dir);
                panic!(
                    "Chromium ({}) did not start under ChromeDriver ({}): {e}\nChromeDriver's log:\n{}\n\
                     Chromium and ChromeDriver must come from the same release: `apt-get install -y {}`.",
                    tools.chromium.display(),
                    tools.chromedriver.display(),
                    driver.log_tail(),
                    chrome::APT_PACKAGES
                )
            });
        // The harness ends the session itself (in Drop, blocking), so fantoccini must not try again later.
        client.persist().await.expect("persist the session");
        let session_id = client
            .session_id()
            .await
            .ok()
            .flatten()
            .expect("a WebDriver session id");
        let main_window = client.window().await.expect("the main window");
        Browser {
            client,
            session_id,
            main_window,
            test_name: sanitize(test_name),
            wait: DEFAULT_WAIT,
            driver,
            profile,
        }
    }

    /// The WebDriver client, for anything the helpers do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Changes how long helpers wait for things to appear (default [`DEFAULT_WAIT`]).
    pub fn set_wait(&mut self, wait: Duration) {
        self.wait = wait;
    }

    /// Opens `url` in the current window and waits for it to load (a sign-in link, a console page, ...).
    pub async fn open(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    }

    /// The current page's URL.
    pub async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_else(|e| format!("(unknown URL: {e})"))
    }

    pub async fn title(&self) -> String {
        self.client.title().await.expect("page title")
    }

    /// The page's visible text (`document.body.innerText`).
    pub async fn page_text(&self) -> String {
        self.execute(
            "return document.body ? document.body.innerText : '';",
            vec![],
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Waits until the page's visible text contains `text`.
    pub async fn wait_for_text(&self, text: &str) {
        let found = self
            .poll(|| async move { self.page_text().await.contains(text).then_some(()) })
            .await;
        if found.is_none() {
            panic!(
                "The page at {} never showed {text:?} within {:?}. It shows:\n{}",
                self.url().await,
                self.wait,
                self.page_text().await
            );
        }
    }

    /// Waits until the current URL's path is `path` (after a redirect or a navigation by the page).
    pub async fn wait_for_path(&self, path: &str) {
        let found = self
            .poll(|| async move {
                let url = self.client.current_url().await.ok()?;
                (url.path() == path).then_some(())
            })
            .await;
        if found.is_none() {
            panic!(
                "The browser never reached the path {path} within {:?}; it is at {}",
                self.wait,
                self.url().await
            );
        }
    }

    /// Runs JavaScript in the page (WebDriver "Execute Script": the page's CSP does not apply to it); `arguments`
    /// holds `args`. Panics with the script's error.
    pub async fn execute(&self, script: &str, args: Vec<Json>) -> Json {
        match self.client.execute(script, args).await {
            Ok(value) => value,
            Err(e) => panic!("script failed in the page at {}: {e}", self.url().await),
        }
    }

    /// Saves a PNG of the whole current page (beyond the viewport) to `target/screenshots/<test>-<step>.png` and
    /// returns its path. Taken in memory (DevTools `Page.captureScreenshot`), then written once.
    pub async fn screenshot(&self, step: &str) -> PathBuf {
        let png = self.full_page_png().await;
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let path = dir.join(format!("{}-{}.png", self.test_name, sanitize(step)));
        std::fs::write(&path, png)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// A PNG of the current page, as bytes.
    pub async fn full_page_png(&self) -> Vec<u8> {
        if let Some(png) = self.full_page_png_cdp().await {
            return png;
        }
        // The viewport only, the WebDriver way.
        match self.client.screenshot().await {
            Ok(png) => png,
            Err(e) => panic!("cannot take a screenshot of {}: {e}", self.url().await),
        }
    }

    // ----- windows -----

    /// Waits for a popup window (any window but the test's main one), switches to it and returns it. Call it after
    /// the click that opens the popup.
    pub async fn switch_to_popup(&self) -> Popup {
        let main = &self.main_window;
        let handle = self
            .poll(|| async move {
                let windows = self.client.windows().await.ok()?;
                windows.into_iter().find(|w| w != main)
            })
            .await;
        let Some(handle) = handle else {
            panic!(
                "No popup window opened within {:?} (the page is {}). Was the click a user gesture, and did \
                 window.open return null?",
                self.wait,
                self.url().await
            );
        };
        self.client
            .switch_to_window(handle.clone())
            .await
            .expect("switch to the popup");
        Popup { handle }
    }

    /// Waits until `popup` has closed itself (e.g. the OAuth callback page posts to its opener and closes), then
    /// switches back to the main window.
    pub async fn wait_for_popup_to_close(&self, popup: Popup) {
        let handle = &popup.handle;
        let closed = self
            .poll(|| async move {
                let windows = self.client.windows().await.ok()?;
                (!windows.contains(handle)).then_some(())
            })
            .await;
        if closed.is_none() {
            let url = self.url().await;
            panic!(
                "The popup window did not close within {:?}; it shows {url}:\n{}",
                self.wait,
                self.page_text().await
            );
        }
        self.switch_to_main().await;
    }

    /// Closes the current popup window (as a person closing it) and switches back to the main window.
    pub async fn close_popup(&self, popup: Popup) {
        self.client
            .switch_to_window(popup.handle)
            .await
            .expect("switch to the popup");
        self.client.close_window().await.expect("close the popup");
        self.switch_to_main().await;
    }

    /// Switches back to the test's main window.
    pub async fn switch_to_main(&self) {
        self.client
            .switch_to_window(self.main_window.clone())
            .await
            .expect("switch to the main window");
    }

    // ----- dialogs -----

    /// Accepts a `window.confirm`/`alert` dialog that the page opened (e.g. "Delete this integration?") and
    /// returns its text. Waits for it to appear.
    pub async fn accept_dialog(&self) -> String {
        let text = self
            .poll(|| async move { self.client.get_alert_text().await.ok() })
            .await
            .unwrap_or_else(|| panic!("No dialog opened within {:?}", self.wait));
        self.client.accept_alert().await.expect("accept the dialog");
        text
    }

    /// Dismisses (cancels) an open dialog and returns its text.
    pub async fn dismiss_dialog(&self) -> String {
        let text = self
            .poll(|| async move { self.client.get_alert_text().await.ok() })
            .await
            .unwrap_or_else(|| panic!("No dialog opened within {:?}", self.wait));
        self.client
            .dismiss_alert()
            .await
            .expect("dismiss the dialog");
        text
    }

    // ----- the browser's console -----

    /// The browser console's messages since the last call (CSP violations and script errors show up here, at
    /// level `SEVERE`).
    pub async fn console_messages(&self) -> Vec<ConsoleMessage> {
        let value = self
            .command(commands::Raw::post("se/log", json!({ "type": "browser" })))
            .await;
        serde_json::from_value(value).unwrap_or_default()
    }

    // ----- internals -----

    /// Calls `check` every 50 ms until it returns `Some`, for at most the harness's wait.
    pub(crate) async fn poll<T, F, Fut>(&self, mut check: F) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let started = Instant::now();
        loop {
            if let Some(value) = check().await {
                return Some(value);
            }
            if started.elapsed() >= self.wait {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) async fn command(&self, cmd: commands::Raw) -> Json {
        let what = format!("{cmd:?}");
        self.client
            .issue_cmd(cmd)
            .await
            .unwrap_or_else(|e| panic!("WebDriver command {what} failed: {e}"))
    }

    /// Sends a DevTools protocol command to the page's target through ChromeDriver (`goog/cdp/execute`).
    pub async fn cdp(&self, method: &str, params: Json) -> Result<Json, String> {
        self.client
            .issue_cmd(commands::Raw::post(
                "goog/cdp/execute",
                json!({ "cmd": method, "params": params }),
            ))
            .await
            .map_err(|e| e.to_string())
    }

    async fn full_page_png_cdp(&self) -> Option<Vec<u8>> {
        let metrics = self.cdp("Page.getLayoutMetrics", json!({})).await.ok()?;
        let size = &metrics["cssContentSize"];
        let width = size["width"].as_f64()?.ceil().max(1.0);
        // Bounded, so an endless page cannot make a huge file.
        let height = size["height"].as_f64()?.ceil().clamp(1.0, 8000.0);
        let shot = self
            .cdp(
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": { "x": 0, "y": 0, "width": width, "height": height, "scale": 1 },
                }),
            )
            .await
            .ok()?;
        commands::decode_base64(shot["data"].as_str()?)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.driver.delete_session(&self.session_id);
        self.driver.kill();
        chrome::kill_leftover_chromium(&self.profile.path().join("profile"));
    }
}

/// One message of the browser's console.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ConsoleMessage {
    pub level: String,
    pub message: String,
}

/// `target/screenshots`: the workspace's target directory is the nearest ancestor of the test binary holding
/// Cargo's `CACHEDIR.TAG` (so a custom `CARGO_TARGET_DIR` works too).
pub fn screenshots_dir() -> PathBuf {
    let from_exe = std::env::current_exe().ok().and_then(|exe| {
        exe.ancestors()
            .find(|dir| dir.join("CACHEDIR.TAG").is_file())
            .map(|dir| dir.to_path_buf())
    });
    from_exe
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
        .join("screenshots")
}

/// A file-name-safe version of `s`.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Reads the element reference out of a value returned by a script (`return someElement;`).
pub(crate) fn element_from_json(client: &Client, value: &Json) -> Option<Element> {
    const KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
    let id = value.get(KEY)?.as_str()?;
    Some(Element::from_element_id(
        client.clone(),
        id.to_string().into(),
    ))
}
