-- RFC 9207: a state records whether the authorization server promised an `iss` parameter in its answer.
ALTER TABLE oauth_states ADD COLUMN iss_required BOOLEAN NOT NULL DEFAULT FALSE;
