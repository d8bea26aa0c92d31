//! The SQL probe.
//!
//! **PostgreSQL**: the rendered DSN (a `postgres://` URL or `key=value` pairs) is parsed by `tokio_postgres`; the TCP
//! stream comes from the guard's dialer ([`Guard::connect_tcp`](plugboard_egress::Guard::connect_tcp)), so a refused
//! destination is never connected to; `tokio_postgres::Config::connect_raw` then negotiates TLS and logs in over that
//! stream, runs `SELECT 1` and closes. A Unix-socket host is refused: only TCP through the guard.
//!
//! TLS follows the DSN's `sslmode` with libpq's meaning:
//! - `disable`: no TLS.
//! - `prefer` (the default): TLS when the server offers it (tokio-postgres falls back to plain only when the server
//!   answers that it has no TLS), `require`: TLS or fail. As in libpq without a root certificate, these two encrypt
//!   but do not authenticate the server: most managed databases present certificates from their own CA, which no
//!   public root store holds.
//! - `verify-ca` / `verify-full`: TLS with the server's certificate checked against the Mozilla roots
//!   (`webpki-roots`); `verify-full` also checks the host name.
//!
//! **MySQL** (and MariaDB): no maintained async driver accepts a stream dialled by someone else, so the probe speaks
//! the protocol itself over the guard's stream with `mysql_common`'s packet types and authentication plugins (no
//! cryptography of ours): the greeting, TLS (see below), the handshake response, the sign-in exchange
//! (`mysql_native_password`, `caching_sha2_password` with its fast path, full authentication over TLS or with the
//! server's RSA key, `sha256_password`, switching to the account's own method when the server asks), `SELECT 1`,
//! `COM_QUIT`. The DSN is `mysql://user:password@host:port/database` (or `mariadb://`); its `ssl-mode` takes the
//! `mysql` client's values: `DISABLED`, `PREFERRED` (the default: TLS when the server offers it), `REQUIRED` (TLS or
//! fail; the certificate is not checked, as in the `mysql` client), `VERIFY_CA` (chain to a public root),
//! `VERIFY_IDENTITY` (chain and host name); libpq's spellings are accepted too. Methods that need a library feature
//! we do not build (MariaDB's `client_ed25519`, `parsec`) answer `ok: false` saying so.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use mysql_common::auth::plugins::AuthProc;
use mysql_common::collations::CollationId;
use mysql_common::constants::CapabilityFlags;
use mysql_common::io::ParseBuf;
use mysql_common::packets::{
    AuthMoreData, AuthPlugin, AuthSwitchRequest, ErrPacket, HandshakePacket, HandshakeResponse,
    SslRequest,
};
use mysql_common::proto::MySerialize;
use plugboard_catalog::{SqlDriver, SqlVerify};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::tls::{ChannelBinding, TlsConnect, TlsStream};

use super::{Outcome, ProbeContext};

const PROBE: &str = "sql";

pub async fn probe(ctx: &ProbeContext<'_>, spec: &SqlVerify) -> Outcome {
    let dsn = match ctx.render(&spec.dsn) {
        Ok(d) => d,
        Err(m) => return Outcome::fail(PROBE, ctx.finish(&m)),
    };
    match spec.driver {
        SqlDriver::Postgres => postgres(ctx, &dsn).await,
        SqlDriver::Mysql => mysql(ctx, &dsn).await,
    }
}

/// How the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CertCheck {
    /// `prefer` / `require`: encrypt only (libpq without a root certificate).
    None,
    /// `verify-ca`: chain to a public root.
    Ca,
    /// `verify-full`: chain and host name.
    Full,
}

