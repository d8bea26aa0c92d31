//! Browser tests of the web console, in headless Chromium driven over WebDriver.
//!
//! This library is empty on purpose: the harness and the tests live under `tests/browser/` (one test binary,
//! `cargo test -p plugboard-browser-tests`), and every dependency is a dev-dependency, so building the workspace
//! never compiles the WebDriver client. See `docs/testing.md` for how to write a browser test.
