//! People: browser sessions, single-use sign-in links, personal tokens with expiry and last use, and the
//! management of workspaces, members and crews, each change written with its audit entry in one transaction.
//!
//! The store keeps the data invariants (a workspace keeps an OWNER, a crew in use is not deleted, a link works once,
//! every revocation grows the credential generation); who may ask for a change is the server's rule.

use async_trait::async_trait;
use serde::Serialize;

use crate::{
    Crew, NewAudit, Result, Role, SessionId, TokenId, TokenRecord, User, UserId, Workspace,
    WorkspaceId,
};

/// A browser session as stored: never its secret, only the secret's hash.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionRecord {
    pub id: SessionId,
    pub user_id: UserId,
    pub created_at: i64,
    /// Recorded at most once a minute.
    pub last_used_at: i64,
    /// The absolute end of the session.
    pub expires_at: i64,
}

/// A session to start.
#[derive(Clone, Debug)]
pub struct NewSession {
    pub id: SessionId,
    pub secret_hash: Vec<u8>,
    pub user_id: UserId,
    pub created_at: i64,
    pub expires_at: i64,
}

/// What became of a sign-in link that was presented.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkUse {
    /// It was valid and is now spent: sign this user in.
    SignIn(UserId),
    /// It was used before.
    AlreadyUsed,
    /// It expired before it was used.
    Expired,
    /// No such link (never made, or its user was removed).
    Unknown,
}

/// A workspace with the caller's role on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorkspaceRole {
    pub id: WorkspaceId,
    pub name: String,
    pub role: Role,
}

/// A member of a workspace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Member {
    pub user_id: UserId,
    pub email: String,
    pub name: String,
    pub role: Role,
}

/// What adding a member by email did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberAdded {
    /// Added (the user was created when `user_created`).
    Added { member: Member, user_created: bool },
    /// That person is a member already (nothing changed).
    AlreadyMember(Member),
    /// The workspace does not exist (any more).
    NoWorkspace,
}

/// What a change of role or a removal did. Changes are compare-and-set on the member's role the caller decided
/// on, so a rule checked against that role (only an OWNER changes an OWNER) cannot be raced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberChange {
    Done,
    /// Not a member (or no such workspace).
    NotMember,
    /// The member's role is no longer the expected one (changed meanwhile): decide again with this one.
    RoleChanged(Role),
    /// It would leave the workspace without an OWNER.
    LastOwner,
}

/// What deleting a crew did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CrewDeletion {
    Deleted,
    NotFound,
    /// Integrations are installed for it: this many.
    InUse(i64),
}

/// What removing a user did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserRemoval {
    Removed,
    NotFound,
    /// The user is the only OWNER of this workspace.
    LastOwner(WorkspaceId),
    /// Integrations the user installed still exist (their `created_by` names the user): this many.
    CreatedIntegrations(i64),
}

/// A personal API token to create (only the hash of the token).
#[derive(Clone, Debug)]
pub struct NewToken {
    pub user_id: UserId,
    pub name: String,
    pub token_hash: Vec<u8>,
    pub created_at: i64,
    /// `None`: never expires.
    pub expires_at: Option<i64>,
}

#[async_trait]
pub trait PeopleStore: Send + Sync {
    // -- credentials: the generation, sessions, sign-in links, token use --

    /// A number that grows in the same transaction as every revocation of a credential (a token revoked, a session
    /// ended, a user removed): when it changes, cached credentials must be checked again.
    async fn credential_generation(&self) -> Result<i64>;

    /// Starts a session. `replaces`: the hash of a session the browser presented, ended in the same transaction.
    /// Sessions that ended by time (`expires_at` at or before `now`, or last used at or before `idle_before`) are
    /// purged on the way.
    async fn create_session(
        &self,
        session: &NewSession,
        replaces: Option<&[u8]>,
        idle_before: i64,
        audit: Option<NewAudit>,
    ) -> Result<()>;
    /// The session with this secret hash, if any (expiry is the caller's check).
    async fn session_by_hash(&self, secret_hash: &[u8]) -> Result<Option<SessionRecord>>;
    /// Records a use at `now` unless one was recorded within `min_interval_ms`; true when it wrote.
    async fn touch_session(&self, id: &SessionId, now: i64, min_interval_ms: i64) -> Result<bool>;
    /// Ends the session with this secret hash; true when there was one.
    async fn end_session(&self, secret_hash: &[u8], audit: Option<NewAudit>) -> Result<bool>;

    /// Records a sign-in link (only its hash); `NotFound("user")` when the user does not exist.
    async fn create_sign_in_link(
        &self,
        secret_hash: &[u8],
        user_id: &UserId,
        created_at: i64,
        expires_at: i64,
    ) -> Result<()>;
    /// Spends the link with this hash if it is unused and unexpired at `now` (once, also under concurrency).
    async fn use_sign_in_link(&self, secret_hash: &[u8], now: i64) -> Result<LinkUse>;