/// tokio-postgres knows `disable`, `prefer` and `require`; `verify-ca` / `verify-full` are read here and passed on
/// as `require` with certificate checks.
fn split_verify_mode(dsn: &str) -> (String, CertCheck) {
    for (mode, check) in [
        ("verify-full", CertCheck::Full),
        ("verify-ca", CertCheck::Ca),
    ] {
        // URL form: `?sslmode=verify-full` / `&sslmode=verify-full`; key=value form: `sslmode=verify-full` with
        // optional spaces around `=` and optional quotes.
        let mut out = String::with_capacity(dsn.len());
        let mut rest = dsn;
        let mut found = false;
        while let Some(pos) = rest.find("sslmode") {
            let (before, after) = rest.split_at(pos);
            out.push_str(before);
            let prev_ok = out
                .chars()
                .last()
                .is_none_or(|c| c.is_whitespace() || c == '?' || c == '&');
            let tail = &after["sslmode".len()..];
            let trimmed = tail.trim_start();
            if prev_ok {
                if let Some(v) = trimmed.strip_prefix('=') {
                    let v = v.trim_start();
                    let (quoted, v) = match v.strip_prefix('\'') {
                        Some(v) => (true, v),
                        None => (false, v),
                    };
                    if let Some(v) = v.strip_prefix(mode) {
                        let v = if quoted {
                            v.strip_prefix('\'').unwrap_or(v)
                        } else {
                            v
                        };
                        if v.is_empty() || v.starts_with(|c: char| c.is_whitespace() || c == '&') {
                            out.push_str("sslmode=require");
                            rest = v;
                            found = true;
                            continue;
                        }
                    }
                }
            }
            out.push_str("sslmode");
            rest = tail;
        }
        out.push_str(rest);
        if found {
            return (out, check);
        }
    }
    (dsn.to_owned(), CertCheck::None)
}

/// The server's reason when it gave one, else the driver's description with its causes.
fn pg_reason(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("the database answered: {}", db.message()),
        None => format!("could not sign in to the database: {}", with_causes(e)),
    }
}

/// `e` and its sources, each added once.
fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    let mut depth = 0;
    while let Some(src) = cur {
        let s = src.to_string();
        if !s.is_empty() && !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cur = src.source();
        depth += 1;
        if depth > 8 {
            break;
        }
    }
    text
}

async fn postgres(ctx: &ProbeContext<'_>, dsn: &str) -> Outcome {
    let (dsn, check) = split_verify_mode(dsn.trim());
    let mut config = match tokio_postgres::Config::from_str(&dsn) {
        Ok(c) => c,
        Err(e) => {
            return Outcome::fail(
                PROBE,
                ctx.finish(&format!(
                    "the connection string is not valid: {}",
                    with_causes(&e)
                )),
            )
        }
    };
    if config.get_application_name().is_none() {
        config.application_name("plugboard-verify");
    }
    // Where to dial (hostaddr wins, as in libpq) and the name TLS checks.
    let hosts = config.get_hosts();
    let addrs = config.get_hostaddrs();
    let n = hosts.len().max(addrs.len());
    if n == 0 {
        return Outcome::fail(PROBE, "the connection string names no host");
    }
    let ports = config.get_ports();
    let mut last_failure = None;
    for i in 0..n {
        let name = match hosts.get(i) {
            Some(Host::Tcp(h)) => Some(h.clone()),
            Some(_) => {
                return Outcome::fail(
                    PROBE,
                    "unix sockets are not allowed: give a host name or address",
                )
            }
            None => None,
        };
        let dial = match (addrs.get(i), &name) {
            (Some(ip), _) => ip.to_string(),
            (None, Some(h)) => h.clone(),
            (None, None) => continue,
        };
        let tls_name = name.clone().unwrap_or_else(|| dial.clone());
        let port = match ports.len() {
            0 => 5432,
            1 => ports.first().copied().unwrap_or(5432),
            _ => ports.get(i).copied().unwrap_or(5432),
        };
        let stream = match ctx.guard.connect_tcp(&dial, port).await {
            Ok(s) => s,
            Err(e @ plugboard_egress::EgressError::Blocked(_)) => {
                return Outcome::fail(PROBE, ctx.egress_message("database", &e));
            }
            Err(e) => {
                last_failure = Some(ctx.egress_message("database", &e));
                continue;
            }
        };
        let result = if config.get_ssl_mode() == SslMode::Disable {
            login(&config, stream, tokio_postgres::NoTls).await
        } else {
            match RustlsConnect::new(&tls_name, check) {
                Ok(tls) => login(&config, stream, tls).await,
                Err(m) => Err(m),
            }
        };
        return match result {
            Ok(()) => Outcome::ok(PROBE),
            Err(m) => Outcome::fail(PROBE, ctx.finish(&m)),
        };
    }
    Outcome::fail(
        PROBE,
        last_failure.unwrap_or_else(|| "the connection string names no host".to_owned()),
    )
}

