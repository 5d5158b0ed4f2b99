-- Watched marks and My list (issue 17, decision 0090).
--
-- A mark is a manual play: a completed viewing with no events, flagged so history shows it as
-- such and an unmark removes only it. At most one manual play per (profile, title).
ALTER TABLE viewings ADD COLUMN manual INTEGER NOT NULL DEFAULT 0 CHECK (manual IN (0, 1));
CREATE UNIQUE INDEX viewings_one_mark ON viewings (profile_id, title_id) WHERE manual = 1;

-- My list: newest first by (added_at, title_id).
CREATE TABLE list_items (
    profile_id TEXT    NOT NULL,
    title_id   TEXT    NOT NULL,
    added_at   INTEGER NOT NULL,
    PRIMARY KEY (profile_id, title_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX list_items_newest ON list_items (profile_id, added_at DESC, title_id DESC);

-- Per-profile list options (kept apart from profiles so the option needs no profile version bump).
CREATE TABLE list_settings (
    profile_id           TEXT    NOT NULL PRIMARY KEY,
    leave_when_finished  INTEGER NOT NULL CHECK (leave_when_finished IN (0, 1))
) STRICT, WITHOUT ROWID;
