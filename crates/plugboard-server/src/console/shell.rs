//! What every signed-in page shows around its content: who is signed in, the workspace switcher, the sections of
//! the workspace (only those the person's role opens) and the static files' hashed URLs.

use plugboard_store::{Role, WorkspaceId};

use super::PageError;
use crate::auth::{require_role, Principal};
use crate::roles;
use crate::state::AppState;

/// One workspace in the switcher.
pub struct WorkspaceLink {
    pub id: String,
    pub name: String,
    pub role: &'static str,
    pub current: bool,
}

/// The frame of a signed-in page.
pub struct Shell {
    pub user_name: String,
    pub user_email: String,
    /// The workspace the page is about (absent on account pages).
    pub workspace_id: String,
    pub workspace_name: String,
    pub role: Option<Role>,
    pub workspaces: Vec<WorkspaceLink>,
    /// The section the page belongs to, for `aria-current` in the navigation.
    pub section: &'static str,
    pub css: &'static str,
    pub js: &'static str,
    pub favicon: &'static str,
}

impl Shell {
    /// Whether the person's role on the page's workspace is at least `min` (what a control needs: see [`roles`]).
    pub fn can(&self, min: &Role) -> bool {
        self.role.is_some_and(|r| r >= *min)
    }

    pub fn can_read_audit(&self) -> bool {
        self.can(&roles::READ_AUDIT)
    }

    pub fn can_manage_agent_tokens(&self) -> bool {
        self.can(&roles::MANAGE_AGENT_TOKENS)
    }

    /// `"page"` when `section` is the page's, for `aria-current`.
    pub fn current(&self, section: &str) -> &'static str {
        if self.section == section {
            "page"
        } else {
            "false"
        }
    }

    /// The role's word as people read it (`Manager`).
    pub fn role_word(&self) -> &'static str {
        self.role.map(role_word).unwrap_or("")
    }
}

pub fn role_word(role: Role) -> &'static str {
    match role {
        Role::Viewer => "Viewer",
        Role::Member => "Member",
        Role::Manager => "Manager",
        Role::Admin => "Admin",
        Role::Owner => "Owner",
    }
}

/// The frame of a page about a workspace the caller must be a member of with at least `min`; the workspace id
/// (parsed as the API does: a malformed one is an unknown workspace, 403).
pub async fn for_workspace(
    app: &AppState,
    principal: &Principal,
    workspace_id: &str,
    min: Role,
    section: &'static str,
) -> Result<(Shell, WorkspaceId), PageError> {
    let id = WorkspaceId::parse(workspace_id).ok_or_else(crate::error::ApiError::forbidden)?;
    // The same role check the API makes (also for a workspace that does not exist: 403).
    let role = require_role(app, principal, &id, roles::VIEW).await?;
    let mut shell = account(app, principal, section).await?;
    let workspace = app
        .store
        .get_workspace(&id)
        .await
        .map_err(crate::error::ApiError::from)?
        .ok_or_else(crate::error::ApiError::forbidden)?;
    shell.workspace_id = id.to_string();
    shell.workspace_name = workspace.name.clone();
    shell.role = Some(role);
    for w in &mut shell.workspaces {
        w.current = w.id == shell.workspace_id;
    }
    if !shell.workspaces.iter().any(|w| w.current) {
        shell.workspaces.insert(
            0,
            WorkspaceLink {
                id: id.to_string(),
                name: workspace.name,
                role: role_word(role),
                current: true,
            },
        );
    }
    if role < min {
        // Checked after the frame is known, so the refusal page can still name the workspace; the API's own
        // answer for the same request is this 403.
        require_role(app, principal, &id, min).await?;
    }
    Ok((shell, id))
}

/// The frame of a page about the person (no workspace).
pub async fn account(
    app: &AppState,
    principal: &Principal,
    section: &'static str,
) -> Result<Shell, PageError> {
    let user = app
        .store
        .get_user(&principal.user_id)
        .await
        .map_err(crate::error::ApiError::from)?
        .ok_or(PageError::SignIn)?;
    let workspaces = super::people::workspaces(app, principal).await?;
    Ok(Shell {
        user_name: user.name,
        user_email: user.email,
        workspace_id: String::new(),
        workspace_name: String::new(),
        role: None,
        workspaces,
        section,
        css: crate::assets::url("console.css"),
        js: crate::assets::url("console.js"),
        favicon: crate::assets::url("favicon.svg"),
    })
}
