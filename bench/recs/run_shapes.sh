#!/usr/bin/env bash
# Robustness across data shapes (docs/benchmarks.md, "Self-tuning across shapes"): every
# `recs synth --profile` shape, one seed, both protocols; every Rust model (the served model is
# self-tuned on the training part only) plus the numpy EASE reference on the same split; then a
# table. Needs ./setup.sh first.
#   OUT=dir SEED=1 SHAPES="classic stable drifting binge films sparse" PROTOCOLS="temporal leave-last-out" \
#   LAMBDA=200 bench/recs/run_shapes.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
OUT="${OUT:-$here/out-shapes}"
SEED="${SEED:-1}"
SHAPES="${SHAPES:-classic stable drifting binge films sparse}"
PROTOCOLS="${PROTOCOLS:-temporal leave-last-out}"
LAMBDA="${LAMBDA:-200}"        # numpy EASE's lambda: the Rust default before tuning
PY="$here/.venv/bin/python"
target="${CARGO_TARGET_DIR:-$root/target}"
(cd "$root" && cargo build --release -p playhead-recs --example recs)
BIN="$target/release/examples/recs"
mkdir -p "$OUT"
echo '{"tune": {"enabled": false}}' > "$OUT/notune.json"
for shape in $SHAPES; do
  d="$OUT/$shape"
  "$BIN" synth --out "$d" --seed "$SEED" --profile "$shape" > "$d.synth.json"
  for proto in $PROTOCOLS; do
    s="$d/split-$proto"
    # First pass only writes the split (train.csv, queries.csv) for the reference: no tuning.
    "$BIN" eval --interactions "$d/interactions.csv" --catalog "$d/catalog.ndjson" --protocol "$proto" \
      --bootstrap 0 --export-split "$s" --config "$OUT/notune.json" > /dev/null
    OPENBLAS_NUM_THREADS=1 "$PY" "$here/ease_reference.py" --train "$s/train.csv" --catalog "$d/catalog.ndjson" \
      --queries "$s/queries.csv" --lambda "$LAMBDA" --k 50 --out "$s/numpy_ease.jsonl"
    /usr/bin/time -v "$BIN" eval --interactions "$d/interactions.csv" --catalog "$d/catalog.ndjson" \
      --protocol "$proto" --k 10,20,50 --external "numpy-ease=$s/numpy_ease.jsonl" \
      > "$d/eval-$proto.json" 2> "$d/eval-$proto.time"
  done
done
"$PY" "$here/shapes_table.py" --out "$OUT" > "$OUT/summary.md"
cat "$OUT/summary.md"
