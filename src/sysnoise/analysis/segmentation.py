"""Segmentation analysis: mIoU and per-class IoU per column from per-image confusion counts, its
paired bootstrap, and how many pixels a variant relabels.

Each image stores its (classes x classes + missed) confusion counts, so the dataset's confusion is
their sum and a bootstrap resample's is a weighted sum: mIoU on a resample is exact and costs one
matrix product, which is why the interval uses the full default resample count.
"""

from __future__ import annotations

import math

import numpy as np

from sysnoise.analysis import statistics as st
from sysnoise.analysis.bootstrap import CachedMetric, percentile_interval
from sysnoise.analysis.metric import MIOU
from sysnoise.analysis.stats import VariantStats
from sysnoise.postprocess.segmentation import NO_PREDICTION, iou


def miou(counts: np.ndarray) -> float:
    """mIoU in points over classes present in the labels or the predictions; NaN when none is."""
    values = iou(counts)
    return float(100 * np.nanmean(values)) if np.isfinite(values).any() else math.nan


class SegmentationAnalysis:
    metric = MIOU

    def __init__(self, class_names: list[str] | None = None, resamples: int = st.DEFAULT_RESAMPLES):
        self.class_names, self.resamples = class_names, resamples

    def _counts(self, outputs, column_id: str, positions: np.ndarray) -> np.ndarray:
        counts = outputs.arrays[column_id]["confusion"][positions].astype(np.int64)
        failed = outputs.errors[column_id][positions] != ""
        if failed.any():  # a failed image predicts nothing: all its pixels are missed
            rows = outputs.arrays[outputs.column_ids[0]]["confusion"][positions][failed].sum(axis=2)
            counts[failed] = 0
            counts[failed, :, -1] = rows
        return counts

    def _metric(self, counts: np.ndarray):
        flat = counts.reshape(len(counts), -1)
        shape = counts.shape[1:]
        return CachedMetric(lambda indices: miou((np.bincount(indices, minlength=len(counts)) @ flat).reshape(shape)))

    def _per_class(self, counts: np.ndarray) -> dict[str, float | None]:
        values = iou(counts.sum(axis=0))
        names = self.class_names or [str(i) for i in range(len(values))]
        return {
            str(names[i]) if i < len(names) else str(i): (None if np.isnan(v) else float(100 * v))
            for i, v in enumerate(values)
        }

    def reference_metrics(self, outputs) -> dict:
        positions = np.flatnonzero(outputs.valid)
        counts = self._counts(outputs, outputs.column_ids[0], positions)
        total = counts.sum(axis=0)
        n = len(positions)
        ci = percentile_interval(self._metric(counts).prefill(n, self.resamples)) if n else None
        labeled = total.sum()
        return {
            "n": n,
            "n_labeled": n,
            "miou": miou(total),
            "miou_ci": ci,
            "pixel_accuracy": float(100 * np.trace(total[:, :-1]) / labeled) if labeled else None,
            "per_class_iou": self._per_class(counts),
            "unknown_label_pixels": int(outputs.arrays[outputs.column_ids[0]]["unknown"][positions].sum()),
        }

    def variant_stats(self, outputs, column_id: str, noise: str, option: str) -> VariantStats:
        reference_id = outputs.column_ids[0]
        positions = np.flatnonzero(outputs.valid)
        n = len(positions)
        ref_counts, counts = self._counts(outputs, reference_id, positions), self._counts(outputs, column_id, positions)
        comparison = (
            st.paired_bootstrap_metric(self._metric(ref_counts), self._metric(counts), n, resamples=self.resamples)
            if n
            else None
        )
        correct = lambda c: np.trace(c[:, :, :-1], axis1=1, axis2=2)  # noqa: E731  per-image correct pixels
        fewer, more = (
            int((correct(counts) < correct(ref_counts)).sum()),
            int((correct(counts) > correct(ref_counts)).sum()),
        )
        ref_grid, grid = outputs.arrays[reference_id]["grid"][positions], outputs.arrays[column_id]["grid"][positions]
        failed = outputs.errors[column_id][positions] != ""
        shown = ref_grid != NO_PREDICTION
        changed = ((grid != ref_grid) & shown).sum(axis=(1, 2)) / np.maximum(shown.sum(axis=(1, 2)), 1)
        changed[failed] = 1.0
        pct = 100 * changed
        low, high = st.paired_bootstrap_ci(pct) if n else (math.nan, math.nan)
        identical = (ref_counts == counts).all(axis=(1, 2)) & (ref_grid == grid).all(axis=(1, 2)) & ~failed
        total = counts.sum(axis=0)
        return VariantStats(
            id=column_id,
            noise=noise,
            option=option,
            n=n,
            n_labeled=n,
            metric=self.metric.key,
            value=miou(total),
            extra={
                "pixel_accuracy": float(100 * np.trace(total[:, :-1]) / total.sum()) if total.sum() else None,
                "per_class_iou": self._per_class(counts),
            },
            delta=comparison.delta if comparison else None,
            delta_ci=comparison.ci if comparison else None,
            p_value=comparison.p_value if comparison else None,
            correct_to_wrong=fewer,
            wrong_to_correct=more,
            flip_rate=float(pct.mean()) if n else math.nan,
            flip_ci=(float(low), float(high)),
            n_failed=int(failed.sum()),
            identical=float(100 * identical.mean()) if n else math.nan,
        )
