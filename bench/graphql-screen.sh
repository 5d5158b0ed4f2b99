#!/usr/bin/env bash
# One GraphQL screen query vs the same four REST calls (profile, Continue watching, Next up,
# recommendations), on `playhead demo` data. The server runs pinned to CPU 0 (one Tokio worker),
# wrk on CPU 1; runs alternate REST/GraphQL. A "screen" is one GraphQL request, or four REST
# requests (wrk cycles through the four URLs, so REST screens/s = requests/s / 4).
# Usage: bench/graphql-screen.sh [runs] [seconds]; BUILD=dev measures the dev-profile binary
# (dependencies optimised, the workspace's crates not) when a release build is out of reach.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}; SECS=${2:-10}; CONNS=${CONNS:-32}; THREADS=${THREADS:-2}
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
if [ "${BUILD:-release}" = dev ]; then
  cargo build -q -p playhead; T=${CARGO_TARGET_DIR:-target}/debug
else
  cargo build -q --release -p playhead; T=${CARGO_TARGET_DIR:-target}/release
fi
dir=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$dir"' EXIT
$T/playhead demo --data-dir "$dir" > "$dir/demo.json"
P=$(jq -r '.profiles[0].profile_id' "$dir/demo.json"); TOKEN=$(jq -r .access_token "$dir/demo.json")
# Measure the read path, not the quota: raise it (the limiter still runs on every request/field).
export PLAYHEAD_RATE_LIMITS__READ__LIMIT=1000000000
RUST_LOG=error taskset -c "${SERVER_CPU:-0}" $T/playhead --data-dir "$dir" serve --listen 127.0.0.1:18191 --metrics-listen off >/dev/null &
sleep 2
B=http://127.0.0.1:18191
QUERY='query($p: ID!) { profile(id: $p) { id name kids maturityLimit
  continueWatching(first: 20) { nodes { titleId positionMs percent lastWatchedAt title { id name kind durationMs seriesId season episode maturity } } }
  nextUp(first: 20) { nodes { titleId positionMs lastWatchedAt title { id name kind durationMs seriesId season episode maturity } } }
  recommendations(first: 20) { nodes { titleId score reason { kind text titleId } title { id name kind durationMs seriesId season episode maturity } } } } }'
BODY=$(jq -cn --arg q "$QUERY" --arg p "$P" '{query: $q, variables: {p: $p}}')
curl -sf -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' -d "$BODY" $B/graphql > "$dir/screen.json"
jq -e '.errors == null' "$dir/screen.json" >/dev/null || { cat "$dir/screen.json"; exit 1; }
echo "graphql: cw $(jq '.data.profile.continueWatching.nodes|length' "$dir/screen.json"), next up $(jq '.data.profile.nextUp.nodes|length' "$dir/screen.json"), recs $(jq '.data.profile.recommendations.nodes|length' "$dir/screen.json"); $(wc -c < "$dir/screen.json") bytes"
rest_bytes=0
for path in "" "/continue-watching?limit=20" "/next-up?limit=20" "/recommendations?limit=20"; do
  n=$(curl -sf -H "Authorization: Bearer $TOKEN" "$B/v1/profiles/$P$path" | wc -c)
  rest_bytes=$((rest_bytes + n))
done
echo "rest: four calls, $rest_bytes bytes"
cat > "$dir/graphql.lua" <<LUA
wrk.method = "POST"
wrk.path = "/graphql"
wrk.body = [[$BODY]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
-- Count answers carrying GraphQL errors (a refused field still answers 200).
local errors = 0
response = function(status, headers, body) if body:find('"errors"', 1, true) then errors = errors + 1 end end
done = function() if errors > 0 then io.stderr:write("graphql answers with errors: " .. errors .. "\n") end end
LUA
cat > "$dir/rest.lua" <<LUA
local paths = {"/v1/profiles/$P", "/v1/profiles/$P/continue-watching?limit=20", "/v1/profiles/$P/next-up?limit=20", "/v1/profiles/$P/recommendations?limit=20"}
local i = 0
wrk.headers["Authorization"] = "Bearer $TOKEN"
request = function() i = i % 4 + 1; return wrk.format("GET", paths[i]) end
LUA
run() { taskset -c "${CLIENT_CPU:-1}" wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --latency -s "$1" "$B" | awk '
  /Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} /Non-2xx/ {bad=$5}
  END {printf "%s %s %s %s\n", rps, p50, p99, (bad == "" ? 0 : bad)}'; }
echo "run,target,requests_per_s,p50,p99,non_2xx"
for i in $(seq 1 "$RUNS"); do
  echo "$i,rest4,$(run "$dir/rest.lua" | tr ' ' ',')"
  echo "$i,graphql,$(run "$dir/graphql.lua" | tr ' ' ',')"
done
