"""Check that Rust EASE scores match numpy EASE within a tolerance (default 1e-4).

  check_scores.py --rust rust_scores.json --numpy numpy_scores.json [--tol 1e-4]

Both files hold {"items": [...], "profiles": [...], "scores": [[...]]}; rows and columns are
matched by id, so neither side's ordering matters.
"""
import argparse
import json
import sys

import numpy as np


def load(path):
    d = json.load(open(path))
    return d["profiles"], d["items"], np.asarray(d["scores"], dtype=np.float64)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rust", required=True)
    ap.add_argument("--numpy", required=True)
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    rp, ri, rs = load(a.rust)
    npp, npi, ns = load(a.numpy)
    if set(rp) != set(npp) or set(ri) != set(npi):
        print(f"FAIL: different profiles or items (rust {len(rp)}x{len(ri)}, numpy {len(npp)}x{len(npi)})")
        sys.exit(1)
    prow = [npp.index(p) for p in rp] if len(rp) < 2000 else [dict((p, i) for i, p in enumerate(npp))[p] for p in rp]
    icol = [dict((it, i) for i, it in enumerate(npi))[it] for it in ri]
    ns = ns[np.ix_(prow, icol)]
    diff = np.abs(rs - ns)
    worst = float(diff.max()) if diff.size else 0.0
    print(json.dumps({"profiles": len(rp), "items": len(ri), "max_abs_diff": worst,
                      "mean_abs_diff": float(diff.mean()) if diff.size else 0.0,
                      "max_abs_score": float(np.abs(ns).max()) if ns.size else 0.0, "tol": a.tol,
                      "ok": worst <= a.tol}))
    sys.exit(0 if worst <= a.tol else 1)


if __name__ == "__main__":
    main()
