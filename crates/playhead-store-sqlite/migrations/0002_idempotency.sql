-- Idempotency keys (issue #4): one row per (principal, key), either running or completed.
CREATE TABLE idempotency_keys (
    key         TEXT PRIMARY KEY,
    fingerprint BLOB NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('running', 'done')),
    started_at  INTEGER NOT NULL,
    status      INTEGER,
    headers     TEXT,
    body        BLOB,
    expires_at  INTEGER
) STRICT;

CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at) WHERE state = 'done';
