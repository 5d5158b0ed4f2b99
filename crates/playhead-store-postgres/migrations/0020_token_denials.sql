-- Issue 16: access tokens without a session (client credentials) and every token of a deleted
-- client are revoked through this deny list; each replica polls the entries in force into
-- memory (decision 0080). An entry can go once `until` has passed: every token it could match
-- has expired by then.
CREATE TABLE token_denials (
    kind        text   NOT NULL CHECK (kind IN ('jti', 'client')),
    id          text   COLLATE "C" NOT NULL, -- the jti, or the client_id
    client_id   text   NOT NULL,
    revoked_at  bigint NOT NULL,
    until       bigint NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX token_denials_until ON token_denials (until);

-- The pruning job (decision 0081) deletes by expiry in small batches: each table it prunes is
-- read by an index on the column it compares.
CREATE INDEX auth_codes_expiry ON auth_codes (expires_at);
CREATE INDEX device_codes_expiry ON device_codes (expires_at);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);
CREATE INDEX sessions_created ON sessions (created_at);
CREATE INDEX sessions_by_client ON sessions (client_id);
CREATE INDEX web_sessions_expiry ON web_sessions (expires_at);
CREATE INDEX idempotency_keys_running ON idempotency_keys (started_at) WHERE state = 'running';
