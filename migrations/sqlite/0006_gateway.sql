-- The MCP gateway: agent tokens, the aggregated endpoints' sessions, and each integration's tool policy and prefix.

-- Agent tokens (`pba_…`): only the SHA-256 of the token is stored. A token belongs to a workspace and optionally to
-- one crew of it; revoking one grows the credential generation (like a person's token).
CREATE TABLE agent_tokens (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    crew_id       TEXT REFERENCES crews(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    token_hash    BLOB NOT NULL UNIQUE,
    created_by    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    expires_at    INTEGER,
    revoked_at    INTEGER
);
CREATE INDEX agent_tokens_workspace ON agent_tokens(workspace_id, created_at);

-- Sessions of the aggregated endpoints (`/mcp/crew/…`, `/mcp/workspace/…`): Plugboard's own, so any instance can
-- continue one. Only the SHA-256 (hex) of the session id is stored.
CREATE TABLE gateway_sessions (
    id_hash          TEXT PRIMARY KEY,
    token_id         TEXT NOT NULL,
    scope            TEXT NOT NULL,
    protocol_version TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    last_seen_at     INTEGER NOT NULL
);
CREATE INDEX gateway_sessions_seen ON gateway_sessions(last_seen_at);

-- Tool policy: JSON arrays of glob patterns (empty allow: every tool). The prefix of the integration's tools on the
-- aggregated endpoints, unique within the workspace; rows without one get their default when the server starts.
ALTER TABLE integrations ADD COLUMN tool_allow TEXT NOT NULL DEFAULT '[]';
ALTER TABLE integrations ADD COLUMN tool_deny TEXT NOT NULL DEFAULT '[]';
ALTER TABLE integrations ADD COLUMN tool_prefix TEXT;
CREATE UNIQUE INDEX integrations_tool_prefix ON integrations(workspace_id, tool_prefix);
