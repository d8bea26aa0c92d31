//! The MCP gateway's data: agent tokens (only their hash), the aggregated endpoints' sessions (only the hash of
//! their id), and each integration's tool prefix.
//!
//! The store keeps the invariants: a revoked agent token grows the credential generation in the same transaction
//! (so every instance drops its cached copy within a second), and a tool prefix is unique within its workspace
//! (a unique index; defaults are made unique by a numeric suffix when they are assigned).

use async_trait::async_trait;

use crate::{AgentTokenId, CrewId, NewAudit, Result, UserId, WorkspaceId};

/// A tool prefix is at most this long (as the gateway's `validate_prefix` checks).
pub const MAX_TOOL_PREFIX_LEN: usize = 48;

/// An agent token as stored: never the token, only its hash.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct AgentTokenRecord {
    pub id: AgentTokenId,
    pub workspace_id: WorkspaceId,
    /// `None`: the token reaches the whole workspace.
    pub crew_id: Option<CrewId>,
    pub name: String,
    /// Who created it (not a foreign key: the token outlives its creator's membership).
    pub created_by: UserId,
    pub created_at: i64,
    /// Recorded at most once a minute; `None`: never used.
    pub last_used_at: Option<i64>,
    /// `None`: never expires.
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// What an unrevoked agent token may reach (whether it has expired is the caller's check, against its clock).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct AgentTokenOwner {
    pub id: AgentTokenId,
    pub workspace_id: WorkspaceId,
    pub crew_id: Option<CrewId>,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

/// An agent token to create (only the hash of the token).
#[derive(Clone, Debug)]
pub struct NewAgentToken {
    pub workspace_id: WorkspaceId,
    pub crew_id: Option<CrewId>,
    pub name: String,
    pub token_hash: Vec<u8>,
    pub created_by: UserId,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

/// A session of an aggregated gateway endpoint.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct GatewaySessionRow {
    /// SHA-256 (hex) of the session id the agent holds.
    pub id_hash: String,
    /// The token (agent token, person's token or browser session) that opened it.
    pub token_id: String,
    /// `crew:<id>` or `workspace:<id>`.
    pub scope: String,
    pub protocol_version: String,
    pub created_at: i64,
    pub last_seen_at: i64,
}

/// The default tool prefix of an integration: its connector id, or a slug of its name for a custom server
/// (lowercased; characters other than `a-z 0-9 _` become `-`; runs of separators collapse; trimmed; at most 48
/// bytes; `mcp` when nothing is left). The same rule as the gateway's `policy::default_prefix`.
pub fn default_tool_prefix(connector_id: Option<&str>, name: &str) -> String {
    let source = connector_id.unwrap_or(name);
    let mut out = String::with_capacity(source.len().min(MAX_TOOL_PREFIX_LEN));
    for c in source.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
            c
        } else {
            '-'
        };
        let is_sep = |x: char| x == '-' || x == '_';
        let last = out.chars().last();
        if is_sep(c) && (last.is_none() || last.is_some_and(is_sep)) {
            continue;
        }
        out.push(c);
        if out.len() >= MAX_TOOL_PREFIX_LEN {
            break;
        }
    }
    while out.ends_with('-') || out.ends_with('_') {
        out.pop();
    }
    if out.is_empty() {
        out.push_str("mcp");
    }
    out
}

/// The first of `base`, `base-2`, `base-3` … (cut so that it stays within 48 bytes) that is not in `taken`.
///
/// In time linear in `taken`: it runs inside the install's write transaction, and a workspace may hold thousands of
/// integrations made from one connector under one name (`seed`, `seed-2` … `seed-10000`), where looking each
/// candidate up in the list took a quadratic number of comparisons (tens of milliseconds per install at 10,000,
/// with SQLite's write lock held).
pub fn unique_tool_prefix<'a>(base: &str, taken: impl IntoIterator<Item = &'a str>) -> String {
    let taken: std::collections::HashSet<&str> = taken.into_iter().collect();
    if !taken.contains(base) {
        return base.to_owned();
    }
    let mut n = 2u64;
    loop {
        let suffix = format!("-{n}");
        let candidate = format!("{}{suffix}", stem_for(base, suffix.len()));
        if !taken.contains(candidate.as_str()) {
            return candidate;
        }
        n += 1;
    }
}

/// `base` cut to leave room for a suffix of `suffix_len` bytes, without trailing `-` or `_`.
fn stem_for(base: &str, suffix_len: usize) -> &str {
    let end = base
        .char_indices()
        .nth(MAX_TOOL_PREFIX_LEN.saturating_sub(suffix_len))
        .map_or(base.len(), |(i, _)| i);
    base.get(..end).unwrap_or(base).trim_end_matches(['-', '_'])
}

