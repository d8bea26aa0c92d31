//! Members of a workspace: list, add by email (the user is created when unknown), change a role, remove.
//!
//! Rules: ADMIN+ manages members; only an OWNER grants OWNER or changes or removes an OWNER; any member may remove
//! themself; a workspace keeps at least one OWNER (409 `last_owner`). The store applies a change only if the
//! member's role is still the one these rules were checked against (compare-and-set), and keeps the OWNER under
//! concurrent changes.

use axum::http::StatusCode;
use plugboard_store::{Member, MemberAdded, MemberChange, Role, UserId};
use serde::Serialize;
use serde_json::json;

use super::{
    audit, last_owner, owner_only, Access, Action, AddMemberRequest, RoleName, RoleRequest,
};
use crate::error::ApiError;
use crate::state::App;

/// How often a change is decided again when the member's role changed meanwhile.
const ATTEMPTS: usize = 3;

/// A member of a workspace.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct MemberBody {
    #[schema(value_type = String)]
    pub user_id: UserId,
    pub email: String,
    pub name: String,
    #[schema(value_type = RoleName)]
    pub role: Role,
}

impl From<Member> for MemberBody {
    fn from(m: Member) -> Self {
        MemberBody {
            user_id: m.user_id,
            email: m.email,
            name: m.name,
            role: m.role,
        }
    }
}

fn not_member() -> ApiError {
    ApiError::not_found("member")
}

fn changed_meanwhile() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "conflict",
        "this member's role was changed by someone else at the same moment: reload and try again",
    )
}

/// The members of the workspace, by email (any member).
pub async fn list_members(app: &App, access: &Access) -> Result<Vec<MemberBody>, ApiError> {
    access.require(Action::View)?;
    Ok(app
        .store
        .list_members(access.workspace_id())
        .await?
        .into_iter()
        .map(MemberBody::from)
        .collect())
}

/// Adds the person with this email (created when unknown, named after the email's local part) with the role
/// (ADMIN+; OWNER only by an OWNER). 409 `already_member` when they are one.
pub async fn add_member(
    app: &App,
    access: &Access,
    request: AddMemberRequest,
) -> Result<MemberBody, ApiError> {
    access.require(Action::ManageMembers)?;
    if request.role == Role::Owner && access.role() != Role::Owner {
        return Err(owner_only("grant OWNER"));
    }
    let name = request
        .email
        .split('@')
        .next()
        .unwrap_or_default()
        .to_string();
    let entry = audit(
        Some(access.workspace_id()),
        access.user_id(),
        "member_added",
        None,
        json!({"email": request.email, "role": request.role}),
    );
    match app
        .store
        .add_member_by_email(
            access.workspace_id(),
            &request.email,
            &name,
            request.role,
            entry,
        )
        .await?
    {
        MemberAdded::Added { member, .. } => Ok(MemberBody::from(member)),
        MemberAdded::AlreadyMember(m) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_member",
            format!(
                "this person is already a member (as {}): change their role instead (PATCH …/members/{})",
                m.role, m.user_id
            ),
        )),
        MemberAdded::NoWorkspace => Err(ApiError::forbidden()),
    }
}

/// Changes a member's role (ADMIN+; only an OWNER grants OWNER or changes an OWNER; the last OWNER stays).
pub async fn change_role(
    app: &App,
    access: &Access,
    user_id: &UserId,
    request: RoleRequest,
) -> Result<MemberBody, ApiError> {
    access.require(Action::ManageMembers)?;
    let mut member = app
        .store
        .get_member(access.workspace_id(), user_id)
        .await?
        .ok_or_else(not_member)?;
    for _ in 0..ATTEMPTS {
        if (member.role == Role::Owner || request.role == Role::Owner)
            && access.role() != Role::Owner
        {
            return Err(owner_only("grant OWNER or change an OWNER's role"));
        }
        if member.role == request.role {
            return Ok(MemberBody::from(member));
        }
        let entry = audit(
            Some(access.workspace_id()),
            access.user_id(),
            "member_role_changed",
            Some(user_id.to_string()),
            json!({"user_id": user_id, "email": member.email, "from": member.role, "to": request.role}),
        );
        match app
            .store
            .change_member_role(
                access.workspace_id(),
                user_id,
                member.role,
                request.role,
                entry,
            )
            .await?
        {
            MemberChange::Done => {
                member.role = request.role;
                return Ok(MemberBody::from(member));
            }
            MemberChange::RoleChanged(now) => member.role = now,
            MemberChange::NotMember => return Err(not_member()),
            MemberChange::LastOwner => return Err(last_owner()),
        }
    }
    Err(changed_meanwhile())
}

/// Removes a member (ADMIN+, or the member themself; only an OWNER removes an OWNER; the last OWNER stays).
pub async fn remove_member(app: &App, access: &Access, user_id: &UserId) -> Result<(), ApiError> {
    let own = user_id == access.user_id();
    access.require(if own {
        Action::Leave
    } else {
        Action::ManageMembers
    })?;
    let mut member = app
        .store
        .get_member(access.workspace_id(), user_id)
        .await?
        .ok_or_else(not_member)?;
    for _ in 0..ATTEMPTS {
        if member.role == Role::Owner && access.role() != Role::Owner {
            return Err(owner_only("remove an OWNER"));
        }
        let entry = audit(
            Some(access.workspace_id()),
            access.user_id(),
            "member_removed",
            Some(user_id.to_string()),
            json!({"user_id": user_id, "email": member.email, "role": member.role, "self": own}),
        );
        match app
            .store
            .remove_member(access.workspace_id(), user_id, member.role, entry)
            .await?
        {
            MemberChange::Done => return Ok(()),
            MemberChange::RoleChanged(now) => member.role = now,
            MemberChange::NotMember => return Err(not_member()),
            MemberChange::LastOwner => return Err(last_owner()),
        }
    }
    Err(changed_meanwhile())
}