async fn login<T>(
    config: &tokio_postgres::Config,
    stream: tokio::net::TcpStream,
    tls: T,
) -> Result<(), String>
where
    T: TlsConnect<tokio::net::TcpStream>,
    T::Stream: Send + 'static,
{
    let (client, connection) = config
        .connect_raw(stream, tls)
        .await
        .map_err(|e| pg_reason(&e))?;
    let conn = tokio::spawn(connection);
    let result = client
        .simple_query("SELECT 1")
        .await
        .map(|_| ())
        .map_err(|e| pg_reason(&e));
    drop(client);
    // Dropping the client sends Terminate; give the connection a moment to close cleanly, then stop it.
    let abort = conn.abort_handle();
    if tokio::time::timeout(Duration::from_millis(500), conn)
        .await
        .is_err()
    {
        abort.abort();
    }
    result
}

// --- TLS for tokio-postgres over rustls -------------------------------------------------------------------------

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Accepts any certificate but still checks the handshake signatures: encryption without authentication, which is
/// what libpq's `prefer` and `require` mean.
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must reach a public root; the host name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

fn roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

fn client_config(check: CertCheck) -> Result<ClientConfig, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?;
    let config = match check {
        CertCheck::Full => builder
            .with_root_certificates(roots())
            .with_no_client_auth(),
        CertCheck::Ca => {
            let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots()),
                provider,
            )
            .build()
            .map_err(|e| format!("TLS setup failed: {e}"))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(verifier)))
                .with_no_client_auth()
        }
        CertCheck::None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
            .with_no_client_auth(),
    };
    Ok(config)
}

/// A `TlsConnect` for `connect_raw`, bound to one server name.
struct RustlsConnect {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl RustlsConnect {
    fn new(host: &str, check: CertCheck) -> Result<RustlsConnect, String> {
        let host = host.trim().trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| "the host is not a valid TLS server name".to_owned())?;
        Ok(RustlsConnect {
            config: Arc::new(client_config(check)?),
            name,
        })
    }
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = std::io::Error;
    type Future = BoxFuture<'static, std::io::Result<RustlsStream<S>>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let tls = tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await?;
            Ok(RustlsStream(tls))
        })
    }
}

struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    /// No channel binding: computing `tls-server-end-point` needs the certificate's signature hash, and guessing it
    /// wrong would fail a correct login. tokio-postgres then uses plain SCRAM (its default `channel_binding=prefer`).
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

// --- MySQL: a real login with mysql_common's packets and auth plugins ---------------------------------------------

/// `ssl-mode` of a MySQL DSN, with the names of the `mysql` client (`DISABLED`, `PREFERRED`, `REQUIRED`, `VERIFY_CA`,
/// `VERIFY_IDENTITY`; any case, `-` or `_`) and libpq's spellings (`disable`, `prefer`, `require`, `verify-ca`,
/// `verify-full`) as aliases. `PREFERRED` is the default, as in the `mysql` client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MySslMode {
    Disabled,
    Preferred,
    Required(CertCheck),
}

fn my_ssl_mode(url: &url::Url) -> Result<MySslMode, String> {
    let mut mode = MySslMode::Preferred;
    for (key, value) in url.query_pairs() {
        let key = key.to_ascii_lowercase().replace('_', "-");
        let value = value.to_ascii_lowercase().replace('_', "-");
        let parsed = match key.as_str() {
            "ssl-mode" | "sslmode" => match value.as_str() {
                "disabled" | "disable" => MySslMode::Disabled,
                "preferred" | "prefer" => MySslMode::Preferred,
                "required" | "require" => MySslMode::Required(CertCheck::None),
                "verify-ca" => MySslMode::Required(CertCheck::Ca),
                "verify-identity" | "verify-full" => MySslMode::Required(CertCheck::Full),
                _ => {
                    return Err(format!(
                        "the connection string's ssl-mode `{}` is not one of DISABLED, PREFERRED, REQUIRED, \
                         VERIFY_CA, VERIFY_IDENTITY",
                        value.chars().filter(|c| !c.is_control()).take(32).collect::<String>()
                    ))
                }
            },
            _ => continue,
        };
        mode = parsed;
    }
    Ok(mode)
}

