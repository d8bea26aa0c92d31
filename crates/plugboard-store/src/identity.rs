//! Users, workspaces, memberships, crews and API tokens: who may do what.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{CrewId, Result, TokenId, UserId, WorkspaceId};

/// A member's role on a workspace, lowest to highest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Role {
    Viewer,
    Member,
    Manager,
    Admin,
    Owner,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Viewer,
        Role::Member,
        Role::Manager,
        Role::Admin,
        Role::Owner,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "VIEWER",
            Role::Member => "MEMBER",
            Role::Manager => "MANAGER",
            Role::Admin => "ADMIN",
            Role::Owner => "OWNER",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!("unknown role `{s}`: expected one of VIEWER, MEMBER, MANAGER, ADMIN, OWNER")
            })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub created_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Workspace {
    pub id: WorkspaceId,
    pub name: String,
    pub created_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Membership {
    pub workspace_id: WorkspaceId,
    pub user_id: UserId,
    pub role: Role,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Crew {
    pub id: CrewId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub created_at: i64,
}

/// An API token as stored: never the token itself, only its hash.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct TokenRecord {
    pub id: TokenId,
    pub user_id: UserId,
    pub name: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    /// `None`: never expires.
    pub expires_at: Option<i64>,
    /// Recorded at most once a minute; `None`: never used.
    pub last_used_at: Option<i64>,
}

/// Who an unrevoked token belongs to (whether it has expired is the caller's check, against its clock).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct TokenOwner {
    pub token_id: TokenId,
    pub user_id: UserId,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

/// Users, workspaces, memberships, crews and API tokens.
#[async_trait]
pub trait IdentityStore: Send + Sync {
    async fn create_user(&self, email: &str, name: &str) -> Result<User>;
    async fn get_user(&self, id: &UserId) -> Result<Option<User>>;
    /// Creates the workspace and makes `owner_id` its OWNER, atomically.
    async fn create_workspace(&self, name: &str, owner_id: &UserId) -> Result<Workspace>;
    async fn get_workspace(&self, id: &WorkspaceId) -> Result<Option<Workspace>>;
    /// Adds a member or changes an existing member's role.
    async fn add_member(
        &self,
        workspace_id: &WorkspaceId,
        user_id: &UserId,
        role: Role,
    ) -> Result<Membership>;
    async fn member_role(
        &self,
        workspace_id: &WorkspaceId,
        user_id: &UserId,
    ) -> Result<Option<Role>>;
    async fn create_crew(&self, workspace_id: &WorkspaceId, name: &str) -> Result<Crew>;
    async fn get_crew(&self, id: &CrewId) -> Result<Option<Crew>>;
    async fn create_token(
        &self,
        user_id: &UserId,
        name: &str,
        token_hash: &[u8],
    ) -> Result<TokenRecord>;
    /// Revokes a token (and grows the credential generation, see [`crate::PeopleStore::credential_generation`]);
    /// `NotFound` when no token has this id. Revoking twice is not an error.
    async fn revoke_token(&self, id: &TokenId) -> Result<TokenRecord>;
    /// The owner of an unrevoked token with this hash.
    async fn token_owner(&self, token_hash: &[u8]) -> Result<Option<TokenOwner>>;
    /// How many tokens were ever revoked: grows with every revocation, so a change means "drop caches".
    async fn revocation_count(&self) -> Result<i64>;
}
