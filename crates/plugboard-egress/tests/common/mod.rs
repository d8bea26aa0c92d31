//! Test helpers: a stub resolver and hand-rolled loopback HTTP servers. Nothing here touches the network beyond
//! 127.0.0.1.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use plugboard_egress::{parse_allow_cidrs, EgressConfig, Guard, Resolve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Answers from a table; a name may have a sequence of answers (one per lookup, the last one repeating).
#[derive(Default)]
pub struct StubResolver {
    answers: Mutex<HashMap<String, Vec<Vec<IpAddr>>>>,
    lookups: Mutex<HashMap<String, usize>>,
}

impl StubResolver {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn with(self: Arc<Self>, name: &str, ips: &[&str]) -> Arc<Self> {
        self.then(name, ips)
    }

    /// Adds the answer for the next lookup of `name`.
    pub fn then(self: Arc<Self>, name: &str, ips: &[&str]) -> Arc<Self> {
        let ips = ips
            .iter()
            .map(|s| s.parse().expect("test address"))
            .collect();
        self.answers
            .lock()
            .expect("lock")
            .entry(name.to_owned())
            .or_default()
            .push(ips);
        self
    }

    pub fn lookups(&self, name: &str) -> usize {
        self.lookups
            .lock()
            .expect("lock")
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    pub fn total_lookups(&self) -> usize {
        self.lookups.lock().expect("lock").values().sum()
    }
}

impl Resolve for StubResolver {
    fn resolve(&self, host: &str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>> {
        let key = host.trim_end_matches('.').to_ascii_lowercase();
        let n = {
            let mut l = self.lookups.lock().expect("lock");
            let c = l.entry(key.clone()).or_default();
            *c += 1;
            *c
        };
        let answer = self
            .answers
            .lock()
            .expect("lock")
            .get(&key)
            .and_then(|seq| seq.get(n - 1).or_else(|| seq.last()).cloned());
        Box::pin(async move {
            answer.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such host (stub)"))
        })
    }
}

pub fn config(allow: &str) -> EgressConfig {
    EgressConfig {
        allow_cidrs: parse_allow_cidrs(allow).expect("test CIDRs"),
        connect_timeout: Duration::from_secs(2),
        total_timeout: Duration::from_secs(5),
        ..EgressConfig::default()
    }
}

pub fn guard(allow: &str, resolver: Arc<StubResolver>) -> Guard {
    Guard::with_resolver(config(allow), resolver).expect("guard")
}

#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl SeenRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub enum Reply {
    /// status, extra headers, body
    Full(u16, Vec<(String, String)>, Vec<u8>),
    /// 200 with a body that never ends
    Endless,
    /// read the request, then never answer
    Hang,
}

impl Reply {
    pub fn ok(body: &str) -> Self {
        Reply::Full(200, vec![], body.as_bytes().to_vec())
    }

    pub fn redirect(status: u16, location: &str) -> Self {
        Reply::Full(
            status,
            vec![("Location".to_owned(), location.to_owned())],
            Vec::new(),
        )
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub accepts: Arc<AtomicUsize>,
    pub seen: Arc<Mutex<Vec<SeenRequest>>>,
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn accepts(&self) -> usize {
        self.accepts.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<SeenRequest> {
        self.seen.lock().expect("lock").clone()
    }
}

/// A listener on 127.0.0.1:0 that counts accepted connections and never answers (a would-be proxy or target).
pub async fn recording_listener() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepts = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepts);
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let _hold = sock;
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    (addr, accepts)
}

/// A minimal HTTP/1.1 server on 127.0.0.1:0; `handler` sees each request.
pub async fn serve<F>(handler: F) -> TestServer
where
    F: Fn(&SeenRequest) -> Reply + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepts = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handler = Arc::new(handler);
    let (a, s) = (Arc::clone(&accepts), Arc::clone(&seen));
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            a.fetch_add(1, Ordering::SeqCst);
            let (s, handler) = (Arc::clone(&s), Arc::clone(&handler));
            tokio::spawn(async move {
                let _ = handle(sock, s, handler).await;
            });
        }
    });
    TestServer {
        addr,
        accepts,
        seen,
    }
}

async fn handle<F>(
    mut sock: TcpStream,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
    handler: Arc<F>,
) -> io::Result<()>
where
    F: Fn(&SeenRequest) -> Reply + Send + Sync + 'static,
{
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 64 * 1024 {
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let mut chunk = [0u8; 4096];
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let req = SeenRequest {
        method,
        path,
        headers,
        body,
    };
    seen.lock().expect("lock").push(req.clone());
    match handler(&req) {
        Reply::Full(status, extra, body) => {
            let mut out = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (n, v) in extra {
                out.push_str(&format!("{n}: {v}\r\n"));
            }
            out.push_str("\r\n");
            sock.write_all(out.as_bytes()).await?;
            sock.write_all(&body).await?;
            sock.flush().await?;
        }
        Reply::Endless => {
            sock.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
                .await?;
            let chunk = vec![b'x'; 64 * 1024];
            loop {
                sock.write_all(&chunk).await?;
            }
        }
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
    }
    Ok(())
}