/// The largest packet the probe reads (a greeting, an auth exchange with an RSA key, a one-row result).
const MY_MAX_PACKET: usize = 64 * 1024;
const MY_MAX_PACKET_U32: u32 = 64 * 1024;
/// The most packets one exchange (the sign-in, the query's result) may take.
const MY_MAX_PACKETS: usize = 32;

/// The client side of one MySQL connection: packet framing with sequence ids.
struct MyConn<S> {
    stream: S,
    seq: u8,
}

impl<S: AsyncRead + AsyncWrite + Unpin> MyConn<S> {
    async fn read(&mut self) -> Result<Vec<u8>, String> {
        use tokio::io::AsyncReadExt;
        let mut header = [0u8; 4];
        self.stream
            .read_exact(&mut header)
            .await
            .map_err(|e| format!("the database closed the connection: {e}"))?;
        let [l0, l1, l2, seq] = header;
        let len = usize::from(l0) | usize::from(l1) << 8 | usize::from(l2) << 16;
        if len > MY_MAX_PACKET {
            return Err("the database sent a packet larger than a sign-in needs".to_owned());
        }
        let mut payload = vec![0u8; len];
        self.stream
            .read_exact(&mut payload)
            .await
            .map_err(|e| format!("the database closed the connection: {e}"))?;
        self.seq = seq.wrapping_add(1);
        Ok(payload)
    }

    async fn write(&mut self, payload: &[u8]) -> Result<(), String> {
        use tokio::io::AsyncWriteExt;
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|l| *l < 0x00ff_ffff)
            .ok_or_else(|| "a packet for the database is too large".to_owned())?;
        let [l0, l1, l2, _] = len.to_le_bytes();
        let mut packet = Vec::with_capacity(payload.len() + 4);
        packet.extend_from_slice(&[l0, l1, l2, self.seq]);
        packet.extend_from_slice(payload);
        self.seq = self.seq.wrapping_add(1);
        self.stream
            .write_all(&packet)
            .await
            .map_err(|e| format!("the connection to the database failed: {e}"))?;
        self.stream
            .flush()
            .await
            .map_err(|e| format!("the connection to the database failed: {e}"))
    }
}

/// Runs a parser or an auth step of mysql_common on bytes the server sent; a panic inside the library (it should
/// not have one, but the bytes are untrusted) becomes an error instead of taking the request down.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(format!("the database sent a malformed {what}")))
}

fn my_server_error(caps: CapabilityFlags, payload: &[u8]) -> String {
    guarded("error packet", || {
        let err: ErrPacket<'_> = ParseBuf(payload)
            .parse(caps)
            .map_err(|_| "the database answered with an error it did not explain".to_owned())?;
        Ok(match err {
            ErrPacket::Error(e) => format!("the database answered: {}", e.message_str()),
            ErrPacket::Progress(_) => {
                "the database answered with an unexpected progress report".to_owned()
            }
        })
    })
    .unwrap_or_else(|m| m)
}

/// What mysql_common's auth plugins need to know.
#[derive(Clone, Copy)]
struct MyAuthCtx<'a> {
    password: &'a [u8],
    tls: bool,
    scramble: &'a [u8],
}

impl mysql_common::auth::plugins::Context for MyAuthCtx<'_> {
    fn pass(&self) -> &[u8] {
        self.password
    }
    fn is_ipc_transport(&self) -> bool {
        false
    }
    fn is_tls_transport(&self) -> bool {
        self.tls
    }
    fn scramble(&self) -> &[u8] {
        self.scramble
    }
    fn server_key_pem(&self) -> Option<&[u8]> {
        None
    }
}

fn plugin_name(plugin: &AuthPlugin<'_>) -> String {
    String::from_utf8_lossy(plugin.as_bytes())
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect()
}

