//! What the gateway needs from the server, as small traits over plain data.
//!
//! The server implements them over its store, vault, OAuth token service, audit log and metrics registry; the
//! gateway never sees SQL, a token, a key or a request of the JSON API. Every method may be called on every gateway
//! request, so implementations keep them cheap (a cache in front of the database where it matters).

use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use crate::policy::ToolPolicy;

/// Who is calling. The server authenticates the bearer token; the gateway only sees this.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Caller {
    /// The id of the token that authenticated the request (an agent token or a person's API token). Sessions
    /// belong to it: a session opened with one token is unknown to every other.
    pub token_id: String,
    pub kind: CallerKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CallerKind {
    /// An agent token (`pba_…`).
    Agent,
    /// A person's API token; the audit names the user.
    Person { user_id: String },
}

impl Caller {
    pub fn agent(token_id: impl Into<String>) -> Caller {
        Caller {
            token_id: token_id.into(),
            kind: CallerKind::Agent,
        }
    }

    pub fn person(token_id: impl Into<String>, user_id: impl Into<String>) -> Caller {
        Caller {
            token_id: token_id.into(),
            kind: CallerKind::Person {
                user_id: user_id.into(),
            },
        }
    }
}

/// The scope of an aggregated endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `/mcp/crew/{crew_id}`
    Crew(String),
    /// `/mcp/workspace/{workspace_id}`
    Workspace(String),
}

impl Scope {
    /// `crew:<id>` or `workspace:<id>`: how a session records its scope.
    pub fn key(&self) -> String {
        match self {
            Scope::Crew(id) => format!("crew:{id}"),
            Scope::Workspace(id) => format!("workspace:{id}"),
        }
    }

    /// The inverse of [`Scope::key`].
    pub fn from_key(key: &str) -> Option<Scope> {
        match key.split_once(':')? {
            ("crew", id) if !id.is_empty() => Some(Scope::Crew(id.to_owned())),
            ("workspace", id) if !id.is_empty() => Some(Scope::Workspace(id.to_owned())),
            _ => None,
        }
    }
}

/// An integration's MCP transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    StreamableHttp,
    /// The legacy HTTP+SSE transport (2024-11-05): not relayed.
    Sse,
    /// Started by the agent runtime: never reachable through the gateway.
    Stdio,
    Other(String),
}

impl Transport {
    /// From the manifest's spelling (`streamable-http`, `sse`, `stdio`).
    pub fn parse(s: &str) -> Transport {
        match s {
            "streamable-http" => Transport::StreamableHttp,
            "sse" => Transport::Sse,
            "stdio" => Transport::Stdio,
            other => Transport::Other(other.to_owned()),
        }
    }
}

/// An integration's status, as the API reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IntegrationStatus {
    Active,
    PendingOauth,
    Error,
    Other(String),
}

impl IntegrationStatus {
    /// From the API's spelling (`active`, `pending_oauth`, `error`).
    pub fn parse(s: &str) -> IntegrationStatus {
        match s {
            "active" => IntegrationStatus::Active,
            "pending_oauth" => IntegrationStatus::PendingOauth,
            "error" => IntegrationStatus::Error,
            other => IntegrationStatus::Other(other.to_owned()),
        }
    }
}

/// An integration the caller may reach, as the gateway needs it. No secret in here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntegrationInfo {
    pub id: String,
    pub workspace_id: String,
    /// `None` at workspace scope.
    pub crew_id: Option<String>,
    /// `None` for a custom server.
    pub connector_id: Option<String>,
    pub name: String,
    pub transport: Transport,
    pub enabled: bool,
    pub status: IntegrationStatus,
    pub policy: ToolPolicy,
    /// The effective prefix of its tools on the aggregated endpoints (the integration's `tool_prefix`, or its
    /// default: the connector id, or a slug of the name for a custom server). Unique within the workspace; see
    /// [`crate::policy::validate_prefix`].
    pub tool_prefix: String,
    /// Changes whenever the integration's configuration or credentials change (its `updated_at` does): upstream
    /// connections and materialised credentials from another revision are not reused.
    pub revision: i64,
}

/// Why the caller may not use an integration or a scope (before MCP starts: the contract's error bodies).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// 404 `not_found`: no such integration (or crew, or workspace) that the caller could know about.
    #[error("not found")]
    NotFound,
    /// 403 `forbidden`: it exists but this caller may not use it (another crew, not a member, a role too low).
    #[error("forbidden")]
    Forbidden,
    /// 503 `database_unavailable`: the server could not tell. The text goes to the log, never to the caller.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// The upstream as Plugboard connects to it: endpoint and headers with every secret materialised.
pub struct UpstreamTarget {
    /// The rendered endpoint (it may carry a secret, e.g. in its query).
    pub endpoint: SecretString,
    /// The rendered headers, in order (an OAuth bearer token already refreshed when it was due).
    pub headers: Vec<(String, SecretString)>,
    /// Every secret value that went into the endpoint and the headers (field values, tokens), so that anything the
    /// upstream echoes back is redacted before it reaches the agent.
    pub secrets: Vec<SecretString>,
    /// When a credential in here is due (an OAuth access token's expiry, minus the refresh margin): the gateway
    /// materialises again after it. `None` when nothing expires.
    pub refresh_after: Option<SystemTime>,
}

impl fmt::Debug for UpstreamTarget {
    /// Header names only; no value, endpoint or secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamTarget")
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("secrets", &self.secrets.len())
            .field("refresh_after", &self.refresh_after)
            .finish_non_exhaustive()
    }
}

impl UpstreamTarget {
    pub(crate) fn endpoint(&self) -> &str {
        self.endpoint.expose_secret()
    }
}

