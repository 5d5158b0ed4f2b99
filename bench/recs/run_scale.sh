#!/usr/bin/env bash
# Training cost with the self-tuning search (docs/benchmarks.md, "Self-tuning: cost"): a classic
# synthetic set of ITEMS items (90 % films) and PROFILES profiles, then `recs train` (search
# included) under /usr/bin/time -v for wall time and peak RSS.
#   OUT=dir PROFILES=100000 MOVIES=9000 SERIES=1000 bench/recs/run_scale.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
OUT="${OUT:-$here/out-scale}"
PROFILES="${PROFILES:-100000}"
MOVIES="${MOVIES:-9000}"
SERIES="${SERIES:-1000}"
target="${CARGO_TARGET_DIR:-$root/target}"
(cd "$root" && cargo build --release -p playhead-recs --example recs)
BIN="$target/release/examples/recs"
d="$OUT/p${PROFILES}-m${MOVIES}-s${SERIES}"
mkdir -p "$d"
/usr/bin/time -v "$BIN" synth --out "$d" --profiles "$PROFILES" --movies "$MOVIES" --series "$SERIES" --no-oracle \
  > "$d/synth.json" 2> "$d/synth.time"
/usr/bin/time -v "$BIN" train --interactions "$d/interactions.csv" --catalog "$d/catalog.ndjson" \
  --out "$d/model.json" > "$d/train.json" 2> "$d/train.time"
echo "date: $(date -u +%FT%TZ); load: $(cut -d' ' -f1-3 /proc/loadavg)"
cat "$d/synth.json"
cat "$d/train.json"
grep -E "Elapsed|Maximum resident" "$d/train.time"