    /// Records a use of a token at `now` unless one was recorded within `min_interval_ms`; true when it wrote.
    async fn touch_token(&self, id: &TokenId, now: i64, min_interval_ms: i64) -> Result<bool>;

    // -- users --

    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>>;
    /// The user with this (lower-cased) email, created with `name` when unknown; true when created.
    async fn find_or_create_user(&self, email: &str, name: &str) -> Result<(User, bool)>;
    /// Every user, oldest first.
    async fn list_users(&self) -> Result<Vec<User>>;
    /// Removes a user with their memberships, sessions, sign-in links and tokens (growing the credential
    /// generation), unless they are a workspace's only OWNER or integrations they installed still exist.
    async fn remove_user(&self, id: &UserId, audit: NewAudit) -> Result<UserRemoval>;

    // -- workspaces --

    /// Creates `workspace` with `owner` as its OWNER, and the audit entry.
    async fn insert_workspace(
        &self,
        workspace: &Workspace,
        owner: &UserId,
        audit: NewAudit,
    ) -> Result<()>;
    /// Every workspace, oldest first.
    async fn list_workspaces(&self) -> Result<Vec<Workspace>>;
    /// The workspaces `user_id` is a member of, with the role, oldest first.
    async fn user_workspaces(&self, user_id: &UserId) -> Result<Vec<WorkspaceRole>>;
    /// Renames a workspace; `None` when it does not exist.
    async fn rename_workspace(
        &self,
        id: &WorkspaceId,
        name: &str,
        audit: NewAudit,
    ) -> Result<Option<Workspace>>;
    /// Deletes a workspace with its crews, memberships, idempotency records and integrations, their vault entries
    /// and OAuth state, in one transaction with the audit entry; false when it did not exist.
    async fn delete_workspace(&self, id: &WorkspaceId, audit: NewAudit) -> Result<bool>;

    // -- members --

    /// The members of a workspace, by email.
    async fn list_members(&self, workspace_id: &WorkspaceId) -> Result<Vec<Member>>;
    /// Adds the user with `email` (created with `name` when unknown) as a member with `role`. The audit entry's
    /// `target` and `detail.user_id` are set to the member's user id.
    async fn add_member_by_email(
        &self,
        workspace_id: &WorkspaceId,
        email: &str,
        name: &str,
        role: Role,
        audit: NewAudit,
    ) -> Result<MemberAdded>;
    /// One member, if `user_id` is a member of the workspace.
    async fn get_member(
        &self,
        workspace_id: &WorkspaceId,
        user_id: &UserId,
    ) -> Result<Option<Member>>;
    /// Changes a member's role from `from` (compare-and-set) to `to`, keeping an OWNER.
    async fn change_member_role(
        &self,
        workspace_id: &WorkspaceId,
        user_id: &UserId,
        from: Role,
        to: Role,
        audit: NewAudit,
    ) -> Result<MemberChange>;
    /// Removes a member whose role is `from` (compare-and-set), keeping an OWNER.
    async fn remove_member(
        &self,
        workspace_id: &WorkspaceId,
        user_id: &UserId,
        from: Role,
        audit: NewAudit,
    ) -> Result<MemberChange>;

    // -- crews --

    /// The crews of a workspace, oldest first.
    async fn list_crews(&self, workspace_id: &WorkspaceId) -> Result<Vec<Crew>>;
    /// Creates `crew` (its workspace must exist: `NotFound("workspace")`) with the audit entry.
    async fn insert_crew(&self, crew: &Crew, audit: NewAudit) -> Result<()>;
    /// Renames a crew; `None` when it does not exist.
    async fn rename_crew(
        &self,
        id: &crate::CrewId,
        name: &str,
        audit: NewAudit,
    ) -> Result<Option<Crew>>;
    /// Deletes a crew unless integrations are installed for it.
    async fn delete_crew(&self, id: &crate::CrewId, audit: NewAudit) -> Result<CrewDeletion>;

    // -- personal tokens --

    /// Creates a token (its user must exist: `NotFound("user")`) with the audit entry.
    async fn create_personal_token(&self, token: &NewToken, audit: NewAudit)
        -> Result<TokenRecord>;
    /// A user's tokens, oldest first; revoked ones only with `include_revoked`.
    async fn list_tokens(
        &self,
        user_id: &UserId,
        include_revoked: bool,
    ) -> Result<Vec<TokenRecord>>;
    /// Revokes the token `id` if it belongs to `user_id` and is not revoked yet (growing the credential
    /// generation); false otherwise.
    async fn revoke_own_token(
        &self,
        id: &TokenId,
        user_id: &UserId,
        audit: NewAudit,
    ) -> Result<bool>;
}
