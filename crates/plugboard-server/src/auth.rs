//! Who is calling and what they may do: the authenticated [`Principal`] (an extractor: `Authorization: Bearer`
//! resolved through [`crate::api_tokens::TokenCache`]) and [`require_role`], the one place roles are checked.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use plugboard_store::{Role, TokenId, UserId, WorkspaceId};

use crate::error::ApiError;
use crate::state::AppState;

pub use crate::api_tokens::generate_token;

/// The authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub user_id: UserId,
    pub token_id: TokenId,
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(ApiError::unauthorized)?;
        let (scheme, token) = header
            .trim()
            .split_once(' ')
            .ok_or_else(ApiError::unauthorized)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::unauthorized());
        }
        let owner = state
            .tokens
            .authenticate(token.trim())
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        Ok(Principal {
            user_id: owner.user_id,
            token_id: owner.token_id,
        })
    }
}

/// The one place roles are checked: the caller's role on `workspace_id` must be at least `min`.
/// A workspace that does not exist and a caller who is not a member both answer 403.
pub async fn require_role(
    state: &AppState,
    principal: &Principal,
    workspace_id: &WorkspaceId,
    min: Role,
) -> Result<Role, ApiError> {
    let role = state
        .store
        .member_role(workspace_id, &principal.user_id)
        .await?;
    match role {
        Some(r) if r >= min => Ok(r),
        _ => Err(ApiError::forbidden()),
    }
}

/// [`require_role`] on the workspace a request names (`?workspace_id=`), returning its typed id. An id of the wrong
/// shape is an unknown workspace: 403, without a lookup.
pub async fn require_role_in(
    state: &AppState,
    principal: &Principal,
    workspace_id: &str,
    min: Role,
) -> Result<WorkspaceId, ApiError> {
    let id = WorkspaceId::parse(workspace_id).ok_or_else(ApiError::forbidden)?;
    require_role(state, principal, &id, min).await?;
    Ok(id)
}
