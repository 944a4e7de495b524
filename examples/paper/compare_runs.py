"""Paired comparisons of runs on the same samples, for docs/paper.md.

  python examples/paper/compare_runs.py size RUN_A RUN_B RUN_C   # flip rate per variant per model,
      paired across models (same photos): per-variant McNemar of A's flips vs C's, and the mean flip
      rate over all variants with a paired bootstrap interval of A - C (and A - B, B - C)
  python examples/paper/compare_runs.py adapt RUN_PLAIN RUN_ADAPTED   # per variant: delta and flip rate
      without and with test-time adaptation, and the change with a paired bootstrap interval

Flips are recomputed from outputs.npz (top-1 of the variant differs from the reference's) and
checked against each run's results.json; McNemar is checked against scipy's binomial test."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import binomtest

from sysnoise.analysis.statistics import mcnemar_exact
from sysnoise.engine.outputs import RunOutputs

RESAMPLES, SEED = 2000, 0


def load(folder: str):
    folder = Path(folder)
    return RunOutputs.load(folder / "outputs.npz"), json.loads((folder / "results.json").read_text())


def flips(outputs: RunOutputs, results: dict) -> dict[str, np.ndarray]:
    """variant id -> bool per sample (only samples every column read), checked against results.json."""
    top1 = {c: outputs.arrays[c]["topk"][:, 0] for c in outputs.column_ids}
    ok = outputs.valid & np.all([outputs.errors[c] == "" for c in outputs.column_ids], axis=0)
    out = {}
    for variant in results["variants"]:
        if variant["id"] not in top1 or variant.get("n_failed"):
            continue
        flipped = top1[variant["id"]] != top1["reference"]
        out[variant["id"]] = flipped
        rate = 100 * flipped[outputs.valid & (outputs.errors[variant["id"]] == "")].mean()
        assert abs(rate - variant["flip_rate"]) < 1e-6, (variant["id"], rate, variant["flip_rate"])
    return {k: v[ok] for k, v in out.items()}, [s for s, keep in zip(outputs.sample_ids, ok) if keep]


def bootstrap_ci(per_sample: np.ndarray) -> list[float]:
    rng = np.random.default_rng(SEED)
    n = len(per_sample)
    means = [per_sample[rng.integers(0, n, n)].mean() for _ in range(RESAMPLES)]
    return [round(float(np.quantile(means, 0.025)), 2), round(float(np.quantile(means, 0.975)), 2)]


def mcnemar(a: np.ndarray, b: np.ndarray) -> float:
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    p = mcnemar_exact(only_a, only_b)
    if only_a + only_b:
        assert abs(p - binomtest(only_a, only_a + only_b, 0.5).pvalue) < 1e-9
    return p


def size(folders: list[str]) -> None:
    runs = [flips(*load(f)) for f in folders]
    names = [Path(f).name for f in folders]
    common = sorted(set.intersection(*(set(ids) for _, ids in runs)))
    aligned = []
    for flipped, ids in runs:
        index = {s: i for i, s in enumerate(ids)}
        rows = [index[s] for s in common]
        aligned.append({k: v[rows] for k, v in flipped.items()})
    variants = [v for v in aligned[0] if all(v in a for a in aligned)]
    print(f"n = {len(common)} photos in every run; flip rate % per variant")
    print("| variant | " + " | ".join(names) + f" | McNemar p ({names[0]} vs {names[-1]}) |")
    print("|---|" + "---|" * (len(names) + 1))
    for v in variants:
        print(
            f"| {v} | "
            + " | ".join(f"{100 * a[v].mean():.1f}" for a in aligned)
            + f" | {mcnemar(aligned[0][v], aligned[-1][v]):.3g} |"
        )
    per_photo = [np.mean([a[v] for v in variants], axis=0) * 100 for a in aligned]  # mean flip rate per photo
    print("\nmean flip rate over the variants (% of photos), 95% bootstrap CI over photos:")
    for name, values in zip(names, per_photo):
        print(f"  {name}: {values.mean():.2f} {bootstrap_ci(values)}")
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            d = per_photo[i] - per_photo[j]
            print(f"  {names[i]} - {names[j]}: {d.mean():.2f} {bootstrap_ci(d)} (paired over photos)")
    trend = [values.mean() for values in per_photo]
    print("  monotone decreasing with size:", all(a > b for a, b in zip(trend, trend[1:])))


def adapt(plain_folder: str, tent_folder: str) -> None:
    (plain_out, plain), (tent_out, tent) = load(plain_folder), load(tent_folder)
    assert plain_out.sample_ids == tent_out.sample_ids
    labeled = (plain_out.labels >= 0).any()
    print(
        f"reference top-1: {plain['reference'].get('top1')} plain, {tent['reference'].get('top1')} adapted"
        if labeled
        else "unlabeled: flips only"
    )
    same = plain_out.arrays["reference"]["topk"][:, 0] == tent_out.arrays["reference"]["topk"][:, 0]
    print(f"reference top-1 unchanged by adaptation on {100 * same.mean():.1f}% of {len(same)} samples")
    print("| variant | delta plain | delta adapted | flips % plain | flips % adapted | flip change [95% CI] |")
    print("|---|---|---|---|---|---|")
    (pf, pids), (tf, tids) = flips(plain_out, plain), flips(tent_out, tent)
    common = sorted(set(pids) & set(tids))
    pi, ti = ({s: i for i, s in enumerate(ids)} for ids in (pids, tids))
    by_id = {v["id"]: v for v in tent["variants"]}
    for v in plain["variants"]:
        if v["id"] not in pf or v["id"] not in tf:
            continue
        a = pf[v["id"]][[pi[s] for s in common]].astype(float) * 100
        b = tf[v["id"]][[ti[s] for s in common]].astype(float) * 100
        w = by_id[v["id"]]
        fmt = lambda x, ci: f"{x:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]" if x is not None else "-"
        print(
            f"| {v['id']} | {fmt(v.get('delta'), v.get('delta_ci') or [0, 0]) if labeled else '-'} | "
            f"{fmt(w.get('delta'), w.get('delta_ci') or [0, 0]) if labeled else '-'} | {a.mean():.2f} | "
            f"{b.mean():.2f} | {fmt((b - a).mean(), bootstrap_ci(b - a))} |"
        )


if __name__ == "__main__":
    {"size": lambda: size(sys.argv[2:]), "adapt": lambda: adapt(*sys.argv[2:4])}[sys.argv[1]]()
