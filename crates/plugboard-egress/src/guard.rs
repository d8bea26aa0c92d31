//! The guard: host checks, the guarded HTTP client and the guarded TCP dialer.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use http::Method;
use url::{Host, Url};

use crate::classify::{classify, classify_name, BlockedAddr, Category, NameVerdict};
use crate::config::EgressConfig;
use crate::error::EgressError;

/// Turns a host name into addresses. The guard checks every answer; implementations need not.
pub trait Resolve: Send + Sync + 'static {
    /// Resolves `host` (a domain name, never an IP literal) to its addresses.
    fn resolve(&self, host: &str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>>;
}

/// The operating system's resolver (`tokio::net::lookup_host`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>> {
        let host = host.to_owned();
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// One outbound HTTP request.
#[derive(Clone)]
pub struct Request {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub follow_redirects: bool,
}

impl Request {
    /// A request without headers or body that does not follow redirects.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: None,
            follow_redirects: false,
        }
    }

    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::GET, url)
    }

    pub fn head(url: impl Into<String>) -> Self {
        Self::new(Method::HEAD, url)
    }

    pub fn post(url: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        Self::new(Method::POST, url).body(body)
    }

    pub fn put(url: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        Self::new(Method::PUT, url).body(body)
    }

    pub fn delete(url: impl Into<String>) -> Self {
        Self::new(Method::DELETE, url)
    }

    /// Adds a header (repeated names are all sent).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    pub fn follow_redirects(mut self, follow: bool) -> Self {
        self.follow_redirects = follow;
        self
    }
}

impl fmt::Debug for Request {
    /// Shows no header values, body, userinfo or query: they may hold secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &redacted_url(&self.url))
            .field("headers", &names)
            .field("body_len", &self.body.as_ref().map(Vec::len))
            .field("follow_redirects", &self.follow_redirects)
            .finish()
    }
}

/// A response whose body was read up to `max_response_bytes`.
#[derive(Clone)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The body was longer than `max_response_bytes` and was cut there.
    pub truncated: bool,
    /// The URL of the last hop (after redirects).
    pub final_url: Url,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .field("truncated", &self.truncated)
            .field("final_host", &self.final_url.host_str())
            .finish_non_exhaustive()
    }
}

fn redacted_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "<unparsable>".to_owned(),
    }
}

/// Told about every destination the guard refuses, with the reason as a short fixed label (for metrics).
pub trait RefusalObserver: Send + Sync + 'static {
    /// `reason` is one of [`Category::as_str`]'s labels (the host name of a cloud metadata service counts as
    /// `cloud_metadata`, `localhost` as `loopback`).
    fn refused(&self, reason: &'static str);
}

/// The checks, shared by the guard and by the resolver inside its HTTP client.
pub(crate) struct Checker {
    pub(crate) cfg: EgressConfig,
    resolver: Arc<dyn Resolve>,
    observer: Option<Arc<dyn RefusalObserver>>,
}

enum Target {
    Ip(IpAddr),
    Name(String),
}

fn never_suffix(allow_listed: bool) -> &'static str {
    if allow_listed {
        " and can never be allowed"
    } else {
        ""
    }
}

impl Checker {
    fn observe(&self, reason: &'static str) {
        if let Some(o) = &self.observer {
            o.refused(reason);
        }
    }

    /// `None` when `ip` may be contacted; otherwise the classification and whether allow_cidrs listed it anyway.
    fn refusal(&self, ip: IpAddr) -> Option<(BlockedAddr, bool)> {
        let blocked = classify(ip)?;
        let subject = blocked.subject();
        let listed = self.cfg.allow_cidrs.iter().any(|n| n.contains(&subject));
        if listed && !blocked.category.is_hard_blocked() {
            None
        } else {
            Some((blocked, listed))
        }
    }

    fn check_ip(&self, ip: IpAddr) -> Result<(), EgressError> {
        match self.refusal(ip) {
            None => Ok(()),
            Some((b, listed)) => {
                tracing::debug!(%ip, category = ?b.category, "egress refused an address");
                self.observe(b.category.as_str());
                Err(EgressError::Blocked(format!("{b}{}", never_suffix(listed))))
            }
        }
    }

