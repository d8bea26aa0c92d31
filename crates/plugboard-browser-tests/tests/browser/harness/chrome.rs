//! Finding Chromium and ChromeDriver, running ChromeDriver on a free loopback port, and cleaning up after a test
//! (the WebDriver session, ChromeDriver, and any Chromium process left on the test's profile).

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Debian packages that bring the two binaries (CI's `.ci/run` installs them).
pub const APT_PACKAGES: &str = "chromium chromium-driver";

/// Chromium's flags: headless, and quiet on a machine without a network (without the background-networking flags
/// Chromium keeps trying to reach Google's services and fills the logs with refused connections).
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-default-apps",
    "--no-default-browser-check",
    "--window-size=1280,900",
    "--lang=en-US",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
}

/// Finds the binaries: `PLUGBOARD_CHROMIUM` / `PLUGBOARD_CHROMEDRIVER` when set, otherwise `chromium` and
/// `chromedriver` on `PATH`. `env` reads an environment variable (a parameter so the message can be tested).
pub fn locate_tools(env: &dyn Fn(&str) -> Option<OsString>) -> Result<Tools, String> {
    let path = env("PATH").unwrap_or_default();
    let find = |var: &str, name: &str| -> Result<PathBuf, String> {
        if let Some(explicit) = env(var).filter(|v| !v.is_empty()) {
            let p = PathBuf::from(explicit);
            return if p.is_file() {
                Ok(p)
            } else {
                Err(format!("{var}={} does not exist", p.display()))
            };
        }
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
            .ok_or_else(|| format!("`{name}` is not on PATH"))
    };
    match (
        find("PLUGBOARD_CHROMIUM", "chromium"),
        find("PLUGBOARD_CHROMEDRIVER", "chromedriver"),
    ) {
        (Ok(chromium), Ok(chromedriver)) => Ok(Tools {
            chromium,
            chromedriver,
        }),
        (chromium, chromedriver) => {
            let missing: Vec<String> = [chromium.err(), chromedriver.err()]
                .into_iter()
                .flatten()
                .collect();
            Err(format!(
                "The browser tests need Chromium and ChromeDriver, and cannot find them: {}. Install Debian's \
                 packages as root: `apt-get update && apt-get install -y {APT_PACKAGES}` (CI's .ci/run installs \
                 them). To use binaries installed elsewhere, set PLUGBOARD_CHROMIUM and PLUGBOARD_CHROMEDRIVER to \
                 their paths.",
                missing.join("; ")
            ))
        }
    }
}

pub fn tools() -> Tools {
    locate_tools(&|name| std::env::var_os(name)).unwrap_or_else(|message| panic!("{message}"))
}

/// A port nobody listens on right now (the kernel's choice of an ephemeral port).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// A ChromeDriver process on a loopback port; killed on drop.
pub struct Driver {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl Driver {
    /// Starts ChromeDriver in `dir` (its log goes there) and waits until it answers `/status`.
    pub async fn start(chromedriver: &Path, dir: &Path) -> Driver {
        let log = dir.join("chromedriver.log");
        let console = dir.join("chromedriver.out");
        let mut last_error = String::new();
        // Another process may take the port between choosing it and ChromeDriver binding it: try a few ports.
        for _ in 0..3 {
            let port = free_port();
            let out = std::fs::File::create(&console).expect("chromedriver output file");
            let child = Command::new(chromedriver)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.display()))
                .arg("--log-level=WARNING")
                .stdin(Stdio::null())
                .stdout(Stdio::from(out.try_clone().expect("log file handle")))
                .stderr(Stdio::from(out))
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot run {}: {e}. Install it with `apt-get install -y {APT_PACKAGES}`.",
                        chromedriver.display()
                    )
                });
            let mut driver = Driver {
                child,
                port,
                log: log.clone(),
            };
            match driver.wait_ready(Duration::from_secs(15)).await {
                Ok(()) => return driver,
                Err(e) => last_error = e,
            }
            drop(driver);
        }
        panic!("ChromeDriver did not start: {last_error}");
    }

    async fn wait_ready(&mut self, limit: Duration) -> Result<(), String> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "ChromeDriver exited ({status}) on port {}. Its log:\n{}",
                    self.port,
                    self.log_tail()
                ));
            }
            if let Ok(body) = http_blocking(self.port, "GET", "/status", Duration::from_secs(1)) {
                if body.contains("\"ready\"") {
                    return Ok(());
                }
            }
            if started.elapsed() > limit {
                return Err(format!(
                    "ChromeDriver did not answer on port {} within {limit:?}. Its log:\n{}",
                    self.port,
                    self.log_tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The end of ChromeDriver's output and log, for error messages.
    pub fn log_tail(&self) -> String {
        let mut text = std::fs::read_to_string(self.log.with_extension("out")).unwrap_or_default();
        text.push_str(&std::fs::read_to_string(&self.log).unwrap_or_default());
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Ends the session (ChromeDriver then quits its Chromium). Blocking, for use in `Drop`.
    pub fn delete_session(&self, session_id: &str) {
        let _ = http_blocking(
            self.port,
            "DELETE",
            &format!("/session/{session_id}"),
            Duration::from_secs(10),
        );
    }

    pub fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One HTTP/1.1 request to ChromeDriver over a plain socket; the response body. Blocking on purpose: `Drop` uses it,
/// and it must work while a test unwinds from a panic. ChromeDriver keeps connections open whatever the request
/// says, so the body is read by its `Content-Length`.
fn http_blocking(port: u16, method: &str, path: &str, limit: Duration) -> std::io::Result<String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, limit)?;
    stream.set_read_timeout(Some(limit))?;
    stream.set_write_timeout(Some(limit))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head.lines().find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())
                    .flatten()
            });
            if length.is_some_and(|len| body.len() >= len) {
                return Ok(body.to_string());
            }
        }
        if buf.len() > 1 << 20 {
            break;
        }
    }
    let text = String::from_utf8_lossy(&buf);
    Ok(text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default())
}

/// Kills any process still running on the Chromium profile `profile` (a crashed ChromeDriver can leave Chromium
/// behind). Matches the exact `--user-data-dir=` argument, which is unique to one test's browser.
pub fn kill_leftover_chromium(profile: &Path) {
    let wanted = format!("--user-data-dir={}", profile.display());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if cmdline
            .split(|b| *b == 0)
            .any(|arg| arg == wanted.as_bytes())
        {
            let _ = Command::new("kill")
                .args(["-KILL", pid])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
