//! Plugboard's HTTP service: axum routes over the store, the vault, the catalog and the egress guard.
//! Data flows one way: request → extractor (principal, validated path and body) → service function →
//! store / vault / egress → response. Handlers hold no SQL.

pub mod agent_tokens;
pub mod api_tokens;
pub mod assets;
pub mod auth;
pub mod clock;
pub mod config;
pub mod console;
pub mod credentials;
pub mod edge;
pub mod encoding;
pub mod error;
pub mod extract;
pub mod gateway_wiring;
pub mod integration;
pub mod limits;
pub mod metrics;
pub mod oauth;
pub mod oidc;
pub mod openapi;
pub mod people;
pub mod prepared;
pub mod probe;
pub mod roles;
pub mod routes;
pub mod serve;
pub mod sessions;
pub mod startup;
pub mod state;
#[cfg(feature = "testing")]
pub mod testing;
pub mod vault;
pub mod verify;

pub use config::{Config, ConfigArgs, DatabaseArgs, LogFormat, MasterKeyArgs};
pub use startup::{router, Application};
pub use state::{App, AppState, StartupError};
