-- Vault (wrapped data keys, sealed secrets), integrations, idempotency records and the audit log.
CREATE TABLE data_keys (
    id          TEXT PRIMARY KEY,
    wrapped     BYTEA NOT NULL,
    active      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX data_keys_one_active ON data_keys(active) WHERE active;

CREATE TABLE integrations (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    crew_id       TEXT REFERENCES crews(id) ON DELETE CASCADE,
    connector_id  TEXT,
    name          TEXT NOT NULL,
    auth_mode     TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('active','pending_oauth','error')),
    status_reason TEXT,
    enabled       BOOLEAN NOT NULL DEFAULT TRUE,
    mcp           TEXT NOT NULL,
    created_by    TEXT NOT NULL REFERENCES users(id),
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX integrations_workspace ON integrations(workspace_id, created_at);

CREATE TABLE secrets (
    integration_id TEXT NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    key_id         TEXT NOT NULL REFERENCES data_keys(id),
    ciphertext     BYTEA NOT NULL,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (integration_id, name)
);
CREATE INDEX secrets_key ON secrets(key_id);

CREATE TABLE oauth_states (
    state_hash     BYTEA PRIMARY KEY,
    integration_id TEXT NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    flow           TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    issuer         TEXT,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT
);
CREATE INDEX oauth_states_integration ON oauth_states(integration_id);

CREATE TABLE idempotency_keys (
    workspace_id  TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    idem_key      TEXT NOT NULL,
    fingerprint   BYTEA NOT NULL,
    status        BIGINT NOT NULL,
    response      TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, user_id, idem_key)
);

CREATE TABLE audit_log (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT,
    actor_id      TEXT,
    action        TEXT NOT NULL,
    target        TEXT,
    detail        TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX audit_log_workspace ON audit_log(workspace_id, created_at);