/// Why an integration's credentials could not be materialised. The message is shown to the agent (after
/// redaction), so it says what happened and what to do, never a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct MaterializeError {
    pub message: String,
}

impl MaterializeError {
    pub fn new(message: impl Into<String>) -> Self {
        MaterializeError {
            message: message.into(),
        }
    }
}

/// The integrations: which ones a caller may reach, and their upstream with credentials.
#[async_trait]
pub trait Integrations: Send + Sync + 'static {
    /// The integration `integration_id` if `caller` may reach it through the gateway: an agent token of its
    /// workspace (crew-scoped tokens: that crew's integrations and the workspace-scoped ones), or a person who is
    /// a MEMBER or more of its workspace. Returned whatever its transport, status or `enabled`: the gateway answers
    /// those itself.
    async fn integration(
        &self,
        caller: &Caller,
        integration_id: &str,
    ) -> Result<IntegrationInfo, AccessError>;

    /// Every integration `caller` may reach within `scope` (whatever their transport, status or `enabled`; the
    /// gateway keeps the enabled, active, streamable-http ones). `Forbidden` or `NotFound` when the caller may not
    /// use the scope at all (a crew token on another crew, a workspace the caller is not a member of).
    async fn in_scope(
        &self,
        caller: &Caller,
        scope: &Scope,
    ) -> Result<Vec<IntegrationInfo>, AccessError>;

    /// The integration's upstream: its endpoint and headers rendered with the vault's secrets, an OAuth access
    /// token refreshed first when it is due (with the cross-instance lease). The gateway caches the answer per
    /// integration revision until `refresh_after`.
    async fn materialize(
        &self,
        integration: &IntegrationInfo,
    ) -> Result<UpstreamTarget, MaterializeError>;
}

/// Which endpoint a call came through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    /// `/mcp/i/{integration_id}`
    Passthrough,
    /// `/mcp/crew/…` or `/mcp/workspace/…`
    Aggregated(Scope),
}

/// How a `tools/call` ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A result that is not an error.
    Ok,
    /// A result with `isError: true` (the tool ran and reported a failure).
    ToolError,
    /// A JSON-RPC error from the upstream.
    RpcError,
    /// Refused by the tool policy; never sent upstream.
    Denied,
    /// Refused by the gateway's limits; never sent upstream.
    Limited,
    /// The upstream could not be reached, failed, or ended the stream without an answer.
    UpstreamError,
    /// The upstream stayed silent longer than the gateway timeout.
    Timeout,
    /// The agent went away before the answer.
    Cancelled,
    /// The upstream closed a resumable stream before answering; the answer (if any) goes to the agent on a resumed
    /// stream the gateway does not inspect.
    Detached,
}

impl Outcome {
    /// The snake_case name used in the audit log and as a metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ToolError => "tool_error",
            Outcome::RpcError => "rpc_error",
            Outcome::Denied => "denied",
            Outcome::Limited => "limited",
            Outcome::UpstreamError => "upstream_error",
            Outcome::Timeout => "timeout",
            Outcome::Cancelled => "cancelled",
            Outcome::Detached => "detached",
        }
    }

    pub const ALL: [Outcome; 9] = [
        Outcome::Ok,
        Outcome::ToolError,
        Outcome::RpcError,
        Outcome::Denied,
        Outcome::Limited,
        Outcome::UpstreamError,
        Outcome::Timeout,
        Outcome::Cancelled,
        Outcome::Detached,
    ];
}

/// One `tools/call` through the gateway: what the audit entry `gateway_call` records. Never the arguments or the
/// result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayCall {
    pub caller: Caller,
    pub workspace_id: String,
    pub integration_id: String,
    /// The upstream's name of the tool (without the aggregated endpoints' prefix).
    pub tool: String,
    pub outcome: Outcome,
    pub duration: Duration,
    pub via: Via,
}

/// The audit log.
#[async_trait]
pub trait AuditLog: Send + Sync + 'static {
    /// Appends one audit entry `gateway_call` per call, all in one transaction (all or none). An error is logged by
    /// the gateway (the calls themselves have happened).
    async fn gateway_calls(&self, calls: &[GatewayCall]) -> Result<(), String>;
}

/// The metrics registry.
pub trait Metrics: Send + Sync + 'static {
    /// Counts one `tools/call` and observes its latency, labelled by integration and outcome.
    fn gateway_call(&self, integration_id: &str, outcome: Outcome, duration: Duration);
}

/// An aggregated endpoint's session: Plugboard's own, shared by every instance through the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    /// SHA-256 (hex) of the session id the agent holds; the id itself is never stored.
    pub id_hash: String,
    /// The token that opened it; no other token may use it.
    pub token_id: String,
    pub scope: Scope,
    /// The protocol version negotiated at `initialize`.
    pub protocol_version: String,
    /// Epoch milliseconds.
    pub created_at: i64,
    /// Epoch milliseconds; refreshed at most once a minute while the session is used.
    pub last_seen_at: i64,
}

/// Where aggregated sessions live (a table on the server's database, so any instance can continue a session).
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    async fn insert(&self, session: &SessionRecord) -> Result<(), String>;
    async fn get(&self, id_hash: &str) -> Result<Option<SessionRecord>, String>;
    /// Sets `last_seen_at`.
    async fn touch(&self, id_hash: &str, now_ms: i64) -> Result<(), String>;
    /// `true` when it existed.
    async fn delete(&self, id_hash: &str) -> Result<bool, String>;
    /// Deletes the sessions not seen since `idle_before_ms`; returns how many.
    async fn delete_idle(&self, idle_before_ms: i64) -> Result<u64, String>;
}
