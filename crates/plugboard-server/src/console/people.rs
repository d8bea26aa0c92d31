//! The console's view of people: the person's workspaces (the switcher) and a workspace's crews (install scope),
//! from the people services the JSON API uses (`/api/v1/workspaces`, `/api/v1/workspaces/{id}/crews`).

use plugboard_store::WorkspaceId;

use super::shell::WorkspaceLink;
use super::PageError;
use crate::auth::Principal;
use crate::state::App;

pub struct CrewOption {
    pub id: String,
    pub name: String,
}

/// The person's workspaces, for the switcher.
pub async fn workspaces(
    _app: &App,
    _principal: &Principal,
) -> Result<Vec<WorkspaceLink>, PageError> {
    // Waiting on the people services (branch `people`): until they land, the switcher shows the page's workspace.
    Ok(Vec::new())
}

/// The crews of a workspace, for the install scope.
pub async fn crew_options(
    _app: &App,
    _principal: &Principal,
    _workspace_id: &WorkspaceId,
) -> Result<Vec<CrewOption>, PageError> {
    // Waiting on the people services (branch `people`).
    Ok(Vec::new())
}

/// Crew id → name, for showing an integration's scope.
pub async fn crew_names(
    app: &App,
    principal: &Principal,
    workspace_id: &WorkspaceId,
) -> Result<std::collections::HashMap<String, String>, PageError> {
    Ok(crew_options(app, principal, workspace_id)
        .await?
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect())
}
