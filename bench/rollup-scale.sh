#!/usr/bin/env bash
# Storage saved by the retention roll-up (decision 0083) on the demo data set scaled to PLAYS
# plays. Seeds the demo (`playhead demo`: its catalog and households), then adds PLAYS plays
# straight into the SQLite file with the sqlite3 CLI (one recursive-CTE INSERT per table inside one
# transaction: minutes for 10 million, where the API would take hours), spread uniformly over
# YEARS years across PLAYS/PER_PROFILE profiles, each play with EVENTS raw events (start,
# heartbeats, stop/complete) in an explicit session, 65% completed, as applied plays look in the
# event log. Then measures: file size and rows per table, `playhead admin roll-up
# --after-days DAYS` (the job the pruning rounds run, to completion) and its time, `VACUUM`, and
# the file size and rows again.
#
# Usage: bench/rollup-scale.sh [PLAYS=10000000] [EVENTS=8] [DAYS=365] [YEARS=3]
# Needs ~33 GB free for 10 million plays with 8 events each (about 3.2 KB per play before).
# Env: PLAYHEAD (the binary; default: a release build from this tree), KEEP=1 keeps the data dir.
set -euo pipefail
cd "$(dirname "$0")/.."
PLAYS=${1:-10000000}; EVENTS=${2:-8}; DAYS=${3:-365}; YEARS=${4:-3}; PER_PROFILE=${PER_PROFILE:-2000}
command -v sqlite3 >/dev/null || { echo "needs the sqlite3 CLI (apt-get install sqlite3)"; exit 1; }
if [ -z "${PLAYHEAD:-}" ]; then
  cargo build -q --release -p playhead
  PLAYHEAD=${CARGO_TARGET_DIR:-target}/release/playhead
fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/rollup-scale.XXXXXX")
[ "${KEEP:-}" = 1 ] || trap 'rm -rf "$dir"' EXIT
db=$dir/playhead.db
ph() { RUST_LOG=error "$PLAYHEAD" --data-dir "$dir" "$@"; }

echo "date: $(date -u +%FT%TZ)  host: $(uname -n)  cpus: $(nproc)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "plays: $PLAYS  events/play: $EVENTS  spread: $YEARS years  horizon: $DAYS days  plays/profile: $PER_PROFILE"
ph demo >/dev/null
PROFILES=$(( (PLAYS + PER_PROFILE - 1) / PER_PROFILE ))
NOW_MS=$(( $(date +%s) * 1000 ))
SPAN_MS=$(( YEARS * 365 * 86400000 ))
t0=$(date +%s.%N)
sqlite3 "$db" <<SQL
PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -1000000; PRAGMA temp_store = MEMORY;
BEGIN;
-- Movies and episodes of the demo catalog, numbered.
CREATE TEMP TABLE cat AS SELECT row_number() OVER (ORDER BY id) - 1 AS n, id, duration_ms
  FROM titles WHERE kind <> 'series';
CREATE TEMP TABLE seq(i INTEGER PRIMARY KEY);
WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < $PLAYS - 1) INSERT INTO seq SELECT i FROM s;
-- One account per household of four profiles.
INSERT INTO accounts (id, email, created_at)
  SELECT printf('0000aaaa-0000-7000-8000-%012x', i), printf('scale%d@example.com', i), $NOW_MS - $SPAN_MS
  FROM seq WHERE i < ($PROFILES + 3) / 4;
INSERT INTO profiles (id, account_id, name, kids, maturity_limit, private, version, created_at)
  SELECT printf('0000bbbb-0000-7000-8000-%012x', i), printf('0000aaaa-0000-7000-8000-%012x', i / 4),
         printf('P%d', i), 0, NULL, 0, 1, $NOW_MS - $SPAN_MS
  FROM seq WHERE i < $PROFILES;
-- The plays: profile i % PROFILES, a title by a multiplicative hash, a start uniform over the span
-- (hashed, so ages interleave in insert order), watched all of it (65%) or a part.
CREATE TEMP TABLE p AS
  SELECT i, printf('0000bbbb-0000-7000-8000-%012x', i % $PROFILES) AS profile_id, c.id AS title_id,
         c.duration_ms AS duration_ms,
         $NOW_MS - ((i * 2654435761) % $SPAN_MS) AS started_at,
         ((i * 40503) % 100) < 65 AS completed
  FROM seq JOIN cat c ON c.n = (i * 7919) % (SELECT count(*) FROM cat);
INSERT INTO viewings (id, profile_id, title_id, session_key, started_at, ended_at, watched_ms, completed, is_play, manual)
  SELECT printf('0000cccc-0000-7000-8000-%012x', i), profile_id, title_id,
         printf('s:%08x-0000-4000-8000-%012x', i % 4294967296, i), started_at,
         started_at + CASE WHEN completed THEN duration_ms ELSE duration_ms / 3 END,
         CASE WHEN completed THEN duration_ms ELSE duration_ms / 3 END, completed, 1, 0
  FROM p;
INSERT INTO events (event_id, profile_id, title_id, kind, position_ms, duration_ms, occurred_at, occurred_at_raw,
                    received_at, device_id, session_id, state)
  SELECT printf('0000dddd-%04x-7000-8000-%012x', k, i), profile_id, title_id,
         CASE WHEN k = 0 THEN 'start' WHEN k < $EVENTS - 1 THEN 'heartbeat' WHEN completed THEN 'complete' ELSE 'stop' END,
         w * k / ($EVENTS - 1), duration_ms, started_at + w * k / ($EVENTS - 1), started_at + w * k / ($EVENTS - 1),
         started_at + w * k / ($EVENTS - 1) + 800, 'tv-livingroom', printf('%08x-0000-4000-8000-%012x', i % 4294967296, i), 'logged'
  FROM (SELECT p.*, CASE WHEN completed THEN duration_ms ELSE duration_ms / 3 END AS w FROM p)
  JOIN (SELECT i AS k FROM seq WHERE i < $EVENTS);
-- The resume register: one row per (profile, title), the latest play's end.
INSERT OR IGNORE INTO progress (profile_id, title_id, position_ms, duration_ms, occurred_at, event_id, finished, updated_at)
  SELECT profile_id, title_id, CASE WHEN completed THEN 0 ELSE duration_ms / 3 END, duration_ms, started_at,
         printf('0000dddd-0000-7000-8000-%012x', i), completed, started_at
  FROM p ORDER BY started_at DESC;
COMMIT;
SQL
t1=$(date +%s.%N)
printf 'seeded in %.0f s\n' "$(echo "$t1 - $t0" | bc)"
sqlite3 "$db" 'PRAGMA journal_mode = WAL; VACUUM;' >/dev/null
measure() {
  local label=$1
  echo "$label: $(stat -c %s "$db") bytes ($(du -h "$db" | cut -f1)), rows:" \
    "$(sqlite3 "$db" "SELECT 'viewings=' || (SELECT count(*) FROM viewings) || ' events=' || (SELECT count(*) FROM events) \
      || ' play_rollups=' || (SELECT count(*) FROM play_rollups) || ' progress=' || (SELECT count(*) FROM progress)")"
}
measure before
t0=$(date +%s.%N)
ph admin roll-up --after-days "$DAYS"
t1=$(date +%s.%N)
printf 'roll-up: %.0f s wall\n' "$(echo "$t1 - $t0" | bc)"
measure "after roll-up"
t0=$(date +%s.%N)
sqlite3 "$db" 'VACUUM;'
t1=$(date +%s.%N)
printf 'vacuum: %.0f s\n' "$(echo "$t1 - $t0" | bc)"
measure "after VACUUM"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
