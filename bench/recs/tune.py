"""Coordinate-descent tuning of TrainConfig on ONE synthetic seed (the others are for reporting).

  tune.py --recs BIN --data DIR [--rounds 2] --out tuned-config.json

Objective: mean of Recall@20 and NDCG@10 of the served blend over both protocols.
"""
import argparse
import copy
import json
import subprocess
import tempfile

GRID = {
    ("lambda",): [25.0, 50.0, 100.0, 200.0, 400.0],
    ("blend", "w_next"): [1.0, 2.0, 3.0, 5.0],
    ("blend", "w_cowatch"): [0.0, 0.15, 0.3, 0.6],
    ("blend", "w_trending"): [0.0, 0.15, 0.3, 0.6],
    ("blend", "w_genre_pop"): [0.0, 0.15, 0.3, 0.6],
    ("blend", "w_new"): [0.0, 0.1, 0.2, 0.4],
    ("blend", "history_half_life_days"): [None, 7.0, 15.0, 30.0, 60.0],
    ("blend", "next_half_life_days"): [7.0, 15.0, 30.0, 90.0],
    ("blend", "trending_half_life_days"): [3.0, 7.0, 14.0, 30.0],
    ("blend", "max_per_genre_pct"): [30.0, 50.0, 100.0],
}

BASE = {"lambda": 100.0, "ease_top_k": 100, "max_dense_items": 12000, "cowatch_top_k": 100, "cowatch_shrink": 10.0,
        "blend": {}}


def setp(cfg, path, v):
    d = cfg
    for k in path[:-1]:
        d = d.setdefault(k, {})
    d[path[-1]] = v


def getp(cfg, path, default):
    d = cfg
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def score(binary, data, cfg, cache):
    key = json.dumps(cfg, sort_keys=True)
    if key in cache:
        return cache[key]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(cfg, f)
        path = f.name
    total = 0.0
    for proto in ["temporal", "leave-last-out"]:
        out = subprocess.run([binary, "eval", "--interactions", f"{data}/interactions.csv", "--catalog",
                              f"{data}/catalog.ndjson", "--protocol", proto, "--k", "10,20", "--bootstrap", "0",
                              "--config", path], capture_output=True, text=True, check=True).stdout
        m = json.loads(out)["models"]["blend"]
        total += (m["recall@20"]["mean"] + m["ndcg@10"]["mean"]) / 4
    cache[key] = total
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--recs", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    cache = {}
    best = copy.deepcopy(BASE)
    best_s = score(a.recs, a.data, best, cache)
    print(f"start {best_s:.4f}", flush=True)
    for r in range(a.rounds):
        changed = False
        for path, values in GRID.items():
            for v in values:
                cand = copy.deepcopy(best)
                setp(cand, path, v)
                s = score(a.recs, a.data, cand, cache)
                if s > best_s + 1e-4:
                    best, best_s, changed = cand, s, True
                    print(f"round {r} {'.'.join(path)}={v} -> {best_s:.4f}", flush=True)
        if not changed:
            break
    json.dump(best, open(a.out, "w"), indent=2)
    print(json.dumps({"objective": best_s, "config": best}), flush=True)


if __name__ == "__main__":
    main()
