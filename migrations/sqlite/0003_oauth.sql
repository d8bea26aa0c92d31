-- OAuth: per-integration grant metadata (where to refresh, when the access token expires, the refresh lock) and
-- the clients registered dynamically (RFC 7591) per authorization server and redirect URI.
-- Token values themselves live in `secrets` (oauth.access_token, oauth.refresh_token), sealed by the vault.
CREATE TABLE oauth_grants (
    integration_id TEXT PRIMARY KEY REFERENCES integrations(id) ON DELETE CASCADE,
    flow           TEXT NOT NULL CHECK (flow IN ('byo_oauth','mcp_oauth')),
    issuer         TEXT,
    token_endpoint TEXT,
    resource       TEXT,
    client_id      TEXT,
    token_auth     TEXT,
    expires_at     INTEGER,
    version        INTEGER NOT NULL DEFAULT 0,
    lock_owner     TEXT,
    lock_until     INTEGER,
    updated_at     INTEGER NOT NULL
);

CREATE TABLE oauth_clients (
    issuer                  TEXT NOT NULL,
    redirect_uri            TEXT NOT NULL,
    client_id               TEXT NOT NULL,
    token_auth              TEXT NOT NULL,
    -- A confidential client's secret is a vault entry of this integration (`oauth.client_secret`); the client is
    -- forgotten with it.
    secret_integration_id   TEXT REFERENCES integrations(id) ON DELETE CASCADE,
    client_secret_expires_at INTEGER,
    created_at              INTEGER NOT NULL,
    PRIMARY KEY (issuer, redirect_uri)
);
