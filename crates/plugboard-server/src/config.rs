//! Configuration: every setting from an environment variable (flags mirror them), validated at start with a
//! message that says how to fix a bad value.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use secrecy::SecretString;
use url::Url;

/// The raw settings as clap reads them (flags and environment variables).
#[derive(Clone, Debug, clap::Args)]
pub struct ConfigArgs {
    /// Address to bind.
    #[arg(
        long,
        env = "PLUGBOARD_LISTEN",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub listen: String,
    /// Where the default SQLite file and the dev key file live.
    #[arg(
        long,
        env = "PLUGBOARD_DATA_DIR",
        default_value = "./data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; default `sqlite://$PLUGBOARD_DATA_DIR/plugboard.db`.
    #[arg(
        long,
        env = "PLUGBOARD_DATABASE_URL",
        hide_env_values = true,
        global = true
    )]
    pub database_url: Option<String>,
    /// A folder of manifests that replaces the built-in catalog.
    #[arg(long, env = "PLUGBOARD_CATALOG_DIR", global = true)]
    pub catalog_dir: Option<PathBuf>,
    /// Base64 of 32 random bytes; wraps the vault's data keys.
    #[arg(
        long,
        env = "PLUGBOARD_MASTER_KEY",
        hide_env_values = true,
        global = true
    )]
    pub master_key: Option<String>,
    /// The externally visible base URL (OAuth redirect URIs are built from it).
    #[arg(long, env = "PLUGBOARD_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// Comma-separated CIDRs the egress guard lets through although private or loopback.
    #[arg(
        long,
        env = "PLUGBOARD_EGRESS_ALLOW_CIDRS",
        default_value = "",
        global = true
    )]
    pub egress_allow_cidrs: String,
    /// Bound on one verify probe, end to end, in milliseconds.
    #[arg(
        long,
        env = "PLUGBOARD_PROBE_TIMEOUT_MS",
        default_value = "10000",
        global = true
    )]
    pub probe_timeout_ms: String,
    /// Verifies a minute per workspace (per instance); the burst is the same number.
    #[arg(
        long,
        env = "PLUGBOARD_VERIFY_RATE_PER_MINUTE",
        default_value = "30",
        global = true
    )]
    pub verify_rate_per_minute: String,
    /// `pretty` or `json`.
    #[arg(
        long,
        env = "PLUGBOARD_LOG_FORMAT",
        default_value = "pretty",
        global = true
    )]
    pub log_format: String,
    /// OpenID Connect sign-in: the identity provider's issuer URL (https; http only on loopback). Unset: no OIDC.
    #[arg(long, env = "PLUGBOARD_OIDC_ISSUER", global = true)]
    pub oidc_issuer: Option<String>,
    /// The client id Plugboard is registered under at the identity provider.
    #[arg(long, env = "PLUGBOARD_OIDC_CLIENT_ID", global = true)]
    pub oidc_client_id: Option<String>,
    /// The client secret; unset: Plugboard is a public client (PKCE only).
    #[arg(
        long,
        env = "PLUGBOARD_OIDC_CLIENT_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub oidc_client_secret: Option<String>,
    /// The scopes asked for at sign-in, separated by spaces.
    #[arg(
        long,
        env = "PLUGBOARD_OIDC_SCOPES",
        default_value = "openid email profile",
        global = true
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
    /// Without a trailing slash.
    pub public_url: String,
    pub egress_allow_cidrs: Vec<IpNet>,
    pub probe_timeout: Duration,
    pub verify_rate_per_minute: u32,
    pub log_format: LogFormat,
    /// OpenID Connect sign-in, when `PLUGBOARD_OIDC_ISSUER` is set.
    pub oidc: Option<OidcConfig>,
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

impl ConfigArgs {
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let listen: SocketAddr = self.listen.trim().parse().map_err(|_| {
            ConfigError(format!(
                "PLUGBOARD_LISTEN `{}` is not an address: use host:port with an IP, e.g. 127.0.0.1:8080 or 0.0.0.0:8080",
                self.listen
            ))
        })?;
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError(
                "PLUGBOARD_DATA_DIR must not be empty (default ./data)".into(),
            ));
        }
        let database_url = match self.database_url.filter(|s| !s.trim().is_empty()) {
            Some(url) => {
                let url = url.trim().to_string();
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
                url
            }
            None => format!("sqlite://{}", self.data_dir.join("plugboard.db").display()),
        };
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
        let oidc = parse_oidc(
            self.oidc_issuer,
            self.oidc_client_id,
            self.oidc_client_secret,
            &self.oidc_scopes,
        )?;
        Ok(Config {
            listen,
            data_dir: self.data_dir,
            database_url,
            catalog_dir: self.catalog_dir.filter(|p| !p.as_os_str().is_empty()),
            master_key: self
                .master_key
                .filter(|s| !s.trim().is_empty())
                .map(SecretString::from),
            public_url,
            egress_allow_cidrs,
            probe_timeout: Duration::from_millis(probe_timeout_ms),
            verify_rate_per_minute,
            log_format,
            oidc,
        })
    }
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
            "listen={} data_dir={} database={} catalog={} master_key={} public_url={} egress_allow_cidrs=[{}] probe_timeout_ms={} verify_rate_per_minute={} log_format={:?} oidc={}",
            self.listen,
            self.data_dir.display(),
            self.redacted_database_url(),
            self.catalog_dir.as_ref().map_or("built-in".to_string(), |p| p.display().to_string()),
            if self.master_key.is_some() { "set" } else { "unset" },
            self.public_url,
            self.egress_allow_cidrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
            self.probe_timeout.as_millis(),
            self.verify_rate_per_minute,
            self.log_format,
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
            public_url: "http://127.0.0.1:8080".into(),
            egress_allow_cidrs: Vec::new(),
            probe_timeout: Duration::from_secs(10),
            verify_rate_per_minute: 30,
            log_format: LogFormat::Pretty,
            oidc: None,
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
