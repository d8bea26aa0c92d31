//! Configuration: every setting from an environment variable (flags mirror them), validated at start with a
//! message that says how to fix a bad value.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use plugboard_store::SqliteSynchronous;
use secrecy::SecretString;
use url::Url;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./data";
pub const DEFAULT_PROBE_TIMEOUT_MS: &str = "10000";
pub const DEFAULT_GATEWAY_TIMEOUT_MS: &str = "60000";
pub const DEFAULT_DB_TIMEOUT_MS: &str = "3000";
pub const DEFAULT_HEADER_TIMEOUT_MS: &str = "10000";
pub const DEFAULT_MAX_CONNECTIONS: &str = "512";
pub const DEFAULT_VERIFY_RATE_PER_MINUTE: &str = "30";
pub const DEFAULT_SQLITE_SYNCHRONOUS: &str = "full";
pub const DEFAULT_OIDC_SCOPES: &str = "openid email profile";
const DEFAULT_LOG_FORMAT: &str = "pretty";

/// Where the database is: every command that opens it.
#[derive(Clone, Debug, clap::Args)]
#[command(next_help_heading = "Database")]
pub struct DatabaseArgs {
    /// Folder of the default SQLite database (plugboard.db) and of the development key file (master.key)
    #[arg(
        long,
        env = "PLUGBOARD_DATA_DIR",
        hide_env_values = true,
        default_value = DEFAULT_DATA_DIR,
        value_name = "DIR",
        global = true
    )]
    pub data_dir: PathBuf,
    /// Database URL, sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/NAME; unset: sqlite://DIR/plugboard.db
    #[arg(
        long,
        env = "PLUGBOARD_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL",
        global = true
    )]
    pub database_url: Option<String>,
}

/// The master key: commands that open the vault.
#[derive(Clone, Debug, clap::Args)]
#[command(next_help_heading = "Master key")]
pub struct MasterKeyArgs {
    /// Master key, base64 of 32 random bytes (`openssl rand -base64 32`); with neither this nor a key file, SQLite
    /// uses DIR/master.key (created on first start)
    #[arg(
        long,
        env = "PLUGBOARD_MASTER_KEY",
        hide_env_values = true,
        value_name = "BASE64"
    )]
    pub master_key: Option<String>,
    /// File holding the master key in base64 (mode 0600 or 0400), e.g. a systemd credential or a mounted secret
    #[arg(
        long,
        env = "PLUGBOARD_MASTER_KEY_FILE",
        hide_env_values = true,
        value_name = "FILE"
    )]
    pub master_key_file: Option<PathBuf>,
}

