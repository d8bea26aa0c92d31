//! HTTP handlers, one module per resource. Each handler extracts the principal, checks the role, parses the body
//! into the typed request, calls the service and builds the response; each module's `routes()` lists its handlers
//! for [`crate::startup::api_routes`].

pub mod agent_tokens;
pub mod audit;
pub mod auth;
pub mod connectors;
pub mod gateway;
pub mod health;
pub mod install;
pub mod integrations;
pub mod metrics;
pub mod oauth;
pub mod people;
pub mod verify;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::integration::Created;
use crate::state::App;

/// A created resource (or its replay): its status and JSON body, `Idempotent-Replayed: true` on a replay.
impl IntoResponse for Created {
    fn into_response(self) -> Response {
        let mut res = (self.status, self.body).into_response();
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.replayed {
            h.insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        res
    }
}

/// The catalog's manifest with this id, or 404.
pub(crate) fn connector(
    app: &App,
    connector_id: &str,
) -> Result<crate::prepared::ManifestRef, ApiError> {
    app.catalog
        .manifest(connector_id)
        .ok_or_else(|| ApiError::not_found("connector"))
}
