//! `GET /w/{workspace}/connectors/{id}`: one connector, its setup notes (safe Markdown) and, for those whose role
//! may install ([`roles::INSTALL`]), the form rendered from the manifest's `fields` with **Verify** and **Install**
//! (**Connect** for `mcp_oauth`). The buttons call the JSON API (`console.js`): verify, install, then for OAuth the
//! popup.

use axum::extract::State;
use axum::response::Response;
use plugboard_catalog::{AuthMode, Transport};

use super::catalog::{auth_label, category_label};
use super::form::FieldView;
use super::logo::{self, Logo};
use super::people::{self, CrewOption};
use super::shell::{for_workspace, Shell};
use super::{html, markdown, PageError, PagePath};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::roles;
use crate::state::AppState;

#[derive(askama::Template)]
#[template(path = "connector.html")]
pub struct ConnectorPage {
    pub shell: Shell,
    pub id: String,
    pub name: String,
    pub description: String,
    pub category_label: String,
    pub auth_mode: &'static str,
    pub auth_label: &'static str,
    pub logo: Logo,
    pub transport: &'static str,
    pub fields: Vec<FieldView>,
    pub setup_html: String,
    pub can_install: bool,
    /// Whether a Verify button makes sense: the server probes `pat` and `conn_string` manifests.
    pub can_verify: bool,
    /// `Install`, or `Connect` for `mcp_oauth` (installing and authorizing are one step for the person).
    pub action: &'static str,
    pub crews: Vec<CrewOption>,
    /// What happens after the action, in plain words.
    pub after: &'static str,
}

pub async fn page(
    State(app): State<AppState>,
    principal: Result<Principal, ApiError>,
    PagePath((workspace_id, connector_id)): PagePath<(String, String)>,
) -> Result<Response, PageError> {
    let principal = principal?;
    let (shell, ws) =
        for_workspace(&app, &principal, &workspace_id, roles::VIEW, "catalog").await?;
    let m = &*app
        .catalog
        .manifest(&connector_id)
        .ok_or_else(|| PageError::not_found("connector"))?;
    let can_install = shell.can(&roles::INSTALL);
    let crews = if can_install {
        people::crew_options(&app, &principal, &ws).await?
    } else {
        Vec::new()
    };
    let after = match m.auth_mode {
        AuthMode::Pat | AuthMode::ConnString => {
            "Verify asks the provider whether it accepts these values; nothing is saved. Install saves them, encrypted, and the integration is ready."
        }
        AuthMode::ByoOauth => {
            "Install saves your OAuth app's values, encrypted, then opens the provider's sign-in in a new window. The integration is active once you allow access there."
        }
        AuthMode::McpOauth => {
            "Connect adds the integration and opens the MCP server's sign-in in a new window. It is active once you allow access there."
        }
        AuthMode::None => "This connector needs no credentials. Install adds it, ready to use.",
    };
    let page = ConnectorPage {
        id: m.id.clone(),
        name: m.name.clone(),
        description: m.description.clone(),
        category_label: category_label(&m.category),
        auth_mode: m.auth_mode.as_str(),
        auth_label: auth_label(m.auth_mode),
        logo: logo::for_manifest(m),
        transport: match m.mcp.transport {
            Transport::Stdio => "Local process (stdio)",
            Transport::StreamableHttp => "Remote server (streamable HTTP)",
            Transport::Sse => "Remote server (SSE, legacy)",
        },
        fields: m.fields.iter().map(FieldView::for_install).collect(),
        setup_html: m
            .docs
            .as_ref()
            .map(|d| markdown::render(&d.setup_md, 2))
            .unwrap_or_default(),
        can_install,
        can_verify: matches!(m.auth_mode, AuthMode::Pat | AuthMode::ConnString)
            && !m.fields.is_empty(),
        action: if m.auth_mode == AuthMode::McpOauth {
            "Connect"
        } else {
            "Install"
        },
        crews,
        after,
        shell,
    };
    Ok(html(&page))
}
