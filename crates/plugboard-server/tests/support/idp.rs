//! A real OpenID Provider for tests: panva's certified `oidc-provider` (npm), run with the machine's Node.js from
//! `tests/support/idp/idp.mjs` (see that file for what it offers).
//!
//! ```ignore
//! let idp = TestIdp::start(IdpOptions::new(REDIRECT_URI)).await;   // npm ci on first use, then `node idp.mjs`
//! idp.add_account("ada@example.com", true, Some("Ada Lovelace")).await;
//! // idp.issuer, idp.confidential_client_id, idp.confidential_client_secret, idp.public_client_id
//! let callback_query = Browser::new().authorize(&authorization_url, REDIRECT_URI).await;
//! idp.rotate_keys().await; idp.tamper(Some("wrong_aud")).await; idp.stats().await;
//! ```
//!
//! The child process is killed when the `TestIdp` is dropped (and exits by itself when its standard input closes,
//! should the test process die first). `node_modules` is installed with `npm ci` from the committed lock file the
//! first time (and again when the lock file changes), under a lock so parallel tests and test binaries don't race.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const INSTALL_HINT: &str = "the OpenID Connect tests run a real identity provider (npm package oidc-provider) with \
Node.js: install Node.js 20.19 or newer and npm (e.g. `apt-get install nodejs npm`), then run the tests again";

pub fn idp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/idp")
}

fn lock_digest(dir: &Path) -> String {
    let lock = std::fs::read(dir.join("package-lock.json"))
        .unwrap_or_else(|e| panic!("{}/package-lock.json cannot be read: {e}", dir.display()));
    Sha256::digest(&lock)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn check_tool(tool: &str) {
    match Command::new(tool).arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`{tool} --version` failed ({}): {INSTALL_HINT}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!("`{tool}` cannot be run ({e}): {INSTALL_HINT}"),
    }
}

static INSTALLED: Mutex<bool> = Mutex::new(false);

/// Runs `npm ci` in the IdP folder unless `node_modules` matches the lock file already.
pub fn ensure_installed() {
    let mut done = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if *done {
        return;
    }
    check_tool("node");
    let dir = idp_dir();
    let marker = dir.join("node_modules/.plugboard-lock-sha256");
    let want = lock_digest(&dir);
    let current = || std::fs::read_to_string(&marker).ok().as_deref() == Some(want.as_str());
    if !current() {
        check_tool("npm");
        // Across processes (several test binaries may start at once): a lock directory, created atomically.
        let lock = dir.join(".npm-ci.lock");
        let started = Instant::now();
        loop {
            match std::fs::create_dir(&lock) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let stale = std::fs::metadata(&lock)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > Duration::from_secs(600));
                    if stale {
                        let _ = std::fs::remove_dir(&lock);
                        continue;
                    }
                    assert!(
                        started.elapsed() < Duration::from_secs(600),
                        "waited 10 minutes for another `npm ci` in {} (remove {} if no test is running)",
                        dir.display(),
                        lock.display()
                    );
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(e) => panic!("cannot create {}: {e}", lock.display()),
            }
        }
        struct Unlock(PathBuf);
        impl Drop for Unlock {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir(&self.0);
            }
        }
        let _unlock = Unlock(lock);
        if !current() {
            let out = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&dir)
                .output()
                .unwrap_or_else(|e| panic!("`npm ci` cannot be run ({e}): {INSTALL_HINT}"));
            assert!(
                out.status.success(),
                "`npm ci` in {} failed (the npm registry must be reachable the first time):\n{}\n{}",
                dir.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::write(&marker, &want).expect("write the install marker");
        }
    }
    *done = true;
}

/// How to start the provider.
#[derive(Clone, Debug)]
pub struct IdpOptions {
    pub redirect_uris: Vec<String>,
    /// `conformIdTokenClaims: false`: email and name in the ID token (by default only at userinfo).
    pub claims_in_id_token: bool,
    /// A fixed port (0: a free one).
    pub port: u16,
    /// Also the authorization server of an OAuth-protected MCP server: a connector's client, the MCP server's
    /// client and token introspection (see idp.mjs, `--connector`), with access tokens living this many seconds.
    pub connector: Option<u64>,
}

impl IdpOptions {
    pub fn new(redirect_uri: &str) -> IdpOptions {
        IdpOptions {
            redirect_uris: vec![redirect_uri.to_string()],
            claims_in_id_token: false,
            port: 0,
            connector: None,
        }
    }
}

pub struct TestIdp {
    pub issuer: String,
    pub confidential_client_id: String,
    pub confidential_client_secret: String,
    pub public_client_id: String,
    /// With [`IdpOptions::connector`]: the connector's client (id, secret), for authorization code and refresh.
    pub connector_client: (String, String),
    /// With [`IdpOptions::connector`]: the MCP server's client (id, secret), for token introspection.
    pub resource_server: (String, String),
    child: Child,
    _stdin: ChildStdin,
    stderr: Arc<Mutex<String>>,
    http: reqwest::Client,
}

