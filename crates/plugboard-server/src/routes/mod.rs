//! HTTP handlers, one module per resource. Each handler extracts the principal, checks the role, parses the body
//! into the typed request, calls the service and builds the response; each module's `routes()` lists its handlers
//! for [`crate::startup::api_routes`].

pub mod audit;
pub mod connectors;
pub mod health;
pub mod install;
pub mod integrations;
pub mod oauth;
pub mod verify;
