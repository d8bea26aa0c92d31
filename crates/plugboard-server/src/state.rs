//! The application's state, passed explicitly to every handler and service (`AppState = Arc<App>`), and how it is
//! built from the configuration. Nothing here knows a route: the router is [`crate::startup`]'s.

use std::sync::Arc;
use std::time::Duration;

use plugboard_catalog::Catalog;
use plugboard_store::Store;

use crate::agent_tokens::AgentTokenCache;
use crate::api_tokens::TokenCache;
use crate::clock::Clock;
use crate::config::Config;
use crate::credentials::RevocationWatch;
use crate::limits::VerifyLimits;
use crate::metrics::Metrics;
use crate::prepared::{LiveCatalog, PreparedCatalog};
use crate::sessions::SessionCache;
use crate::vault::{resolve_master_key, Vault, VaultServiceError};

pub struct App {
    pub config: Config,
    pub store: Arc<dyn Store>,
    /// The catalog in service (replaced whole by [`App::reload_catalog`]).
    pub catalog: LiveCatalog,
    pub tokens: Arc<TokenCache>,
    /// Agent tokens (`pba_…`), which reach only the MCP gateway.
    pub agent_tokens: Arc<AgentTokenCache>,
    /// Browser sessions (the `plugboard_session` cookie).
    pub sessions: Arc<SessionCache>,
    /// The credential generation both caches trust (poll it after a revocation made here, so it holds here at once).
    pub revocations: Arc<RevocationWatch>,
    /// The time expiry is decided by (tests advance it).
    pub clock: Clock,
    pub vault: Vault,
    pub egress: plugboard_egress::Guard,
    pub verify_limits: VerifyLimits,
    /// The `/metrics` registry (the egress guard reports its refusals to it; the gateway's port is implemented on
    /// it: [`plugboard_gateway::ports::Metrics`]).
    pub metrics: Arc<Metrics>,
    /// The MCP gateway of this instance, made on first use (`gateway_wiring::gateway`).
    pub gateway: std::sync::OnceLock<plugboard_gateway::Gateway>,
    /// Becomes `true` when a graceful stop begins: the gateway then ends the server streams it relays (they never
    /// finish on their own), so the stop does not wait for them; the agents' clients open them again elsewhere.
    pub stopping: tokio::sync::watch::Sender<bool>,
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
pub fn load_catalog(catalog_dir: Option<&std::path::Path>) -> Result<Catalog, StartupError> {
    match catalog_dir {
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

/// What a catalog reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogReload {
    /// Manifests now in service.
    pub loaded: usize,
    /// Files logged and skipped.
    pub skipped: usize,
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
    /// Loads `PLUGBOARD_CATALOG_DIR` again and puts it in service at once for every new request (requests already
    /// running finish on the catalog they started with). Bad files are logged and skipped, as at start. The catalog
    /// in service is kept, and the reason returned, when the folder cannot be read, when every manifest file in it
    /// failed to load, or when no folder is configured (the built-in catalog is part of the binary). This is what
    /// `SIGHUP` runs; it reads files, so call it off the async runtime (`spawn_blocking`).
    pub fn reload_catalog(&self) -> Result<CatalogReload, StartupError> {
        let Some(dir) = &self.config.catalog_dir else {
            return Err(StartupError(
                "PLUGBOARD_CATALOG_DIR is not set: the built-in catalog is served, and it changes only with the binary"
                    .into(),
            ));
        };
        let (catalog, bad) = Catalog::load_dir(dir).map_err(|e| {
            StartupError(format!(
                "PLUGBOARD_CATALOG_DIR {} cannot be read ({e}); the catalog in service is kept",
                dir.display()
            ))
        })?;
        for f in &bad {
            tracing::warn!(file = %f.file, error = %f.error, "skipping invalid manifest");
        }
        if catalog.is_empty() && !bad.is_empty() {
            return Err(StartupError(format!(
                "no manifest in {} loads ({} files failed, see above); the catalog in service is kept",
                dir.display(),
                bad.len()
            )));
        }
        let report = CatalogReload {
            loaded: catalog.len(),
            skipped: bad.len(),
        };
        let prepared = PreparedCatalog::new(catalog)
            .map_err(|e| StartupError(format!("{e}; the catalog in service is kept")))?;
        self.catalog.replace(prepared);
        tracing::info!(dir = %dir.display(), loaded = report.loaded, skipped = report.skipped, "catalog reloaded");
        Ok(report)
    }

    /// Opens the database (migrating it), the vault and the catalog.
    pub async fn build(config: Config) -> Result<AppState, StartupError> {
        // The catalog loads (reading and parsing files, on threads of its own) while the database opens.
        let catalog_dir = config.catalog_dir.clone();
        let catalog = tokio::task::spawn_blocking(move || load_catalog(catalog_dir.as_deref()));
        let store = open_database(&config).await?;
        let catalog = catalog
            .await
            .map_err(|e| StartupError(format!("loading the catalog stopped: {e}")))??;
        App::with_parts(config, store, catalog).await
    }

    /// Assembles the state from an open, migrated store and a loaded catalog.
    pub async fn with_parts(
        config: Config,
        store: Arc<dyn Store>,
        catalog: Catalog,
    ) -> Result<AppState, StartupError> {
        App::assemble(config, store, catalog)
            .await
            .map_err(|e| match e {
                OpenError::Fatal(e) => e,
                OpenError::Unavailable(m) => StartupError(m),
            })
    }

    /// [`App::with_parts`], telling a database that became unreachable after its migration (retrying can work)
    /// from the failures retrying cannot fix.
    pub(crate) async fn assemble(
        config: Config,
        store: Arc<dyn Store>,
        catalog: Catalog,
    ) -> Result<AppState, OpenError> {
        let master = resolve_master_key(&config)
            .map_err(|e| OpenError::Fatal(StartupError(e.to_string())))?;
        let vault = Vault::load(store.clone(), master)
            .await
            .map_err(|e| match &e {
                VaultServiceError::Store(s) if s.is_unavailable() => {
                    OpenError::Unavailable(e.to_string())
                }
                _ => OpenError::Fatal(StartupError(e.to_string())),
            })?;
        let metrics = Arc::new(Metrics::new());
        let egress = plugboard_egress::Guard::observed(
            plugboard_egress::EgressConfig {
                allow_cidrs: config.egress_allow_cidrs.clone(),
                total_timeout: config.probe_timeout,
                connect_timeout: config.probe_timeout.min(Duration::from_secs(5)),
                ..Default::default()
            },
            metrics.clone(),
        )
        .map_err(startup("egress guard"))
        .map_err(OpenError::Fatal)?;
        let catalog = LiveCatalog::new(
            PreparedCatalog::new(catalog)
                .map_err(startup("catalog"))
                .map_err(OpenError::Fatal)?,
        );
        let clock = Clock::system();
        let watch = RevocationWatch::new(store.clone());
        watch.poll_once().await;
        watch.spawn_poller();
        let tokens = TokenCache::new(store.clone(), watch.clone(), clock.clone());
        let agent_tokens = AgentTokenCache::new(store.clone(), watch.clone(), clock.clone());
        let sessions = SessionCache::new(store.clone(), watch.clone(), clock.clone());
        tracing::info!(master_key = %vault.master_fingerprint(), "vault open");
        let verify_limits =
            VerifyLimits::new(config.verify_rate_per_minute, VerifyLimits::MAX_CONCURRENT);
        Ok(Arc::new(App {
            config,
            store,
            catalog,
            tokens,
            agent_tokens,
            sessions,
            revocations: watch,
            clock,
            vault,
            egress,
            verify_limits,
            metrics,
            gateway: std::sync::OnceLock::new(),
            stopping: tokio::sync::watch::Sender::new(false),
        }))
    }
}
