"""Implicit ALS (PyPI `implicit`) reference over the same items and exclusions as ease_reference.py.

  --train F --catalog F --queries F --k K --out recs.jsonl [--factors 16 --reg 1.0 --iters 15 --alpha 2]

Defaults tuned on synthetic seed 1, temporal protocol (docs/benchmarks.md ("Recommendations")).
"""
import argparse
import json

import numpy as np
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares

from common import playable, read_catalog, read_interactions, read_queries
from ease_reference import build_x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", required=True)
    ap.add_argument("--catalog", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--out", required=True)
    ap.add_argument("--factors", type=int, default=16)
    ap.add_argument("--reg", type=float, default=1.0)
    ap.add_argument("--iters", type=int, default=15)
    ap.add_argument("--alpha", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    titles, item_of, episodes, avail = read_catalog(a.catalog)
    plays = read_interactions(a.train, item_of)
    profiles, items, x = build_x(plays, item_of)
    ui = sp.csr_matrix(x * a.alpha, dtype=np.float32)
    model = AlternatingLeastSquares(factors=a.factors, regularization=a.reg, iterations=a.iters, random_state=a.seed)
    model.fit(ui, show_progress=False)
    uf, itf = np.asarray(model.user_factors), np.asarray(model.item_factors)
    row = {p: i for i, p in enumerate(profiles)}
    with open(a.out, "w") as out:
        for pid, now in read_queries(a.queries):
            hist = plays.get(pid, [])
            played_titles = {t for _, t, _ in hist}
            played_items = {item_of[t] for t in played_titles}
            recs = []
            if pid in row:
                scores = itf @ uf[row[pid]]
                for j in np.argsort(-scores, kind="stable"):
                    if len(recs) >= a.k:
                        break
                    it = items[j]
                    if it in played_items:
                        continue
                    t = playable(it, titles, episodes, avail, now, played_titles)
                    if t is not None:
                        recs.append(t)
            out.write(json.dumps({"profile_id": pid, "titles": recs}) + "\n")


if __name__ == "__main__":
    main()
