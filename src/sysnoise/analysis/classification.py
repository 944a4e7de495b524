"""Classification's numbers from per-sample outputs: top-1/top-5 per column, the top-1 delta
against the reference with a paired bootstrap interval and McNemar's exact test, flip rates.

Labels are sets of acceptable classes (tasks/classification.py); a sample with an empty set is
unlabeled and counts only towards agreement with the reference."""

from __future__ import annotations

import math

import numpy as np

from sysnoise.analysis import statistics as st
from sysnoise.analysis.metric import TOP1
from sysnoise.analysis.stats import VariantStats
from sysnoise.engine.outputs import RunOutputs


def correct(topk: np.ndarray, labels: np.ndarray, k: int = 1) -> np.ndarray:
    """(n,) bool: one of the first k predictions is in the sample's label set."""
    hits = (topk[:, :k, None] == labels[:, None, :]) & (labels[:, None, :] >= 0)
    return hits.any(axis=(1, 2))


def agree(reference_topk: np.ndarray, variant_topk: np.ndarray) -> np.ndarray:
    """(n,) bool: the variant's top-1 equals the reference's top-1."""
    return reference_topk[:, 0] == variant_topk[:, 0]


class ClassificationAnalysis:
    metric = TOP1
    resamples = st.DEFAULT_RESAMPLES

    def reference_metrics(self, outputs: RunOutputs) -> dict:
        valid = outputs.valid
        labels = outputs.labels[valid]
        labeled = (labels >= 0).any(axis=1)
        topk = outputs.arrays[outputs.column_ids[0]]["topk"][valid]
        n_labeled = int(labeled.sum())
        pct = lambda mask: float(100 * mask[labeled].mean()) if n_labeled else None  # noqa: E731
        return {
            "n": int(valid.sum()),
            "n_labeled": n_labeled,
            "top1": pct(correct(topk, labels, 1)),
            "top5": pct(correct(topk, labels, 5)),
            "top1_ci": st.wilson_percent(correct(topk, labels, 1)[labeled]) if n_labeled else None,
        }

    def variant_stats(self, outputs: RunOutputs, column_id: str, noise: str, option: str) -> VariantStats:
        valid = outputs.valid
        labels = outputs.labels[valid]
        labeled = (labels >= 0).any(axis=1)
        ref = outputs.arrays[outputs.column_ids[0]]
        var = outputs.arrays[column_id]
        ref_topk, var_topk = ref["topk"][valid], var["topk"][valid]
        failed = outputs.errors[column_id][valid] != ""
        flips = ~agree(ref_topk, var_topk) | failed
        identical = (ref_topk == var_topk).all(axis=1) & (ref["prob"][valid] == var["prob"][valid]).all(axis=1)
        n, n_labeled = int(valid.sum()), int(labeled.sum())

        top1 = top5 = compared = None
        if n_labeled:
            var_hit = correct(var_topk, labels, 1)[labeled] & ~failed[labeled]
            top1 = float(100 * var_hit.mean())
            top5 = float(100 * (correct(var_topk, labels, 5)[labeled] & ~failed[labeled]).mean())
            compared = st.paired_hits(correct(ref_topk, labels, 1)[labeled], var_hit, self.resamples)
        return VariantStats(
            id=column_id,
            noise=noise,
            option=option,
            n=n,
            n_labeled=n_labeled,
            metric=self.metric.key,
            value=top1,
            delta=compared.delta if compared else None,
            delta_ci=compared.ci if compared else None,
            p_value=compared.p_value if compared else None,
            correct_to_wrong=compared.correct_to_wrong if compared else 0,
            wrong_to_correct=compared.wrong_to_correct if compared else 0,
            flip_rate=float(100 * flips.mean()) if n else math.nan,
            flip_ci=st.wilson_percent(flips),
            n_failed=int(failed.sum()),
            identical=float(100 * identical.mean()) if n else math.nan,
            extra={"top5": top5},
        )