    /// Refusals and fixed answers by name, before any DNS. `Some(addrs)` answers the name without DNS.
    fn check_name(&self, name: &str) -> Result<Option<Vec<IpAddr>>, EgressError> {
        match classify_name(name) {
            None => Ok(None),
            Some(NameVerdict::Metadata) => {
                tracing::debug!(host = %name, "egress refused a metadata host name");
                self.observe(Category::CloudMetadata.as_str());
                Err(EgressError::Blocked(format!(
                    "{name} is a cloud metadata host name"
                )))
            }
            Some(NameVerdict::Localhost) => {
                let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
                match self.refusal(ip) {
                    None => Ok(Some(vec![ip])),
                    Some(_) => {
                        self.observe(Category::Loopback.as_str());
                        Err(EgressError::Blocked(format!(
                            "{name} is a loopback name (it means 127.0.0.1, a loopback address)"
                        )))
                    }
                }
            }
        }
    }

    fn parse_target(&self, host: &str) -> Result<Target, EgressError> {
        let host = host.trim();
        let inner = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if inner.is_empty() {
            return Err(EgressError::InvalidUrl("the host is missing".to_owned()));
        }
        if inner.contains(':') {
            if let Some((addr, _zone)) = inner.split_once('%') {
                if let Ok(ip) = addr.parse::<Ipv6Addr>() {
                    self.check_ip(IpAddr::V6(ip))?;
                }
                return Err(EgressError::InvalidUrl(
                    "IPv6 zone identifiers are not supported".to_owned(),
                ));
            }
        }
        if let Ok(ip) = inner.parse::<IpAddr>() {
            return Ok(Target::Ip(ip));
        }
        match Host::parse(inner) {
            Ok(Host::Ipv4(ip)) => Ok(Target::Ip(IpAddr::V4(ip))),
            Ok(Host::Ipv6(ip)) => Ok(Target::Ip(IpAddr::V6(ip))),
            Ok(Host::Domain(d)) => Ok(Target::Name(d)),
            Err(e) => Err(EgressError::InvalidUrl(format!("invalid host ({e})"))),
        }
    }

    pub(crate) async fn resolve_checked(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, EgressError> {
        let name = match self.parse_target(host)? {
            Target::Ip(ip) => {
                self.check_ip(ip)?;
                return Ok(vec![SocketAddr::new(ip, port)]);
            }
            Target::Name(name) => name,
        };
        let ips = match self.check_name(&name)? {
            Some(fixed) => fixed,
            None => {
                let lookup = self.resolver.resolve(&name);
                match tokio::time::timeout(self.cfg.effective_connect_timeout(), lookup).await {
                    Err(_) => return Err(EgressError::Timeout),
                    Ok(Err(e)) => {
                        return Err(EgressError::Connect(format!(
                            "{name}: could not resolve the host name ({e})"
                        )))
                    }
                    Ok(Ok(ips)) => ips,
                }
            }
        };
        if ips.is_empty() {
            return Err(EgressError::Connect(format!(
                "{name}: the host name has no addresses"
            )));
        }
        // Refuse the whole name when any answer is refused: a mix of public and private answers is a rebinding
        // or split-horizon trick, and the caller cannot tell which one it would reach.
        for ip in &ips {
            if let Some((b, listed)) = self.refusal(*ip) {
                tracing::debug!(host = %name, %ip, category = ?b.category, "egress refused a host name");
                self.observe(b.category.as_str());
                return Err(EgressError::Blocked(format!(
                    "{name} resolves to {}{}",
                    b.appositive(),
                    never_suffix(listed)
                )));
            }
        }
        let mut out: Vec<SocketAddr> = Vec::with_capacity(ips.len());
        for ip in ips {
            let addr = SocketAddr::new(ip.to_canonical(), port);
            if !out.contains(&addr) {
                out.push(addr);
            }
        }
        Ok(out)
    }
}

/// The resolver inside the guard's reqwest client: the connection goes only to addresses this checked.
struct GuardResolver(Arc<Checker>);

impl reqwest::dns::Resolve for GuardResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let checker = Arc::clone(&self.0);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            match checker.resolve_checked(&host, 0).await {
                Ok(addrs) => Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs),
                Err(e) => Err(Box::new(e) as Box<dyn StdError + Send + Sync>),
            }
        })
    }
}

struct Inner {
    checker: Arc<Checker>,
    client: reqwest::Client,
    /// [`Guard::send_stream`]'s client (see [`crate::stream`]).
    stream_client: crate::stream::StreamClient,
}

