-- Watched marks and My list (issue 17, decision 0090).
--
-- A mark is a manual play: a completed viewing with no events, flagged so history shows it as
-- such and an unmark removes only it. At most one manual play per (profile, title).
ALTER TABLE viewings ADD COLUMN manual boolean NOT NULL DEFAULT false;
CREATE UNIQUE INDEX viewings_one_mark ON viewings (profile_id, title_id) WHERE manual;

-- My list: newest first by (added_at, title_id).
CREATE TABLE list_items (
    profile_id uuid   NOT NULL,
    title_id   text COLLATE "C" NOT NULL,
    added_at   bigint NOT NULL,
    CONSTRAINT list_items_pkey PRIMARY KEY (profile_id, title_id)
);
CREATE INDEX list_items_newest ON list_items (profile_id, added_at DESC, title_id DESC);

-- Per-profile list options (kept apart from profiles so the option needs no profile version bump).
CREATE TABLE list_settings (
    profile_id          uuid    NOT NULL PRIMARY KEY,
    leave_when_finished boolean NOT NULL
);
