//! Handing out an integration's access token, refreshed first when it is about to expire (one refresh per
//! integration at a time across instances: a compare-and-set lease on the grant row), and storing what a token
//! endpoint granted.

use std::time::Duration;

use axum::http::StatusCode;
use plugboard_store::{
    new_id, Integration, IntegrationId, IntegrationStatus, NewAudit, NewSecret, OAuthFlow,
    OAuthGrant, OAuthTokenWrite,
};
use secrecy::{ExposeSecret, SecretString};

use super::token_endpoint::{token_request, Target, TargetError, TokenSet};
use super::REFRESH_MARGIN_MS;
use crate::error::ApiError;
use crate::metrics::RefreshOutcome;
use crate::state::App;
use crate::vault::names;

/// How often a caller waiting for another instance's refresh looks again.
const WAIT_STEP: Duration = Duration::from_millis(100);

/// The vault entries and expiry for a granted token set.
pub(crate) async fn seal_tokens(
    state: &App,
    integration_id: &IntegrationId,
    tokens: &TokenSet,
    now: i64,
) -> Result<(Vec<NewSecret>, Option<i64>), crate::vault::VaultServiceError> {
    let mut secrets = vec![
        state
            .vault
            .seal(
                integration_id,
                names::ACCESS_TOKEN,
                tokens.access_token.expose_secret().as_bytes(),
            )
            .await?,
    ];
    if let Some(r) = &tokens.refresh_token {
        secrets.push(
            state
                .vault
                .seal(
                    integration_id,
                    names::REFRESH_TOKEN,
                    r.expose_secret().as_bytes(),
                )
                .await?,
        );
    }
    let expires_at = tokens
        .expires_in
        .map(|s| now.saturating_add(s.saturating_mul(1000)));
    Ok((secrets, expires_at))
}

/// How long before its expiry an access token of this lifetime is refreshed: [`REFRESH_MARGIN_MS`] (60 s), or half
/// the lifetime when that is shorter. A token that lives 60 s or less would otherwise be due the moment it is
/// issued, and every read would refresh it.
pub fn refresh_margin_ms(lifetime_ms: i64) -> i64 {
    REFRESH_MARGIN_MS.min(lifetime_ms.max(0) / 2)
}

/// When the grant's access token is due for a refresh (ms since the epoch, the server's clock); `None` when it does
/// not expire. Its lifetime is `expires_at - updated_at`: both are written together, from the same instant, when
/// the token is stored.
pub fn refresh_at(grant: &OAuthGrant) -> Option<i64> {
    grant
        .expires_at
        .map(|e| e.saturating_sub(refresh_margin_ms(e.saturating_sub(grant.updated_at))))
}

/// Why [`access_token`] has no token to give.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("this integration does not use OAuth")]
    NotOAuth,
    #[error("this integration is not connected yet: finish its OAuth sign-in first")]
    NotConnected,
    /// The integration is in `error` (for example the provider refused a refresh): the reason says what to do.
    #[error("{0}")]
    Reconnect(String),
    /// The provider could not be reached to refresh an expired token; trying again later may work.
    #[error("{0}")]
    Unavailable(String),
    /// The database cannot be reached or its storage is full: answered as every store failure is (503
    /// `database_unavailable`, 507 `insufficient_storage`).
    #[error("the database is unavailable")]
    Database(plugboard_store::StoreError),
    /// Storage or vault failure (logged).
    #[error("internal error")]
    Internal,
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::NotOAuth => ApiError::bad_request(e.to_string()),
            TokenError::NotConnected => {
                ApiError::new(StatusCode::CONFLICT, "not_connected", e.to_string())
            }
            TokenError::Reconnect(m) => {
                ApiError::new(StatusCode::CONFLICT, "reconnect_required", m)
            }
            TokenError::Unavailable(m) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "oauth_refresh_unavailable",
                m,
            ),
            TokenError::Database(e) => ApiError::from(e),
            TokenError::Internal => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal server error",
            ),
        }
    }
}

fn internal(cause: impl std::fmt::Display) -> TokenError {
    tracing::error!(error = %cause, "oauth token storage failed");
    TokenError::Internal
}

/// A store failure: an unreachable or full database keeps its class (503 / 507), anything else is internal.
fn store(e: plugboard_store::StoreError) -> TokenError {
    if e.is_unavailable() || e.is_storage_full() {
        TokenError::Database(e)
    } else {
        internal(e)
    }
}