impl Drop for TestIdp {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- the test identity provider's stderr ---\n{}",
                self.stderr()
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestIdp {
    /// Installs (first time), starts the provider and waits for its issuer line.
    pub async fn start(options: IdpOptions) -> TestIdp {
        tokio::task::spawn_blocking(ensure_installed)
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        let mut cmd = Command::new("node");
        cmd.arg("idp.mjs").current_dir(idp_dir());
        for uri in &options.redirect_uris {
            cmd.args(["--redirect-uri", uri]);
        }
        if options.port != 0 {
            cmd.args(["--port", &options.port.to_string()]);
        }
        if options.claims_in_id_token {
            cmd.arg("--claims-in-id-token");
        }
        if let Some(ttl) = options.connector {
            cmd.args(["--connector", "--access-token-ttl", &ttl.to_string()]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start node ({e}): {INSTALL_HINT}"));
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let mut stderr_pipe = child.stderr.take().expect("stderr");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let (tx, rx) = tokio::sync::oneshot::channel();
        let rest = stderr.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let read = reader.read_line(&mut line);
            let _ = tx.send(read.map(|_| line));
            // Keep reading: a closed pipe would make the provider's next write to stdout fail (EPIPE).
            let mut more = String::new();
            while matches!(reader.read_line(&mut more), Ok(n) if n > 0) {
                rest.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_str(&more);
                more.clear();
            }
        });
        let line = match tokio::time::timeout(Duration::from_secs(60), rx).await {
            Ok(Ok(Ok(line))) if !line.trim().is_empty() => line,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the test identity provider did not start ({other:?}); its stderr:\n{}",
                    stderr.lock().unwrap_or_else(|e| e.into_inner())
                );
            }
        };
        let v: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("idp.mjs printed {line:?}: {e}"));
        let s = |p: &str| {
            v.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        TestIdp {
            issuer: s("/issuer"),
            confidential_client_id: s("/confidential_client/client_id"),
            confidential_client_secret: s("/confidential_client/client_secret"),
            public_client_id: s("/public_client/client_id"),
            connector_client: (
                s("/connector_client/client_id"),
                s("/connector_client/client_secret"),
            ),
            resource_server: (
                s("/resource_server/client_id"),
                s("/resource_server/client_secret"),
            ),
            child,
            _stdin: stdin,
            stderr,
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
        }
    }

    /// What the provider wrote on stderr so far (for assertion messages).
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    async fn control(&self, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/__test/{path}", self.issuer);
        let req = match body {
            Some(b) => self.http.post(&url).json(&b),
            None => self.http.get(&url),
        };
        let res = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("test IdP {path}: {e}"));
        let status = res.status();
        let v: Value = res.json().await.unwrap_or(Value::Null);
        assert!(
            status.is_success(),
            "test IdP {path}: {status} {v}; stderr:\n{}",
            self.stderr()
        );
        v
    }

    /// A new account (the one the next sign-in selects); returns its `sub`.
    pub async fn add_account(
        &self,
        email: &str,
        email_verified: bool,
        name: Option<&str>,
    ) -> String {
        let mut body = json!({"email": email, "email_verified": email_verified});
        if let Some(n) = name {
            body["name"] = json!(n);
        }
        let v = self.control("accounts", Some(body)).await;
        v["sub"].as_str().expect("sub").to_string()
    }

    /// The account the next sign-in selects (without `login_hint`).
    pub async fn login_as(&self, sub: &str) {
        self.control("login-as", Some(json!({"sub": sub}))).await;
    }

    /// A new signing key from now on (the old one stays published); returns its `kid`.
    pub async fn rotate_keys(&self) -> String {
        let v = self.control("rotate-keys", Some(json!({}))).await;
        v["kid"].as_str().expect("kid").to_string()
    }

    /// Rewrites the ID token of every token response (`None`: stop). See idp.mjs for the modes.
    pub async fn tamper(&self, mode: Option<&str>) {
        self.control("tamper", Some(json!({"mode": mode}))).await;
    }

    /// `{jwks_fetches, userinfo_requests, token_responses, access_tokens, last_id_token_kid}`.
    pub async fn stats(&self) -> Value {
        self.control("stats", None).await
    }
}

/// A browser as far as the authorization endpoint is concerned: follows redirects by hand and keeps cookies.
pub struct Browser {
    client: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

impl Default for Browser {
    fn default() -> Self {
        Browser::new()
    }
}

impl Browser {
    pub fn new() -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cookies: BTreeMap::new(),
        }
    }

    fn keep_cookies(&mut self, headers: &reqwest::header::HeaderMap) {
        for v in headers.get_all(reqwest::header::SET_COOKIE) {
            let Ok(v) = v.to_str() else { continue };
            let Some((name, rest)) = v.split_once('=') else {
                continue;
            };
            let value = rest.split(';').next().unwrap_or("").to_string();
            let lower = v.to_ascii_lowercase();
            if value.is_empty()
                || lower.contains("max-age=0")
                || lower.contains("expires=thu, 01 jan 1970")
            {
                self.cookies.remove(name.trim());
            } else {
                self.cookies.insert(name.trim().to_string(), value);
            }
        }
    }

    /// Opens `url` and follows redirects (and the provider's automatic interactions) until one leads to
    /// `redirect_uri`; returns that redirect's query string.
    pub async fn authorize(&mut self, url: &str, redirect_uri: &str) -> String {
        let mut url = reqwest::Url::parse(url).expect("authorization URL");
        for _ in 0..20 {
            let cookie = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            let mut req = self.client.get(url.clone());
            if !cookie.is_empty() {
                req = req.header(reqwest::header::COOKIE, cookie);
            }
            let res = req
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {url}: {e}"));
            self.keep_cookies(res.headers());
            let status = res.status();
            let Some(location) = res
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
            else {
                let body = res.text().await.unwrap_or_default();
                panic!("the provider answered {status} without a redirect at {url}: {body}");
            };
            let next = url.join(location).expect("redirect URL");
            if next.as_str().starts_with(redirect_uri) {
                return next.query().unwrap_or("").to_string();
            }
            url = next;
        }
        panic!("more than 20 redirects without reaching {redirect_uri}");
    }
}
