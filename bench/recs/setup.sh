#!/usr/bin/env bash
# Python reference environment for the recommender benchmarks: numpy (EASE) and, when a wheel
# installs here, `implicit` (ALS). Idempotent; everything lives in bench/recs/.venv.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python3 -m venv "$here/.venv"
"$here/.venv/bin/pip" install --quiet --upgrade pip
"$here/.venv/bin/pip" install --quiet "numpy>=1.26,<3" "scipy>=1.11"
if "$here/.venv/bin/pip" install --quiet "implicit>=0.7"; then
  echo "implicit installed"
else
  echo "implicit did not install; ALS reference unavailable" >&2
fi
"$here/.venv/bin/python" -c 'import numpy; print("numpy", numpy.__version__)'
