//! Installed integrations: list, get, patch, delete, the custom MCP server, the runtime view, and the audit log.

use axum::Router;

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
}
