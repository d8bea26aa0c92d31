//! axe-core in the page. The npm package is pinned in `crates/plugboard-browser-tests/axe/` (package.json and
//! package-lock.json); on first use, when `node_modules` is missing or holds another version, the harness runs
//! `npm ci` there (once per process, and safely when several test processes race: each installs into its own
//! folder and renames it into place). `axe.min.js` is injected with WebDriver "Execute Script", which Chromium runs
//! through the DevTools protocol, outside the page's Content-Security-Policy: no `unsafe-inline`/`unsafe-eval` is
//! needed on the console's pages for the tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::Value as Json;

use super::Browser;

/// A rule axe-core found broken, with every element that breaks it.
#[derive(Debug, Clone, Deserialize)]
pub struct Violation {
    /// The rule, e.g. `label`, `color-contrast`.
    pub id: String,
    /// `minor`, `moderate`, `serious` or `critical`.
    pub impact: Option<String>,
    /// What the rule asks for, in one sentence.
    pub help: String,
    #[serde(rename = "helpUrl")]
    pub help_url: String,
    pub nodes: Vec<ViolationNode>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ViolationNode {
    /// CSS selectors of the element (one per shadow or frame level).
    pub target: Vec<Json>,
    pub html: String,
    #[serde(rename = "failureSummary")]
    pub failure_summary: Option<String>,
}

impl ViolationNode {
    /// The element's selector, levels joined with ` >>> `.
    pub fn selector(&self) -> String {
        self.target
            .iter()
            .map(|t| match t {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" >>> ")
    }
}

impl Violation {
    pub fn is_serious_or_critical(&self) -> bool {
        matches!(self.impact.as_deref(), Some("serious" | "critical"))
    }
}

/// The violations of impact `serious` or `critical`: the ones that fail a test.
pub fn serious_or_critical(violations: &[Violation]) -> Vec<Violation> {
    violations
        .iter()
        .filter(|v| v.is_serious_or_critical())
        .cloned()
        .collect()
}

/// A readable list: rule id, impact, help text, and each element's selector with axe's summary of what to fix.
pub fn describe_violations(url: &str, violations: &[Violation]) -> String {
    let mut out = format!(
        "axe-core found {} accessibility violation(s) on {url}:\n",
        violations.len()
    );
    for v in violations {
        out.push_str(&format!(
            "- {} ({}): {} [{}]\n",
            v.id,
            v.impact.as_deref().unwrap_or("unknown impact"),
            v.help,
            v.help_url
        ));
        for node in &v.nodes {
            let summary = node
                .failure_summary
                .as_deref()
                .unwrap_or_default()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            out.push_str(&format!("    {}: {summary}\n", node.selector()));
        }
    }
    out
}

/// Runs axe on the document. Frames are not followed (the console's pages cannot be framed, and a frame without
/// axe would make axe wait a minute); every rule axe enables by default runs (WCAG 2.x A and AA, best practices).
const RUN_AXE_JS: &str = r#"
const done = arguments[arguments.length - 1];
window.axe.run(document, { iframes: false, resultTypes: ['violations'] })
  .then(r => done({ violations: r.violations }))
  .catch(e => done({ error: String(e && e.stack || e) }));
"#;

impl Browser {
    /// Every axe-core violation on the current page, of any impact.
    pub async fn axe_violations(&self) -> Vec<Violation> {
        let loaded = self
            .execute(
                "return typeof window.axe === 'object' && typeof window.axe.run === 'function';",
                vec![],
            )
            .await;
        if loaded != Json::Bool(true) {
            let source = axe_source();
            let script = format!("{source}\n;return typeof window.axe;");
            let kind = self.execute(&script, vec![]).await;
            assert_eq!(
                kind,
                Json::String("object".into()),
                "axe-core did not load into {}",
                self.url().await
            );
        }
        let result = self
            .client
            .execute_async(RUN_AXE_JS, vec![])
            .await
            .unwrap_or_else(|e| panic!("axe-core could not run: {e}"));
        if let Some(error) = result.get("error") {
            panic!("axe-core failed on {}: {error}", self.url().await);
        }
        serde_json::from_value(result["violations"].clone())
            .unwrap_or_else(|e| panic!("axe-core's answer is not what the harness expects: {e}"))
    }

