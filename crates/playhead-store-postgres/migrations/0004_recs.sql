-- Recommendation state (issue 6): feedback, impressions, and the counters the event consumer
-- keeps in the apply transaction (co-watch pairs, sharded trending votes), keyed by play id.

-- Feedback per (profile, title): the latest `at` wins.
CREATE TABLE recs_feedback (
    profile_id uuid   NOT NULL,
    title_id   text COLLATE "C" NOT NULL,
    kind       text   NOT NULL CHECK (kind IN ('up', 'down', 'not_interested')),
    at         bigint NOT NULL,
    PRIMARY KEY (profile_id, title_id)
);

-- Times a title was shown to a profile in a recommendation row.
CREATE TABLE recs_impressions (
    profile_id uuid   NOT NULL,
    title_id   text COLLATE "C" NOT NULL,
    shown      bigint NOT NULL,
    last_at    bigint NOT NULL,
    PRIMARY KEY (profile_id, title_id)
);

-- Plays counted for co-watch and trending: the idempotence key (a redelivered play is found here
-- and counts nothing) and each profile's window (its most recent counted plays' items).
CREATE TABLE recs_counted_plays (
    play_id    uuid   NOT NULL PRIMARY KEY,
    profile_id uuid   NOT NULL,
    item       text COLLATE "C" NOT NULL,
    at         bigint NOT NULL
);
CREATE INDEX recs_counted_plays_window ON recs_counted_plays (profile_id, at DESC, play_id DESC);

-- Co-watch: per item, times it entered a profile's window (b = '') and times it shared one with b.
-- Both directions are stored so one item's neighbours are one index range.
CREATE TABLE recs_cowatch (
    a     text COLLATE "C" NOT NULL,
    b     text COLLATE "C" NOT NULL,
    count bigint NOT NULL,
    PRIMARY KEY (a, b)
);

-- Trending: forward-decayed vote weights, one row per (item, shard) so a hot title is many rows
-- and concurrent appliers voting for it rarely wait on one row lock.
CREATE TABLE recs_trending (
    item   text COLLATE "C" NOT NULL,
    shard  integer NOT NULL,
    weight double precision NOT NULL,
    PRIMARY KEY (item, shard)
);
