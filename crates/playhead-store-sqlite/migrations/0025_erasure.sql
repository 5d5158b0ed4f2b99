-- Erasure as a saga (issue 16, decision 0085). One row per saga: the audit minimum (who asked,
-- when, which account or profile ids) and each step's state, as JSON text read and written whole.
-- `target` is `account:<id>` or `profile:<id>`: at most one unfinished saga per target, so asking
-- twice while one runs returns the running one.
CREATE TABLE erasures (
    id              TEXT    NOT NULL PRIMARY KEY,
    scope           TEXT    NOT NULL CHECK (scope IN ('account', 'profile')),
    account_id      TEXT    NOT NULL,
    profile_id      TEXT,
    target          TEXT    NOT NULL,
    profiles        TEXT    NOT NULL, -- JSON array of profile ids
    requested_by    TEXT    NOT NULL,
    requested_at    INTEGER NOT NULL,
    steps           TEXT    NOT NULL, -- JSON array of step statuses
    done            INTEGER NOT NULL CHECK (done IN (0, 1)),
    failing         INTEGER NOT NULL CHECK (failing IN (0, 1)),
    next_attempt_at INTEGER NOT NULL,
    lease_owner     TEXT,
    lease_until     INTEGER,
    completed_at    INTEGER
) STRICT;
CREATE UNIQUE INDEX erasures_unfinished_target ON erasures (target) WHERE done = 0;
CREATE INDEX erasures_due ON erasures (next_attempt_at) WHERE done = 0;

-- The erase watermark: a profile id here never holds data again. Ingest answers 410 for it (to
-- its own account), and the erase steps delete what a late apply could still have written.
CREATE TABLE erased_profiles (
    profile_id TEXT    NOT NULL PRIMARY KEY,
    account_id TEXT    NOT NULL,
    erasure_id TEXT    NOT NULL,
    erased_at  INTEGER NOT NULL
) STRICT;
