//! Agent tokens of a workspace (ADMIN+): list, create (optionally for one crew, optionally expiring), revoke. A
//! token is shown once, when created; only its hash is stored. Audited in the workspace's log as
//! `agent_token_created` and `agent_token_revoked` (the token's name, crew and expiry; never the token).

use plugboard_store::{AgentTokenId, AgentTokenRecord, CrewId, NewAgentToken, StoreError};
use serde::Serialize;
use serde_json::json;

use super::{audit, authorize, Access, Action, CreateAgentTokenRequest};
use crate::agent_tokens::generate_agent_token;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::App;

const DAY_MS: i64 = 24 * 3600 * 1000;

/// An agent token as listed: never the secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentTokenBody {
    #[schema(value_type = String)]
    pub id: AgentTokenId,
    pub name: String,
    /// The crew it is limited to; `null`: the whole workspace.
    #[schema(value_type = Option<String>)]
    pub crew_id: Option<CrewId>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// When it was last used (recorded at most once a minute); `null`: never.
    pub last_used_at: Option<i64>,
    /// When it stops working; `null`: never.
    pub expires_at: Option<i64>,
}

impl From<AgentTokenRecord> for AgentTokenBody {
    fn from(t: AgentTokenRecord) -> Self {
        AgentTokenBody {
            id: t.id,
            name: t.name,
            crew_id: t.crew_id,
            created_at: t.created_at,
            last_used_at: t.last_used_at,
            expires_at: t.expires_at,
        }
    }
}

/// An agent token just created (201): the token is shown this once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AgentTokenCreated {
    #[schema(value_type = String)]
    pub id: AgentTokenId,
    /// `pba_…`: store it now, it is never shown again.
    pub token: String,
}

impl std::fmt::Debug for AgentTokenCreated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentTokenCreated")
            .field("id", &self.id)
            .field("token", &"[redacted]")
            .finish()
    }
}

/// The workspace's unrevoked agent tokens (expired ones included), oldest first (ADMIN+).
pub async fn list_agent_tokens(
    app: &App,
    access: &Access,
) -> Result<Vec<AgentTokenBody>, ApiError> {
    access.require(Action::ManageAgentTokens)?;
    Ok(app
        .store
        .list_agent_tokens(access.workspace_id())
        .await?
        .into_iter()
        .map(AgentTokenBody::from)
        .collect())
}

/// A new agent token of the workspace (ADMIN+); `crew_id` must be one of the workspace's crews.
pub async fn create_agent_token(
    app: &App,
    access: &Access,
    request: CreateAgentTokenRequest,
) -> Result<AgentTokenCreated, ApiError> {
    access.require(Action::ManageAgentTokens)?;
    let now = app.clock.now_ms();
    let expires_at = request
        .expires_in_days
        .map(|d| now.saturating_add(d.saturating_mul(DAY_MS)));
    let (token, hash) = generate_agent_token();
    let entry = audit(
        Some(access.workspace_id()),
        access.user_id(),
        "agent_token_created",
        None,
        json!({"name": request.name, "crew_id": request.crew_id, "expires_at": expires_at}),
    );
    let rec = app
        .store
        .create_agent_token(
            &NewAgentToken {
                workspace_id: access.workspace_id().clone(),
                crew_id: request.crew_id,
                name: request.name,
                token_hash: hash.to_vec(),
                created_by: access.user_id().clone(),
                created_at: now,
                expires_at,
            },
            entry,
        )
        .await
        .map_err(|e| match e {
            StoreError::NotFound("crew") => {
                ApiError::invalid_field("`crew_id` is not a crew of this workspace")
            }
            StoreError::NotFound(_) => ApiError::forbidden(),
            other => other.into(),
        })?;
    Ok(AgentTokenCreated { id: rec.id, token })
}

/// Revokes an agent token (ADMIN+ of its workspace): 404 for an unknown or already revoked token, then 403. It
/// fails on every instance within a second.
pub async fn revoke_agent_token(
    app: &App,
    principal: &Principal,
    id: &AgentTokenId,
) -> Result<(), ApiError> {
    let token = app
        .store
        .get_agent_token(id)
        .await?
        .filter(|t| t.revoked_at.is_none())
        .ok_or_else(|| ApiError::not_found("agent token"))?;
    let access = authorize(
        app,
        principal,
        &token.workspace_id,
        Action::ManageAgentTokens,
    )
    .await?;
    let entry = audit(
        Some(access.workspace_id()),
        access.user_id(),
        "agent_token_revoked",
        Some(id.to_string()),
        json!({"name": token.name, "crew_id": token.crew_id}),
    );
    if app.store.revoke_agent_token(id, entry).await? {
        // Other instances notice within a second; this one at once.
        app.revocations.poll_once().await;
        Ok(())
    } else {
        Err(ApiError::not_found("agent token"))
    }
}
