#!/usr/bin/env bash
# Scale-out benchmarks (issue #5), each a ratio to a baseline measured in the same run, on this
# machine's PostgreSQL and Redis (loopback):
#   1. ingest: events/s accepted-to-applied with Playhead on PostgreSQL (the outbox; add
#      NATS_URL=nats://127.0.0.1:4222 to go through JetStream) vs pgbench single-row-commit
#      INSERTs into a table shaped like the event log (8 clients);
#   2. cached Continue watching reads with Playhead on PostgreSQL + Redis (the shared row cache)
#      vs a bare axum handler serving the same bytes (bench/read.sh in scale-out mode).
# Usage: bench/scale-out.sh [runs] [seconds]   (PARTS=ingest or PARTS=read runs one part)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}; SECS=${2:-10}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432/test}
REDIS=${REDIS:-redis://127.0.0.1:6379}
EVENTS=${EVENTS:-50000}; PARTS=${PARTS:-ingest,read}
cargo build -q --release -p playhead -p playhead-bench
T=${CARGO_TARGET_DIR:-target}/release
tmp=$(mktemp -d); schema=bench_pgbench_$$
psql_() { psql "$PGURL" -v ON_ERROR_STOP=1 -qAt "$@"; }
trap 'psql_ -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
export PLAYHEAD_DATABASE_URL=$PGURL

if [[ $PARTS == *ingest* ]]; then
echo "== ingest ($EVENTS events in batches of 500, 4 clients) vs pgbench single-row commits (8 clients, ${SECS}s)"
psql_ -c "CREATE SCHEMA $schema" -c "CREATE TABLE $schema.events (event_id uuid PRIMARY KEY,
  profile_id uuid NOT NULL, title_id text NOT NULL, kind text NOT NULL, position_ms bigint NOT NULL,
  occurred_at bigint NOT NULL, received_at bigint NOT NULL, device_id text, state text NOT NULL)"
cat > "$tmp/insert.sql" <<SQL
INSERT INTO $schema.events VALUES (gen_random_uuid(), '0192f0c4-0000-7000-8000-000000000001',
  'bench-1', 'heartbeat', 30000, 1800000000000, 1800000000000, 'tv', 'logged');
SQL
[ -n "${NATS_URL:-}" ] && export PLAYHEAD_NATS_URL=$NATS_URL
echo "run,pgbench_rows_per_s,playhead_events_per_s,ratio"
for i in $(seq 1 "$RUNS"); do
  pg=$(pgbench -n -f "$tmp/insert.sql" -c 8 -j 2 -T "$SECS" "$PGURL" 2>/dev/null |
    awk '/^tps/ {print int($3)}')
  ph=$(RUST_LOG=error $T/playhead-bench ingest --events "$EVENTS" --runs 1 2>/dev/null |
    jq -r '.playhead_events_per_s.median')
  echo "$i,$pg,$ph,$(awk -v a="$ph" -v b="$pg" 'BEGIN {printf "%.2f", a / b}')"
done
unset PLAYHEAD_NATS_URL
fi
[[ $PARTS == *read* ]] || exit 0

echo "== cached Continue watching reads on PostgreSQL + Redis vs a bare axum handler"
read_schema=bench_read_$$
psql_ -c "CREATE SCHEMA $read_schema"
trap 'psql_ -c "DROP SCHEMA IF EXISTS $schema CASCADE" -c "DROP SCHEMA IF EXISTS $read_schema CASCADE" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
PLAYHEAD_DATABASE_SCHEMA=$read_schema PLAYHEAD_REDIS_URL=$REDIS \
  PLAYHEAD_REDIS_KEY_PREFIX="bench:$$:" bench/read.sh "$RUNS" "$SECS"
