-- Playhead's scale-out schema (PostgreSQL >= 14; tested on 15).
--
-- Conventions, chosen so the codec matches the SQLite adapter's and stays exact:
-- ids are uuid (accounts, profiles, events, plays) or text COLLATE "C" (the platform's title ids,
-- and the players' session and device ids: byte order, as Rust orders strings); instants are
-- bigint milliseconds since the Unix epoch; flags are boolean; a title's genres and external ids
-- are jsonb. Constraints are named, because the adapter maps a unique violation to domain words by
-- constraint name.
-- Tables are created unqualified: they land in the first schema of the connection's search_path
-- (tests give every check its own schema).
-- Never edit a migration once it has shipped: add a new file (sqlx checks the checksums).

CREATE TABLE accounts (
    id          uuid   NOT NULL,
    email       text   NOT NULL,
    created_at  bigint NOT NULL,
    CONSTRAINT accounts_pkey PRIMARY KEY (id),
    CONSTRAINT accounts_email_key UNIQUE (email)
);

CREATE TABLE profiles (
    id             uuid     NOT NULL,
    account_id     uuid     NOT NULL,
    name           text     NOT NULL,
    kids           boolean  NOT NULL,
    maturity_limit smallint,
    private        boolean  NOT NULL,
    version        bigint   NOT NULL,
    created_at     bigint   NOT NULL,
    CONSTRAINT profiles_pkey PRIMARY KEY (id),
    CONSTRAINT profiles_account_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE
);
CREATE INDEX profiles_by_account ON profiles (account_id, created_at, id);

CREATE TABLE titles (
    id               text COLLATE "C" NOT NULL,
    kind             text     NOT NULL CHECK (kind IN ('movie', 'series', 'episode')),
    name             text     NOT NULL,
    duration_ms      bigint   NOT NULL,
    credits_start_ms bigint,
    series_id        text COLLATE "C",
    season           integer,
    episode          integer,
    genres           jsonb    NOT NULL, -- array of strings, in the platform's order
    maturity         smallint NOT NULL,
    release_year     integer,
    available_from   bigint,
    external_ids     jsonb    NOT NULL, -- object
    version          bigint   NOT NULL,
    updated_at       bigint   NOT NULL,
    CONSTRAINT titles_pkey PRIMARY KEY (id)
);
CREATE INDEX titles_by_series ON titles (series_id) WHERE series_id IS NOT NULL;

-- The event log: every admitted event with its state. It is also what plays are recomputed from,
-- so it is read by group (profile, title, session or device, time). No foreign keys: held events
-- name titles that do not exist yet, and the ingest path stays one insert per batch.
CREATE TABLE events (
    event_id        uuid   NOT NULL,
    profile_id      uuid   NOT NULL,
    title_id        text COLLATE "C" NOT NULL,
    kind            text   NOT NULL,
    position_ms     bigint NOT NULL,
    duration_ms     bigint,
    occurred_at     bigint NOT NULL,
    occurred_at_raw bigint NOT NULL,
    received_at     bigint NOT NULL,
    device_id       text COLLATE "C",
    session_id      text COLLATE "C",
    state           text   NOT NULL CHECK (state IN ('logged', 'held', 'dropped')),
    CONSTRAINT events_pkey PRIMARY KEY (event_id)
);
-- One index serves both groupings of ViewingTx::events: explicit sessions use the prefix
-- (profile, title, session); implicit groups use (profile, title, NULL, device, occurred_at range).
CREATE INDEX events_by_group ON events (profile_id, title_id, session_id, device_id, occurred_at);
-- Held events are few: a partial index keeps release, expiry and the per-profile cap cheap.
CREATE INDEX events_held ON events (profile_id, title_id, received_at) WHERE state = 'held';

-- The outbox: events not applied yet. A row is deleted only by the apply transaction that claims
-- it (never when a broker acknowledges a publish), so an accepted event is never lost. bigserial:
-- a seq is an acknowledgement handle and is never reused.
CREATE TABLE event_queue (
    seq      bigserial NOT NULL,
    event_id uuid      NOT NULL,
    CONSTRAINT event_queue_pkey PRIMARY KEY (seq)
);

CREATE TABLE progress (
    profile_id  uuid    NOT NULL,
    title_id    text COLLATE "C" NOT NULL,
    position_ms bigint  NOT NULL,
    duration_ms bigint  NOT NULL,
    occurred_at bigint  NOT NULL,
    event_id    uuid    NOT NULL,
    finished    boolean NOT NULL,
    updated_at  bigint  NOT NULL,
    CONSTRAINT progress_pkey PRIMARY KEY (profile_id, title_id)
);
CREATE INDEX progress_recent ON progress (profile_id, occurred_at DESC, event_id DESC);

CREATE TABLE hides (
    profile_id uuid   NOT NULL,
    title_id   text COLLATE "C" NOT NULL,
    hidden_at  bigint NOT NULL,
    CONSTRAINT hides_pkey PRIMARY KEY (profile_id, title_id)
);

-- Viewings (history); a viewing is a play when is_play. Partition key profile_id, sort key
-- started_at: the seed's DynamoDB layout (DESIGN.md, "Data layout"). Every query names the
-- profile, so each touches one partition. session_key is SessionKey::encode, NULL for a
-- backfilled play (it has no events).
CREATE TABLE viewings (
    profile_id  uuid    NOT NULL,
    id          uuid    NOT NULL,
    title_id    text COLLATE "C" NOT NULL,
    session_key text COLLATE "C",
    started_at  bigint  NOT NULL,
    ended_at    bigint  NOT NULL,
    watched_ms  bigint  NOT NULL,
    completed   boolean NOT NULL,
    is_play     boolean NOT NULL,
    CONSTRAINT viewings_pkey PRIMARY KEY (profile_id, id)
) PARTITION BY HASH (profile_id);
CREATE TABLE viewings_p00 PARTITION OF viewings FOR VALUES WITH (MODULUS 16, REMAINDER 0);
CREATE TABLE viewings_p01 PARTITION OF viewings FOR VALUES WITH (MODULUS 16, REMAINDER 1);
CREATE TABLE viewings_p02 PARTITION OF viewings FOR VALUES WITH (MODULUS 16, REMAINDER 2);
CREATE TABLE viewings_p03 PARTITION OF viewings FOR VALUES WITH (MODULUS 16, REMAINDER 3);
CREATE TABLE viewings_p04 PARTITION OF viewings FOR VALUES WITH (MODULUS 16, REMAINDER 4);
CREATE TABLE viewings_p05 PARTITION OF viewings FOR VALUES WITH (MODULUS 16, REMAINDER 5);
CREATE TABLE viewings_p06 PARTITION OF viewings FOR VALUES WITH (MODULUS 16, REMAINDER 6);
CREATE TABLE viewings_p07 PARTITION OF viewings FOR VALUES WITH (MODULUS 16, REMAINDER 7);
CREATE TABLE viewings_p08 PARTITION OF viewings FOR VALUES WITH (MODULUS 16, REMAINDER 8);
CREATE TABLE viewings_p09 PARTITION OF viewings FOR VALUES WITH (MODULUS 16, REMAINDER 9);
CREATE TABLE viewings_p10 PARTITION OF viewings FOR VALUES WITH (MODULUS 16, REMAINDER 10);
CREATE TABLE viewings_p11 PARTITION OF viewings FOR VALUES WITH (MODULUS 16, REMAINDER 11);
CREATE TABLE viewings_p12 PARTITION OF viewings FOR VALUES WITH (MODULUS 16, REMAINDER 12);
CREATE TABLE viewings_p13 PARTITION OF viewings FOR VALUES WITH (MODULUS 16, REMAINDER 13);
CREATE TABLE viewings_p14 PARTITION OF viewings FOR VALUES WITH (MODULUS 16, REMAINDER 14);
CREATE TABLE viewings_p15 PARTITION OF viewings FOR VALUES WITH (MODULUS 16, REMAINDER 15);
-- History pages (keyset on (started_at, id), newest first); only plays are ever listed.
CREATE INDEX viewings_history ON viewings (profile_id, started_at DESC, id DESC) WHERE is_play;
-- Apply-time lookups by group, and backfill dedupe on (profile, title, started_at).
CREATE INDEX viewings_by_title ON viewings (profile_id, title_id, started_at);

-- Deleted plays: events of (profile, title, session_key) with from_ts <= occurred_at <= to_ts are
-- never applied again. session_key NULL marks a deleted backfilled play (from_ts = to_ts =
-- started_at).
CREATE TABLE tombstones (
    profile_id  uuid   NOT NULL,
    title_id    text COLLATE "C" NOT NULL,
    session_key text COLLATE "C",
    from_ts     bigint NOT NULL,
    to_ts       bigint NOT NULL,
    created_at  bigint NOT NULL
);
CREATE INDEX tombstones_by_title ON tombstones (profile_id, title_id, from_ts);

CREATE TABLE api_keys (
    prefix     text   NOT NULL,
    name       text   NOT NULL,
    hash       bytea  NOT NULL CHECK (length(hash) = 32), -- SHA-256 of the whole key
    scopes     text   NOT NULL,                           -- space-separated, as in OAuth
    created_at bigint NOT NULL,
    revoked_at bigint,
    CONSTRAINT api_keys_pkey PRIMARY KEY (prefix)
);
