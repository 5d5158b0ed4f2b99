-- Data export requests (issue 16, decision 0088): who asked for which account's archive, and
-- when. The archive is read from the live tables when it is fetched; nothing is staged. An
-- account's rows go with its erasure (the FK cascades).
CREATE TABLE exports (
    id           uuid    NOT NULL PRIMARY KEY,
    account_id   uuid    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    requested_by TEXT    NOT NULL,
    requested_at bigint NOT NULL
);
CREATE INDEX exports_by_account ON exports (account_id);
