//! The management API: the caller (`/me`), workspaces, members, crews and personal tokens. Handlers extract and
//! authorise; the work (and the finer role rules) is in [`crate::people`].
//!
//! Order of checks: authentication (401: a bearer token, else the session cookie, whose unsafe requests must come
//! from the public origin: 403 `csrf_rejected`); an id in the path of the wrong shape is answered as an unknown id; for
//! `/workspaces/{id}…`: the caller's role (403, also for an unknown workspace or a non-member); for
//! `/crews/{crew_id}`: the crew exists (404), then the role on its workspace (403); then the body (400); then what
//! the change meets (404 member, 403 OWNER rules, 409).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;
use plugboard_store::{CrewId, TokenId, UserId, WorkspaceId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiPath;
use crate::people::{
    self, authorize, parse_id, Action, AddMemberRequest, CreateTokenRequest, CrewBody, MeBody,
    MemberBody, NameRequest, RoleRequest, TokenBody, TokenCreated, WorkspaceBody, WorkspaceCreated,
    WorkspaceRoleBody,
};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(list_workspaces, create_workspace))
        .routes(routes!(get_workspace, rename_workspace, delete_workspace))
        .routes(routes!(list_members, add_member))
        .routes(routes!(change_member_role, remove_member))
        .routes(routes!(list_crews, create_crew))
        .routes(routes!(rename_crew, delete_crew))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

fn workspace_id(raw: &str) -> Result<WorkspaceId, ApiError> {
    Ok(parse_id(raw))
}

/// Who is signed in, with their workspaces.
#[utoipa::path(get, path = "/api/v1/me", tag = "people", security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "the caller", body = MeBody),
        (status = 401, description = "not signed in", body = ErrorBody)))]
pub async fn me(
    State(app): State<AppState>,
    principal: Principal,
) -> Result<Json<MeBody>, ApiError> {
    Ok(Json(people::me(&app, &principal).await?))
}

/// The caller's workspaces with their role.
#[utoipa::path(get, path = "/api/v1/workspaces", tag = "people", security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "the caller's workspaces, oldest first", body = [WorkspaceRoleBody]),
        (status = 401, description = "not signed in", body = ErrorBody)))]
pub async fn list_workspaces(
    State(app): State<AppState>,
    principal: Principal,
) -> Result<Json<Vec<WorkspaceRoleBody>>, ApiError> {
    Ok(Json(people::list_workspaces(&app, &principal).await?))
}

/// A new workspace; the caller becomes its OWNER.
#[utoipa::path(post, path = "/api/v1/workspaces", tag = "people", security(("bearer" = []), ("session" = [])),
    request_body = NameRequest,
    responses(
        (status = 201, description = "created", body = WorkspaceCreated),
        (status = 400, description = "invalid body (the key is named)", body = ErrorBody),
        (status = 401, description = "not signed in", body = ErrorBody),
        (status = 403, description = "a cookie request without Plugboard's Origin (`csrf_rejected`)", body = ErrorBody)))]
pub async fn create_workspace(
    State(app): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<(StatusCode, Json<WorkspaceCreated>), ApiError> {
    let request = NameRequest::parse(&body)?;
    Ok((
        StatusCode::CREATED,
        Json(people::create_workspace(&app, &principal, request).await?),
    ))
}

/// One workspace (any member).
#[utoipa::path(get, path = "/api/v1/workspaces/{id}", tag = "people", security(("bearer" = []), ("session" = [])),
    params(("id" = String, Path, description = "workspace id")),
    responses(
        (status = 200, description = "the workspace", body = WorkspaceBody),
        (status = 401, description = "not signed in", body = ErrorBody),
        (status = 403, description = "not a member (or no such workspace)", body = ErrorBody)))]
pub async fn get_workspace(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<WorkspaceBody>, ApiError> {
    let access = authorize(&app, &principal, &workspace_id(&id)?, Action::View).await?;
    Ok(Json(people::get_workspace(&app, &access).await?))
}

/// Renames the workspace (ADMIN+).
#[utoipa::path(patch, path = "/api/v1/workspaces/{id}", tag = "people", security(("bearer" = []), ("session" = [])),
    params(("id" = String, Path, description = "workspace id")),
    request_body = NameRequest,
    responses(
        (status = 200, description = "renamed", body = WorkspaceBody),
        (status = 400, description = "invalid body (the key is named)", body = ErrorBody),
        (status = 401, description = "not signed in", body = ErrorBody),
        (status = 403, description = "not ADMIN+ on the workspace, or `csrf_rejected`", body = ErrorBody)))]
pub async fn rename_workspace(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    body: Bytes,
) -> Result<Json<WorkspaceBody>, ApiError> {
    let access = authorize(&app, &principal, &workspace_id(&id)?, Action::Rename).await?;
    let request = NameRequest::parse(&body)?;
    Ok(Json(
        people::rename_workspace(&app, &access, request).await?,
    ))
}

