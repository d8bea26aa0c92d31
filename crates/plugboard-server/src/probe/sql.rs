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
//! **MySQL**: no maintained async driver accepts a stream that was dialled by someone else (the drivers dial for
//! themselves, which would bypass the guard), and a hand-written MySQL login (native password, caching_sha2 with its
//! RSA exchange, TLS upgrade) is more than this probe should carry. So the MySQL probe dials through the guard, reads
//! the server's greeting (which is sent before any credentials) and answers `ok: true` saying the server was
//! reached but the user name and password were not checked; a refused destination, an unreachable server, a server
//! that refuses the connection outright (its greeting is an error packet) or something that is not MySQL answer
//! `ok: false`.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use plugboard_catalog::{SqlDriver, SqlVerify};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
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

// --- MySQL: the greeting only -------------------------------------------------------------------------------------

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
    let port = url.port().unwrap_or(3306);
    let mut stream = match ctx.guard.connect_tcp(host, port).await {
        Ok(s) => s,
        Err(e) => return Outcome::fail(PROBE, ctx.egress_message("database", &e)),
    };
    let mut header = [0u8; 4];
    if let Err(e) = stream.read_exact(&mut header).await {
        return Outcome::fail(
            PROBE,
            ctx.finish(&format!(
                "the server closed the connection before greeting: {e}"
            )),
        );
    }
    let len = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
    let mut payload = vec![0u8; len.min(4096)];
    if let Err(e) = stream.read_exact(&mut payload).await {
        return Outcome::fail(
            PROBE,
            ctx.finish(&format!("the server's greeting was cut short: {e}")),
        );
    }
    drop(stream);
    match payload.first() {
        Some(0x0a) => {
            let version: String = payload
                .get(1..)
                .unwrap_or_default()
                .iter()
                .take_while(|b| **b != 0)
                .take(64)
                .map(|b| char::from(*b))
                .filter(|c| !c.is_control())
                .collect();
            Outcome::ok_with(
                PROBE,
                ctx.finish(&format!(
                    "reached a MySQL server ({version}); the user name and password were not checked: \
                     Plugboard does not sign in to MySQL servers during verify"
                )),
            )
        }
        Some(0xff) => {
            // Error packet: 0xff, code (2 bytes), then the message (no SQL state before the handshake).
            let msg = String::from_utf8_lossy(payload.get(3..).unwrap_or_default()).into_owned();
            Outcome::fail(
                PROBE,
                ctx.finish(&format!("the database refused the connection: {msg}")),
            )
        }
        _ => Outcome::fail(
            PROBE,
            "the server did not answer like a MySQL server (unexpected greeting)",
        ),
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
