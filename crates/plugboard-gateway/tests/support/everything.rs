//! The reference MCP server, `@modelcontextprotocol/server-everything`, pinned by `everything/package.json` and
//! its lock file. Installed with `npm ci` on first use into the test target folder (a fresh folder renamed into
//! place when complete, so concurrent test processes never see half an install), then started per test over
//! streamable HTTP (`node dist/index.js streamableHttp`, `PORT`) on 127.0.0.1.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static INSTALL: Mutex<()> = Mutex::new(());

fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/everything")
}

fn entry(dir: &Path) -> PathBuf {
    dir.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js")
}

/// The installed package's folder, installing it first when needed.
fn installed() -> PathBuf {
    let _one_at_a_time = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let lock = std::fs::read(source_dir().join("package-lock.json")).expect("the pinned lock file");
    let digest: u64 = lock.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    });
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("server-everything-{digest:016x}"));
    if entry(&dir).exists() {
        return dir;
    }
    let work = dir.with_extension(format!(
        "partial-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("a folder for the install");
    for f in ["package.json", "package-lock.json"] {
        std::fs::copy(source_dir().join(f), work.join(f)).expect("copy the package files");
    }
    let status = Command::new("npm")
        .args([
            "ci",
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--loglevel=error",
        ])
        .current_dir(&work)
        .status()
        .expect("npm must be installed to run the server-everything tests (apt-get install npm)");
    assert!(
        status.success(),
        "npm ci failed for server-everything in {}",
        work.display()
    );
    match std::fs::rename(&work, &dir) {
        Ok(()) => {}
        // Another test process finished first: use its install.
        Err(_) if entry(&dir).exists() => {
            let _ = std::fs::remove_dir_all(&work);
        }
        Err(e) => panic!("could not move the install into place: {e}"),
    }
    dir
}

/// A running server-everything.
pub struct Everything {
    child: Child,
    pub port: u16,
}

impl Everything {
    pub async fn start() -> Everything {
        let dir = tokio::task::spawn_blocking(installed).await.unwrap();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .unwrap();
            let mut child = Command::new("node")
                .arg(entry(&dir))
                .arg("streamableHttp")
                .env("PORT", port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("node must be installed to run the server-everything tests");
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
                {
                    return Everything { child, port };
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("server-everything did not start");
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    /// Kills the server at once (SIGKILL): an upstream that dies mid-call.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Everything {
    fn drop(&mut self) {
        self.kill();
    }
}