/// Every setting `plugboard serve` reads (flags and environment variables).
#[derive(Clone, Debug, clap::Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub key: MasterKeyArgs,
    /// SQLite durability: `full` (every acknowledged write survives a power cut) or `normal` (faster; an OS crash
    /// or power cut can lose the last acknowledged writes)
    #[arg(
        long,
        env = "PLUGBOARD_SQLITE_SYNCHRONOUS",
        hide_env_values = true,
        default_value = DEFAULT_SQLITE_SYNCHRONOUS,
        value_name = "full|normal",
        help_heading = "Database"
    )]
    pub sqlite_synchronous: String,
    /// How long a request waits for the database (a connection, a lock, an answer) before it answers 503
    /// `database_unavailable`, in milliseconds (100 to 60000)
    #[arg(
        long,
        env = "PLUGBOARD_DB_TIMEOUT_MS",
        hide_env_values = true,
        default_value = DEFAULT_DB_TIMEOUT_MS,
        value_name = "MS",
        help_heading = "Database"
    )]
    pub db_timeout_ms: String,
    /// Address to listen on, IP:PORT (0.0.0.0:8080 for every interface)
    #[arg(
        long,
        env = "PLUGBOARD_LISTEN",
        hide_env_values = true,
        default_value = DEFAULT_LISTEN,
        value_name = "IP:PORT",
        help_heading = "Server"
    )]
    pub listen: String,
    /// How long a client has to send a request's headers, in milliseconds (a half-sent request is closed after
    /// it; a keep-alive connection idle that long is closed too)
    #[arg(
        long,
        env = "PLUGBOARD_HEADER_TIMEOUT_MS",
        hide_env_values = true,
        default_value = DEFAULT_HEADER_TIMEOUT_MS,
        value_name = "MS",
        help_heading = "Server"
    )]
    pub header_timeout_ms: String,
    /// Most connections served at once (more wait in the listen backlog); keep it below the open-file limit
    /// (`ulimit -n`)
    #[arg(
        long,
        env = "PLUGBOARD_MAX_CONNECTIONS",
        hide_env_values = true,
        default_value = DEFAULT_MAX_CONNECTIONS,
        value_name = "N",
        help_heading = "Server"
    )]
    pub max_connections: String,
    /// Externally visible base URL, e.g. https://plugboard.example.com (OAuth redirect URIs are built from it);
    /// unset: http://LISTEN
    #[arg(
        long,
        env = "PLUGBOARD_PUBLIC_URL",
        hide_env_values = true,
        value_name = "URL",
        help_heading = "Server"
    )]
    pub public_url: Option<String>,
    /// Folder of manifests (*.yaml, *.yml, *.json) that replaces the built-in catalog; unset: the built-in one
    #[arg(
        long,
        env = "PLUGBOARD_CATALOG_DIR",
        hide_env_values = true,
        value_name = "DIR",
        help_heading = "Server"
    )]
    pub catalog_dir: Option<PathBuf>,
    /// Comma-separated CIDRs the egress guard lets through although private or loopback, e.g. 10.0.0.0/8
    #[arg(
        long,
        env = "PLUGBOARD_EGRESS_ALLOW_CIDRS",
        hide_env_values = true,
        default_value = "",
        value_name = "CIDRS",
        help_heading = "Server"
    )]
    pub egress_allow_cidrs: String,
    /// Bound on one verify probe, end to end, in milliseconds
    #[arg(
        long,
        env = "PLUGBOARD_PROBE_TIMEOUT_MS",
        hide_env_values = true,
        default_value = DEFAULT_PROBE_TIMEOUT_MS,
        value_name = "MS",
        help_heading = "Server"
    )]
    pub probe_timeout_ms: String,
    /// The MCP gateway reads an upstream answer or stream within this much silence, in milliseconds
    #[arg(
        long,
        env = "PLUGBOARD_GATEWAY_TIMEOUT_MS",
        hide_env_values = true,
        default_value = DEFAULT_GATEWAY_TIMEOUT_MS,
        value_name = "MS",
        help_heading = "Server"
    )]
    pub gateway_timeout_ms: String,
    /// Verifies a minute per workspace, per instance (the burst is the same number)
    #[arg(
        long,
        env = "PLUGBOARD_VERIFY_RATE_PER_MINUTE",
        hide_env_values = true,
        default_value = DEFAULT_VERIFY_RATE_PER_MINUTE,
        value_name = "N",
        help_heading = "Server"
    )]
    pub verify_rate_per_minute: String,
    /// Log format on stderr: `pretty` (coloured on a terminal only) or `json`; the level comes from RUST_LOG
    #[arg(
        long,
        env = "PLUGBOARD_LOG_FORMAT",
        hide_env_values = true,
        default_value = DEFAULT_LOG_FORMAT,
        value_name = "pretty|json",
        help_heading = "Server"
    )]
    pub log_format: String,
    /// Token that `GET /metrics` requires as `Authorization: Bearer <token>` (16 to 256 visible ASCII characters,
    /// e.g. `openssl rand -hex 32`); unset: /metrics answers loopback callers only
    #[arg(
        long,
        env = "PLUGBOARD_METRICS_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        help_heading = "Server"
    )]
    pub metrics_token: Option<String>,
    /// OpenID Connect sign-in: the identity provider's issuer URL (https; http only on loopback). Unset: no OIDC.
    #[arg(long, env = "PLUGBOARD_OIDC_ISSUER", help_heading = "Sign-in")]
    pub oidc_issuer: Option<String>,
    /// The client id Plugboard is registered under at the identity provider.
    #[arg(long, env = "PLUGBOARD_OIDC_CLIENT_ID", help_heading = "Sign-in")]
    pub oidc_client_id: Option<String>,
    /// The client secret; unset: Plugboard is a public client (PKCE only).
    #[arg(
        long,
        env = "PLUGBOARD_OIDC_CLIENT_SECRET",
        hide_env_values = true,
        help_heading = "Sign-in"
    )]
    pub oidc_client_secret: Option<String>,
    /// The scopes asked for at sign-in, separated by spaces.
    #[arg(
        long,
        env = "PLUGBOARD_OIDC_SCOPES",
        default_value = DEFAULT_OIDC_SCOPES,
        help_heading = "Sign-in"
    )]
    pub oidc_scopes: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Validated settings.
