-- The retention roll-up (issue 16, decision 0083). Same shape as SQLite's 0045.
CREATE TABLE play_rollups (
    profile_id      uuid   NOT NULL,
    month           bigint NOT NULL, -- first instant of the UTC month, ms
    title_id        text   COLLATE "C" NOT NULL,
    plays           bigint NOT NULL CHECK (plays > 0),
    watched_ms      bigint NOT NULL CHECK (watched_ms >= 0),
    completed_plays bigint NOT NULL CHECK (completed_plays BETWEEN 0 AND plays),
    PRIMARY KEY (profile_id, month, title_id)
);
CREATE INDEX play_rollups_by_title ON play_rollups (profile_id, title_id);
CREATE INDEX viewings_by_end ON viewings (ended_at) WHERE NOT manual;
