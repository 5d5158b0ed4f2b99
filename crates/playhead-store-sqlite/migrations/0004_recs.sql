-- Recommendation state (issue 6): feedback, impressions, and the counters the event consumer
-- keeps in the apply transaction (co-watch pairs, sharded trending votes), keyed by play id.

-- Feedback per (profile, title): the latest `at` wins.
CREATE TABLE recs_feedback (
    profile_id TEXT    NOT NULL,
    title_id   TEXT    NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('up', 'down', 'not_interested')),
    at         INTEGER NOT NULL,
    PRIMARY KEY (profile_id, title_id)
) STRICT, WITHOUT ROWID;

-- Times a title was shown to a profile in a recommendation row.
CREATE TABLE recs_impressions (
    profile_id TEXT    NOT NULL,
    title_id   TEXT    NOT NULL,
    shown      INTEGER NOT NULL,
    last_at    INTEGER NOT NULL,
    PRIMARY KEY (profile_id, title_id)
) STRICT, WITHOUT ROWID;

-- Plays counted for co-watch and trending: the idempotence key (a redelivered play is found here
-- and counts nothing) and each profile's window (its most recent counted plays' items).
CREATE TABLE recs_counted_plays (
    play_id    TEXT    NOT NULL PRIMARY KEY,
    profile_id TEXT    NOT NULL,
    item       TEXT    NOT NULL,
    at         INTEGER NOT NULL
) STRICT;
CREATE INDEX recs_counted_plays_window ON recs_counted_plays (profile_id, at DESC, play_id DESC);

-- Co-watch: per item, times it entered a profile's window (b = '') and times it shared one with b.
-- Both directions are stored so one item's neighbours are one index range.
CREATE TABLE recs_cowatch (
    a     TEXT    NOT NULL,
    b     TEXT    NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (a, b)
) STRICT, WITHOUT ROWID;

-- Trending: forward-decayed vote weights, one row per (item, shard) so a hot title is many rows.
CREATE TABLE recs_trending (
    item   TEXT    NOT NULL,
    shard  INTEGER NOT NULL,
    weight REAL    NOT NULL,
    PRIMARY KEY (item, shard)
) STRICT, WITHOUT ROWID;