#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub catalog_dir: Option<PathBuf>,
    pub master_key: Option<SecretString>,
    /// A file holding the master key (never set together with `master_key`).
    pub master_key_file: Option<PathBuf>,
    pub sqlite_synchronous: SqliteSynchronous,
    /// `PLUGBOARD_DB_TIMEOUT_MS`: how long a request waits for the database before it answers 503.
    pub db_timeout: Duration,
    /// `PLUGBOARD_HEADER_TIMEOUT_MS`: how long a client has to send a request head (also the keep-alive idle
    /// bound).
    pub header_timeout: Duration,
    /// `PLUGBOARD_MAX_CONNECTIONS`: most connections served at once.
    pub max_connections: usize,
    /// Without a trailing slash.
    pub public_url: String,
    pub egress_allow_cidrs: Vec<IpNet>,
    pub probe_timeout: Duration,
    /// `PLUGBOARD_GATEWAY_TIMEOUT_MS`: the MCP gateway's bound on upstream silence.
    pub gateway_timeout: Duration,
    pub verify_rate_per_minute: u32,
    pub log_format: LogFormat,
    /// OpenID Connect sign-in, when `PLUGBOARD_OIDC_ISSUER` is set.
    pub oidc: Option<OidcConfig>,
    /// The bearer token `GET /metrics` requires; `None`: loopback callers only.
    pub metrics_token: Option<SecretString>,
}

/// The identity provider for OpenID Connect sign-in (validated).
#[derive(Clone)]
pub struct OidcConfig {
    /// Exactly as configured (a trailing slash is kept: the ID token's `iss` must match it byte for byte).
    pub issuer: String,
    pub client_id: String,
    /// `None`: a public client.
    pub client_secret: Option<SecretString>,
    /// Always contains `openid`.
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary())
    }
}

/// A configuration value that cannot be used, with how to fix it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl DatabaseArgs {
    /// The database URL these settings name, checked.
    pub fn url(&self) -> Result<String, ConfigError> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError(
                "PLUGBOARD_DATA_DIR must not be empty (default ./data)".into(),
            ));
        }
        match self
            .database_url
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            Some(url) => {
                if !(url.starts_with("sqlite:")
                    || url.starts_with("postgres://")
                    || url.starts_with("postgresql://"))
                {
                    return Err(ConfigError(
                        "PLUGBOARD_DATABASE_URL must start with sqlite:// or postgres:// \
                         (e.g. postgres://user:pass@localhost:5432/plugboard)"
                            .into(),
                    ));
                }
                Ok(url.to_string())
            }
            None => Ok(format!(
                "sqlite://{}",
                self.data_dir.join("plugboard.db").display()
            )),
        }
    }
}

