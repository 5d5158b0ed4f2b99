#!/usr/bin/env bash
# Continue watching read (with its JWT check) vs a bare axum handler returning the same JSON row.
# Both servers run pinned to the same core (CPU 0, so each gets one Tokio worker) and wrk runs on
# the other (CPU 1); wrk drives each in turn, 3 runs of 10 s, and we report requests/s, latency
# percentiles and the ratio per run. Usage: bench/read.sh [runs] [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}; SECS=${2:-10}; CONNS=${CONNS:-32}; THREADS=${THREADS:-2}
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
cargo build -q --release -p playhead -p playhead-bench
T=${CARGO_TARGET_DIR:-target}/release
dir=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$dir"' EXIT
seed=$($T/playhead-bench read-seed --data-dir "$dir")
P=$(jq -r .profile_id <<<"$seed"); TOKEN=$(jq -r .token <<<"$seed")
# Measure the read path, not the quota: raise it (the limiter still runs on every request).
export PLAYHEAD_RATE_LIMITS__READ__LIMIT=1000000000
RUST_LOG=error taskset -c "${SERVER_CPU:-0}" $T/playhead --data-dir "$dir" serve --listen 127.0.0.1:18181 --metrics-listen off >/dev/null &
sleep 1
URL=http://127.0.0.1:18181/v1/profiles/$P/continue-watching
curl -sf -H "Authorization: Bearer $TOKEN" "$URL" > "$dir/row.json"
echo "row items: $(jq '.items | length' "$dir/row.json"), bytes: $(wc -c < "$dir/row.json")"
taskset -c "${SERVER_CPU:-0}" $T/playhead-bench read-baseline --listen 127.0.0.1:18182 --body "$dir/row.json" &
sleep 0.5
cmp <(curl -sf http://127.0.0.1:18182/row) "$dir/row.json" && echo "baseline serves the same bytes"
run() { taskset -c "${CLIENT_CPU:-1}" wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --latency "$@" | awk '
  /Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} /Non-2xx/ {bad=$5}
  END {printf "%s %s %s %s\n", rps, p50, p99, (bad == "" ? 0 : bad)}'; }
echo "run,target,requests_per_s,p50,p99,non_2xx"
for i in $(seq 1 "$RUNS"); do
  echo "$i,baseline,$(run http://127.0.0.1:18182/row | tr ' ' ',')"
  echo "$i,playhead,$(run -H "Authorization: Bearer $TOKEN" "$URL" | tr ' ' ',')"
done
