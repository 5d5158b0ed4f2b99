#!/usr/bin/env bash
# Rust EASE scores must equal numpy EASE scores within 1e-4 on the same files.
#   bench/recs/check_ease.sh [DATA_DIR] [LAMBDA]   (default: a fresh synth seed 1, the default lambda)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
PY="$here/.venv/bin/python"
(cd "$root" && cargo build --release -p playhead-recs --example recs)
BIN="$root/target/release/examples/recs"
DATA="${1:-$here/out/check}"
if [ ! -f "$DATA/interactions.csv" ]; then
  "$BIN" synth --out "$DATA" --seed 1 > /dev/null
fi
LAMBDA="${2:-$("$BIN" config | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["lambda"])')}"
"$BIN" ease-scores --interactions "$DATA/interactions.csv" --catalog "$DATA/catalog.ndjson" --lambda "$LAMBDA" \
  --out "$DATA/rust_scores.json"
OPENBLAS_NUM_THREADS=1 "$PY" "$here/ease_reference.py" --interactions "$DATA/interactions.csv" \
  --catalog "$DATA/catalog.ndjson" --lambda "$LAMBDA" --scores-out "$DATA/numpy_scores.json"
"$PY" "$here/check_scores.py" --rust "$DATA/rust_scores.json" --numpy "$DATA/numpy_scores.json" --tol 1e-4
