//! People as a service: signing in (sessions, sign-in links, OpenID Connect completion) and managing workspaces,
//! members, crews and personal API tokens. The JSON API's handlers (`routes::people`, `routes::auth`) and the
//! console's pages call these same functions; nothing here holds SQL (that is the store's).
//!
//! # Who may do what
//!
//! [`Action::min_role`] is the one table of minimum roles. A workspace operation takes an [`Access`] (the caller's
//! role as the database says, which only [`authorize`] makes, through `auth::require_role`) and checks that role
//! against its own action before doing anything, so a front end cannot skip or mistake the check. The finer rules live with the operation (only an OWNER grants OWNER or changes or removes an
//! OWNER; ADMIN grants up to ADMIN; a member may remove themself; a workspace keeps an OWNER).
//!
//! # Audit
//!
//! Every change is written with its audit entry in one transaction: `workspace_created`, `workspace_renamed`,
//! `workspace_deleted`, `member_added`, `member_role_changed`, `member_removed`, `crew_created`, `crew_renamed`,
//! `crew_deleted`, `agent_token_created`, `agent_token_revoked` in the workspace's log. Token and sign-in events concern no workspace: `token_created`,
//! `token_revoked`, `signed_in`, `signed_out` (and the operator's `user_removed`) are written with no workspace, for
//! operators reading the database; the workspace audit endpoint does not show them.

mod agent_tokens;
mod crews;
mod members;
mod requests;
mod sign_in;
mod tokens;
mod workspaces;

pub use agent_tokens::{
    create_agent_token, list_agent_tokens, revoke_agent_token, AgentTokenBody, AgentTokenCreated,
};
pub use crews::{create_crew, crew_for, delete_crew, list_crews, rename_crew, CrewBody};
pub use members::{add_member, change_role, list_members, remove_member, MemberBody};
pub use requests::{
    AddMemberRequest, CreateAgentTokenRequest, CreateTokenRequest, NameRequest, RoleName,
    RoleRequest, MAX_TOKEN_DAYS,
};
pub(crate) use sign_in::secure_cookies;
pub use sign_in::{
    create_sign_in_link, end_session, sign_in_with_link, start_session, LinkRefusal, PeopleSignIn,
    SignInLink, StartedSession, LINK_TTL_MS,
};
pub use tokens::{create_token, list_tokens, revoke_token, TokenBody, TokenCreated};
pub use workspaces::{
    create_workspace, delete_workspace, get_workspace, list_workspaces, me, rename_workspace,
    MeBody, WorkspaceBody, WorkspaceCreated, WorkspaceRoleBody,
};

use axum::http::StatusCode;
use plugboard_store::{NewAudit, Role, UserId, WorkspaceId};
use serde_json::Value;

use crate::auth::{require_role, Principal};
use crate::error::ApiError;
use crate::state::App;

/// What a caller wants to do on a workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Read the workspace, its members and its crews.
    View,
    /// Rename the workspace.
    Rename,
    /// Delete the workspace with everything in it.
    Delete,
    /// Add members, change roles, remove others.
    ManageMembers,
    /// Leave the workspace (remove oneself).
    Leave,
    /// Create and rename crews.
    EditCrews,
    /// Delete crews.
    DeleteCrews,
    /// List, create and revoke the workspace's agent tokens.
    ManageAgentTokens,
}

impl Action {
    /// The minimum role for the action: the one table of who may do what here.
    pub fn min_role(self) -> Role {
        match self {
            Action::View | Action::Leave => Role::Viewer,
            Action::EditCrews => Role::Manager,
            Action::Rename
            | Action::ManageMembers
            | Action::DeleteCrews
            | Action::ManageAgentTokens => crate::roles::MANAGE_AGENT_TOKENS,
            Action::Delete => Role::Owner,
        }
    }
}

/// A caller's role on a workspace, checked for an action by [`authorize`].
#[derive(Clone, Debug)]
pub struct Access {
    workspace_id: WorkspaceId,
    user_id: UserId,
    role: Role,
}

impl Access {
    pub fn workspace_id(&self) -> &WorkspaceId {
        &self.workspace_id
    }

    /// The caller's role on the workspace.
    pub fn role(&self) -> Role {
        self.role
    }

    pub fn user_id(&self) -> &UserId {
        &self.user_id
    }

    /// 403 unless the caller's role allows `action`.
    fn require(&self, action: Action) -> Result<(), ApiError> {
        if self.role >= action.min_role() {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }
}

/// Checks the caller's role on `workspace_id` for `action`: 403 when the workspace does not exist, the caller is
/// not a member, or the role is too low.
pub async fn authorize(
    app: &App,
    principal: &Principal,
    workspace_id: &WorkspaceId,
    action: Action,
) -> Result<Access, ApiError> {
    let role = require_role(app, principal, workspace_id, action.min_role()).await?;
    Ok(Access {
        workspace_id: workspace_id.clone(),
        user_id: principal.user_id.clone(),
        role,
    })
}

/// An id from a request path. An id of the wrong shape is answered exactly as an unknown id would be (403 for a
/// workspace, 404 for a member, crew or token), and never reaches the database.
pub fn parse_id<T: From<String> + std::str::FromStr>(raw: &str) -> T {
    raw.parse::<T>()
        .unwrap_or_else(|_| T::from(plugboard_store::UNKNOWN_ID.to_string()))
}

/// 409 `last_owner`.
fn last_owner() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "last_owner",
        "a workspace must keep at least one OWNER: make another member OWNER first, or delete the workspace",
    )
}

/// 403 for a rule about OWNERs.
fn owner_only(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!("only an OWNER of this workspace may {what}"),
    )
}

/// An audit entry of a workspace by the caller.
fn audit(
    workspace_id: Option<&WorkspaceId>,
    actor: &UserId,
    action: &str,
    target: Option<String>,
    detail: Value,
) -> NewAudit {
    NewAudit {
        workspace_id: workspace_id.cloned(),
        actor_id: Some(actor.clone()),
        action: action.to_string(),
        target,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operation_checks_the_callers_role_against_its_own_action() {
        let access = |role| Access {
            workspace_id: WorkspaceId::generate(),
            user_id: UserId::generate(),
            role,
        };
        assert!(access(Role::Viewer).require(Action::View).is_ok());
        assert!(access(Role::Viewer).require(Action::Leave).is_ok());
        assert!(access(Role::Manager).require(Action::EditCrews).is_ok());
        assert!(access(Role::Manager).require(Action::DeleteCrews).is_err());
        assert!(access(Role::Admin).require(Action::Delete).is_err());
        assert!(access(Role::Owner).require(Action::Delete).is_ok());
    }

    #[test]
    fn ids_of_another_shape_stand_for_an_id_that_does_not_exist() {
        let id: WorkspaceId = parse_id("../etc\0");
        assert_eq!(id, plugboard_store::UNKNOWN_ID);
        let good = WorkspaceId::generate();
        assert_eq!(parse_id::<WorkspaceId>(good.as_str()), good);
    }
}
