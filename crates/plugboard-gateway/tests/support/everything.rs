//! The reference MCP server, `@modelcontextprotocol/server-everything`, pinned by `everything/package.json` and
//! its lock file. Installed with `npm ci` on first use into the test target folder, then started per test over
//! streamable HTTP (`node dist/index.js streamableHttp`, `PORT`) on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::install::{self, Server};

fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/everything")
}

fn entry(dir: &Path) -> PathBuf {
    dir.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js")
}

/// The installed package's folder, installing it first when needed.
fn installed() -> PathBuf {
    install::once(
        "server-everything",
        &source_dir().join("package-lock.json"),
        |dir| entry(dir).exists(),
        |work| {
            for f in ["package.json", "package-lock.json"] {
                std::fs::copy(source_dir().join(f), work.join(f)).expect("copy the package files");
            }
            install::run(
                Command::new("npm")
                    .args([
                        "ci",
                        "--no-audit",
                        "--no-fund",
                        "--ignore-scripts",
                        "--loglevel=error",
                    ])
                    .current_dir(work),
                "npm ci for server-everything (npm must be installed: apt-get install npm)",
            );
        },
    )
}

/// Starts server-everything.
pub async fn start() -> Server {
    let dir = tokio::task::spawn_blocking(installed).await.unwrap();
    Server::start("server-everything (node must be installed)", |port| {
        let mut cmd = Command::new("node");
        cmd.arg(entry(&dir))
            .arg("streamableHttp")
            .env("PORT", port.to_string());
        cmd
    })
    .await
}