/// A start that every candidate of [`unique_tool_prefix`] for `base` shares: `base` itself and each `base-N`
/// begin with it (the stem of the longest suffix, `-` and 20 digits, is a start of every other stem).
pub fn tool_prefix_stem(base: &str) -> &str {
    stem_for(base, 1 + u64::MAX.to_string().len())
}

/// Agent tokens, aggregated sessions and tool prefixes.
#[async_trait]
pub trait GatewayStore: Send + Sync {
    // -- agent tokens --

    /// Creates an agent token with its audit entry. `NotFound("workspace")`, or `NotFound("crew")` when the crew
    /// is not one of the workspace's.
    async fn create_agent_token(
        &self,
        token: &NewAgentToken,
        audit: NewAudit,
    ) -> Result<AgentTokenRecord>;
    /// A workspace's unrevoked agent tokens (expired ones included), oldest first.
    async fn list_agent_tokens(&self, workspace_id: &WorkspaceId) -> Result<Vec<AgentTokenRecord>>;
    /// One agent token (revoked ones included).
    async fn get_agent_token(&self, id: &AgentTokenId) -> Result<Option<AgentTokenRecord>>;
    /// Revokes the token unless it is revoked already, growing the credential generation, with the audit entry;
    /// false when there was nothing to revoke.
    async fn revoke_agent_token(&self, id: &AgentTokenId, audit: NewAudit) -> Result<bool>;
    /// The unrevoked agent token with this hash.
    async fn agent_token_owner(&self, token_hash: &[u8]) -> Result<Option<AgentTokenOwner>>;
    /// Records a use at `now` unless one was recorded within `min_interval_ms`; true when it wrote.
    async fn touch_agent_token(
        &self,
        id: &AgentTokenId,
        now: i64,
        min_interval_ms: i64,
    ) -> Result<bool>;

    // -- aggregated sessions --

    async fn insert_gateway_session(&self, session: &GatewaySessionRow) -> Result<()>;
    async fn gateway_session(&self, id_hash: &str) -> Result<Option<GatewaySessionRow>>;
    async fn touch_gateway_session(&self, id_hash: &str, now: i64) -> Result<()>;
    /// True when it existed.
    async fn delete_gateway_session(&self, id_hash: &str) -> Result<bool>;
    /// Deletes the sessions last seen before `idle_before`; returns how many.
    async fn delete_idle_gateway_sessions(&self, idle_before: i64) -> Result<u64>;

    // -- tool prefixes --

    /// Gives every integration without a tool prefix its default, made unique within its workspace; returns how
    /// many it gave one. Run after migrations (rows from before tool prefixes existed).
    async fn assign_default_tool_prefixes(&self) -> Result<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_prefixes_are_the_connector_id_or_a_slug_of_the_name() {
        assert_eq!(default_tool_prefix(Some("github"), "My GitHub"), "github");
        assert_eq!(
            default_tool_prefix(None, "My  Server (prod)!"),
            "my-server-prod"
        );
        assert_eq!(default_tool_prefix(None, "__--"), "mcp");
        assert_eq!(default_tool_prefix(None, "Ünïcode"), "n-code");
        assert!(default_tool_prefix(None, &"x".repeat(100)).len() <= MAX_TOOL_PREFIX_LEN);
    }

    #[test]
    fn a_taken_prefix_gets_the_first_free_numeric_suffix() {
        let taken = ["github", "github-2"];
        assert_eq!(unique_tool_prefix("github", taken), "github-3");
        assert_eq!(unique_tool_prefix("linear", taken), "linear");
        let long = "a".repeat(48);
        let p = unique_tool_prefix(&long, [long.as_str()]);
        assert_eq!(p.len(), 48);
        assert!(p.ends_with("-2"));
    }

    #[test]
    fn a_prefix_taken_thousands_of_times_gets_the_next_number() {
        let mut taken = vec!["seed".to_owned()];
        taken.extend((2..=20_000).map(|n| format!("seed-{n}")));
        taken.push("seed-20002".to_owned());
        assert_eq!(
            unique_tool_prefix("seed", taken.iter().map(String::as_str)),
            "seed-20001"
        );
    }

    #[test]
    fn every_candidate_prefix_starts_with_the_stem_that_selects_the_taken_ones() {
        for base in [
            "github".to_owned(),
            "a".repeat(48),
            format!("{}-{}", "a".repeat(26), "b".repeat(21)),
            format!("{}__-x{}", "c".repeat(24), "d".repeat(20)),
        ] {
            let stem = tool_prefix_stem(&base);
            let mut taken = vec![base.clone()];
            for _ in 0..120 {
                let next = unique_tool_prefix(&base, taken.iter().map(String::as_str));
                assert!(next.len() <= MAX_TOOL_PREFIX_LEN, "{next}");
                assert!(next.starts_with(stem), "{next} does not start with {stem}");
                taken.push(next);
            }
            assert!(base.starts_with(stem));
        }
    }
}
