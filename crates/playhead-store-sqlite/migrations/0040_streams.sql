-- Concurrent streams (issue 17, decision 0092): the live streams of each account, and an
-- operator's per-account limit. A row lives one timeout past its last event (minutes); the
-- account's next batch drops expired rows, and erasing the profile or account drops its rows.
CREATE TABLE streams (
    account_id     TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    stream_id      TEXT    NOT NULL,
    profile_id     TEXT    NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
    stream_key     TEXT    NOT NULL,
    title_id       TEXT    NOT NULL,
    device_id      TEXT,
    signin_session TEXT,
    started_at     INTEGER NOT NULL,
    last_seen      INTEGER NOT NULL,
    stopped_at     INTEGER,
    PRIMARY KEY (account_id, stream_id),
    UNIQUE (account_id, profile_id, stream_key)
) STRICT;
CREATE INDEX streams_by_profile ON streams (profile_id);

CREATE TABLE account_stream_limits (
    account_id  TEXT    NOT NULL PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    max_streams INTEGER NOT NULL CHECK (max_streams >= 0)
) STRICT;
