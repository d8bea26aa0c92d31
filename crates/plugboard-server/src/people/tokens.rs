//! Personal API tokens: list, create (optionally expiring), revoke. A token is shown once, when created; only its
//! hash is stored. Token events concern no workspace: their audit entries have none.

use plugboard_store::{NewToken, TokenId, TokenRecord};
use serde::Serialize;
use serde_json::json;

use super::{audit, CreateTokenRequest};
use crate::api_tokens::generate_token;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::App;

const DAY_MS: i64 = 24 * 3600 * 1000;

/// A token as listed: never the secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenBody {
    #[schema(value_type = String)]
    pub id: TokenId,
    pub name: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// When it was last used (recorded at most once a minute); `null`: never.
    pub last_used_at: Option<i64>,
    /// When it stops working; `null`: never.
    pub expires_at: Option<i64>,
}

impl From<TokenRecord> for TokenBody {
    fn from(t: TokenRecord) -> Self {
        TokenBody {
            id: t.id,
            name: t.name,
            created_at: t.created_at,
            last_used_at: t.last_used_at,
            expires_at: t.expires_at,
        }
    }
}

/// A token just created (201): the token is shown this once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenCreated {
    #[schema(value_type = String)]
    pub id: TokenId,
    /// `pb_…`: store it now, it is never shown again.
    pub token: String,
}

impl std::fmt::Debug for TokenCreated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCreated")
            .field("id", &self.id)
            .field("token", &"[redacted]")
            .finish()
    }
}

/// The caller's unrevoked tokens (expired ones included), oldest first.
pub async fn list_tokens(app: &App, principal: &Principal) -> Result<Vec<TokenBody>, ApiError> {
    Ok(app
        .store
        .list_tokens(&principal.user_id, false)
        .await?
        .into_iter()
        .map(TokenBody::from)
        .collect())
}

/// A new token of the caller's.
pub async fn create_token(
    app: &App,
    principal: &Principal,
    request: CreateTokenRequest,
) -> Result<TokenCreated, ApiError> {
    let now = app.clock.now_ms();
    let expires_at = request
        .expires_in_days
        .map(|d| now.saturating_add(d.saturating_mul(DAY_MS)));
    let (token, hash) = generate_token();
    let entry = audit(
        None,
        &principal.user_id,
        "token_created",
        None,
        json!({"name": request.name, "expires_at": expires_at}),
    );
    let rec = app
        .store
        .create_personal_token(
            &NewToken {
                user_id: principal.user_id.clone(),
                name: request.name,
                token_hash: hash.to_vec(),
                created_at: now,
                expires_at,
            },
            entry,
        )
        .await
        .map_err(|e| match e {
            plugboard_store::StoreError::NotFound(_) => ApiError::unauthorized(),
            other => other.into(),
        })?;
    Ok(TokenCreated { id: rec.id, token })
}

/// Revokes one of the caller's tokens; 404 for a token that is not theirs, unknown or already revoked. It fails
/// on every instance within a second.
pub async fn revoke_token(app: &App, principal: &Principal, id: &TokenId) -> Result<(), ApiError> {
    let entry = audit(
        None,
        &principal.user_id,
        "token_revoked",
        Some(id.to_string()),
        json!({}),
    );
    if app
        .store
        .revoke_own_token(id, &principal.user_id, entry)
        .await?
    {
        // Other instances notice within a second; this one at once.
        app.revocations.poll_once().await;
        Ok(())
    } else {
        Err(ApiError::not_found("token"))
    }
}
