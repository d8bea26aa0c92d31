//! The application's state, passed explicitly to every handler and service (`AppState = Arc<App>`), and how it is
//! built from the configuration. Nothing here knows a route: the router is [`crate::startup`]'s.

use std::sync::Arc;
use std::time::Duration;

use plugboard_catalog::Catalog;
use plugboard_store::Store;

use crate::api_tokens::TokenCache;
use crate::clock::Clock;
use crate::config::Config;
use crate::credentials::RevocationWatch;
use crate::limits::VerifyLimits;
use crate::prepared::PreparedCatalog;
use crate::sessions::SessionCache;
use crate::vault::{resolve_master_key, Vault};

pub struct App {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub catalog: PreparedCatalog,
    pub tokens: Arc<TokenCache>,
    /// Browser sessions (the `plugboard_session` cookie).
    pub sessions: Arc<SessionCache>,
    /// The credential generation both caches trust (poll it after a revocation made here, so it holds here at once).
    pub revocations: Arc<RevocationWatch>,
    /// The time expiry is decided by (tests advance it).
    pub clock: Clock,
    pub vault: Vault,
    pub egress: plugboard_egress::Guard,
    pub verify_limits: VerifyLimits,
}

pub type AppState = Arc<App>;

/// A start-up failure, with a message that says how to fix it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartupError(pub String);

fn startup<E: std::fmt::Display>(context: &str) -> impl FnOnce(E) -> StartupError + '_ {
    move |e| StartupError(format!("{context}: {e}"))
}

/// Loads the configured catalog: the folder (bad files logged and skipped) or the built-in one.
pub fn load_catalog(config: &Config) -> Result<Catalog, StartupError> {
    match &config.catalog_dir {
        Some(dir) => {
            let (catalog, bad) = Catalog::load_dir(dir).map_err(|e| {
                StartupError(format!(
                    "PLUGBOARD_CATALOG_DIR {} cannot be read: {e}",
                    dir.display()
                ))
            })?;
            for f in &bad {
                tracing::warn!(file = %f.file, error = %f.error, "skipping invalid manifest");
            }
            tracing::info!(dir = %dir.display(), loaded = catalog.len(), skipped = bad.len(), "catalog loaded");
            Ok(catalog)
        }
        None => {
            let catalog = Catalog::builtin()
                .map_err(|e| StartupError(format!("built-in catalog: {}: {}", e.file, e.error)))?;
            tracing::info!(loaded = catalog.len(), "built-in catalog loaded");
            Ok(catalog)
        }
    }
}

/// Why the database could not be opened at start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// It cannot be reached now (stopped, frozen, unreachable): `serve` waits for it.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else (a bad URL, a failed migration): retrying will not help.
    #[error("{0}")]
    Fatal(StartupError),
}

impl From<OpenError> for StartupError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Unavailable(m) => StartupError(m),
            OpenError::Fatal(e) => e,
        }
    }
}

/// Opens the configured database and migrates it.
pub async fn open_database(config: &Config) -> Result<Arc<dyn Store>, OpenError> {
    let classify = |context: &str, e: plugboard_store::StoreError| {
        if e.is_unavailable() {
            OpenError::Unavailable(format!(
                "the database {} is unavailable: {e}",
                config.redacted_database_url()
            ))
        } else {
            OpenError::Fatal(StartupError(format!("{context}: {e}")))
        }
    };
    let store = plugboard_store::connect_with(&config.database_url, config.connect_options())
        .await
        .map_err(|e| classify("cannot open the database (check PLUGBOARD_DATABASE_URL)", e))?;
    let applied = store
        .migrate()
        .await
        .map_err(|e| classify("database migration failed", e))?;
    if applied > 0 {
        tracing::info!(applied, "database migrations applied");
    }
    Ok(store)
}

impl App {
    /// Opens the database (migrating it), the vault and the catalog.
    pub async fn build(config: Config) -> Result<AppState, StartupError> {
        let store = open_database(&config).await?;
        let catalog = load_catalog(&config)?;
        App::with_parts(config, store, catalog).await
    }

    /// Assembles the state from an open, migrated store and a loaded catalog.
    pub async fn with_parts(
        config: Config,
        store: Arc<dyn Store>,
        catalog: Catalog,
    ) -> Result<AppState, StartupError> {
        let master = resolve_master_key(&config).map_err(|e| StartupError(e.to_string()))?;
        let vault = Vault::load(store.clone(), master)
            .await
            .map_err(|e| StartupError(e.to_string()))?;
        let egress = plugboard_egress::Guard::new(plugboard_egress::EgressConfig {
            allow_cidrs: config.egress_allow_cidrs.clone(),
            total_timeout: config.probe_timeout,
            connect_timeout: config.probe_timeout.min(Duration::from_secs(5)),
            ..Default::default()
        })
        .map_err(startup("egress guard"))?;
        let catalog = PreparedCatalog::new(catalog).map_err(startup("catalog"))?;
        let clock = Clock::system();
        let watch = RevocationWatch::new(store.clone());
        watch.poll_once().await;
        watch.spawn_poller();
        let tokens = TokenCache::new(store.clone(), watch.clone(), clock.clone());
        let sessions = SessionCache::new(store.clone(), watch.clone(), clock.clone());
        tracing::info!(master_key = %vault.master_fingerprint(), "vault open");
        let verify_limits =
            VerifyLimits::new(config.verify_rate_per_minute, VerifyLimits::MAX_CONCURRENT);
        Ok(Arc::new(App {
            config,
            store,
            catalog,
            tokens,
            sessions,
            revocations: watch,
            clock,
            vault,
            egress,
            verify_limits,
        }))
    }
}
