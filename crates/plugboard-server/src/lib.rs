//! Plugboard's HTTP service: axum routes over the store, the vault, the catalog and the egress guard.
//! Data flows one way: request → extractor (principal, validated path and body) → service function →
//! store / vault / egress → response. Handlers hold no SQL.

pub mod app;
pub mod auth;
pub mod config;
pub mod error;
pub mod integration;
pub mod limits;
pub mod oauth;
pub mod openapi;
pub mod prepared;
pub mod probe;
pub mod routes;
#[cfg(feature = "testing")]
pub mod testing;
pub mod vault;

pub use app::{router, App, AppState, Application, StartupError};
pub use config::{Config, ConfigArgs, DatabaseArgs, LogFormat, MasterKeyArgs};
