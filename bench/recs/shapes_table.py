"""Table of bench/recs/run_shapes.sh: per shape and protocol, Recall@20 and NDCG@10 (95% paired
bootstrap intervals) of the served (self-tuned) model, each single source, the untuned defaults,
numpy EASE and the oracle; whether the served model is >= the best single source on both, and
> numpy EASE; what tuning served and why."""
import argparse
import glob
import json
import os


def cell(m, key):
    v = m.get(key)
    if v is None:
        return "-"
    return f"{v['mean']:.3f} [{v['lo']:.3f}, {v['hi']:.3f}]"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rows = []
    notes = []
    for path in sorted(glob.glob(os.path.join(a.out, "*", "eval-*.json"))):
        shape = os.path.basename(os.path.dirname(path))
        proto = os.path.basename(path)[len("eval-"):-len(".json")]
        r = json.load(open(path))
        ms = r["models"]
        t = r.get("tuning") or {}
        served = ms["blend"]
        singles = [ms[n] for n in ("ease", "cowatch", "popularity")]
        ge_single = all(
            served["recall@20"]["mean"] + 1e-12 >= s["recall@20"]["mean"]
            and served["ndcg@10"]["mean"] + 1e-12 >= s["ndcg@10"]["mean"]
            for s in singles
        )
        # Within noise: the served interval overlaps the best single source's on each metric.
        best = max(singles, key=lambda s: (s["recall@20"]["mean"], s["ndcg@10"]["mean"]))
        within = all(served[k]["hi"] >= best[k]["lo"] for k in ("recall@20", "ndcg@10"))
        np_ = ms.get("numpy-ease")
        gt_np = np_ is not None and served["recall@20"]["mean"] > np_["recall@20"]["mean"]
        rows.append((shape, proto, r["profiles_evaluated"], served, ms, ge_single, within, gt_np,
                     (t.get("guard") or {}).get("served", "-")))
        if t:
            notes.append(f"- **{shape} / {proto}**: {t.get('why', '')}")
    print("| shape | protocol | profiles | model | Recall@20 | NDCG@10 |")
    print("|---|---|---|---|---|---|")
    for shape, proto, n, served, ms, ge, within, gt, src in rows:
        for name in ("blend", "ease", "cowatch", "popularity", "defaults", "numpy-ease", "oracle"):
            if name not in ms:
                continue
            label = f"**served ({src})**" if name == "blend" else name
            print(f"| {shape} | {proto} | {n} | {label} | {cell(ms[name], 'recall@20')} | {cell(ms[name], 'ndcg@10')} |")
    print()
    print("| shape | protocol | served >= every single source (means, both metrics) | within intervals of the best single | served > numpy EASE (Recall@20) | served source |")
    print("|---|---|---|---|---|---|")
    for shape, proto, n, served, ms, ge, within, gt, src in rows:
        print(f"| {shape} | {proto} | {'yes' if ge else 'NO'} | {'yes' if within else 'NO'} | {'yes' if gt else 'no'} | {src} |")
    print()
    print("Why each served configuration won (validation split of the training part):")
    print()
    print("\n".join(notes))


if __name__ == "__main__":
    main()