/// Deletes the workspace with its crews, members, integrations and their vault entries (OWNER).
#[utoipa::path(delete, path = "/api/v1/workspaces/{id}", tag = "people", security(("bearer" = []), ("session" = [])),
    params(("id" = String, Path, description = "workspace id")),
    responses(
        (status = 204, description = "deleted"),
        (status = 401, description = "not signed in", body = ErrorBody),
        (status = 403, description = "not OWNER of the workspace, or `csrf_rejected`", body = ErrorBody)))]
pub async fn delete_workspace(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let access = authorize(&app, &principal, &workspace_id(&id)?, Action::Delete).await?;
    people::delete_workspace(&app, &access).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The workspace's members (any member).
#[utoipa::path(get, path = "/api/v1/workspaces/{id}/members", tag = "people", security(("bearer" = []), ("session" = [])),
    params(("id" = String, Path, description = "workspace id")),
    responses(
        (status = 200, description = "members, by email", body = [MemberBody]),
        (status = 401, description = "not signed in", body = ErrorBody),
        (status = 403, description = "not a member (or no such workspace)", body = ErrorBody)))]
pub async fn list_members(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<MemberBody>>, ApiError> {
    let access = authorize(&app, &principal, &workspace_id(&id)?, Action::View).await?;
    Ok(Json(people::list_members(&app, &access).await?))
}

/// Adds the person with this email (created when unknown) with a role (ADMIN+; OWNER only by an OWNER).
#[utoipa::path(post, path = "/api/v1/workspaces/{id}/members", tag = "people", security(("bearer" = []), ("session" = [])),
    params(("id" = String, Path, description = "workspace id")),
    request_body = AddMemberRequest,
    responses(
        (status = 201, description = "added", body = MemberBody),
        (status = 400, description = "invalid email or role", body = ErrorBody),
        (status = 401, description = "not signed in", body = ErrorBody),
        (status = 403, description = "not ADMIN+, OWNER granted by a non-OWNER, or `csrf_rejected`", body = ErrorBody),
        (status = 409, description = "already a member (`already_member`)", body = ErrorBody)))]
pub async fn add_member(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<MemberBody>), ApiError> {
    let access = authorize(&app, &principal, &workspace_id(&id)?, Action::ManageMembers).await?;
    let request = AddMemberRequest::parse(&body)?;
    Ok((
        StatusCode::CREATED,
        Json(people::add_member(&app, &access, request).await?),
    ))
}

/// Changes a member's role (ADMIN+; only an OWNER grants OWNER or changes an OWNER; the last OWNER stays).
#[utoipa::path(patch, path = "/api/v1/workspaces/{id}/members/{user_id}", tag = "people", security(("bearer" = []), ("session" = [])),
    params(("id" = String, Path, description = "workspace id"), ("user_id" = String, Path, description = "the member's user id")),
    request_body = RoleRequest,
    responses(
        (status = 200, description = "the member with the new role", body = MemberBody),
        (status = 400, description = "invalid role", body = ErrorBody),
        (status = 401, description = "not signed in", body = ErrorBody),
        (status = 403, description = "not ADMIN+, an OWNER rule, or `csrf_rejected`", body = ErrorBody),
        (status = 404, description = "not a member of the workspace", body = ErrorBody),
        (status = 409, description = "the last OWNER (`last_owner`)", body = ErrorBody)))]
pub async fn change_member_role(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath((id, user_id)): ApiPath<(String, String)>,
    body: Bytes,
) -> Result<Json<MemberBody>, ApiError> {
    let ws = workspace_id(&id)?;
    let user_id: UserId = parse_id(&user_id);
    let access = authorize(&app, &principal, &ws, Action::ManageMembers).await?;
    let request = RoleRequest::parse(&body)?;
    Ok(Json(
        people::change_role(&app, &access, &user_id, request).await?,
    ))
}

/// Removes a member (ADMIN+, or the member themself; only an OWNER removes an OWNER; the last OWNER stays).
#[utoipa::path(delete, path = "/api/v1/workspaces/{id}/members/{user_id}", tag = "people", security(("bearer" = []), ("session" = [])),
    params(("id" = String, Path, description = "workspace id"), ("user_id" = String, Path, description = "the member's user id")),
    responses(
        (status = 204, description = "removed"),
        (status = 401, description = "not signed in", body = ErrorBody),
        (status = 403, description = "not ADMIN+ (and not oneself), an OWNER rule, or `csrf_rejected`", body = ErrorBody),
        (status = 404, description = "not a member of the workspace", body = ErrorBody),
        (status = 409, description = "the last OWNER (`last_owner`)", body = ErrorBody)))]