fn auth_step(
    proc: &mut AuthProc,
    ctx: MyAuthCtx<'_>,
    challenge: &[u8],
) -> Result<Option<Vec<u8>>, String> {
    use mysql_common::auth::plugins::{ChallengeResponsePlugin, Error as PluginError};
    if ctx.scramble.is_empty() {
        return Err("the database sent an empty sign-in challenge".to_owned());
    }
    guarded("sign-in challenge", || {
        proc.run(ctx, challenge)
            .map(|r| r.data().map(<[u8]>::to_vec))
            .map_err(|e| match e {
                PluginError::FeatureRequired(f) => format!(
                    "the database asks for a sign-in method this verify does not support ({f}); use an account \
                     with mysql_native_password or caching_sha2_password"
                ),
                other => format!("the sign-in exchange failed: {other}"),
            })
    })
}

fn init_plugin(plugin: &AuthPlugin<'_>, tls: bool) -> Result<AuthProc, String> {
    match plugin {
        // As the `mysql` client does by default: never the password in clear text without TLS, never the pre-4.1
        // hash.
        AuthPlugin::MysqlClearPassword if !tls => {
            return Err(
                "the database asks for the password in clear text over an unencrypted connection; refused \
                 (connect with TLS: ssl-mode=REQUIRED)"
                    .to_owned(),
            )
        }
        AuthPlugin::MysqlOldPassword => {
            return Err(
                "the database asks for the pre-4.1 password method (mysql_old_password), which is insecure; \
                 refused"
                    .to_owned(),
            )
        }
        _ => {}
    }
    AuthProc::init(plugin).map_err(|_| {
        format!(
            "the database asks for the sign-in method `{}`, which this verify does not support; use an account \
             with mysql_native_password or caching_sha2_password",
            plugin_name(plugin)
        )
    })
}

async fn mysql(ctx: &ProbeContext<'_>, dsn: &str) -> Outcome {
    let url = match url::Url::parse(dsn.trim()) {
        Ok(u) if u.scheme() == "mysql" || u.scheme() == "mariadb" => u,
        _ => return Outcome::fail(
            PROBE,
            "the connection string is not valid: expected mysql://user:password@host:port/database",
        ),
    };
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return Outcome::fail(PROBE, "the connection string names no host");
    };
    if url
        .query_pairs()
        .any(|(k, _)| k == "socket" || k == "socketPath")
    {
        return Outcome::fail(
            PROBE,
            "unix sockets are not allowed: give a host name or address",
        );
    }
    let mode = match my_ssl_mode(&url) {
        Ok(m) => m,
        Err(m) => return Outcome::fail(PROBE, ctx.finish(&m)),
    };
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let user = decode(url.username());
    let password = decode(url.password().unwrap_or_default());
    let database = decode(url.path().trim_start_matches('/'));
    let port = url.port().unwrap_or(3306);
    let stream = match ctx.guard.connect_tcp(host, port).await {
        Ok(s) => s,
        Err(e) => return Outcome::fail(PROBE, ctx.egress_message("database", &e)),
    };
    let login = MyLogin {
        host: host.trim_start_matches('[').trim_end_matches(']'),
        user: &user,
        password: &password,
        database: Some(database.as_str()).filter(|d| !d.is_empty()),
        mode,
    };
    match login.run(stream).await {
        Ok(()) => Outcome::ok(PROBE),
        Err(m) => Outcome::fail(PROBE, ctx.finish(&m)),
    }
}

struct MyLogin<'a> {
    host: &'a str,
    user: &'a str,
    password: &'a str,
    database: Option<&'a str>,
    mode: MySslMode,
}

