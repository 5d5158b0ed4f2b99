-- Data export requests (issue 16, decision 0088): who asked for which account's archive, and
-- when. The archive is read from the live tables when it is fetched; nothing is staged. An
-- account's rows go with its erasure (the FK cascades).
CREATE TABLE exports (
    id           TEXT    NOT NULL PRIMARY KEY,
    account_id   TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    requested_by TEXT    NOT NULL,
    requested_at INTEGER NOT NULL
) STRICT;
CREATE INDEX exports_by_account ON exports (account_id);