/// The integration's access token, refreshed first when it is due ([`refresh_at`]: within a minute of its expiry,
/// or within half its lifetime when that is shorter).
///
/// One refresh per integration at a time, across instances: the caller that wins a compare-and-set lease on the
/// grant row calls the provider; the others wait (up to the egress timeout and a little more) for the version to
/// change and take the token that refresh produced (never refreshing it again themselves while it is valid), or
/// hand out the current one while it is still valid. A refresh answer without a refresh token keeps the old one. A
/// refusal (`invalid_grant`, …) turns the integration `error` with a reason that says to reconnect.
#[tracing::instrument(skip_all, fields(integration_id = %integration.id))]
pub async fn access_token(
    state: &App,
    integration: &Integration,
) -> Result<SecretString, TokenError> {
    let Some(flow) = integration.auth_mode.oauth_flow() else {
        return Err(TokenError::NotOAuth);
    };
    let id = &integration.id;
    let budget = state.config.probe_timeout + Duration::from_secs(5);
    let deadline = tokio::time::Instant::now() + budget;
    // The grant version this caller found due while another caller held the refresh lease: once the version has
    // moved on, that refresh has finished and its token is taken as it is.
    let mut waited_on: Option<i64> = None;
    loop {
        let current = state
            .store
            .get_integration(id)
            .await
            .map_err(store)?
            .ok_or(TokenError::NotConnected)?;
        match current.status {
            IntegrationStatus::Active => {}
            IntegrationStatus::Error => {
                return Err(TokenError::Reconnect(current.status_reason.unwrap_or_else(
                    || "this integration needs to be reconnected".into(),
                )))
            }
            IntegrationStatus::PendingOauth => return Err(TokenError::NotConnected),
        }
        let grant = state
            .store
            .get_oauth_grant(id)
            .await
            .map_err(store)?
            .ok_or(TokenError::NotConnected)?;
        let secrets = state.store.integration_secrets(id).await.map_err(store)?;
        let open = |name: &'static str| {
            let row = secrets.iter().find(|s| s.name == name).cloned();
            async move {
                match row {
                    None => Ok(None),
                    Some(row) => state
                        .vault
                        .open(&row)
                        .await
                        .and_then(|p| p.into_string().map_err(Into::into))
                        .map(Some)
                        .map_err(internal),
                }
            }
        };
        let access = open(names::ACCESS_TOKEN)
            .await?
            .ok_or(TokenError::NotConnected)?;
        let now = state.clock.now_ms();
        if refresh_at(&grant).is_none_or(|at| now < at) {
            return Ok(access);
        }
        let still_valid = grant.expires_at.is_some_and(|e| e > now);
        if still_valid && waited_on.is_some_and(|v| v != grant.version) {
            return Ok(access);
        }
        let Some(refresh) = open(names::REFRESH_TOKEN).await? else {
            if still_valid {
                return Ok(access);
            }
            let reason =
                "The access token expired and the provider gave no refresh token: reconnect this \
                          integration to sign in again."
                    .to_string();
            mark_error(state, &current, flow, &reason, None).await;
            return Err(TokenError::Reconnect(reason));
        };
        let owner = new_id();
        let lease_ms = i64::try_from(budget.as_millis()).unwrap_or(i64::MAX);
        let locked = state
            .store
            .try_lock_oauth_refresh(id, &owner, now, now.saturating_add(lease_ms))
            .await
            .map_err(store)?;
        if locked {
            // Someone may have refreshed between our read and the lock: then read again.
            let fresh = state.store.get_oauth_grant(id).await.map_err(store)?;
            if fresh.as_ref().map(|g| g.version) != Some(grant.version) {
                let _ = state.store.release_oauth_refresh(id, &owner).await;
                waited_on.get_or_insert(grant.version);
                continue;
            }
            return refresh_locked(
                state,
                &current,
                &grant,
                &owner,
                refresh,
                access,
                still_valid,
            )
            .await;
        }
        waited_on.get_or_insert(grant.version);
        if tokio::time::Instant::now() >= deadline {
            return if still_valid {
                Ok(access)
            } else {
                Err(TokenError::Unavailable(
                    "another refresh of this integration's access token is still running; try again".into(),
                ))
            };
        }
        tokio::time::sleep(WAIT_STEP).await;
    }
}

