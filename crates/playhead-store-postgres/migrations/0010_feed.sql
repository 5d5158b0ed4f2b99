-- Followers and the activity feed (issue 14, decisions 0060-0062). Same shape as SQLite's 0010.

CREATE TABLE follows (
    follower uuid   NOT NULL,
    followee uuid   NOT NULL,
    state    text   NOT NULL CHECK (state IN ('requested', 'following')),
    since    bigint NOT NULL,
    PRIMARY KEY (follower, followee)
);
CREATE INDEX follows_by_followee ON follows (followee, state, follower);

CREATE TABLE blocks (
    blocker uuid   NOT NULL,
    blocked uuid   NOT NULL,
    at      bigint NOT NULL,
    PRIMARY KEY (blocker, blocked)
);
CREATE INDEX blocks_by_blocked ON blocks (blocked, blocker);

-- Whether a profile publishes, and its accepted-follower count (the hybrid's switch).
CREATE TABLE feed_profiles (
    profile_id     uuid    NOT NULL PRIMARY KEY,
    share_activity boolean NOT NULL DEFAULT true,
    followers      bigint  NOT NULL DEFAULT 0
);

CREATE TABLE activities (
    id           uuid    NOT NULL PRIMARY KEY,
    actor        uuid    NOT NULL,
    kind         text    COLLATE "C" NOT NULL,
    title_id     text    COLLATE "C" NOT NULL,
    source_title text    COLLATE "C" NOT NULL,
    play_id      uuid,
    subject_key  text    COLLATE "C" NOT NULL,
    maturity     integer NOT NULL,
    at           bigint  NOT NULL,
    pushed       boolean NOT NULL DEFAULT false,
    UNIQUE (actor, kind, subject_key)
);
CREATE INDEX activities_by_actor ON activities (actor, pushed, at DESC, id DESC);
CREATE INDEX activities_by_play ON activities (play_id) WHERE play_id IS NOT NULL;

CREATE TABLE feed_inbox (
    reader      uuid   NOT NULL,
    at          bigint NOT NULL,
    activity_id uuid   NOT NULL,
    actor       uuid   NOT NULL,
    PRIMARY KEY (reader, at, activity_id)
);
CREATE INDEX feed_inbox_by_activity ON feed_inbox (activity_id);

CREATE TABLE feed_fanout (
    seq         bigserial PRIMARY KEY,
    activity_id uuid NOT NULL UNIQUE,
    after       uuid
);
