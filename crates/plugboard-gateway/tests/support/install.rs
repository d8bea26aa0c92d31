//! Third-party MCP servers the tests run: installed once from pinned files into the test target folder, then
//! started per test on a free port of 127.0.0.1.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static INSTALL: Mutex<()> = Mutex::new(());

/// The folder `name-<digest of pinned>` under the test target folder, with `install` run in it first when
/// `ready` says it is not there yet. `install` works in a fresh folder that is renamed into place when complete,
/// so concurrent test processes never see half an install.
pub fn once(
    name: &str,
    pinned: &Path,
    ready: impl Fn(&Path) -> bool,
    install: impl FnOnce(&Path),
) -> PathBuf {
    let _one_at_a_time = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let pins = std::fs::read(pinned).expect("the pinned requirements");
    let digest: u64 = pins.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    });
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{digest:016x}"));
    if ready(&dir) {
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
    install(&work);
    match std::fs::rename(&work, &dir) {
        Ok(()) => {}
        // Another test process finished first: use its install.
        Err(_) if ready(&dir) => {
            let _ = std::fs::remove_dir_all(&work);
        }
        Err(e) => panic!("could not move the install of {name} into place: {e}"),
    }
    dir
}

/// Runs a command to completion, failing the test with `what` when it cannot run or fails.
pub fn run(cmd: &mut Command, what: &str) {
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("{what}: could not run it ({e})"));
    assert!(status.success(), "{what} failed");
}

/// Starts `command(port)` on a free port and waits until it accepts connections (a few tries, in case another
/// process takes the port first).
pub async fn listening(what: &str, command: impl Fn(u16) -> Command) -> (Child, u16) {
    for _ in 0..5 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let mut child = command(port)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {what}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return (child, port);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("{what} did not start");
}

/// A running third-party server, killed when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
}

impl Server {
    /// A server started on a port the test picked (see [`listening`]).
    pub async fn start(what: &str, command: impl Fn(u16) -> Command) -> Server {
        let (child, port) = listening(what, command).await;
        Server { child, port }
    }

    /// A server that picks its own port and prints it as its first line of output (no other process can take the
    /// port between the choice and the bind); the rest of its output is read and discarded.
    pub async fn start_reporting_port(what: &str, mut command: Command) -> Server {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {what}: {e}"));
        let stdout = child.stdout.take().expect("the server's output");
        let first_line = tokio::task::spawn_blocking(move || {
            use std::io::BufRead;
            let mut out = std::io::BufReader::new(stdout);
            let mut line = String::new();
            let read = out.read_line(&mut line);
            std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
            read.map(|_| line)
        });
        let line = tokio::time::timeout(Duration::from_secs(60), first_line).await;
        let port = match line {
            Ok(Ok(Ok(line))) => line.trim().parse::<u16>().ok(),
            _ => None,
        };
        match port {
            Some(port) => Server { child, port },
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what} did not start (it printed no port)");
            }
        }
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

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
