-- Custom servers made before a header or env value sent without the `secret` mark was sealed when its name or shape
-- says it is a credential: the server checks each of them once after this migration (sealing such values in the
-- vault), then deletes its row. Servers made since then are sealed as they are made, so a value kept plain there
-- was kept plain by choice (`"secret": false`) and is never checked again.
CREATE TABLE credential_seal_pending (
    integration_id TEXT PRIMARY KEY REFERENCES integrations(id) ON DELETE CASCADE
);
INSERT INTO credential_seal_pending (integration_id) SELECT id FROM integrations WHERE connector_id IS NULL;
