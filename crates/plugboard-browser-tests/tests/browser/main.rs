//! The browser tests: one test binary, so the harness and the server link once. Add a module per page or journey
//! (`mod console_signin;` ...). Run with `cargo test -p plugboard-browser-tests`; screenshots land in
//! `target/screenshots/`. Needs Debian's `chromium` and `chromium-driver`, and Node.js with npm for axe-core.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod console;
mod console_agent_tokens;
mod demo;
mod harness;
mod provider;
mod real_server;