impl MasterKeyArgs {
    /// Neither, or exactly one of, the key and the key file (empty values count as unset).
    fn validate(self) -> Result<(Option<SecretString>, Option<PathBuf>), ConfigError> {
        let key = self.master_key.filter(|s| !s.trim().is_empty());
        let file = self.master_key_file.filter(|p| !p.as_os_str().is_empty());
        if key.is_some() && file.is_some() {
            return Err(ConfigError(
                "PLUGBOARD_MASTER_KEY and PLUGBOARD_MASTER_KEY_FILE are both set: set only one of them (the file \
                 keeps the key out of the environment)"
                    .into(),
            ));
        }
        Ok((key.map(SecretString::from), file))
    }
}

impl ConfigArgs {
    /// The settings of an operator command: its database (and master key) settings, everything else at its
    /// default.
    pub fn for_command(database: DatabaseArgs, key: Option<MasterKeyArgs>) -> ConfigArgs {
        ConfigArgs {
            database,
            key: key.unwrap_or(MasterKeyArgs {
                master_key: None,
                master_key_file: None,
            }),
            sqlite_synchronous: DEFAULT_SQLITE_SYNCHRONOUS.into(),
            db_timeout_ms: DEFAULT_DB_TIMEOUT_MS.into(),
            listen: DEFAULT_LISTEN.into(),
            header_timeout_ms: DEFAULT_HEADER_TIMEOUT_MS.into(),
            max_connections: DEFAULT_MAX_CONNECTIONS.into(),
            public_url: None,
            catalog_dir: None,
            egress_allow_cidrs: String::new(),
            probe_timeout_ms: DEFAULT_PROBE_TIMEOUT_MS.into(),
            gateway_timeout_ms: DEFAULT_GATEWAY_TIMEOUT_MS.into(),
            verify_rate_per_minute: DEFAULT_VERIFY_RATE_PER_MINUTE.into(),
            log_format: DEFAULT_LOG_FORMAT.into(),
            metrics_token: None,
            oidc_issuer: None,
            oidc_client_id: None,
            oidc_client_secret: None,
            oidc_scopes: DEFAULT_OIDC_SCOPES.into(),
        }
    }

