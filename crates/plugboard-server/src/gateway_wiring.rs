//! The MCP gateway (`plugboard-gateway`) on the server: its ports implemented over the store, the vault and the
//! OAuth token service, and the one [`Gateway`] of this instance ([`gateway`]).
//!
//! - [`ServerIntegrations`]: who reaches what (agent tokens: their workspace, or their crew and the workspace-scoped
//!   integrations; a person: MEMBER+ of the workspace) and the upstream with its credentials (the same
//!   materialisation as `/runtime`, an OAuth token refreshed first when due under the cross-instance lease).
//! - [`ServerAudit`]: the audit entry `gateway_call` in the integration's workspace log.
//! - [`ServerSessions`]: aggregated sessions in the `gateway_sessions` table, so every instance continues them.
//! - Metrics: [`crate::metrics::Metrics`], the `/metrics` registry held by the state.
//! - [`Presence`]: how many instances run, so each takes its share of the integrations' concurrency bound.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use plugboard_gateway::{
    AccessError, AuditLog, Caller, CallerKind, Gateway, GatewayCall, GatewayConfig,
    IntegrationInfo, IntegrationStatus, Integrations, MaterializeError, Ports, Scope,
    SessionRecord, SessionStore, ToolPolicy, Transport, UpstreamTarget, Via,
};
use plugboard_store::{
    AgentTokenId, CrewId, GatewaySessionRow, Integration, IntegrationId, NewAudit, Role, Store,
    UserId, WorkspaceId,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::credentials::GenerationCache;
use crate::integration::{tool_list, tool_prefix, StoredMcp};
use crate::state::{App, AppState};

/// How long a materialised OAuth bearer token is reused before the gateway asks again (the token service hands out
/// only tokens valid for at least a minute, refreshing them first).
const OAUTH_REUSE: Duration = Duration::from_secs(30);
/// Most agent tokens whose scope is remembered before the memory starts over.
const MAX_AGENT_SCOPES: usize = 100_000;

/// Lease names that mark a running instance: `instance:` and the instance's lease holder name.
const PRESENCE_PREFIX: &str = "instance:";
/// How often an instance renews its presence and counts the others.
const PRESENCE_EVERY: Duration = Duration::from_secs(10);
/// How long a presence lasts without renewal (an instance that stopped without a word stops counting then).
const PRESENCE_TTL_MS: i64 = 30_000;

/// This instance's presence in the database: a lease (table `leases`) it renews while it runs, by which every
/// instance counts the instances running and tells its gateway ([`Gateway::set_instances`]), so the instances
/// together keep each integration's bound on concurrent upstream requests. While the database cannot answer, the
/// last count stays.
#[derive(Clone)]
pub struct Presence {
    name: String,
    holder: String,
    /// Whether the instance has left ([`Presence::leave`]): nothing is announced after that.
    left: Arc<tokio::sync::Mutex<bool>>,
}

impl Presence {
    pub fn new() -> Presence {
        let holder = crate::vault::lease_holder();
        Presence {
            name: format!("{PRESENCE_PREFIX}{holder}"),
            holder,
            left: Arc::default(),
        }
    }

    /// Ends this instance's presence (a graceful stop), so the other instances take its share at their next count
    /// instead of after the presence expires.
    pub async fn leave(&self, app: &AppState) {
        let mut left = self.left.lock().await;
        *left = true;
        if let Err(e) = app.store.release_lease(&self.name, &self.holder).await {
            tracing::warn!(
                error = %e,
                "could not end this instance's presence; the other instances count it until it expires (30 s)"
            );
        }
    }

    /// Renews this instance's presence, counts the instances present and tells the gateway; returns the count.
    pub async fn announce(&self, app: &AppState) -> Result<usize, plugboard_store::StoreError> {
        let now = plugboard_store::now_ms();
        app.store
            .try_lease(
                &self.name,
                &self.holder,
                "serving",
                now,
                now + PRESENCE_TTL_MS,
            )
            .await?;
        let counted = app.store.count_leases(PRESENCE_PREFIX, now).await?;
        let instances = usize::try_from(counted).unwrap_or(usize::MAX).max(1);
        gateway(app).set_instances(instances);
        app.metrics.gateway_instances(instances);
        Ok(instances)
    }

    /// Announces this instance every [`PRESENCE_EVERY`] for as long as the app is alive and the instance has not
    /// left.
    pub fn keep(&self, app: &AppState) {
        let app = Arc::downgrade(app);
        let presence = self.clone();
        tokio::spawn(async move {
            let mut failing = false;
            let mut last = 1;
            loop {
                let Some(state) = app.upgrade() else { return };
                let left = presence.left.lock().await;
                if *left {
                    return;
                }
                let announced = presence.announce(&state).await;
                drop((left, state));
                match announced {
                    Ok(n) => {
                        if n != last {
                            tracing::info!(
                                instances = n,
                                "the number of instances running changed: each takes an equal share of every \
                                 integration's bound on concurrent gateway requests (64 / instances)"
                            );
                            last = n;
                        }
                        failing = false;
                    }
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(
                            error = %e,
                            "could not count the instances running (the database did not answer); the gateway \
                             keeps the last count until it can"
                        );
                    }
                    Err(_) => {}
                }
                tokio::time::sleep(PRESENCE_EVERY).await;
            }
        });
    }
}

