//! `GET /w/{workspace}/integrations`: the workspace's integrations with their status word; and
//! `GET /w/{workspace}/integrations/{id}`: one integration, with (for [`roles::MANAGE_INTEGRATIONS`]) rename,
//! enable/disable and replace credentials (one **Save**: a PATCH), **Reconnect** (an OAuth integration in `error`)
//! or **Connect** (one still `pending_oauth`), and **Delete** after a confirmation. The data comes from the same
//! service functions as `GET /api/v1/integrations` and `GET /api/v1/integrations/{id}`.

use std::collections::HashMap;

use axum::extract::State;
use axum::response::Response;
use plugboard_store::{IntegrationAuthMode, IntegrationStatus};

use super::form::FieldView;
use super::shell::{for_workspace, Shell};
use super::{html, people, time, PageError, PagePath};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::integration::{self, IntegrationBody};
use crate::roles;
use crate::state::{App, AppState};

pub struct Row {
    pub id: String,
    pub name: String,
    pub connector: String,
    pub scope: String,
    pub status: &'static str,
    pub enabled: bool,
    pub created: String,
    pub created_iso: String,
}

#[derive(askama::Template)]
#[template(path = "integrations.html")]
pub struct ListPage {
    pub shell: Shell,
    pub rows: Vec<Row>,
}

#[derive(askama::Template)]
#[template(path = "integration.html")]
pub struct DetailPage {
    pub shell: Shell,
    pub id: String,
    pub name: String,
    pub connector: String,
    pub connector_href: String,
    pub scope: String,
    pub status: &'static str,
    pub status_reason: String,
    pub enabled: bool,
    pub created_by: String,
    pub created: String,
    pub created_iso: String,
    pub updated: String,
    pub updated_iso: String,
    pub transport: String,
    pub target: String,
    pub can_manage: bool,
    /// Credential fields that can be replaced (the connector still in the catalog with the same auth mode).
    pub fields: Vec<FieldView>,
    pub fields_note: String,
    /// `Reconnect` (OAuth in `error`), `Connect` (OAuth still pending) or empty.
    pub oauth_action: &'static str,
}

fn connector_name(app: &App, connector_id: Option<&str>) -> String {
    match connector_id {
        None => "Custom MCP server".to_string(),
        Some(id) => app
            .catalog
            .manifest(id)
            .map(|m| m.name.clone())
            .unwrap_or_else(|| format!("{id} (no longer in the catalog)")),
    }
}

fn scope(crews: &HashMap<String, String>, crew_id: Option<&str>) -> String {
    match crew_id {
        None => "Whole workspace".to_string(),
        Some(id) => match crews.get(id) {
            Some(name) => format!("Crew: {name}"),
            None => format!("Crew {id}"),
        },
    }
}

fn row(app: &App, crews: &HashMap<String, String>, i: &IntegrationBody) -> Row {
    Row {
        id: i.id.to_string(),
        name: i.name.clone(),
        connector: connector_name(app, i.connector_id.as_deref()),
        scope: scope(crews, i.crew_id.as_ref().map(|c| c.as_str())),
        status: i.status.as_str(),
        enabled: i.enabled,
        created: time::display(i.created_at),
        created_iso: time::iso(i.created_at),
    }
}

pub async fn list(
    State(app): State<AppState>,
    principal: Result<Principal, ApiError>,
    PagePath(workspace_id): PagePath<String>,
) -> Result<Response, PageError> {
    let principal = principal?;
    let (shell, ws) =
        for_workspace(&app, &principal, &workspace_id, roles::VIEW, "integrations").await?;
    let items = integration::list(&app, &ws, None).await?;
    let crews = people::crew_names(&app, &principal, &ws).await?;
    let rows = items.iter().map(|i| row(&app, &crews, i)).collect();
    Ok(html(&ListPage { shell, rows }))
}

pub async fn detail(
    State(app): State<AppState>,
    principal: Result<Principal, ApiError>,
    PagePath((workspace_id, integration_id)): PagePath<(String, String)>,
) -> Result<Response, PageError> {
    let principal = principal?;
    let (shell, ws) =
        for_workspace(&app, &principal, &workspace_id, roles::VIEW, "integrations").await?;
    let i = integration::load_for(&app, &principal, &integration_id, roles::VIEW).await?;
    if i.workspace_id != ws {
        return Err(PageError::not_found("integration"));
    }
    let body = integration::integration_body(&app, &i);
    let crews = people::crew_names(&app, &principal, &ws).await?;
    let created_by = app
        .store
        .get_user(&i.created_by)
        .await
        .map_err(ApiError::from)?
        .map(|u| {
            if u.name == u.email || u.name.is_empty() {
                u.email
            } else {
                format!("{} <{}>", u.name, u.email)
            }
        })
        .unwrap_or_else(|| "a person no longer known".to_string());
    let can_manage = shell.can(&roles::MANAGE_INTEGRATIONS);
    let manifest = i
        .connector_id
        .as_deref()
        .and_then(|id| app.catalog.manifest(id))
        .filter(|m| IntegrationAuthMode::from(m.auth_mode) == i.auth_mode);
    let (fields, fields_note) = match (&i.auth_mode, manifest) {
        (IntegrationAuthMode::Custom, _) => (
            Vec::new(),
            "A custom MCP server has no credential fields to replace here.".to_string(),
        ),
        (_, None) => (
            Vec::new(),
            "Its connector is no longer in the catalog (or changed how it signs in), so its values cannot be \
             checked: delete it and install again to change them."
                .to_string(),
        ),
        (_, Some(m)) if m.fields.is_empty() => (Vec::new(), String::new()),
        (_, Some(m)) => (
            m.fields.iter().map(FieldView::for_replace).collect(),
            "Stored values are never shown. Leave a field empty to keep its value.".to_string(),
        ),
    };
    let oauth_action = match (i.auth_mode.oauth_flow(), i.status) {
        (Some(_), IntegrationStatus::Error) => "Reconnect",
        (Some(_), IntegrationStatus::PendingOauth) => "Connect",
        _ => "",
    };
    let mcp = &body.mcp;
    let transport = mcp
        .get("transport")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    let target = match (mcp.get("endpoint"), mcp.get("command")) {
        (Some(e), _) if e.is_string() => e.as_str().unwrap_or("").to_string(),
        (_, Some(c)) if c.is_string() => {
            let args: Vec<&str> = mcp
                .get("args")
                .and_then(|a| a.as_array())
                .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            let mut line = c.as_str().unwrap_or("").to_string();
            for a in args {
                line.push(' ');
                line.push_str(a);
            }
            line
        }
        _ => String::new(),
    };
    let page = DetailPage {
        id: i.id.to_string(),
        name: i.name.clone(),
        connector: connector_name(&app, i.connector_id.as_deref()),
        connector_href: match i.connector_id.as_deref() {
            Some(c) if app.catalog.manifest(c).is_some() => {
                format!("/w/{}/connectors/{c}", shell.workspace_id)
            }
            _ => String::new(),
        },
        scope: scope(&crews, i.crew_id.as_ref().map(|c| c.as_str())),
        status: i.status.as_str(),
        status_reason: i.status_reason.clone().unwrap_or_default(),
        enabled: i.enabled,
        created_by,
        created: time::display(i.created_at),
        created_iso: time::iso(i.created_at),
        updated: time::display(i.updated_at),
        updated_iso: time::iso(i.updated_at),
        transport,
        target,
        can_manage,
        fields,
        fields_note,
        oauth_action,
        shell,
    };
    Ok(html(&page))
}