    /// Runs axe-core on the current page and panics listing every violation of impact `serious` or `critical`
    /// (rule id, impact, help, each element's selector and what to fix).
    pub async fn assert_accessible(&self) {
        let bad = serious_or_critical(&self.axe_violations().await);
        if !bad.is_empty() {
            panic!("{}", describe_violations(&self.url().await, &bad));
        }
    }
}

/// `axe.min.js`, read once per process.
fn axe_source() -> Arc<String> {
    static SOURCE: Mutex<Option<Arc<String>>> = Mutex::new(None);
    let mut guard = SOURCE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(source) = guard.as_ref() {
        return source.clone();
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("axe");
    let js = ensure_installed(&dir).unwrap_or_else(|message| panic!("{message}"));
    let source = std::fs::read_to_string(&js)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", js.display()));
    let source = Arc::new(source);
    *guard = Some(source.clone());
    source
}

/// The version package-lock.json pins, and the one installed (if any).
fn versions(dir: &Path) -> (Option<String>, Option<String>) {
    let read =
        |p: PathBuf| -> Option<Json> { serde_json::from_slice(&std::fs::read(p).ok()?).ok() };
    let locked = read(dir.join("package-lock.json")).and_then(|lock| {
        lock["packages"]["node_modules/axe-core"]["version"]
            .as_str()
            .map(String::from)
    });
    let installed = read(dir.join("node_modules/axe-core/package.json"))
        .and_then(|pkg| pkg["version"].as_str().map(String::from));
    (locked, installed)
}

/// Makes sure `dir/node_modules/axe-core/axe.min.js` is the locked version; runs `npm ci` when it is not.
fn ensure_installed(dir: &Path) -> Result<PathBuf, String> {
    let js = dir.join("node_modules/axe-core/axe.min.js");
    let (locked, installed) = versions(dir);
    let locked = locked.ok_or_else(|| {
        format!(
            "{} pins no axe-core version: run `npm install` there to write it",
            dir.join("package-lock.json").display()
        )
    })?;
    if installed.as_deref() == Some(locked.as_str()) && js.is_file() {
        return Ok(js);
    }
    for tool in ["node", "npm"] {
        if !on_path(tool) {
            return Err(format!(
                "The browser tests run axe-core, which is installed with npm, and `{tool}` is not on PATH. Install \
                 Node.js and npm (`apt-get install -y nodejs npm`), or run `npm ci` in {} on a machine that has \
                 them.",
                dir.display()
            ));
        }
    }
    // Each process installs into a folder of its own, then renames node_modules into place: a rename is atomic,
    // so racing test processes never see a half-written node_modules.
    let work = dir.join(format!(".install-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    for file in ["package.json", "package-lock.json"] {
        std::fs::copy(dir.join(file), work.join(file))
            .map_err(|e| format!("cannot copy {file} to {}: {e}", work.display()))?;
    }
    let output = Command::new("npm")
        .args([
            "ci",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ])
        .current_dir(&work)
        .output()
        .map_err(|e| format!("cannot run npm: {e}"))?;
    if !output.status.success() {
        let _ = std::fs::remove_dir_all(&work);
        return Err(format!(
            "`npm ci` in {} failed ({}): {}{}",
            dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let target = dir.join("node_modules");
    if installed.is_some() {
        // Another version is installed: move it aside first (a rename onto a non-empty folder fails).
        let old = work.join("old_node_modules");
        let _ = std::fs::rename(&target, &old);
    }
    let renamed = std::fs::rename(work.join("node_modules"), &target);
    let _ = std::fs::remove_dir_all(&work);
    match (renamed, versions(dir).1) {
        (_, Some(v)) if v == locked && js.is_file() => Ok(js),
        (Err(e), _) => Err(format!(
            "cannot move the installed axe-core into {}: {e}",
            target.display()
        )),
        (Ok(()), v) => Err(format!(
            "after `npm ci`, {} holds axe-core {v:?}, not {locked}",
            target.display()
        )),
    }
}

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
        .unwrap_or(false)
}