pub async fn remove_member(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath((id, user_id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let ws = workspace_id(&id)?;
    let user_id: UserId = parse_id(&user_id);
    let action = if user_id == principal.user_id {
        Action::Leave
    } else {
        Action::ManageMembers
    };
    let access = authorize(&app, &principal, &ws, action).await?;
    people::remove_member(&app, &access, &user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The workspace's crews (any member).
#[utoipa::path(get, path = "/api/v1/workspaces/{id}/crews", tag = "people", security(("bearer" = []), ("session" = [])),
    params(("id" = String, Path, description = "workspace id")),
    responses(
        (status = 200, description = "crews, oldest first", body = [CrewBody]),
        (status = 401, description = "not signed in", body = ErrorBody),
        (status = 403, description = "not a member (or no such workspace)", body = ErrorBody)))]
pub async fn list_crews(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<CrewBody>>, ApiError> {
    let access = authorize(&app, &principal, &workspace_id(&id)?, Action::View).await?;
    Ok(Json(people::list_crews(&app, &access).await?))
}

/// A new crew (MANAGER+).
#[utoipa::path(post, path = "/api/v1/workspaces/{id}/crews", tag = "people", security(("bearer" = []), ("session" = [])),
    params(("id" = String, Path, description = "workspace id")),
    request_body = NameRequest,
    responses(
        (status = 201, description = "created", body = CrewBody),
        (status = 400, description = "invalid body (the key is named)", body = ErrorBody),
        (status = 401, description = "not signed in", body = ErrorBody),
        (status = 403, description = "not MANAGER+ on the workspace, or `csrf_rejected`", body = ErrorBody)))]
pub async fn create_crew(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<CrewBody>), ApiError> {
    let access = authorize(&app, &principal, &workspace_id(&id)?, Action::EditCrews).await?;
    let request = NameRequest::parse(&body)?;
    Ok((
        StatusCode::CREATED,
        Json(people::create_crew(&app, &access, request).await?),
    ))
}

/// Renames a crew (MANAGER+ on its workspace).
#[utoipa::path(patch, path = "/api/v1/crews/{crew_id}", tag = "people", security(("bearer" = []), ("session" = [])),
    params(("crew_id" = String, Path, description = "crew id")),
    request_body = NameRequest,
    responses(
        (status = 200, description = "renamed", body = CrewBody),
        (status = 400, description = "invalid body (the key is named)", body = ErrorBody),
        (status = 401, description = "not signed in", body = ErrorBody),
        (status = 403, description = "not MANAGER+ on its workspace, or `csrf_rejected`", body = ErrorBody),
        (status = 404, description = "no such crew", body = ErrorBody)))]
pub async fn rename_crew(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(crew_id): ApiPath<String>,
    body: Bytes,
) -> Result<Json<CrewBody>, ApiError> {
    let crew_id: CrewId = parse_id(&crew_id);
    let (crew, access) = people::crew_for(&app, &principal, &crew_id, Action::EditCrews).await?;
    let request = NameRequest::parse(&body)?;
    Ok(Json(
        people::rename_crew(&app, &access, &crew, request).await?,
    ))
}

/// Deletes a crew (ADMIN+ on its workspace); 409 `crew_in_use` while integrations are installed for it.
#[utoipa::path(delete, path = "/api/v1/crews/{crew_id}", tag = "people", security(("bearer" = []), ("session" = [])),
    params(("crew_id" = String, Path, description = "crew id")),
    responses(
        (status = 204, description = "deleted"),
        (status = 401, description = "not signed in", body = ErrorBody),
        (status = 403, description = "not ADMIN+ on its workspace, or `csrf_rejected`", body = ErrorBody),
        (status = 404, description = "no such crew", body = ErrorBody),
        (status = 409, description = "integrations are installed for it (`crew_in_use`)", body = ErrorBody)))]
pub async fn delete_crew(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(crew_id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let crew_id: CrewId = parse_id(&crew_id);
    let (crew, access) = people::crew_for(&app, &principal, &crew_id, Action::DeleteCrews).await?;
    people::delete_crew(&app, &access, &crew).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's API tokens (never the secret).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "people", security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "the caller's unrevoked tokens, oldest first", body = [TokenBody]),
        (status = 401, description = "not signed in", body = ErrorBody)))]
pub async fn list_tokens(
    State(app): State<AppState>,
    principal: Principal,
) -> Result<Json<Vec<TokenBody>>, ApiError> {
    Ok(Json(people::list_tokens(&app, &principal).await?))
}

/// A new API token of the caller's, shown this once.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "people", security(("bearer" = []), ("session" = [])),
    request_body = CreateTokenRequest,
    responses(
        (status = 201, description = "created: `token` is shown this once", body = TokenCreated),
        (status = 400, description = "invalid body (the key is named)", body = ErrorBody),
        (status = 401, description = "not signed in", body = ErrorBody),
        (status = 403, description = "a cookie request without Plugboard's Origin (`csrf_rejected`)", body = ErrorBody)))]
pub async fn create_token(
    State(app): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    let request = CreateTokenRequest::parse(&body)?;
    Ok((
        StatusCode::CREATED,
        Json(people::create_token(&app, &principal, request).await?),
    ))
}

/// Revokes one of the caller's tokens; it fails everywhere within a second.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "people", security(("bearer" = []), ("session" = [])),
    params(("id" = String, Path, description = "token id")),
    responses(
        (status = 204, description = "revoked"),
        (status = 401, description = "not signed in", body = ErrorBody),
        (status = 403, description = "a cookie request without Plugboard's Origin (`csrf_rejected`)", body = ErrorBody),
        (status = 404, description = "no such token of the caller's (unknown, another person's, or revoked)", body = ErrorBody)))]
pub async fn revoke_token(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let id: TokenId = parse_id(&id);
    people::revoke_token(&app, &principal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