#[allow(clippy::too_many_arguments)]
async fn refresh_locked(
    state: &App,
    integration: &Integration,
    grant: &OAuthGrant,
    owner: &str,
    refresh: SecretString,
    access: SecretString,
    still_valid: bool,
) -> Result<SecretString, TokenError> {
    let id = &integration.id;
    let release = || async {
        if let Err(e) = state.store.release_oauth_refresh(id, owner).await {
            tracing::warn!(error = %e, "could not release the refresh lock (it expires by itself)");
        }
    };
    let target = match refresh_target(state, integration, grant).await {
        Ok(t) => t,
        Err(TargetError::Internal) => {
            release().await;
            return Err(TokenError::Internal);
        }
        Err(TargetError::Config(reason)) => {
            mark_error(state, integration, grant.flow, &reason, Some(owner)).await;
            return Err(TokenError::Reconnect(reason));
        }
    };
    let mut form = vec![
        ("grant_type".to_string(), "refresh_token".to_string()),
        (
            "refresh_token".to_string(),
            refresh.expose_secret().to_string(),
        ),
    ];
    if let Some(r) = &grant.resource {
        form.push(("resource".into(), r.clone()));
    }
    form.extend(target.extra);
    let result = token_request(
        &state.egress,
        &target.endpoint,
        &form,
        &target.client,
        &[refresh.expose_secret(), access.expose_secret()],
    )
    .await;
    match result {
        Ok(tokens) => {
            let now = state.clock.now_ms();
            let (secrets, expires_at) = seal_tokens(state, id, &tokens, now)
                .await
                .map_err(internal)?;
            let wrote = state
                .store
                .write_oauth_tokens(OAuthTokenWrite {
                    integration_id: id.clone(),
                    flow: grant.flow,
                    upsert_secrets: secrets,
                    delete_secrets: vec![],
                    expires_at: Some(expires_at),
                    status: None,
                    lock_owner: Some(owner.to_string()),
                    audit: None,
                    written_at: now,
                })
                .await
                .map_err(store)?;
            if !wrote {
                tracing::warn!("the refresh lease ended before the refreshed token was stored");
            }
            state.metrics.oauth_refresh(RefreshOutcome::Ok);
            tracing::info!(
                rotated = tokens.refresh_token.is_some(),
                "oauth access token refreshed"
            );
            Ok(tokens.access_token)
        }
        Err(e) if e.is_refusal() => {
            let reason = format!(
                "The provider refused to refresh the access token ({}). Reconnect this integration to sign in \
                 again.",
                e.message()
            );
            tracing::warn!(code = e.code().unwrap_or(""), "oauth refresh refused");
            state.metrics.oauth_refresh(RefreshOutcome::Refused);
            mark_error(state, integration, grant.flow, &reason, Some(owner)).await;
            Err(TokenError::Reconnect(reason))
        }
        Err(e) => {
            release().await;
            tracing::warn!(error = %e.message(), "oauth refresh failed");
            state.metrics.oauth_refresh(RefreshOutcome::Failed);
            if still_valid {
                Ok(access)
            } else {
                Err(TokenError::Unavailable(format!(
                    "The access token expired and could not be refreshed: {}",
                    e.message()
                )))
            }
        }
    }
}

pub(crate) async fn refresh_target(
    state: &App,
    integration: &Integration,
    grant: &OAuthGrant,
) -> Result<Target, TargetError> {
    match grant.flow {
        OAuthFlow::Mcp => super::mcp::token_target(state, integration, grant).await,
        OAuthFlow::Byo => super::byo::token_target(state, integration).await,
    }
}

/// Turns the integration `error` with `reason` (releasing the refresh lock when `owner` holds it).
pub(crate) async fn mark_error(
    state: &App,
    integration: &Integration,
    flow: OAuthFlow,
    reason: &str,
    owner: Option<&str>,
) {
    let write = OAuthTokenWrite {
        integration_id: integration.id.clone(),
        flow,
        upsert_secrets: vec![],
        delete_secrets: vec![],
        expires_at: None,
        status: Some((IntegrationStatus::Error, Some(reason.to_string()))),
        lock_owner: owner.map(str::to_string),
        audit: Some(NewAudit {
            workspace_id: Some(integration.workspace_id.clone()),
            actor_id: None,
            action: "integration.oauth_error".into(),
            target: Some(integration.id.to_string()),
            detail: serde_json::json!({ "reason": reason }),
        }),
        written_at: state.clock.now_ms(),
    };
    match state.store.write_oauth_tokens(write).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!("refresh lease lost; the error status was not written"),
        Err(e) => tracing::error!(error = %e, "could not mark the integration as failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugboard_store::OAuthFlow;

    fn grant(updated_at: i64, expires_at: Option<i64>) -> OAuthGrant {
        OAuthGrant {
            integration_id: IntegrationId::from("int_x"),
            flow: OAuthFlow::Byo,
            issuer: None,
            token_endpoint: None,
            resource: None,
            client_id: None,
            token_auth: None,
            expires_at,
            version: 1,
            lock_owner: None,
            lock_until: None,
            updated_at,
        }
    }

    #[test]
    fn the_margin_is_a_minute_or_half_a_short_lifetime() {
        assert_eq!(refresh_margin_ms(3_600_000), 60_000);
        assert_eq!(refresh_margin_ms(120_000), 60_000);
        assert_eq!(refresh_margin_ms(60_000), 30_000);
        assert_eq!(refresh_margin_ms(30_000), 15_000);
        assert_eq!(refresh_margin_ms(0), 0);
        assert_eq!(refresh_margin_ms(-5), 0);
    }

    #[test]
    fn a_token_is_due_within_its_margin_of_expiry() {
        let t0 = 1_000_000;
        assert_eq!(refresh_at(&grant(t0, Some(t0 + 30_000))), Some(t0 + 15_000));
        assert_eq!(
            refresh_at(&grant(t0, Some(t0 + 3_600_000))),
            Some(t0 + 3_540_000)
        );
        assert_eq!(refresh_at(&grant(t0, None)), None);
        // Already expired when written (expires_in 0): due at once.
        assert_eq!(refresh_at(&grant(t0, Some(t0))), Some(t0));
    }
}