    pub fn into_config(self) -> Result<Config, ConfigError> {
        let listen: SocketAddr = self.listen.trim().parse().map_err(|_| {
            ConfigError(format!(
                "PLUGBOARD_LISTEN `{}` is not an address: use host:port with an IP, e.g. 127.0.0.1:8080 or 0.0.0.0:8080",
                self.listen
            ))
        })?;
        let database_url = self.database.url()?;
        let (master_key, master_key_file) = self.key.validate()?;
        let sqlite_synchronous = match self.sqlite_synchronous.trim().to_ascii_lowercase().as_str() {
            "full" => SqliteSynchronous::Full,
            "normal" => SqliteSynchronous::Normal,
            other => {
                return Err(ConfigError(format!(
                    "PLUGBOARD_SQLITE_SYNCHRONOUS `{other}` must be `full` (the default: every acknowledged write \
                     survives a power cut) or `normal` (faster; an OS crash or power cut can lose the last \
                     acknowledged writes)"
                )))
            }
        };
        let db_timeout_ms: u64 = self
            .db_timeout_ms
            .trim()
            .parse()
            .ok()
            .filter(|ms| (100..=60_000).contains(ms))
            .ok_or_else(|| {
                ConfigError(format!(
                    "PLUGBOARD_DB_TIMEOUT_MS `{}` must be a whole number of milliseconds from 100 to 60000 \
                     (default 3000): how long a request waits for the database before it answers 503",
                    self.db_timeout_ms
                ))
            })?;
        let header_timeout_ms: u64 = self
            .header_timeout_ms
            .trim()
            .parse()
            .ok()
            .filter(|ms| (100..=600_000).contains(ms))
            .ok_or_else(|| {
                ConfigError(format!(
                    "PLUGBOARD_HEADER_TIMEOUT_MS `{}` must be a whole number of milliseconds from 100 to 600000 \
                     (default 10000): how long a client has to send a request's headers",
                    self.header_timeout_ms
                ))
            })?;
        let max_connections: usize = self
            .max_connections
            .trim()
            .parse()
            .ok()
            .filter(|n| (1..=1_000_000).contains(n))
            .ok_or_else(|| {
                ConfigError(format!(
                    "PLUGBOARD_MAX_CONNECTIONS `{}` must be a whole number from 1 to 1000000 (default 512), below \
                     the open-file limit (`ulimit -n`)",
                    self.max_connections
                ))
            })?;
        let public_url = match self.public_url.filter(|s| !s.trim().is_empty()) {
            Some(raw) => {
                let parsed = Url::parse(raw.trim()).map_err(|e| {
                    ConfigError(format!(
                        "PLUGBOARD_PUBLIC_URL is not a URL ({e}): use the externally visible base, e.g. https://plugboard.example.com"
                    ))
                })?;
                if !matches!(parsed.scheme(), "http" | "https")
                    || parsed.host_str().is_none()
                    || parsed.query().is_some()
                    || parsed.fragment().is_some()
                    || !parsed.username().is_empty()
                    || parsed.password().is_some()
                {
                    return Err(ConfigError(
                        "PLUGBOARD_PUBLIC_URL must be an http(s) base URL without credentials, query or fragment, \
                         e.g. https://plugboard.example.com"
                            .into(),
                    ));
                }
                parsed.as_str().trim_end_matches('/').to_string()
            }
            None => format!("http://{listen}"),
        };
        let egress_allow_cidrs = plugboard_egress::parse_allow_cidrs(&self.egress_allow_cidrs)
            .map_err(|e| {
                ConfigError(format!(
                    "PLUGBOARD_EGRESS_ALLOW_CIDRS: {e} (e.g. 10.0.0.0/8,127.0.0.1/32)"
                ))
            })?;
        let probe_timeout_ms: u64 = self.probe_timeout_ms.trim().parse().ok().filter(|ms| (1..=600_000).contains(ms)).ok_or_else(|| {
            ConfigError(format!(
                "PLUGBOARD_PROBE_TIMEOUT_MS `{}` must be a whole number of milliseconds from 1 to 600000 (default 10000)",
                self.probe_timeout_ms
            ))
        })?;
        let gateway_timeout_ms: u64 = self
            .gateway_timeout_ms
            .trim()
            .parse()
            .ok()
            .filter(|ms| (1..=3_600_000).contains(ms))
            .ok_or_else(|| {
                ConfigError(format!(
                    "PLUGBOARD_GATEWAY_TIMEOUT_MS `{}` must be a whole number of milliseconds from 1 to 3600000 \
                     (default 60000)",
                    self.gateway_timeout_ms
                ))
            })?;
        let verify_rate_per_minute: u32 = self
            .verify_rate_per_minute
            .trim()
            .parse()
            .ok()
            .filter(|n| (1..=1_000_000).contains(n))
            .ok_or_else(|| {
                ConfigError(format!(
                    "PLUGBOARD_VERIFY_RATE_PER_MINUTE `{}` must be a whole number from 1 to 1000000 (default 30)",
                    self.verify_rate_per_minute
                ))
            })?;
        let log_format = match self.log_format.trim().to_ascii_lowercase().as_str() {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError(format!(
                    "PLUGBOARD_LOG_FORMAT `{other}` must be `pretty` or `json`"
                )))
            }
        };
        let metrics_token = parse_metrics_token(self.metrics_token)?;
        let oidc = parse_oidc(
            self.oidc_issuer,
            self.oidc_client_id,
            self.oidc_client_secret,
            &self.oidc_scopes,
        )?;
        Ok(Config {
            listen,
            data_dir: self.database.data_dir,
            database_url,
            catalog_dir: self.catalog_dir.filter(|p| !p.as_os_str().is_empty()),
            master_key,
            master_key_file,
            sqlite_synchronous,
            db_timeout: Duration::from_millis(db_timeout_ms),
            header_timeout: Duration::from_millis(header_timeout_ms),
            max_connections,
            public_url,
            egress_allow_cidrs,
            probe_timeout: Duration::from_millis(probe_timeout_ms),
            gateway_timeout: Duration::from_millis(gateway_timeout_ms),
            verify_rate_per_minute,
            log_format,
            oidc,
            metrics_token,
        })
    }
}

