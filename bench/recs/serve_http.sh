#!/usr/bin/env bash
# Serving latency of GET /v1/profiles/{id}/recommendations over HTTP (docs/benchmarks.md,
# "Recommendations"), next to Continue watching on the same server in the same run as the baseline.
# Data: `playhead demo` (520 titles, three households, a month of viewing), a model trained by
# `playhead recs train`. Drives each endpoint with wrk (2 threads, 16 connections) and prints
# wrk's latency distribution. Usage: bench/recs/serve_http.sh [seconds per run] [runs]
# BIN=path runs a prebuilt binary instead of building one (to compare two builds in one time
# window); PLAYHEAD_* variables reach the server (PLAYHEAD_RECS__ROW_CACHE_SECS=0 measures the
# path that computes every row).
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-20}
RUNS=${2:-3}
if [ -z "${BIN:-}" ]; then
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
  cargo build -q --release -p playhead
  BIN="$CARGO_TARGET_DIR/release/playhead"
fi
DIR=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$DIR"' EXIT
"$BIN" --data-dir "$DIR" demo > "$DIR/demo.json"
"$BIN" --data-dir "$DIR" recs train > "$DIR/train.json"
TOKEN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["access_token"])' "$DIR/demo.json")
PROFILE=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["profiles"][0]["profile_id"])' "$DIR/demo.json")
PORT=${PORT:-18089}
# Quotas off the way: a benchmark is one caller sending far more than a viewer would.
PLAYHEAD_RATE_LIMITS__READ__LIMIT=100000000 PLAYHEAD_HTTP__MAX_IN_FLIGHT_PER_PRINCIPAL=1000 RUST_LOG=warn \
  "$BIN" --data-dir "$DIR" serve --listen "127.0.0.1:$PORT" --metrics-listen off > "$DIR/serve.log" 2>&1 &
PID=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/livez" >/dev/null && break; sleep 0.1; done
# Wait for the server to load the trained model (a non-empty row).
for _ in $(seq 100); do
  n=$(curl -fs -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/v1/profiles/$PROFILE/recommendations" \
      | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))')
  [ "$n" -gt 0 ] && break; sleep 0.2
done
echo "model: $(cat "$DIR/train.json")"
echo "binary: $BIN; row: $n items; date: $(date -u +%FT%TZ); load: $(cut -d' ' -f1-3 /proc/loadavg)"
for run in $(seq "$RUNS"); do
  for path in recommendations continue-watching; do
    echo "=== run $run: $path"
    wrk -t2 -c16 -d"${SECS}s" --latency -H "Authorization: Bearer $TOKEN" \
      "http://127.0.0.1:$PORT/v1/profiles/$PROFILE/$path?limit=20" | grep -E "Requests/sec|50%|90%|99%|Non-2xx"
    echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
  done
done
