//! `Idempotency-Key`: scope (workspace, caller, key), request fingerprints, replays and the unique race.

use axum::http::StatusCode;
use plugboard_store::{NewIntegration, StoreError, WorkspaceId};
use secrecy::zeroize::Zeroize;
use secrecy::ExposeSecret;
use serde_json::{Map, Value};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::App;

use super::*;

/// A created resource (or the replay of one): status, JSON body, and whether it is a replay. The handler turns it
/// into the response (with `Idempotent-Replayed: true` on a replay).
#[derive(Debug)]
pub struct Created {
    pub status: StatusCode,
    pub body: String,
    pub replayed: bool,
}

/// The JSON value with object keys sorted, recursively.
pub(crate) fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .filter_map(|k| map.get(k).map(|x| (k.clone(), canonical(x))))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// The request fingerprint: a keyed hash (under the master key) of the operation, the connector id and the
/// canonical body. Keyed, because the body holds secret values: an unkeyed hash in the database would let anyone who
/// reads it test guesses of a weak secret offline.
pub(crate) fn fingerprint(
    vault: &crate::vault::Vault,
    operation: &str,
    connector_id: &str,
    body: &Map<String, Value>,
) -> Vec<u8> {
    let input = fingerprint_input(operation, connector_id, body);
    vault.keyed_hash("idempotency-fingerprint", &input).to_vec()
}

fn fingerprint_input(
    operation: &str,
    connector_id: &str,
    body: &Map<String, Value>,
) -> secrecy::zeroize::Zeroizing<Vec<u8>> {
    let mut canon = canonical(&Value::Object(body.clone())).to_string();
    let mut input = secrecy::zeroize::Zeroizing::new(Vec::with_capacity(canon.len() + 64));
    for part in [
        operation.as_bytes(),
        connector_id.as_bytes(),
        canon.as_bytes(),
    ] {
        input.extend_from_slice(&(part.len() as u64).to_be_bytes());
        input.extend_from_slice(part);
    }
    canon.zeroize();
    input
}

pub(crate) fn key_reused() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        "this Idempotency-Key was already used for a different request",
    )
}

/// A stored first response for this (workspace, caller, key), if any: the replay, or 422 for another request.
pub(crate) async fn replay(
    app: &App,
    workspace_id: &WorkspaceId,
    principal: &Principal,
    idem: &Idem,
) -> Result<Option<Created>, ApiError> {
    let Some(rec) = app
        .store
        .idempotency_get(workspace_id, &principal.user_id, &idem.key)
        .await?
    else {
        return Ok(None);
    };
    if rec.fingerprint != idem.fingerprint {
        return Err(key_reused());
    }
    let status = u16::try_from(rec.status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or_else(|| ApiError::internal("stored idempotent response has an invalid status"))?;
    Ok(Some(Created {
        status,
        body: restore_oauth_url(app, rec.response).await?,
        replayed: true,
    }))
}

/// A replayed byo_oauth install gets back the `oauth_url` that was sealed with it.
async fn restore_oauth_url(app: &App, stored: String) -> Result<String, ApiError> {
    let mut body = match serde_json::from_str::<InstallBody>(&stored) {
        Ok(b) if b.next_step == "oauth" && b.oauth_url.is_none() => b,
        _ => return Ok(stored),
    };
    let rows = app.store.integration_secrets(&body.integration_id).await?;
    let row = rows
        .iter()
        .find(|r| r.name == names::AUTHORIZE_URL)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "idempotent_result_gone",
                "the integration the first request with this Idempotency-Key created has since been deleted",
            )
        })?;
    let url = app
        .vault
        .open(row)
        .await
        .map_err(vault_err)?
        .into_string()
        .map_err(ApiError::internal)?;
    body.oauth_url = Some(url.expose_secret().to_string());
    serde_json::to_string(&body).map_err(ApiError::internal)
}

pub(crate) struct Idem {
    pub(crate) key: String,
    pub(crate) fingerprint: Vec<u8>,
}

/// Writes a new integration; a concurrent duplicate that lost the unique race on its Idempotency-Key gets the
/// winner's stored response.
pub(crate) async fn write_integration(
    app: &App,
    principal: &Principal,
    new: NewIntegration,
    idem: Option<&Idem>,
    body: String,
) -> Result<Created, ApiError> {
    let workspace_id = new.workspace_id.clone();
    let auth_mode = new.auth_mode;
    match app.store.create_integration(new).await {
        Ok(_) => {
            app.metrics.install(auth_mode);
            Ok(Created {
                status: StatusCode::CREATED,
                body,
                replayed: false,
            })
        }
        Err(StoreError::Conflict(m)) => match idem {
            Some(idem) => match replay(app, &workspace_id, principal, idem).await? {
                Some(first) => Ok(first),
                None => Err(ApiError::conflict(m)),
            },
            None => Err(ApiError::conflict(m)),
        },
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_fingerprint_ignores_key_order_but_not_values() {
        let a = json!({"name": "x", "fields": {"a": "1", "b": "2"}});
        let b = json!({"fields": {"b": "2", "a": "1"}, "name": "x"});
        let c = json!({"fields": {"b": "2", "a": "3"}, "name": "x"});
        let f = |v: &Value| fingerprint_input("install", "github", v.as_object().unwrap());
        assert_eq!(f(&a), f(&b));
        assert_ne!(f(&a), f(&c));
        assert_ne!(
            fingerprint_input("install", "github", a.as_object().unwrap()),
            fingerprint_input("install", "slack", a.as_object().unwrap())
        );
    }
}
