"""Summarise run_goals.sh output: per protocol, per model, per seed, with the goal checks."""
import argparse
import glob
import json
import os
import statistics

MODELS = ["oracle", "blend", "ease", "numpy-ease", "implicit-als", "cowatch", "popularity"]


def fmt(iv):
    return f"{iv['mean']:.4f} [{iv['lo']:.4f}, {iv['hi']:.4f}]"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--tune-seed", type=int, default=1)
    a = ap.parse_args()
    runs = {}
    for path in sorted(glob.glob(os.path.join(a.out, "seed*/eval-*.json"))):
        seed = int(os.path.basename(os.path.dirname(path))[4:])
        proto = os.path.basename(path)[5:-5]
        runs[(proto, seed)] = json.load(open(path))
    for proto in ["temporal", "leave-last-out"]:
        seeds = sorted(s for p, s in runs if p == proto)
        if not seeds:
            continue
        print(f"\n### {proto}\n")
        print("| seed | model | Recall@20 [95% CI] | NDCG@10 [95% CI] | Recall@10 | Recall@50 | coverage@20 | avg pop@20 |")
        print("|---|---|---|---|---|---|---|---|")
        for s in seeds:
            d = runs[(proto, s)]["models"]
            tag = f"{s} (tuning)" if s == a.tune_seed else str(s)
            for m in MODELS:
                if m in d:
                    v = d[m]
                    print(f"| {tag} | {m} | {fmt(v['recall@20'])} | {fmt(v['ndcg@10'])} | {v['recall@10']['mean']:.4f} | "
                          f"{v['recall@50']['mean']:.4f} | {v['coverage@20']['mean']:.3f} | {v['avg_popularity@20']['mean']:.3f} |")
        report = [s for s in seeds if s != a.tune_seed]
        if not report:
            continue
        print(f"\nMedians over the report seeds {report}:\n")
        print("| model | Recall@20 | NDCG@10 | share of oracle Recall@20 |")
        print("|---|---|---|---|")
        for m in MODELS:
            vals = [runs[(proto, s)]["models"].get(m) for s in report]
            if any(v is None for v in vals):
                continue
            r = statistics.median(v["recall@20"]["mean"] for v in vals)
            n = statistics.median(v["ndcg@10"]["mean"] for v in vals)
            o = [runs[(proto, s)]["models"].get("oracle") for s in report]
            share = statistics.median(v["recall@20"]["mean"] / oo["recall@20"]["mean"] for v, oo in zip(vals, o)) if all(o) else None
            print(f"| {m} | {r:.4f} | {n:.4f} | {'' if share is None else f'{share:.1%}'} |")
        print("\nGoal checks per report seed (blend vs numpy-ease: intervals disjoint and blend above; share of oracle >= 70%):\n")
        for s in report:
            d = runs[(proto, s)]["models"]
            if "numpy-ease" not in d:
                continue
            checks = []
            for metric in ["recall@20", "ndcg@10"]:
                b, e = d["blend"][metric], d["numpy-ease"][metric]
                checks.append(f"{metric}: {'PASS' if b['lo'] > e['hi'] else 'FAIL'}")
            if "oracle" in d:
                sh = d["blend"]["recall@20"]["mean"] / d["oracle"]["recall@20"]["mean"]
                checks.append(f"share {sh:.1%} {'PASS' if sh >= 0.7 else 'FAIL'}")
            print(f"- seed {s}: " + "; ".join(checks))


if __name__ == "__main__":
    main()
