"""From per-sample outputs to the numbers a report shows: metric per column, delta against the
reference with an interval and a paired test, flip rates, and a per-noise spread."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sysnoise.analysis import statistics as st
from sysnoise.engine.outputs import RunOutputs
from sysnoise.tasks import classification as task

SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class VariantStats:
    id: str
    noise: str
    option: str
    n: int  # valid samples
    n_labeled: int
    top1: float | None  # percent, None when nothing is labeled
    top5: float | None
    delta: float | None  # reference minus variant, percentage points (as the paper)
    delta_ci: tuple[float, float] | None
    p_value: float | None  # McNemar exact on top-1 correctness
    correct_to_wrong: int
    wrong_to_correct: int
    flip_rate: float  # percent of valid samples whose top-1 changed
    flip_ci: tuple[float, float]
    n_failed: int  # samples the variant could not process (counted as wrong and flipped)
    identical: float  # percent of samples with outputs bit-identical to the reference

    @property
    def distinguishable(self) -> bool:
        return self.p_value is not None and self.p_value < SIGNIFICANCE

    def to_dict(self) -> dict:
        out = dict(self.__dict__)
        out["distinguishable_from_zero"] = self.distinguishable
        return out


def reference_metrics(outputs: RunOutputs) -> dict:
    valid = outputs.valid
    labels = outputs.labels[valid]
    labeled = (labels >= 0).any(axis=1)
    topk = outputs.arrays[outputs.column_ids[0]]["topk"][valid]
    n_labeled = int(labeled.sum())
    pct = lambda mask: float(100 * mask[labeled].mean()) if n_labeled else None  # noqa: E731
    return {
        "n": int(valid.sum()),
        "n_labeled": n_labeled,
        "top1": pct(task.correct(topk, labels, 1)),
        "top5": pct(task.correct(topk, labels, 5)),
        "top1_ci": _ci_percent(task.correct(topk, labels, 1)[labeled]) if n_labeled else None,
    }


def _ci_percent(hits: np.ndarray) -> tuple[float, float]:
    low, high = st.wilson_interval(int(hits.sum()), int(hits.size))
    return (100 * low, 100 * high)


def variant_stats(outputs: RunOutputs, column_id: str, noise: str, option: str) -> VariantStats:
    valid = outputs.valid
    labels = outputs.labels[valid]
    labeled = (labels >= 0).any(axis=1)
    ref = outputs.arrays[outputs.column_ids[0]]
    var = outputs.arrays[column_id]
    ref_topk, var_topk = ref["topk"][valid], var["topk"][valid]
    failed = outputs.errors[column_id][valid] != ""
    flips = ~task.agree(ref_topk, var_topk) | failed
    identical = (ref_topk == var_topk).all(axis=1) & (ref["prob"][valid] == var["prob"][valid]).all(axis=1)
    n, n_labeled = int(valid.sum()), int(labeled.sum())

    top1 = top5 = delta = ci = p = None
    c2w = w2c = 0
    if n_labeled:
        ref_hit = task.correct(ref_topk, labels, 1)[labeled]
        var_hit = task.correct(var_topk, labels, 1)[labeled] & ~failed[labeled]
        top1 = float(100 * var_hit.mean())
        top5 = float(100 * (task.correct(var_topk, labels, 5)[labeled] & ~failed[labeled]).mean())
        diff = ref_hit.astype(np.int8) - var_hit.astype(np.int8)
        delta = float(100 * diff.mean())
        low, high = st.paired_bootstrap_ci(diff)
        ci = (100 * low, 100 * high)
        c2w, w2c = int((ref_hit & ~var_hit).sum()), int((~ref_hit & var_hit).sum())
        p = st.mcnemar_exact(c2w, w2c)
    flip_low, flip_high = st.wilson_interval(int(flips.sum()), n)
    return VariantStats(
        id=column_id, noise=noise, option=option, n=n, n_labeled=n_labeled, top1=top1, top5=top5,
        delta=delta, delta_ci=ci, p_value=p, correct_to_wrong=c2w, wrong_to_correct=w2c,
        flip_rate=float(100 * flips.mean()) if n else math.nan, flip_ci=(100 * flip_low, 100 * flip_high),
        n_failed=int(failed.sum()), identical=float(100 * identical.mean()) if n else math.nan,
    )


def noise_summary(stats: list[VariantStats]) -> dict:
    """Per noise: mean/max/std of the delta (labeled data) and of the flip rate over its options."""
    deltas = [s.delta for s in stats if s.delta is not None]
    return {
        "options": [s.option for s in stats],
        "delta": st.spread(deltas) if deltas else None,
        "flip_rate": st.spread([s.flip_rate for s in stats]),
        "worst_option": max(stats, key=lambda s: (s.delta if s.delta is not None else -math.inf, s.flip_rate)).option
        if stats else None,
    }
