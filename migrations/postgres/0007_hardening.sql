-- Named leases: at most one holder at a time across processes and instances, until `expires_at` (milliseconds
-- since the epoch). A holder renews its lease while it works, so the lease of a holder that crashed ends by itself.
-- `detail` says what the holder is doing (for `vault_rotation`, which serialises `plugboard vault rotate`: the id
-- of the data key it rotates to).
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    acquired_at BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    detail      TEXT NOT NULL DEFAULT ''
);