/// The one SSRF guard. Cheap to clone.
#[derive(Clone)]
pub struct Guard {
    inner: Arc<Inner>,
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("config", &self.inner.checker.cfg)
            .finish_non_exhaustive()
    }
}

const SENSITIVE_NAME_PARTS: &[&str] = &[
    "auth",
    "cookie",
    "token",
    "secret",
    "key",
    "session",
    "password",
    "credential",
];

/// Headers dropped when a redirect leaves the origin.
fn is_sensitive_header(name: &HeaderName) -> bool {
    let n = name.as_str();
    SENSITIVE_NAME_PARTS.iter().any(|p| n.contains(p))
}

/// Headers the caller may not set: the connection's framing and target are the guard's business.
pub(crate) const CALLER_FORBIDDEN: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "upgrade",
];

pub(crate) fn build_headers(pairs: &[(String, String)]) -> Result<HeaderMap, EgressError> {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| EgressError::Http("invalid request header name".to_owned()))?;
        if CALLER_FORBIDDEN.contains(&name.as_str()) {
            continue;
        }
        let value = HeaderValue::from_str(value)
            .map_err(|_| EgressError::Http(format!("invalid value for request header {name}")))?;
        map.append(name, value);
    }
    Ok(map)
}

fn root_cause(err: &(dyn StdError + 'static)) -> String {
    let mut cur = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

pub(crate) fn map_reqwest(err: reqwest::Error, url: &Url) -> EgressError {
    let err = err.without_url();
    map_client_error(&err, url, err.is_timeout(), err.is_connect())
}

/// An HTTP client's error as the guard's: a refusal of the guard among its causes as it was, a timeout (`timed_out`,
/// or a timed-out I/O error among the causes), a failed connection (`connecting`: the host and the root cause), else
/// the error and its root cause. Never the URL (its query may hold a secret).
pub(crate) fn map_client_error(
    err: &(dyn StdError + 'static),
    url: &Url,
    timed_out: bool,
    connecting: bool,
) -> EgressError {
    let mut timed_out = timed_out;
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(g) = e.downcast_ref::<EgressError>() {
            return g.clone();
        }
        timed_out |= e
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::TimedOut);
        cur = e.source();
    }
    if timed_out {
        return EgressError::Timeout;
    }
    let root = root_cause(err);
    if connecting {
        let host = url.host_str().unwrap_or("the host");
        return EgressError::Connect(format!("{host}: {root}"));
    }
    let top = err.to_string();
    if top == root {
        EgressError::Http(top)
    } else {
        EgressError::Http(format!("{top}: {root}"))
    }
}

/// The `User-Agent` of every outbound HTTP request.
pub(crate) const USER_AGENT: &str = concat!("plugboard/", env!("CARGO_PKG_VERSION"));

pub(crate) fn is_followed_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

impl Guard {
    /// A guard that resolves with the operating system's resolver.
    pub fn new(cfg: EgressConfig) -> Result<Self, EgressError> {
        Self::with_resolver(cfg, Arc::new(SystemResolver))
    }

    /// A guard with its own resolver (tests use stubs).
    pub fn with_resolver(
        cfg: EgressConfig,
        resolver: Arc<dyn Resolve>,
    ) -> Result<Self, EgressError> {
        Self::build(cfg, resolver, None)
    }

    /// A guard with the operating system's resolver that tells `observer` about every refusal.
    pub fn observed(
        cfg: EgressConfig,
        observer: Arc<dyn RefusalObserver>,
    ) -> Result<Self, EgressError> {
        Self::build(cfg, Arc::new(SystemResolver), Some(observer))
    }

    /// A guard with its own resolver that tells `observer` about every refusal.
    pub fn observed_with_resolver(
        cfg: EgressConfig,
        resolver: Arc<dyn Resolve>,
        observer: Arc<dyn RefusalObserver>,
    ) -> Result<Self, EgressError> {
        Self::build(cfg, resolver, Some(observer))
    }

    fn build(
        cfg: EgressConfig,
        resolver: Arc<dyn Resolve>,
        observer: Option<Arc<dyn RefusalObserver>>,
    ) -> Result<Self, EgressError> {
        let checker = Arc::new(Checker {
            cfg,
            resolver,
            observer,
        });
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GuardResolver(Arc::clone(&checker))))
            .connect_timeout(checker.cfg.effective_connect_timeout())
            .referer(false)
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| {
                EgressError::Http(format!(
                    "could not build the HTTP client: {}",
                    root_cause(&e.without_url())
                ))
            })?;
        let stream_client = crate::stream::stream_client(&checker)?;
        Ok(Self {
            inner: Arc::new(Inner {
                checker,
                client,
                stream_client,
            }),
        })
    }

    pub(crate) fn stream_client(&self) -> &crate::stream::StreamClient {
        &self.inner.stream_client
    }

    pub fn config(&self) -> &EgressConfig {
        &self.inner.checker.cfg
    }

    /// `Err(Blocked)` with the reason when `ip` may not be contacted.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), EgressError> {
        self.inner.checker.check_ip(ip)
    }

    /// Resolves `host` (a name, an IP literal, or a bracketed IPv6 literal) and checks every address. A name is
    /// refused as a whole if any of its addresses is refused.
    pub async fn resolve_checked(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, EgressError> {
        self.inner.checker.resolve_checked(host, port).await
    }

    /// Everything that can be checked without DNS: scheme, userinfo, host, IP literal, names refused by name.
    pub(crate) fn check_url_static(&self, url: Url) -> Result<Url, EgressError> {
        match url.scheme() {
            "http" | "https" => {}
            other => {
                let shown: String = other.chars().take(32).collect();
                return Err(EgressError::InvalidUrl(format!(
                    "the scheme {shown:?} is not allowed (only http and https are)"
                )));
            }
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(EgressError::InvalidUrl(
                "the URL carries credentials (userinfo before the host), which are not allowed"
                    .to_owned(),
            ));
        }
        match url.host() {
            None => {
                return Err(EgressError::InvalidUrl("the URL has no host".to_owned()));
            }
            Some(Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip))?,
            Some(Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip))?,
            Some(Host::Domain(d)) => {
                self.inner.checker.check_name(d)?;
            }
        }
        if url.port_or_known_default().is_none() {
            return Err(EgressError::InvalidUrl("the URL has no port".to_owned()));
        }
        Ok(url)
    }

    pub(crate) fn parse_and_check_static(&self, url: &str) -> Result<Url, EgressError> {
        let parsed = Url::parse(url.trim()).map_err(|e| EgressError::InvalidUrl(e.to_string()))?;
        self.check_url_static(parsed)
    }

    /// Checks a URL fully, DNS included. `send` does the same checks, resolving once inside the connection.
    pub async fn check_url(&self, url: &str) -> Result<Url, EgressError> {
        let url = self.parse_and_check_static(url)?;
        if let Some(Host::Domain(d)) = url.host() {
            let port = url.port_or_known_default().unwrap_or(80);
            self.resolve_checked(d, port).await?;
        }
        Ok(url)
    }

    pub(crate) async fn execute(
        &self,
        method: &Method,
        url: &Url,
        headers: &HeaderMap,
        body: Option<reqwest::Body>,
    ) -> Result<reqwest::Response, EgressError> {
        let mut rb = self
            .inner
            .client
            .request(method.clone(), url.clone())
            .headers(headers.clone());
        if let Some(body) = body {
            rb = rb.body(body);
        }
        rb.send().await.map_err(|e| map_reqwest(e, url))
    }

    /// Sends a request, following redirects by hand when asked (each hop fully re-checked), and reads the body up
    /// to `max_response_bytes`. `total_timeout` bounds all of it.
    pub async fn send(&self, req: Request) -> Result<Response, EgressError> {
        let total = self.config().total_timeout;
        tokio::time::timeout(total, self.send_inner(req))
            .await
            .unwrap_or(Err(EgressError::Timeout))
    }

    async fn send_inner(&self, req: Request) -> Result<Response, EgressError> {
        let mut url = self.parse_and_check_static(&req.url)?;
        let mut headers = build_headers(&req.headers)?;
        let mut method = req.method;
        let mut body = req.body;
        let mut hops = 0usize;
        loop {
            let resp = self
                .execute(&method, &url, &headers, body.clone().map(Into::into))
                .await?;
            let status = resp.status().as_u16();
            let location = resp.headers().get(LOCATION).cloned();
            let location = match location {
                // A 307/308 would re-send the body; a body can hold secrets, so it never crosses origins: the
                // redirect is then the answer.
                Some(loc)
                    if req.follow_redirects
                        && is_followed_redirect(status)
                        && !(matches!(status, 307 | 308)
                            && body.is_some()
                            && crosses_origin(&url, &loc)) =>
                {
                    loc
                }
                _ => {
                    let headers = resp.headers().clone();
                    let (body, truncated) =
                        read_capped(resp, self.config().max_response_bytes, &url).await?;
                    return Ok(Response {
                        status,
                        headers,
                        body,
                        truncated,
                        final_url: url,
                    });
                }
            };
            drop(resp);
            if hops >= self.config().max_redirects {
                return Err(EgressError::TooManyRedirects);
            }
            hops += 1;
            let location = location.to_str().map_err(|_| {
                EgressError::Http("a redirect has an invalid Location header".to_owned())
            })?;
            let next = url
                .join(location.trim())
                .map_err(|e| EgressError::InvalidUrl(format!("redirect Location ({e})")))?;
            let next = self.check_url_static(next)?;
            if next.origin() != url.origin() {
                let drop_names: Vec<HeaderName> = headers
                    .keys()
                    .filter(|n| is_sensitive_header(n))
                    .cloned()
                    .collect();
                for n in drop_names {
                    headers.remove(&n);
                }
            }
            if matches!(status, 301..=303) {
                if method != Method::HEAD {
                    method = Method::GET;
                }
                body = None;
                headers.remove(CONTENT_TYPE);
                headers.remove(CONTENT_LENGTH);
            }
            tracing::debug!(status, host = ?next.host_str(), "egress following a redirect");
            url = next;
        }
    }

    /// Same checks as `send`, never follows redirects, returns as soon as the headers are in. The caller bounds its
    /// own reading of the body (for example an SSE stream).
    pub async fn send_streaming(&self, req: Request) -> Result<reqwest::Response, EgressError> {
        let total = self.config().total_timeout;
        let fut = async {
            let url = self.parse_and_check_static(&req.url)?;
            let headers = build_headers(&req.headers)?;
            self.execute(&req.method, &url, &headers, req.body.map(Into::into))
                .await
        };
        tokio::time::timeout(total, fut)
            .await
            .unwrap_or(Err(EgressError::Timeout))
    }

    /// A guarded TCP dialer for non-HTTP protocols (SQL): resolves and checks, then connects only to checked
    /// addresses, each in turn, all within `connect_timeout`.
    pub async fn connect_tcp(
        &self,
        host: &str,
        port: u16,
    ) -> Result<tokio::net::TcpStream, EgressError> {
        let dial = async {
            let addrs = self.resolve_checked(host, port).await?;
            let mut last: Option<io::Error> = None;
            for addr in addrs {
                match tokio::net::TcpStream::connect(addr).await {
                    Ok(stream) => return Ok(stream),
                    Err(e) => last = Some(e),
                }
            }
            let shown = host.trim();
            Err(EgressError::Connect(match last {
                Some(e) => format!("{shown}: {e}"),
                None => format!("{shown}: no address to connect to"),
            }))
        };
        // `timeout` rather than a deadline: `Instant + Duration` would panic on an absurdly large configured timeout.
        tokio::time::timeout(self.config().effective_connect_timeout(), dial)
            .await
            .unwrap_or(Err(EgressError::Timeout))
    }
}

