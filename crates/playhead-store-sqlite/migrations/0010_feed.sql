-- Followers and the activity feed (issue 14, decisions 0060-0062).

-- The follow graph: one row per (follower, followee); 'requested' until a private profile approves.
CREATE TABLE follows (
    follower TEXT    NOT NULL,
    followee TEXT    NOT NULL,
    state    TEXT    NOT NULL CHECK (state IN ('requested', 'following')),
    since    INTEGER NOT NULL,
    PRIMARY KEY (follower, followee)
) STRICT, WITHOUT ROWID;
-- Followers of a profile (fan-out walks them in id order), and its pending requests.
CREATE INDEX follows_by_followee ON follows (followee, state, follower);

-- Blocks: hide each profile from the other and keep the blocked one from following.
CREATE TABLE blocks (
    blocker TEXT    NOT NULL,
    blocked TEXT    NOT NULL,
    at      INTEGER NOT NULL,
    PRIMARY KEY (blocker, blocked)
) STRICT, WITHOUT ROWID;
CREATE INDEX blocks_by_blocked ON blocks (blocked, blocker);

-- Per-profile feed state: whether it publishes, and its accepted-follower count (the hybrid's
-- switch reads it on every fan-out step; counting the graph each time would cost O(followers)).
CREATE TABLE feed_profiles (
    profile_id     TEXT    NOT NULL PRIMARY KEY,
    share_activity INTEGER NOT NULL DEFAULT 1 CHECK (share_activity IN (0, 1)),
    followers      INTEGER NOT NULL DEFAULT 0
) STRICT, WITHOUT ROWID;

-- Published activities. (actor, kind, subject_key) is the idempotence key. `pushed` = 1 once
-- every follower's inbox got it; until then (and forever for authors above the threshold) it is
-- pulled at read time.
CREATE TABLE activities (
    id           TEXT    NOT NULL PRIMARY KEY,
    actor        TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    title_id     TEXT    NOT NULL,
    source_title TEXT    NOT NULL,
    play_id      TEXT,
    subject_key  TEXT    NOT NULL,
    maturity     INTEGER NOT NULL,
    at           INTEGER NOT NULL,
    pushed       INTEGER NOT NULL DEFAULT 0 CHECK (pushed IN (0, 1)),
    UNIQUE (actor, kind, subject_key)
) STRICT;
CREATE INDEX activities_by_actor ON activities (actor, pushed, at DESC, id DESC);
CREATE INDEX activities_by_play ON activities (play_id) WHERE play_id IS NOT NULL;

-- Readers' inboxes (bounded: the fan-out trims each to feed.inbox_max, oldest dropped).
CREATE TABLE feed_inbox (
    reader      TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    activity_id TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    PRIMARY KEY (reader, at, activity_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX feed_inbox_by_activity ON feed_inbox (activity_id);

-- Activities waiting for (the rest of) their fan-out; `after` is the last follower id pushed.
CREATE TABLE feed_fanout (
    seq         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    activity_id TEXT    NOT NULL UNIQUE,
    after       TEXT
) STRICT;
