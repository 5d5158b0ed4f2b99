-- Concurrent streams (issue 17, decision 0092): the live streams of each account, and an
-- operator's per-account limit. A row lives one timeout past its last event (minutes); the
-- account's next batch drops expired rows, and erasing the profile or account drops its rows.
-- Writers of one account's rows take the account's advisory lock first (see streams.rs).
CREATE TABLE streams (
    account_id     uuid   NOT NULL,
    stream_id      uuid   NOT NULL,
    profile_id     uuid   NOT NULL,
    stream_key     text   NOT NULL,
    title_id       text COLLATE "C" NOT NULL,
    device_id      text,
    signin_session text,
    started_at     bigint NOT NULL,
    last_seen      bigint NOT NULL,
    stopped_at     bigint,
    CONSTRAINT streams_pkey PRIMARY KEY (account_id, stream_id),
    CONSTRAINT streams_key UNIQUE (account_id, profile_id, stream_key),
    CONSTRAINT streams_account_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE,
    CONSTRAINT streams_profile_fkey FOREIGN KEY (profile_id) REFERENCES profiles (id) ON DELETE CASCADE
);
CREATE INDEX streams_by_profile ON streams (profile_id);

CREATE TABLE account_stream_limits (
    account_id  uuid    NOT NULL PRIMARY KEY,
    max_streams integer NOT NULL CHECK (max_streams >= 0),
    CONSTRAINT account_stream_limits_account_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE
);