impl Default for Presence {
    fn default() -> Self {
        Presence::new()
    }
}

/// This instance's gateway, made on first use (inside the runtime: it starts its audit writers and janitor).
pub fn gateway(app: &AppState) -> &Gateway {
    app.gateway.get_or_init(|| {
        let mut config = GatewayConfig::new(app.vault.keyed_hash("gateway-session-ids", b"v1"));
        config.timeout = app.config.gateway_timeout;
        let ports = Ports {
            integrations: Arc::new(ServerIntegrations::new(Arc::downgrade(app))),
            audit: Arc::new(ServerAudit {
                store: app.store.clone(),
            }),
            metrics: app.metrics.clone(),
            sessions: Arc::new(ServerSessions {
                store: app.store.clone(),
            }),
        };
        Gateway::new(config, ports, app.egress.clone())
    })
}

/// What a caller may reach.
enum Reach {
    Agent {
        workspace_id: WorkspaceId,
        crew_id: Option<CrewId>,
    },
    Person {
        user_id: UserId,
    },
}

pub struct ServerIntegrations {
    app: Weak<App>,
    /// An agent token's workspace and crew never change: remembered by token id. Whether the token is still valid
    /// is checked on every request before the gateway is called.
    agent_scopes: Mutex<HashMap<String, (WorkspaceId, Option<CrewId>)>>,
    /// Access decisions by caller and integration, and by caller and scope: see [`ACCESS_TTL`].
    integrations: GenerationCache<IntegrationInfo, String>,
    scopes: GenerationCache<Vec<IntegrationInfo>, String>,
}

/// How long the gateway trusts what it read about an integration and the caller's access to it (settings, tool
/// policy, membership) without asking the database again. Changes made through this instance apply to the next
/// call (every committed change grows the store's write epoch, which tags each entry); changes made by another
/// instance or an admin command apply within this.
const ACCESS_TTL: Duration = Duration::from_secs(1);

fn access_key(caller: &Caller, what: &str) -> String {
    format!("{}\n{what}", caller.token_id)
}

/// The access decision cached under `key`, or the one `load` reads (remembered, tagged with the store's write epoch
/// as it was before the read, so a write made meanwhile makes it stale at once).
async fn cached<V: Clone>(
    cache: &GenerationCache<V, String>,
    key: String,
    store: &dyn Store,
    load: impl std::future::Future<Output = Result<V, AccessError>>,
) -> Result<V, AccessError> {
    let epoch = Some(store.write_epoch() as i64);
    if let Some(found) = cache.get(&key, epoch) {
        return Ok(found);
    }
    let found = load.await?;
    cache.insert(key, epoch, found.clone());
    Ok(found)
}

fn unavailable(e: impl std::fmt::Display) -> AccessError {
    AccessError::Unavailable(e.to_string())
}