/// Reads at most `cap` bytes of the body; `true` when there was more.
async fn read_capped(
    mut resp: reqwest::Response,
    cap: usize,
    url: &Url,
) -> Result<(Bytes, bool), EgressError> {
    let declared = resp.content_length();
    let initial = declared
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(8 * 1024)
        .min(cap)
        .min(64 * 1024);
    let mut buf = BytesMut::with_capacity(initial);
    loop {
        if buf.len() >= cap && declared.is_some_and(|n| n <= cap as u64) {
            return Ok((buf.freeze(), false));
        }
        let chunk = match resp.chunk().await.map_err(|e| map_reqwest(e, url))? {
            None => return Ok((buf.freeze(), false)),
            Some(chunk) => chunk,
        };
        let room = cap.saturating_sub(buf.len());
        if chunk.len() > room {
            buf.extend_from_slice(chunk.get(..room).unwrap_or_default());
            return Ok((buf.freeze(), true));
        }
        buf.extend_from_slice(&chunk);
    }
}

/// Whether a redirect's `Location` (resolved against `url`) names another origin. An unparseable one counts as not
/// crossing: following it fails later with a clear error anyway.
fn crosses_origin(url: &Url, location: &http::HeaderValue) -> bool {
    location
        .to_str()
        .ok()
        .and_then(|l| url.join(l.trim()).ok())
        .is_some_and(|next| next.origin() != url.origin())
}