impl MyLogin<'_> {
    /// Greeting, TLS when the server offers it and the DSN does not disable it (required when the DSN says so),
    /// sign-in (switching plugins when the server asks), `SELECT 1`, `COM_QUIT`.
    async fn run(&self, stream: tokio::net::TcpStream) -> Result<(), String> {
        let mut conn = MyConn { stream, seq: 0 };
        let greeting = conn.read().await?;
        let (caps, nonce, plugin, version) = match greeting.first() {
            Some(0xff) => {
                return Err(my_server_error(
                    CapabilityFlags::CLIENT_PROTOCOL_41,
                    &greeting,
                ))
            }
            Some(0x0a) => guarded("greeting", || {
                let hs: HandshakePacket<'_> = ParseBuf(&greeting).parse(()).map_err(|_| {
                    "the server did not answer like a MySQL server (unreadable greeting)".to_owned()
                })?;
                Ok((
                    hs.capabilities(),
                    hs.nonce(),
                    hs.auth_plugin().map(AuthPlugin::into_owned),
                    hs.server_version_parsed().unwrap_or((5, 5, 3)),
                ))
            })?,
            _ => {
                return Err(
                    "the server did not answer like a MySQL server (unexpected greeting)"
                        .to_owned(),
                )
            }
        };
        if !caps.contains(CapabilityFlags::CLIENT_PROTOCOL_41) {
            return Err("the database server is too old (no protocol 4.1 support)".to_owned());
        }
        let mut client = CapabilityFlags::CLIENT_PROTOCOL_41
            | CapabilityFlags::CLIENT_SECURE_CONNECTION
            | CapabilityFlags::CLIENT_LONG_PASSWORD
            | CapabilityFlags::CLIENT_LONG_FLAG
            | CapabilityFlags::CLIENT_TRANSACTIONS
            | CapabilityFlags::CLIENT_MULTI_RESULTS
            | CapabilityFlags::CLIENT_PLUGIN_AUTH
            | CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA;
        client &= caps | CapabilityFlags::CLIENT_PROTOCOL_41;
        let server_tls = caps.contains(CapabilityFlags::CLIENT_SSL);
        let check = match self.mode {
            MySslMode::Disabled => None,
            MySslMode::Preferred if server_tls => Some(CertCheck::None),
            MySslMode::Preferred => None,
            MySslMode::Required(check) if server_tls => Some(check),
            MySslMode::Required(_) => {
                return Err(
                    "the database server does not offer TLS, but the connection string requires it (ssl-mode)"
                        .to_owned(),
                )
            }
        };
        match check {
            None => {
                self.sign_in_and_query(conn, client, &nonce, plugin, version, false)
                    .await
            }
            Some(check) => {
                client |= CapabilityFlags::CLIENT_SSL;
                let mut request = Vec::new();
                SslRequest::new(
                    client,
                    MY_MAX_PACKET_U32,
                    CollationId::UTF8MB4_GENERAL_CI as u8,
                )
                .serialize(&mut request);
                conn.write(&request).await?;
                let tls = RustlsConnect::new(self.host, check)?;
                let stream = tokio_rustls::TlsConnector::from(tls.config)
                    .connect(tls.name, conn.stream)
                    .await
                    .map_err(|e| {
                        format!(
                            "the TLS handshake with the database failed: {}",
                            with_causes(&e)
                        )
                    })?;
                let conn = MyConn {
                    stream,
                    seq: conn.seq,
                };
                self.sign_in_and_query(conn, client, &nonce, plugin, version, true)
                    .await
            }
        }
    }

    async fn sign_in_and_query<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut conn: MyConn<S>,
        client: CapabilityFlags,
        nonce: &[u8],
        plugin: Option<AuthPlugin<'static>>,
        version: (u16, u16, u16),
        tls: bool,
    ) -> Result<(), String> {
        // Start with the server's default method when we know it, else mysql_native_password; the server switches
        // us to the account's own method when it differs.
        let mut plugin = plugin
            .filter(|p| {
                AuthProc::init(p).is_ok() && !matches!(p, AuthPlugin::Ed25519 | AuthPlugin::Parsec)
            })
            .unwrap_or(AuthPlugin::MysqlNativePassword);
        let mut proc = init_plugin(&plugin, tls)?;
        let mut scramble = nonce.to_vec();
        let first = auth_step(
            &mut proc,
            MyAuthCtx {
                password: self.password.as_bytes(),
                tls,
                scramble: &scramble,
            },
            nonce,
        )?
        .unwrap_or_default();
        let mut response = Vec::new();
        HandshakeResponse::new(
            Some(first),
            version,
            Some(self.user.as_bytes()),
            self.database.map(str::as_bytes),
            Some(plugin.clone()),
            client,
            None,
            MY_MAX_PACKET_U32,
        )
        .serialize(&mut response);
        conn.write(&response).await?;

        let mut signed_in = false;
        for _ in 0..MY_MAX_PACKETS {
            let packet = conn.read().await?;
            match packet.first() {
                Some(0x00) => {
                    signed_in = true;
                    break;
                }
                Some(0xff) => return Err(my_server_error(client, &packet)),
                Some(0xfe) => {
                    let (next, data) = guarded("request to switch sign-in method", || {
                        let req: AuthSwitchRequest<'_> =
                            ParseBuf(&packet).parse(()).map_err(|_| {
                                "the database sent an unreadable request to switch sign-in method"
                                    .to_owned()
                            })?;
                        Ok((req.auth_plugin().into_owned(), req.plugin_data().to_vec()))
                    })?;
                    plugin = next;
                    proc = init_plugin(&plugin, tls)?;
                    scramble = data;
                    let answer = auth_step(
                        &mut proc,
                        MyAuthCtx {
                            password: self.password.as_bytes(),
                            tls,
                            scramble: &scramble,
                        },
                        &scramble,
                    )?;
                    conn.write(&answer.unwrap_or_default()).await?;
                }
                Some(0x01) => {
                    let data = guarded("sign-in data", || {
                        let more: AuthMoreData<'_> = ParseBuf(&packet)
                            .parse(())
                            .map_err(|_| "the database sent unreadable sign-in data".to_owned())?;
                        Ok(more.data().to_vec())
                    })?;
                    let answer = auth_step(
                        &mut proc,
                        MyAuthCtx {
                            password: self.password.as_bytes(),
                            tls,
                            scramble: &scramble,
                        },
                        &data,
                    )?;
                    if let Some(answer) = answer {
                        conn.write(&answer).await?;
                    }
                }
                _ => {
                    return Err(
                        "the database answered the sign-in with an unexpected packet".to_owned(),
                    )
                }
            }
        }
        if !signed_in {
            return Err("the sign-in exchange with the database did not finish".to_owned());
        }

        // One trivial query: a column count, the column, an EOF, the row, an EOF (no CLIENT_DEPRECATE_EOF asked).
        conn.seq = 0;
        conn.write(b"\x03SELECT 1").await?;
        let mut eofs = 0;
        let mut done = false;
        for _ in 0..MY_MAX_PACKETS {
            let packet = conn.read().await?;
            match packet.first() {
                Some(0xff) => return Err(my_server_error(client, &packet)),
                // An OK instead of a result set: the query ran (some proxies answer so).
                Some(0x00) if eofs == 0 && packet.len() < 9 => done = true,
                Some(0xfe) if packet.len() < 9 => {
                    eofs += 1;
                    done = eofs == 2;
                }
                Some(_) => {}
                None => {
                    return Err("the database answered the query with an empty packet".to_owned())
                }
            }
            if done {
                break;
            }
        }
        if !done {
            return Err("the database did not finish answering `SELECT 1`".to_owned());
        }
        conn.seq = 0;
        let _ = conn.write(b"\x01").await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_modes_become_require() {
        assert_eq!(
            split_verify_mode("postgres://u@h/db?sslmode=verify-full"),
            (
                "postgres://u@h/db?sslmode=require".to_owned(),
                CertCheck::Full
            )
        );
        assert_eq!(
            split_verify_mode("host=h sslmode = 'verify-ca' user=u"),
            ("host=h sslmode=require user=u".to_owned(), CertCheck::Ca)
        );
        assert_eq!(
            split_verify_mode("postgres://u@h/db?sslmode=require&x=1"),
            (
                "postgres://u@h/db?sslmode=require&x=1".to_owned(),
                CertCheck::None
            )
        );
        assert_eq!(
            split_verify_mode("postgres://u:sslmode=verify-full@h/db").1,
            CertCheck::None
        );
    }

    #[test]
    fn tls_configs_build() {
        for c in [CertCheck::None, CertCheck::Ca, CertCheck::Full] {
            assert!(client_config(c).is_ok());
        }
        assert!(RustlsConnect::new("127.0.0.1", CertCheck::None).is_ok());
        assert!(RustlsConnect::new("db.example.com", CertCheck::Full).is_ok());
    }
}
