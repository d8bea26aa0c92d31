//! byo_oauth: the customer's own OAuth app, described by the manifest's `oauth` block; its client id and secret are
//! the integration's `field.client_id` / `field.client_secret` vault entries.

use std::collections::BTreeMap;

use plugboard_catalog::{Manifest, RenderContext, TokenAuth};
use plugboard_store::{Integration, IntegrationId};
use secrecy::{ExposeSecret, SecretString};

use super::token_endpoint::{Client, ClientAuthMethod, Target, TargetError};
use crate::state::App;
use crate::vault::names;

/// The integration's submitted form values, opened from the vault (`field.<key>` entries).
pub(crate) async fn fields(
    state: &App,
    integration_id: &IntegrationId,
) -> Result<BTreeMap<String, String>, TargetError> {
    let rows = state
        .store
        .integration_secrets(integration_id)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot read the integration's vault entries");
            TargetError::Internal
        })?;
    let mut out = BTreeMap::new();
    for row in rows {
        let Some(key) = row.name.strip_prefix(names::FIELD_PREFIX) else {
            continue;
        };
        let value = state
            .vault
            .open(&row)
            .await
            .and_then(|p| p.into_string().map_err(Into::into))
            .map_err(|e| {
                tracing::error!(error = %e, "cannot open a vault entry");
                TargetError::Internal
            })?;
        out.insert(key.to_string(), value.expose_secret().to_string());
    }
    Ok(out)
}

pub(crate) fn manifest(
    state: &App,
    integration: &Integration,
) -> Result<crate::prepared::ManifestRef, TargetError> {
    let manifest = integration
        .connector_id
        .as_deref()
        .and_then(|id| state.catalog.manifest(id))
        .ok_or_else(|| {
            TargetError::Config(
                "The connector of this integration is no longer in the catalog, so its token endpoint is unknown."
                    .into(),
            )
        })?;
    if manifest.oauth.is_none() {
        return Err(TargetError::Config(
            "The connector of this integration has no `oauth` block.".into(),
        ));
    }
    Ok(manifest)
}

/// The token endpoint, client and extra parameters of a byo_oauth integration, rendered from its manifest and
/// stored fields.
pub(crate) async fn token_target(
    state: &App,
    integration: &Integration,
) -> Result<Target, TargetError> {
    let manifest = manifest(state, integration)?;
    let oauth = manifest
        .oauth
        .as_ref()
        .ok_or_else(|| TargetError::Config("no oauth block".into()))?;
    let fields = fields(state, &integration.id).await?;
    let instance_url = state.config.public_url.as_str();
    let derived = manifest
        .resolve_derived(&fields, instance_url)
        .map_err(|e| TargetError::Config(format!("The connector's derived values: {e}")))?;
    let ctx = RenderContext {
        fields: &fields,
        derived: &derived,
        instance_url,
        oauth_access_token: None,
    };
    let endpoint = oauth
        .token_url
        .render(&ctx)
        .map_err(|e| TargetError::Config(format!("The connector's token_url: {e}")))?;
    let mut extra = Vec::with_capacity(oauth.token_params.len());
    for (k, t) in &oauth.token_params {
        let v = t
            .render(&ctx)
            .map_err(|e| TargetError::Config(format!("The connector's token_params.{k}: {e}")))?;
        extra.push((k.clone(), v));
    }
    let client_id = fields
        .get("client_id")
        .filter(|s| !s.is_empty())
        .cloned()
        .ok_or_else(|| TargetError::Config("The integration has no client_id.".into()))?;
    let client_secret = fields
        .get("client_secret")
        .filter(|s| !s.is_empty())
        .map(|s| SecretString::from(s.clone()));
    let method = match oauth.token_auth {
        TokenAuth::ClientSecretBasic => ClientAuthMethod::Basic,
        TokenAuth::ClientSecretPost => ClientAuthMethod::Post,
    };
    Ok(Target {
        endpoint,
        client: Client {
            id: client_id,
            secret: client_secret,
            method,
        },
        extra,
    })
}

/// Whether the manifest asked for PKCE.
pub(crate) fn wants_pkce(manifest: &Manifest) -> bool {
    manifest.oauth.as_ref().is_some_and(|o| o.pkce)
}
