-- People: personal token expiry and last use, browser sessions, single-use sign-in links, and the credential
-- generation every instance polls to drop cached credentials after a revocation.
ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;
ALTER TABLE api_tokens ADD COLUMN last_used_at INTEGER;
CREATE INDEX api_tokens_user ON api_tokens(user_id);

-- Only the SHA-256 of a session's secret (the cookie value) is stored.
CREATE TABLE sessions (
    id            TEXT PRIMARY KEY,
    secret_hash   BLOB NOT NULL UNIQUE,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_expiry ON sessions(expires_at);

-- Only the SHA-256 of a link's secret is stored; a link works once (`used_at`).
CREATE TABLE sign_in_links (
    secret_hash BLOB PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
);
CREATE INDEX sign_in_links_user ON sign_in_links(user_id);

-- One row; `value` grows in the same transaction as every revocation of a credential (a token revoked, a session
-- ended, a user removed). Instances poll it and drop their cached credentials when it changes.
CREATE TABLE credential_generation (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
);
INSERT INTO credential_generation (id, value) VALUES (1, 0);
