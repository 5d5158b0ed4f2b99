"""numpy EASE (Steck 2019) reference: B = I - P diag(1/diag P), P = (X^T X + lambda I)^-1.

Two modes:
  recs:   --train F --catalog F --queries F --k K --out recs.jsonl   (top-K per query profile,
          unplayed items only, series mapped to their first unplayed available episode)
  scores: --interactions F --catalog F --scores-out F                (dense X.B for every profile)
"""
import argparse
import json
import time

import numpy as np

from common import playable, read_catalog, read_interactions, read_queries


def build_x(plays, item_of):
    items = sorted({item_of[t] for v in plays.values() for _, t, pos in v if pos})
    col = {it: i for i, it in enumerate(items)}
    profiles = list(plays)
    x = np.zeros((len(profiles), len(items)), dtype=np.float64)
    for r, p in enumerate(profiles):
        for _, t, pos in plays[p]:
            if pos:
                x[r, col[item_of[t]]] = 1.0
    return profiles, items, x


def ease(x, lam):
    g = x.T @ x
    g[np.diag_indices_from(g)] += lam
    p = np.linalg.inv(g)
    b = -p / np.diag(p)
    b[np.diag_indices_from(b)] = 0.0
    return b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--catalog", required=True)
    ap.add_argument("--train")
    ap.add_argument("--interactions")
    ap.add_argument("--queries")
    ap.add_argument("--lambda", dest="lam", type=float, default=100.0)
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--out")
    ap.add_argument("--scores-out")
    a = ap.parse_args()
    titles, item_of, episodes, avail = read_catalog(a.catalog)
    plays = read_interactions(a.train or a.interactions, item_of)
    profiles, items, x = build_x(plays, item_of)
    t0 = time.time()
    b = ease(x, a.lam)
    solve_s = time.time() - t0
    if a.scores_out:
        s = x @ b
        json.dump({"lambda": a.lam, "items": items, "profiles": profiles, "scores": s.tolist(), "solve_s": solve_s}, open(a.scores_out, "w"))
        return
    row = {p: i for i, p in enumerate(profiles)}
    with open(a.out, "w") as out:
        for pid, now in read_queries(a.queries):
            hist = plays.get(pid, [])
            played_titles = {t for _, t, _ in hist}
            played_items = {item_of[t] for t in played_titles}
            recs = []
            if pid in row:
                scores = x[row[pid]] @ b
                for j in np.argsort(-scores, kind="stable"):
                    if scores[j] <= 0 or len(recs) >= a.k:
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