impl ServerIntegrations {
    fn new(app: Weak<App>) -> ServerIntegrations {
        ServerIntegrations {
            app,
            agent_scopes: Mutex::new(HashMap::new()),
            integrations: GenerationCache::with_ttl(ACCESS_TTL),
            scopes: GenerationCache::with_ttl(ACCESS_TTL),
        }
    }

    fn app(&self) -> Result<Arc<App>, AccessError> {
        self.app
            .upgrade()
            .ok_or_else(|| unavailable("the server is shutting down"))
    }

    async fn reach(&self, store: &dyn Store, caller: &Caller) -> Result<Reach, AccessError> {
        match &caller.kind {
            CallerKind::Person { user_id } => Ok(Reach::Person {
                user_id: UserId::from(user_id.as_str()),
            }),
            CallerKind::Agent => {
                let known = {
                    let scopes = self.agent_scopes.lock().unwrap_or_else(|e| e.into_inner());
                    scopes.get(&caller.token_id).cloned()
                };
                let (workspace_id, crew_id) = match known {
                    Some(s) => s,
                    None => {
                        let token = store
                            .get_agent_token(&AgentTokenId::from(caller.token_id.as_str()))
                            .await
                            .map_err(unavailable)?
                            .ok_or(AccessError::Forbidden)?;
                        let scope = (token.workspace_id, token.crew_id);
                        let mut scopes =
                            self.agent_scopes.lock().unwrap_or_else(|e| e.into_inner());
                        if scopes.len() >= MAX_AGENT_SCOPES {
                            scopes.clear();
                        }
                        scopes.insert(caller.token_id.clone(), scope.clone());
                        scope
                    }
                };
                Ok(Reach::Agent {
                    workspace_id,
                    crew_id,
                })
            }
        }
    }

    async fn integration_uncached(
        &self,
        store: &dyn Store,
        caller: &Caller,
        integration_id: &str,
    ) -> Result<IntegrationInfo, AccessError> {
        let id = IntegrationId::parse(integration_id).ok_or(AccessError::NotFound)?;
        let integration = store
            .get_integration(&id)
            .await
            .map_err(unavailable)?
            .ok_or(AccessError::NotFound)?;
        let reach = self.reach(store, caller).await?;
        if !Self::may_use_workspace(store, &reach, &integration.workspace_id).await?
            || !Self::crew_allows(&reach, &integration)
        {
            return Err(AccessError::Forbidden);
        }
        Ok(info(&integration))
    }

    async fn in_scope_uncached(
        &self,
        store: &dyn Store,
        caller: &Caller,
        scope: &Scope,
    ) -> Result<Vec<IntegrationInfo>, AccessError> {
        let reach = self.reach(store, caller).await?;
        let (workspace_id, crew) = match scope {
            Scope::Workspace(id) => {
                let id = WorkspaceId::parse(id).ok_or(AccessError::NotFound)?;
                store
                    .get_workspace(&id)
                    .await
                    .map_err(unavailable)?
                    .ok_or(AccessError::NotFound)?;
                (id, None)
            }
            Scope::Crew(id) => {
                let id = CrewId::parse(id).ok_or(AccessError::NotFound)?;
                let crew = store
                    .get_crew(&id)
                    .await
                    .map_err(unavailable)?
                    .ok_or(AccessError::NotFound)?;
                if let Reach::Agent {
                    crew_id: Some(own), ..
                } = &reach
                {
                    if *own != crew.id {
                        return Err(AccessError::Forbidden);
                    }
                }
                (crew.workspace_id, Some(crew.id))
            }
        };
        if !Self::may_use_workspace(store, &reach, &workspace_id).await? {
            return Err(AccessError::Forbidden);
        }
        let all = store
            .list_integrations(&workspace_id, None)
            .await
            .map_err(unavailable)?;
        Ok(all
            .iter()
            .filter(|i| match &crew {
                Some(c) => i.crew_id.as_ref().is_none_or(|ic| ic == c),
                None => true,
            })
            .filter(|i| Self::crew_allows(&reach, i))
            .map(info)
            .collect())
    }

