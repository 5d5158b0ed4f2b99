-- Identity (issue #3): the authorization server's state. Secrets are stored as SHA-256 digests
-- (codes, refresh tokens, client secrets, cookies) or argon2id PHC strings (passwords).
CREATE TABLE credentials (
    account_id  uuid   NOT NULL PRIMARY KEY REFERENCES accounts (id),
    phc         text   NOT NULL
);

CREATE TABLE oauth_clients (
    client_id     text   COLLATE "C" NOT NULL PRIMARY KEY,
    name          text   NOT NULL,
    client_type   text   NOT NULL CHECK (client_type IN ('public', 'confidential')),
    secret_hash   bytea,
    redirect_uris jsonb  NOT NULL,
    grants        jsonb  NOT NULL,
    scopes        text   NOT NULL,
    created_at    bigint NOT NULL
);

-- One sign-in on one device = one refresh family = the `sid` of its access tokens.
CREATE TABLE sessions (
    id          text   COLLATE "C" NOT NULL PRIMARY KEY,
    account_id  uuid   NOT NULL,
    client_id   text   NOT NULL,
    scopes      text   NOT NULL,
    profile_id  uuid,
    auth_time   bigint NOT NULL,
    created_at  bigint NOT NULL,
    revoked_at  bigint
);
CREATE INDEX sessions_revoked ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE web_sessions (
    hash        bytea  NOT NULL PRIMARY KEY,
    account_id  uuid   NOT NULL,
    auth_time   bigint NOT NULL,
    expires_at  bigint NOT NULL,
    revoked_at  bigint
);

CREATE TABLE auth_codes (
    hash           bytea  NOT NULL PRIMARY KEY,
    client_id      text   NOT NULL,
    account_id     uuid   NOT NULL,
    redirect_uri   text   NOT NULL,
    code_challenge text   NOT NULL,
    scopes         text   NOT NULL,
    profile_id     uuid,
    auth_time      bigint NOT NULL,
    session_id     text   NOT NULL,
    expires_at     bigint NOT NULL,
    used_at        bigint
);

CREATE TABLE device_codes (
    hash          bytea  NOT NULL PRIMARY KEY,
    user_code     text   NOT NULL,
    client_id     text   NOT NULL,
    scopes        text   NOT NULL,
    expires_at    bigint NOT NULL,
    interval_secs bigint NOT NULL,
    last_poll_at  bigint,
    status        text   NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'consumed')),
    account_id    uuid,
    profile_id    uuid,
    auth_time     bigint,
    version       bigint NOT NULL
);
-- A user code is unique among pending authorizations only (8 letters of 20: reuse is fine later).
CREATE UNIQUE INDEX device_codes_pending_user_code ON device_codes (user_code) WHERE status = 'pending';

CREATE TABLE refresh_tokens (
    hash        bytea  NOT NULL PRIMARY KEY,
    session_id  text   NOT NULL,
    client_id   text   NOT NULL,
    created_at  bigint NOT NULL,
    expires_at  bigint NOT NULL,
    used_at     bigint
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE signing_keys (
    kid         text   COLLATE "C" NOT NULL PRIMARY KEY,
    pem         text   NOT NULL,
    created_at  bigint NOT NULL
);

CREATE TABLE audit_log (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          bigint NOT NULL,
    actor       text   NOT NULL,
    action      text   NOT NULL,
    detail      text   NOT NULL,
    client_addr text
);
CREATE INDEX audit_log_at ON audit_log (at);
