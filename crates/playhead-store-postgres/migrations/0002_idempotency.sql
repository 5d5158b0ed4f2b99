-- Idempotency keys (issue #4): one row per (principal, key), either running or completed.
CREATE TABLE idempotency_keys (
    key         text COLLATE "C" PRIMARY KEY,
    fingerprint bytea   NOT NULL,
    state       text    NOT NULL CHECK (state IN ('running', 'done')),
    started_at  bigint  NOT NULL,
    status      integer,
    headers     jsonb,
    body        bytea,
    expires_at  bigint
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at) WHERE state = 'done';