    /// Whether `reach` may use the integrations of `workspace_id` at all (a person: MEMBER+).
    async fn may_use_workspace(
        store: &dyn Store,
        reach: &Reach,
        workspace_id: &WorkspaceId,
    ) -> Result<bool, AccessError> {
        Ok(match reach {
            Reach::Agent {
                workspace_id: ws, ..
            } => ws == workspace_id,
            Reach::Person { user_id } => store
                .member_role(workspace_id, user_id)
                .await
                .map_err(unavailable)?
                .is_some_and(|r| r >= Role::Member),
        })
    }

    /// Whether a crew-scoped agent token may use an integration of its workspace.
    fn crew_allows(reach: &Reach, integration: &Integration) -> bool {
        match reach {
            Reach::Agent {
                crew_id: Some(crew),
                ..
            } => integration.crew_id.as_ref().is_none_or(|c| c == crew),
            _ => true,
        }
    }
}

/// The gateway's view of a stored integration.
fn info(i: &Integration) -> IntegrationInfo {
    let transport = match StoredMcp::parse(&i.mcp) {
        Ok(s) => Transport::parse(&s.transport),
        Err(e) => {
            tracing::error!(integration_id = %i.id, error = %e, "cannot read an integration's MCP block");
            Transport::Other("unreadable".into())
        }
    };
    IntegrationInfo {
        id: i.id.to_string(),
        workspace_id: i.workspace_id.to_string(),
        crew_id: i.crew_id.as_ref().map(ToString::to_string),
        connector_id: i.connector_id.clone(),
        name: i.name.clone(),
        transport,
        enabled: i.enabled,
        status: IntegrationStatus::parse(i.status.as_str()),
        policy: ToolPolicy {
            allow: tool_list(&i.tool_allow),
            deny: tool_list(&i.tool_deny),
        },
        tool_prefix: tool_prefix(i),
        revision: i.updated_at,
    }
}

/// Every secret value and, for a value of the form `<scheme> <credential>` (`Bearer …`, `Basic …`), the credential
/// alone too, so an upstream echoing only the token is redacted as well.
fn with_credential_parts(secrets: Vec<SecretString>) -> Vec<SecretString> {
    let mut out = Vec::with_capacity(secrets.len() * 2);
    for s in secrets {
        if let Some((scheme, rest)) = s.expose_secret().trim().split_once(' ') {
            let rest = rest.trim();
            if !scheme.is_empty()
                && scheme.bytes().all(|b| b.is_ascii_alphabetic())
                && rest.len() >= 8
            {
                out.push(SecretString::from(rest.to_owned()));
            }
        }
        out.push(s);
    }
    out
}

#[async_trait]
impl Integrations for ServerIntegrations {
    async fn integration(
        &self,
        caller: &Caller,
        integration_id: &str,
    ) -> Result<IntegrationInfo, AccessError> {
        let app = self.app()?;
        let store = app.store.as_ref();
        cached(
            &self.integrations,
            access_key(caller, integration_id),
            store,
            self.integration_uncached(store, caller, integration_id),
        )
        .await
    }

    async fn in_scope(
        &self,
        caller: &Caller,
        scope: &Scope,
    ) -> Result<Vec<IntegrationInfo>, AccessError> {
        let app = self.app()?;
        let store = app.store.as_ref();
        cached(
            &self.scopes,
            access_key(caller, &scope.key()),
            store,
            self.in_scope_uncached(store, caller, scope),
        )
        .await
    }

