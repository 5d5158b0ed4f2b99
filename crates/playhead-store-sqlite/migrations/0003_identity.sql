-- Identity (issue #3): the authorization server's state. Secrets are stored as SHA-256 digests
-- (codes, refresh tokens, client secrets, cookies) or argon2id PHC strings (passwords).
CREATE TABLE credentials (
    account_id  TEXT    NOT NULL PRIMARY KEY REFERENCES accounts (id),
    phc         TEXT    NOT NULL
) STRICT;

CREATE TABLE oauth_clients (
    client_id     TEXT    NOT NULL PRIMARY KEY,
    name          TEXT    NOT NULL,
    client_type   TEXT    NOT NULL CHECK (client_type IN ('public', 'confidential')),
    secret_hash   BLOB,
    redirect_uris TEXT    NOT NULL, -- JSON array
    grants        TEXT    NOT NULL, -- JSON array of grant_type names
    scopes        TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
) STRICT;

-- One sign-in on one device = one refresh family = the `sid` of its access tokens.
CREATE TABLE sessions (
    id          TEXT    NOT NULL PRIMARY KEY,
    account_id  TEXT    NOT NULL,
    client_id   TEXT    NOT NULL,
    scopes      TEXT    NOT NULL,
    profile_id  TEXT,
    auth_time   INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
) STRICT;
CREATE INDEX sessions_revoked ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE web_sessions (
    hash        BLOB    NOT NULL PRIMARY KEY,
    account_id  TEXT    NOT NULL,
    auth_time   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
) STRICT;

CREATE TABLE auth_codes (
    hash           BLOB    NOT NULL PRIMARY KEY,
    client_id      TEXT    NOT NULL,
    account_id     TEXT    NOT NULL,
    redirect_uri   TEXT    NOT NULL,
    code_challenge TEXT    NOT NULL,
    scopes         TEXT    NOT NULL,
    profile_id     TEXT,
    auth_time      INTEGER NOT NULL,
    session_id     TEXT    NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER
) STRICT;

CREATE TABLE device_codes (
    hash          BLOB    NOT NULL PRIMARY KEY,
    user_code     TEXT    NOT NULL,
    client_id     TEXT    NOT NULL,
    scopes        TEXT    NOT NULL,
    expires_at    INTEGER NOT NULL,
    interval_secs INTEGER NOT NULL,
    last_poll_at  INTEGER,
    status        TEXT    NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'consumed')),
    account_id    TEXT,
    profile_id    TEXT,
    auth_time     INTEGER,
    version       INTEGER NOT NULL
) STRICT;
-- A user code is unique among pending authorizations only (8 letters of 20: reuse is fine later).
CREATE UNIQUE INDEX device_codes_pending_user_code ON device_codes (user_code) WHERE status = 'pending';

CREATE TABLE refresh_tokens (
    hash        BLOB    NOT NULL PRIMARY KEY,
    session_id  TEXT    NOT NULL,
    client_id   TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
) STRICT;
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE signing_keys (
    kid         TEXT    NOT NULL PRIMARY KEY,
    pem         TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    detail      TEXT    NOT NULL,
    client_addr TEXT
) STRICT;
CREATE INDEX audit_log_at ON audit_log (at);
