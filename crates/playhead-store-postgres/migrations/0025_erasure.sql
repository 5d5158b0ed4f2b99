-- Erasure as a saga (issue 16, decision 0085). One row per saga: the audit minimum (who asked,
-- when, which account or profile ids) and each step's state, as JSON text read and written whole.
-- `target` is `account:<id>` or `profile:<id>`: at most one unfinished saga per target, so asking
-- twice while one runs returns the running one.
CREATE TABLE erasures (
    id              uuid    NOT NULL PRIMARY KEY,
    scope           text    NOT NULL CHECK (scope IN ('account', 'profile')),
    account_id      uuid    NOT NULL,
    profile_id      uuid,
    target          text    COLLATE "C" NOT NULL,
    profiles        text    NOT NULL, -- JSON array of profile ids
    requested_by    text    NOT NULL,
    requested_at    bigint  NOT NULL,
    steps           text    NOT NULL, -- JSON array of step statuses
    done            boolean NOT NULL,
    failing         boolean NOT NULL,
    next_attempt_at bigint  NOT NULL,
    lease_owner     text,
    lease_until     bigint,
    completed_at    bigint
);
CREATE UNIQUE INDEX erasures_unfinished_target ON erasures (target) WHERE NOT done;
CREATE INDEX erasures_due ON erasures (next_attempt_at) WHERE NOT done;

-- The erase watermark: a profile id here never holds data again. Ingest answers 410 for it (to
-- its own account), and the erase steps delete what a late apply could still have written.
CREATE TABLE erased_profiles (
    profile_id uuid   NOT NULL PRIMARY KEY,
    account_id uuid   NOT NULL,
    erasure_id uuid   NOT NULL,
    erased_at  bigint NOT NULL
);