    async fn materialize(
        &self,
        integration: &IntegrationInfo,
    ) -> Result<UpstreamTarget, MaterializeError> {
        let app = self
            .app
            .upgrade()
            .ok_or_else(|| MaterializeError::new("the server is shutting down; try again"))?;
        let gone = || MaterializeError::new("this integration no longer exists");
        let id = IntegrationId::parse(&integration.id).ok_or_else(gone)?;
        let stored = app
            .store
            .get_integration(&id)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "gateway: cannot read an integration");
                MaterializeError::new("the integration could not be read; try again")
            })?
            .ok_or_else(gone)?;
        let (mcp, secrets) = crate::integration::materialize(&app, &stored)
            .await
            .map_err(|e| {
                MaterializeError::new(format!(
                    "the integration's credentials could not be prepared: {}",
                    e.message
                ))
            })?;
        let endpoint = mcp
            .get("endpoint")
            .and_then(Value::as_str)
            .ok_or_else(|| MaterializeError::new("this integration has no HTTP endpoint"))?;
        let headers = mcp
            .get("headers")
            .and_then(Value::as_object)
            .map(|h| {
                h.iter()
                    .filter_map(|(k, v)| {
                        v.as_str()
                            .map(|v| (k.clone(), SecretString::from(v.to_owned())))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let refresh_after = match stored.auth_mode.oauth_flow() {
            Some(_) => Some(SystemTime::now() + oauth_reuse(&app, &id).await),
            None => None,
        };
        Ok(UpstreamTarget {
            endpoint: SecretString::from(endpoint.to_owned()),
            headers,
            secrets: with_credential_parts(secrets),
            refresh_after,
        })
    }
}

/// How long the OAuth access token just materialised may be reused: [`OAUTH_REUSE`], but never past the moment the
/// token service would refresh it (a short-lived token, 60 s or less, is due after half its lifetime; reusing it
/// for 30 s could send an expired token).
async fn oauth_reuse(app: &App, id: &IntegrationId) -> Duration {
    let due_in_ms = match app.store.get_oauth_grant(id).await {
        Ok(Some(grant)) => {
            crate::oauth::refresh_at(&grant).map(|at| at.saturating_sub(app.clock.now_ms()))
        }
        // Unknown: ask again on the next call.
        _ => Some(0),
    };
    match due_in_ms {
        None => OAUTH_REUSE,
        Some(ms) => OAUTH_REUSE.min(Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
    }
}

/// The audit entry `gateway_call`, in the integration's workspace log.
pub struct ServerAudit {
    store: Arc<dyn Store>,
}

#[async_trait]
impl AuditLog for ServerAudit {
    async fn gateway_calls(&self, calls: &[GatewayCall]) -> Result<(), String> {
        let entries: Vec<NewAudit> = calls.iter().map(audit_entry).collect();
        self.store
            .append_audit_batch(&entries)
            .await
            .map_err(|e| e.to_string())
    }
}

/// The audit entry `gateway_call` of one call.
fn audit_entry(call: &GatewayCall) -> NewAudit {
    let mut detail = serde_json::Map::with_capacity(6);
    detail.insert("tool".into(), Value::from(call.tool.as_str()));
    detail.insert("outcome".into(), Value::from(call.outcome.as_str()));
    detail.insert(
        "duration_ms".into(),
        Value::from(u64::try_from(call.duration.as_millis()).unwrap_or(u64::MAX)),
    );
    let (via, scope) = match &call.via {
        Via::Passthrough => ("passthrough", None),
        Via::Aggregated(Scope::Crew(id)) => ("crew", Some(id)),
        Via::Aggregated(Scope::Workspace(id)) => ("workspace", Some(id)),
    };
    detail.insert("via".into(), Value::from(via));
    let token_id = Value::from(call.caller.token_id.as_str());
    let actor_id = match &call.caller.kind {
        CallerKind::Agent => {
            detail.insert("agent_token_id".into(), token_id);
            None
        }
        CallerKind::Person { user_id } => {
            detail.insert("credential_id".into(), token_id);
            Some(UserId::from(user_id.as_str()))
        }
    };
    if let Some(scope) = scope {
        detail.insert("scope_id".into(), Value::from(scope.as_str()));
    }
    NewAudit {
        workspace_id: Some(WorkspaceId::from(call.workspace_id.as_str())),
        actor_id,
        action: "gateway_call".into(),
        target: Some(call.integration_id.clone()),
        detail: Value::Object(detail),
    }
}

/// Aggregated sessions in the database.
pub struct ServerSessions {
    store: Arc<dyn Store>,
}

fn record(row: GatewaySessionRow) -> Option<SessionRecord> {
    Some(SessionRecord {
        scope: Scope::from_key(&row.scope)?,
        id_hash: row.id_hash,
        token_id: row.token_id,
        protocol_version: row.protocol_version,
        created_at: row.created_at,
        last_seen_at: row.last_seen_at,
    })
}

#[async_trait]
impl SessionStore for ServerSessions {
    async fn insert(&self, session: &SessionRecord) -> Result<(), String> {
        self.store
            .insert_gateway_session(&GatewaySessionRow {
                id_hash: session.id_hash.clone(),
                token_id: session.token_id.clone(),
                scope: session.scope.key(),
                protocol_version: session.protocol_version.clone(),
                created_at: session.created_at,
                last_seen_at: session.last_seen_at,
            })
            .await
            .map_err(|e| e.to_string())
    }

    async fn get(&self, id_hash: &str) -> Result<Option<SessionRecord>, String> {
        Ok(self
            .store
            .gateway_session(id_hash)
            .await
            .map_err(|e| e.to_string())?
            .and_then(record))
    }

    async fn touch(&self, id_hash: &str, now_ms: i64) -> Result<(), String> {
        self.store
            .touch_gateway_session(id_hash, now_ms)
            .await
            .map_err(|e| e.to_string())
    }

    async fn delete(&self, id_hash: &str) -> Result<bool, String> {
        self.store
            .delete_gateway_session(id_hash)
            .await
            .map_err(|e| e.to_string())
    }

    async fn delete_idle(&self, idle_before_ms: i64) -> Result<u64, String> {
        self.store
            .delete_idle_gateway_sessions(idle_before_ms)
            .await
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gateway_call_is_audited_with_who_called_through_which_endpoint_and_nothing_else() {
        let call = |caller: Caller, via: Via| GatewayCall {
            caller,
            workspace_id: "w1".into(),
            integration_id: "i1".into(),
            tool: "echo".into(),
            outcome: plugboard_gateway::Outcome::Ok,
            duration: std::time::Duration::from_millis(12),
            via,
        };
        let agent = audit_entry(&call(Caller::agent("t1"), Via::Passthrough));
        assert_eq!(agent.action, "gateway_call");
        assert_eq!(agent.target.as_deref(), Some("i1"));
        assert!(agent.actor_id.is_none());
        assert_eq!(
            agent.detail,
            serde_json::json!({"tool": "echo", "outcome": "ok", "duration_ms": 12, "via": "passthrough",
                               "agent_token_id": "t1"})
        );
        let person = audit_entry(&call(
            Caller::person("s1", "u1"),
            Via::Aggregated(Scope::Crew("c1".into())),
        ));
        assert_eq!(person.actor_id.as_ref().map(|u| u.as_str()), Some("u1"));
        assert_eq!(
            person.detail,
            serde_json::json!({"tool": "echo", "outcome": "ok", "duration_ms": 12, "via": "crew",
                               "credential_id": "s1", "scope_id": "c1"})
        );
    }

    #[test]
    fn the_credential_of_a_scheme_and_credential_value_is_a_secret_too() {
        let out = with_credential_parts(vec![
            SecretString::from("Bearer abcdefgh12345"),
            SecretString::from("plain-secret"),
        ]);
        let shown: Vec<&str> = out.iter().map(|s| s.expose_secret()).collect();
        assert_eq!(
            shown,
            ["abcdefgh12345", "Bearer abcdefgh12345", "plain-secret"]
        );
    }

    #[test]
    fn the_stores_default_prefix_is_the_gateways() {
        for (c, n) in [
            (Some("github"), "x"),
            (None, "My  Server (prod)!"),
            (None, "__--"),
            (None, "Ünïcode_name__x"),
            (None, &"long name ".repeat(20)),
        ] {
            assert_eq!(
                plugboard_store::default_tool_prefix(c, n),
                plugboard_gateway::policy::default_prefix(c, n),
                "{c:?} {n:?}"
            );
        }
    }
}
