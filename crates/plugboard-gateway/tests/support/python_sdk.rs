//! An MCP server built with the official Python SDK (`python_sdk/server.py`, the SDK pinned by
//! `python_sdk/requirements.txt`): installed with pip into a virtual environment under the test target folder on
//! first use, then started per test over streamable HTTP on a port of 127.0.0.1 it picks, accepting only the bearer token it is given or
//! the access tokens an OAuth authorization server says are active.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::install::{self, Server};

/// Found from either crate whose tests use it (the server's include this file by path).
fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugboard-gateway/tests/support/python_sdk")
}

fn python(venv: &Path) -> PathBuf {
    venv.join("bin/python")
}

/// The virtual environment with the SDK, made first when needed.
fn installed() -> PathBuf {
    let requirements = source_dir().join("requirements.txt");
    install::once(
        "python-mcp-sdk",
        &requirements,
        |dir| dir.join("ready").exists(),
        |work| {
            install::run(
                Command::new("python3").args(["-m", "venv"]).arg(work),
                "python3 -m venv (Python 3.10 or newer with venv must be installed: apt-get install \
                 python3-venv)",
            );
            install::run(
                Command::new(python(work))
                    .args([
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "--disable-pip-version-check",
                        "--no-deps",
                        "--only-binary=:all:",
                        "-r",
                    ])
                    .arg(&requirements),
                "pip install of the MCP Python SDK",
            );
            std::fs::write(work.join("ready"), b"").expect("mark the environment ready");
        },
    )
}

/// Starts the server; it accepts only `Authorization: Bearer {token}`.
pub async fn start(token: &str) -> Server {
    start_with(&["token", token]).await
}

/// The SDK's streamable-HTTP flavours (see `server.py`, `MCP_TEST_HTTP`).
pub const FLAVOURS: [&str; 3] = ["sessions", "json", "stateless"];

/// Starts the server in one of the [`FLAVOURS`]; it accepts only `Authorization: Bearer {token}`.
pub async fn start_flavour(token: &str, flavour: &str) -> Server {
    start_env(&["token", token], &[("MCP_TEST_HTTP", flavour)]).await
}

/// Starts the server as an OAuth resource server of the authorization server `issuer`: it accepts the access tokens
/// that the issuer's introspection endpoint (`{issuer}/token/introspection`, asked as the client `client_id`) says
/// are active, and names the issuer in its protected resource metadata.
pub async fn start_introspecting(issuer: &str, client_id: &str, client_secret: &str) -> Server {
    start_with(&["introspect", issuer, client_id, client_secret]).await
}

async fn start_with(args: &[&str]) -> Server {
    start_env(args, &[]).await
}

async fn start_env(args: &[&str], env: &[(&str, &str)]) -> Server {
    let venv = tokio::task::spawn_blocking(installed).await.unwrap();
    let mut cmd = Command::new(python(&venv));
    cmd.arg(source_dir().join("server.py"))
        .args(args)
        .envs(env.iter().copied());
    Server::start_reporting_port("the Python SDK's MCP server", cmd).await
}
