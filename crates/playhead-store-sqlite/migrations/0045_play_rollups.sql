-- The retention roll-up (issue 16, decision 0083): plays older than `retention.rollup_after_days`
-- become one row per (profile, UTC month of their start, title); their viewings and raw events
-- are deleted in the same transaction that adds them here.
CREATE TABLE play_rollups (
    profile_id      TEXT    NOT NULL,
    month           INTEGER NOT NULL, -- first instant of the UTC month, ms
    title_id        TEXT    NOT NULL,
    plays           INTEGER NOT NULL CHECK (plays > 0),
    watched_ms      INTEGER NOT NULL CHECK (watched_ms >= 0),
    completed_plays INTEGER NOT NULL CHECK (completed_plays BETWEEN 0 AND plays),
    PRIMARY KEY (profile_id, month, title_id)
) STRICT, WITHOUT ROWID;
-- Watched state and play counts per title (library) read a profile's roll-ups by title.
CREATE INDEX play_rollups_by_title ON play_rollups (profile_id, title_id);
-- The roll-up job takes the oldest-ending viewings first, a small batch at a time.
CREATE INDEX viewings_by_end ON viewings (ended_at) WHERE manual = 0;