/// `PLUGBOARD_METRICS_TOKEN`: unset or blank is `None`; otherwise 16 to 256 visible ASCII characters (it travels
/// in a header). The value is never part of an error message.
fn parse_metrics_token(raw: Option<String>) -> Result<Option<SecretString>, ConfigError> {
    let Some(token) = raw.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let visible = token.bytes().all(|b| b.is_ascii_graphic());
    if !visible || !(16..=256).contains(&token.len()) {
        return Err(ConfigError(
            "PLUGBOARD_METRICS_TOKEN must be 16 to 256 visible ASCII characters without spaces: generate one with              `openssl rand -hex 32`, or unset it to serve /metrics to loopback callers only"
                .into(),
        ));
    }
    Ok(Some(SecretString::from(token)))
}

fn non_empty(value: Option<String>) -> Option<String> {
    value
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// A scope token as RFC 6749 section 3.3 allows it.
fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

fn parse_oidc(
    issuer: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scopes: &str,
) -> Result<Option<OidcConfig>, ConfigError> {
    let client_id = non_empty(client_id);
    let client_secret = non_empty(client_secret);
    let Some(raw) = non_empty(issuer) else {
        if client_id.is_some() || client_secret.is_some() {
            return Err(ConfigError(
                "PLUGBOARD_OIDC_CLIENT_ID or PLUGBOARD_OIDC_CLIENT_SECRET is set but PLUGBOARD_OIDC_ISSUER is not: \
                 set PLUGBOARD_OIDC_ISSUER to your identity provider's issuer URL (e.g. https://login.example.com/realms/acme) \
                 to enable sign-in with OpenID Connect, or unset the client settings"
                    .into(),
            ));
        }
        return Ok(None);
    };
    let parsed = Url::parse(&raw).map_err(|e| {
        ConfigError(format!(
            "PLUGBOARD_OIDC_ISSUER is not a URL ({e}): use your identity provider's issuer, \
             e.g. https://login.example.com/realms/acme (the part before /.well-known/openid-configuration)"
        ))
    })?;
    let loopback = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    let scheme_ok = parsed.scheme() == "https" || (parsed.scheme() == "http" && loopback);
    if !scheme_ok
        || parsed.host().is_none()
        || parsed.query().is_some()
        || parsed.fragment().is_some()
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return Err(ConfigError(
            "PLUGBOARD_OIDC_ISSUER must be an https URL without credentials, query or fragment, \
             e.g. https://login.example.com/realms/acme (http is accepted only on loopback, \
             e.g. http://127.0.0.1:8081, for development)"
                .into(),
        ));
    }
    let Some(client_id) = client_id else {
        return Err(ConfigError(
            "PLUGBOARD_OIDC_ISSUER is set but PLUGBOARD_OIDC_CLIENT_ID is not: register Plugboard as a client at your \
             identity provider (redirect URI: $PLUGBOARD_PUBLIC_URL/auth/oidc/callback) and set its client id"
                .into(),
        ));
    };
    if client_id.len() > 255 || client_id.chars().any(char::is_control) {
        return Err(ConfigError(
            "PLUGBOARD_OIDC_CLIENT_ID must be at most 255 characters without control characters: \
             copy it from your identity provider's client settings"
                .into(),
        ));
    }
    let scopes: Vec<String> = scopes.split_whitespace().map(str::to_string).collect();
    if let Some(bad) = scopes.iter().find(|s| !is_scope_token(s)) {
        return Err(ConfigError(format!(
            "PLUGBOARD_OIDC_SCOPES contains `{}`, which is not a scope: use scope names separated by spaces \
             (default `openid email profile`)",
            bad.chars().take(64).collect::<String>()
        )));
    }
    if !scopes.iter().any(|s| s == "openid") {
        return Err(ConfigError(
            "PLUGBOARD_OIDC_SCOPES must include `openid` (default `openid email profile`; \
             Plugboard also needs `email` from most providers to learn your email address)"
                .into(),
        ));
    }
    let mut unique: Vec<String> = Vec::with_capacity(scopes.len());
    for s in scopes {
        if !unique.contains(&s) {
            unique.push(s);
        }
    }
    Ok(Some(OidcConfig {
        // Parsing adds a trailing slash to a bare origin; the issuer is kept as written instead.
        issuer: raw,
        client_id,
        client_secret: client_secret.map(SecretString::from),
        scopes: unique,
    }))
}

