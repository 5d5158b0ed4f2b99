-- Playhead's embedded schema (SQLite >= 3.37 for STRICT tables).
--
-- Conventions, so the file stays readable with the sqlite3 CLI during an incident:
-- ids are TEXT (hyphenated lower-case UUIDs, or the platform's title ids), instants are INTEGER
-- milliseconds since the Unix epoch, booleans are INTEGER 0/1, lists and maps are JSON text.
-- Never edit a migration once it has shipped: add a new file (sqlx checks the checksums).

CREATE TABLE accounts (
    id          TEXT    NOT NULL PRIMARY KEY,
    email       TEXT    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE profiles (
    id             TEXT    NOT NULL PRIMARY KEY,
    account_id     TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name           TEXT    NOT NULL,
    kids           INTEGER NOT NULL CHECK (kids IN (0, 1)),
    maturity_limit INTEGER,
    private        INTEGER NOT NULL CHECK (private IN (0, 1)),
    version        INTEGER NOT NULL,
    created_at     INTEGER NOT NULL
) STRICT;
CREATE INDEX profiles_by_account ON profiles (account_id, created_at, id);

CREATE TABLE titles (
    id               TEXT    NOT NULL PRIMARY KEY,
    kind             TEXT    NOT NULL CHECK (kind IN ('movie', 'series', 'episode')),
    name             TEXT    NOT NULL,
    duration_ms      INTEGER NOT NULL,
    credits_start_ms INTEGER,
    series_id        TEXT,
    season           INTEGER,
    episode          INTEGER,
    genres           TEXT    NOT NULL, -- JSON array of strings, in the platform's order
    maturity         INTEGER NOT NULL,
    release_year     INTEGER,
    available_from   INTEGER,
    external_ids     TEXT    NOT NULL, -- JSON object, keys sorted
    version          INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
) STRICT;
CREATE INDEX titles_by_series ON titles (series_id) WHERE series_id IS NOT NULL;

-- The event log. A rowid table (event ids are random client UUIDs: keying the table itself by
-- them would scatter every insert across the B-tree). No foreign keys: held events name titles
-- that do not exist yet, and the ingest path must stay one insert per event.
CREATE TABLE events (
    event_id        TEXT    NOT NULL PRIMARY KEY,
    profile_id      TEXT    NOT NULL,
    title_id        TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    position_ms     INTEGER NOT NULL,
    duration_ms     INTEGER,
    occurred_at     INTEGER NOT NULL,
    occurred_at_raw INTEGER NOT NULL,
    received_at     INTEGER NOT NULL,
    device_id       TEXT,
    session_id      TEXT,
    state           TEXT    NOT NULL CHECK (state IN ('logged', 'held', 'dropped'))
) STRICT;
-- One index serves both groupings of ViewingTx::events: explicit sessions use the prefix
-- (profile, title, session); implicit groups use (profile, title, NULL, device, occurred_at range).
CREATE INDEX events_by_group ON events (profile_id, title_id, session_id, device_id, occurred_at);
-- Held events are few: a partial index keeps release, expiry and the per-profile cap cheap.
CREATE INDEX events_held ON events (profile_id, title_id, received_at) WHERE state = 'held';

-- Events waiting for the consumer. AUTOINCREMENT: a seq is an acknowledgement handle and must
-- never be reused, or a redelivered claim could delete a newer row.
CREATE TABLE event_queue (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT    NOT NULL
) STRICT;

CREATE TABLE progress (
    profile_id  TEXT    NOT NULL,
    title_id    TEXT    NOT NULL,
    position_ms INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    occurred_at INTEGER NOT NULL,
    event_id    TEXT    NOT NULL,
    finished    INTEGER NOT NULL CHECK (finished IN (0, 1)),
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (profile_id, title_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX progress_recent ON progress (profile_id, occurred_at, event_id);

CREATE TABLE hides (
    profile_id TEXT    NOT NULL,
    title_id   TEXT    NOT NULL,
    hidden_at  INTEGER NOT NULL,
    PRIMARY KEY (profile_id, title_id)
) STRICT, WITHOUT ROWID;

-- Viewings; a viewing is a play when is_play = 1. session_key is SessionKey::encode, NULL for a
-- backfilled play (it has no events).
CREATE TABLE viewings (
    id          TEXT    NOT NULL PRIMARY KEY,
    profile_id  TEXT    NOT NULL,
    title_id    TEXT    NOT NULL,
    session_key TEXT,
    started_at  INTEGER NOT NULL,
    ended_at    INTEGER NOT NULL,
    watched_ms  INTEGER NOT NULL,
    completed   INTEGER NOT NULL CHECK (completed IN (0, 1)),
    is_play     INTEGER NOT NULL CHECK (is_play IN (0, 1))
) STRICT;
-- History pages (keyset on (started_at, id), newest first); only plays are ever listed.
CREATE INDEX viewings_history ON viewings (profile_id, started_at DESC, id DESC) WHERE is_play = 1;
-- Apply-time lookups by group and backfill dedupe on (profile, title, started_at).
CREATE INDEX viewings_by_title ON viewings (profile_id, title_id, started_at);

-- Deleted plays: events of (profile, title, session_key) with from_ts <= occurred_at <= to_ts are
-- never applied again. session_key NULL marks a deleted backfilled play (from_ts = to_ts =
-- started_at).
CREATE TABLE tombstones (
    profile_id  TEXT    NOT NULL,
    title_id    TEXT    NOT NULL,
    session_key TEXT,
    from_ts     INTEGER NOT NULL,
    to_ts       INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX tombstones_by_title ON tombstones (profile_id, title_id, from_ts);

CREATE TABLE api_keys (
    prefix     TEXT    NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    hash       BLOB    NOT NULL CHECK (length(hash) = 32), -- SHA-256 of the whole key
    scopes     TEXT    NOT NULL,                           -- space-separated, as in OAuth
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;
