#!/usr/bin/env bash
# The recommender goal runs of docs/benchmarks.md ("Recommendations"): synthetic seeds 1-5 (seed 1 is the tuning
# seed, 2-5 are reported), both protocols, every Rust model plus the numpy EASE and implicit ALS
# references on the same split, then a summary table. Needs ./setup.sh first.
#   OUT=dir SEEDS="1 2 3 4 5" LAMBDA=... bench/recs/run_goals.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
OUT="${OUT:-$here/out}"
SEEDS="${SEEDS:-1 2 3 4 5}"
LAMBDA="${LAMBDA:-}"          # numpy EASE's lambda; default: the Rust default (`recs config`)
PY="$here/.venv/bin/python"
(cd "$root" && cargo build --release -p playhead-recs --example recs)
BIN="$root/target/release/examples/recs"
if [ -z "$LAMBDA" ]; then
  LAMBDA="$("$BIN" config | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["lambda"])')"
fi
mkdir -p "$OUT"
for seed in $SEEDS; do
  d="$OUT/seed$seed"
  "$BIN" synth --out "$d" --seed "$seed" > "$d.synth.json"
  for proto in temporal leave-last-out; do
    s="$d/split-$proto"
    "$BIN" eval --interactions "$d/interactions.csv" --catalog "$d/catalog.ndjson" --protocol "$proto" \
      --bootstrap 0 --export-split "$s" > /dev/null
    OPENBLAS_NUM_THREADS=1 "$PY" "$here/ease_reference.py" --train "$s/train.csv" --catalog "$d/catalog.ndjson" \
      --queries "$s/queries.csv" --lambda "$LAMBDA" --k 50 --out "$s/numpy_ease.jsonl"
    ext=(--external "numpy-ease=$s/numpy_ease.jsonl")
    if "$PY" -c 'import implicit' 2>/dev/null; then
      OPENBLAS_NUM_THREADS=1 "$PY" "$here/als_reference.py" --train "$s/train.csv" --catalog "$d/catalog.ndjson" \
        --queries "$s/queries.csv" --k 50 --out "$s/als.jsonl"
      ext+=(--external "implicit-als=$s/als.jsonl")
    fi
    "$BIN" eval --interactions "$d/interactions.csv" --catalog "$d/catalog.ndjson" --protocol "$proto" \
      --k 10,20,50 "${ext[@]}" > "$d/eval-$proto.json"
  done
done
"$PY" "$here/summarize.py" --out "$OUT" --tune-seed 1 > "$OUT/summary.md"
cat "$OUT/summary.md"