impl Config {
    pub fn is_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }

    /// The database URL with any password replaced, for logs.
    pub fn redacted_database_url(&self) -> String {
        match Url::parse(&self.database_url) {
            Ok(mut u) if u.password().is_some() => {
                let _ = u.set_password(Some("********"));
                u.to_string()
            }
            Ok(u) => u.to_string(),
            Err(_) => "<unparseable>".into(),
        }
    }

    /// One line of the effective settings, without any secret.
    pub fn summary(&self) -> String {
        format!(
            "listen={} data_dir={} database={} sqlite_synchronous={} db_timeout_ms={} header_timeout_ms={} max_connections={} catalog={} master_key={} public_url={} egress_allow_cidrs=[{}] probe_timeout_ms={} verify_rate_per_minute={} log_format={:?} metrics={} oidc={}",
            self.listen,
            self.data_dir.display(),
            self.redacted_database_url(),
            self.sqlite_synchronous.as_str(),
            self.db_timeout.as_millis(),
            self.header_timeout.as_millis(),
            self.max_connections,
            self.catalog_dir.as_ref().map_or("built-in".to_string(), |p| p.display().to_string()),
            match (&self.master_key, &self.master_key_file) {
                (Some(_), _) => "set".to_string(),
                (None, Some(file)) => format!("file:{}", file.display()),
                (None, None) => "unset".to_string(),
            },
            self.public_url,
            self.egress_allow_cidrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
            self.probe_timeout.as_millis(),
            self.verify_rate_per_minute,
            self.log_format,
            if self.metrics_token.is_some() { "token" } else { "loopback-only" },
            match &self.oidc {
                None => "off".to_string(),
                Some(o) => format!(
                    "{} (client {}, {}, scopes {})",
                    o.issuer,
                    o.client_id,
                    if o.client_secret.is_some() { "confidential" } else { "public" },
                    o.scopes.join(" ")
                ),
            },
        )
    }

    /// How the database is opened under these settings.
    pub fn connect_options(&self) -> plugboard_store::ConnectOptions {
        plugboard_store::ConnectOptions {
            create: true,
            sqlite_synchronous: self.sqlite_synchronous,
            timeout: self.db_timeout,
        }
    }

    /// The redirect URI of OpenID Connect sign-in.
    pub fn oidc_redirect_uri(&self) -> String {
        format!("{}/auth/oidc/callback", self.public_url)
    }

    /// The OAuth redirect URI.
    pub fn oauth_redirect_uri(&self) -> String {
        format!("{}/api/v1/connectors/oauth/callback", self.public_url)
    }

    /// Settings for tests: SQLite under `data_dir`, loopback listener on an ephemeral port.
    pub fn for_tests(data_dir: PathBuf, database_url: String) -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir,
            database_url,
            catalog_dir: None,
            master_key: None,
            master_key_file: None,
            sqlite_synchronous: SqliteSynchronous::Full,
            db_timeout: plugboard_store::DEFAULT_DB_TIMEOUT,
            header_timeout: Duration::from_secs(10),
            max_connections: 512,
            public_url: "http://127.0.0.1:8080".into(),
            egress_allow_cidrs: Vec::new(),
            probe_timeout: Duration::from_secs(10),
            gateway_timeout: Duration::from_secs(60),
            verify_rate_per_minute: 30,
            log_format: LogFormat::Pretty,
            oidc: None,
            metrics_token: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oidc(
        issuer: Option<&str>,
        client_id: Option<&str>,
        scopes: &str,
    ) -> Result<Option<OidcConfig>, ConfigError> {
        parse_oidc(
            issuer.map(str::to_string),
            client_id.map(str::to_string),
            None,
            scopes,
        )
    }

    #[test]
    fn oidc_is_off_without_an_issuer_and_on_with_issuer_and_client_id() {
        assert!(oidc(None, None, "openid email profile").unwrap().is_none());
        assert!(oidc(Some("  "), None, "openid").unwrap().is_none());
        let c = oidc(
            Some("https://login.example.com/realms/acme"),
            Some("plugboard"),
            "openid  email profile email",
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.issuer, "https://login.example.com/realms/acme");
        assert_eq!(c.scopes, ["openid", "email", "profile"]);
        assert!(c.client_secret.is_none());
        let with_secret = parse_oidc(
            Some("https://idp.example".into()),
            Some("pb".into()),
            Some("s3cret".into()),
            "openid",
        )
        .unwrap()
        .unwrap();
        assert!(with_secret.client_secret.is_some());
    }

    #[test]
    fn a_metrics_token_is_optional_and_a_bad_one_is_refused_without_echoing_it() {
        assert!(parse_metrics_token(None).unwrap().is_none());
        assert!(parse_metrics_token(Some("  ".into())).unwrap().is_none());
        let t = parse_metrics_token(Some(" 0123456789abcdef0123 ".into()))
            .unwrap()
            .unwrap();
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&t),
            "0123456789abcdef0123"
        );
        for bad in [
            "short-secret",
            "has a space in the middle of it",
            &"x".repeat(257),
        ] {
            let e = parse_metrics_token(Some(bad.to_string())).err().unwrap().0;
            assert!(
                e.contains("PLUGBOARD_METRICS_TOKEN") && e.contains("openssl rand"),
                "{e}"
            );
            assert!(!e.contains(bad), "{e}");
        }
    }

    #[test]
    fn a_bad_oidc_setting_says_how_to_fix_it() {
        let err = |r: Result<Option<OidcConfig>, ConfigError>| r.err().expect("an error").0;
        let e = err(oidc(Some("http://login.example.com"), Some("pb"), "openid"));
        assert!(
            e.contains("must be an https URL") && e.contains("loopback"),
            "{e}"
        );
        for ok in [
            "http://127.0.0.1:8081",
            "http://localhost:9000/x",
            "http://[::1]:1",
        ] {
            assert!(oidc(Some(ok), Some("pb"), "openid").is_ok(), "{ok}");
        }
        let e = err(oidc(Some("not a url"), Some("pb"), "openid"));
        assert!(e.contains("PLUGBOARD_OIDC_ISSUER is not a URL"), "{e}");
        let e = err(oidc(Some("https://u:p@idp.example"), Some("pb"), "openid"));
        assert!(e.contains("without credentials"), "{e}");
        let e = err(oidc(Some("https://idp.example"), None, "openid"));
        assert!(
            e.contains("PLUGBOARD_OIDC_CLIENT_ID is not") && e.contains("/auth/oidc/callback"),
            "{e}"
        );
        let e = err(oidc(None, Some("pb"), "openid"));
        assert!(e.contains("PLUGBOARD_OIDC_ISSUER is not"), "{e}");
        let e = err(oidc(
            Some("https://idp.example"),
            Some("pb"),
            "email profile",
        ));
        assert!(e.contains("must include `openid`"), "{e}");
        let e = err(oidc(
            Some("https://idp.example"),
            Some("pb"),
            "openid ema\"il",
        ));
        assert!(e.contains("not a scope"), "{e}");
    }
}
