//! The caller (`/me`) and workspaces: create, list, get, rename, delete.

use plugboard_store::{Role, UserId, Workspace, WorkspaceId, WorkspaceRole};
use serde::Serialize;
use serde_json::json;

use super::{audit, Access, Action, NameRequest, RoleName};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::App;

/// A workspace with the caller's role on it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkspaceRoleBody {
    #[schema(value_type = String)]
    pub id: WorkspaceId,
    pub name: String,
    #[schema(value_type = RoleName)]
    pub role: Role,
}

impl From<WorkspaceRole> for WorkspaceRoleBody {
    fn from(w: WorkspaceRole) -> Self {
        WorkspaceRoleBody {
            id: w.id,
            name: w.name,
            role: w.role,
        }
    }
}

/// `GET /api/v1/me`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MeBody {
    #[schema(value_type = String)]
    pub id: UserId,
    pub email: String,
    pub name: String,
    /// The workspaces the caller is a member of, oldest first.
    pub workspaces: Vec<WorkspaceRoleBody>,
}

/// A workspace just created (201).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkspaceCreated {
    #[schema(value_type = String)]
    pub id: WorkspaceId,
    pub name: String,
}

/// One workspace.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkspaceBody {
    #[schema(value_type = String)]
    pub id: WorkspaceId,
    pub name: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

impl From<Workspace> for WorkspaceBody {
    fn from(w: Workspace) -> Self {
        WorkspaceBody {
            id: w.id,
            name: w.name,
            created_at: w.created_at,
        }
    }
}

/// Who the caller is, with their workspaces.
pub async fn me(app: &App, principal: &Principal) -> Result<MeBody, ApiError> {
    // A principal's user exists: removing a user ends their sessions and tokens within a second. In that second,
    // a request answers as signed out.
    let user = app
        .store
        .get_user(&principal.user_id)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    let workspaces = list_workspaces(app, principal).await?;
    Ok(MeBody {
        id: user.id,
        email: user.email,
        name: user.name,
        workspaces,
    })
}

/// The caller's workspaces with their role, oldest first.
pub async fn list_workspaces(
    app: &App,
    principal: &Principal,
) -> Result<Vec<WorkspaceRoleBody>, ApiError> {
    Ok(app
        .store
        .user_workspaces(&principal.user_id)
        .await?
        .into_iter()
        .map(WorkspaceRoleBody::from)
        .collect())
}

/// A new workspace; the caller becomes its OWNER.
pub async fn create_workspace(
    app: &App,
    principal: &Principal,
    request: NameRequest,
) -> Result<WorkspaceCreated, ApiError> {
    let ws = Workspace {
        id: WorkspaceId::generate(),
        name: request.name,
        created_at: app.clock.now_ms(),
    };
    let entry = audit(
        Some(&ws.id),
        &principal.user_id,
        "workspace_created",
        Some(ws.id.to_string()),
        json!({"name": ws.name}),
    );
    app.store
        .insert_workspace(&ws, &principal.user_id, entry)
        .await
        .map_err(|e| match e {
            // The caller's user was removed a moment ago.
            plugboard_store::StoreError::NotFound(_) => ApiError::unauthorized(),
            other => other.into(),
        })?;
    Ok(WorkspaceCreated {
        id: ws.id,
        name: ws.name,
    })
}

/// One workspace (any member).
pub async fn get_workspace(app: &App, access: &Access) -> Result<WorkspaceBody, ApiError> {
    access.require(Action::View)?;
    app.store
        .get_workspace(access.workspace_id())
        .await?
        .map(WorkspaceBody::from)
        .ok_or_else(ApiError::forbidden)
}

/// Renames the workspace (ADMIN+).
pub async fn rename_workspace(
    app: &App,
    access: &Access,
    request: NameRequest,
) -> Result<WorkspaceBody, ApiError> {
    access.require(Action::Rename)?;
    let before = app
        .store
        .get_workspace(access.workspace_id())
        .await?
        .ok_or_else(ApiError::forbidden)?;
    let entry = audit(
        Some(access.workspace_id()),
        access.user_id(),
        "workspace_renamed",
        Some(access.workspace_id().to_string()),
        json!({"from": before.name, "to": request.name}),
    );
    app.store
        .rename_workspace(access.workspace_id(), &request.name, entry)
        .await?
        .map(WorkspaceBody::from)
        .ok_or_else(ApiError::forbidden)
}

/// Deletes the workspace with its crews, members, integrations and their vault entries, in one transaction (OWNER).
/// The `workspace_deleted` audit entry stays in the log.
pub async fn delete_workspace(app: &App, access: &Access) -> Result<(), ApiError> {
    access.require(Action::Delete)?;
    let name = app
        .store
        .get_workspace(access.workspace_id())
        .await?
        .map(|w| w.name)
        .unwrap_or_default();
    let entry = audit(
        Some(access.workspace_id()),
        access.user_id(),
        "workspace_deleted",
        Some(access.workspace_id().to_string()),
        json!({"name": name}),
    );
    if app
        .store
        .delete_workspace(access.workspace_id(), entry)
        .await?
    {
        Ok(())
    } else {
        Err(ApiError::forbidden())
    }
}
