"""Statistics for paired comparisons on the same samples: bootstrap intervals, McNemar's exact
test, Wilson intervals. Pure numpy/math, seeded, so two runs print the same numbers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0


def paired_bootstrap_ci(
    differences: np.ndarray, level: float = 0.95, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED
) -> tuple[float, float]:
    """Percentile interval for the mean of per-sample differences, resampling samples.

    When the differences take few distinct values (paired 0/1 correctness gives -1, 0, +1), a
    bootstrap resample is fully described by how often each value is drawn, which a multinomial
    draw gives directly: exact, and independent of the number of samples in cost.
    """
    d = np.asarray(differences, dtype=np.float64)
    if d.size == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    values, counts = np.unique(d, return_counts=True)
    if values.size <= 16:
        draws = rng.multinomial(d.size, counts / d.size, size=resamples)
        means = draws @ values / d.size
    else:
        means = np.empty(resamples)
        for start in range(0, resamples, 256):  # bounded memory for large n
            stop = min(resamples, start + 256)
            idx = rng.integers(0, d.size, size=(stop - start, d.size))
            means[start:stop] = d[idx].mean(axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(low), float(high)


@dataclass(frozen=True)
class PairedComparison:
    """A difference between two columns on the same samples, with its bootstrap interval and test."""

    delta: float  # metric(reference) - metric(variant) on all samples
    ci: tuple[float, float]
    p_value: float


@dataclass(frozen=True)
class PairedHits:
    """Two columns' per-sample correctness compared: the accuracy loss in points with its paired
    bootstrap interval, the discordant counts and McNemar's exact p."""

    delta: float  # points: reference accuracy minus variant accuracy
    ci: tuple[float, float]
    correct_to_wrong: int
    wrong_to_correct: int
    p_value: float


def paired_hits(reference: np.ndarray, variant: np.ndarray, resamples: int = DEFAULT_RESAMPLES) -> PairedHits:
    """reference, variant: (n,) bool, the same samples right under each column."""
    diff = reference.astype(np.int8) - variant.astype(np.int8)
    low, high = paired_bootstrap_ci(diff, resamples=resamples)
    c2w, w2c = int((reference & ~variant).sum()), int((~reference & variant).sum())
    return PairedHits(float(100 * diff.mean()), (100 * low, 100 * high), c2w, w2c, mcnemar_exact(c2w, w2c))


def wilson_percent(hits: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The Wilson interval of a proportion of (n,) bool hits, in percent."""
    low, high = wilson_interval(int(hits.sum()), int(hits.size), level)
    return (100 * low, 100 * high)


def bootstrap_blocks(n: int, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED):
    """The resampled index arrays paired_bootstrap_metric uses, in (<= 256, n) blocks: bounded
    memory, few rng calls. A metric can compute a whole block at once from the same draws."""
    rng = np.random.default_rng(seed)
    for start in range(0, resamples, 256):
        yield rng.integers(0, n, size=(min(256, resamples - start), n))


def paired_bootstrap_metric(
    metric_reference: Callable[[np.ndarray], float],
    metric_variant: Callable[[np.ndarray], float],
    n: int,
    level: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> PairedComparison:
    """Paired bootstrap for metrics that are not a mean over samples (mAP, mIoU).

    Each metric takes an array of sample indices (with repeats) and returns the metric on that
    multiset. Both columns are evaluated on the same resampled indices, which keeps the pairing.
    The p-value inverts the interval (the smallest level at which it excludes 0): two-sided,
    with the (k + 1) / (B + 1) correction so that a finite resample count never claims p = 0.
    """
    if n <= 0:
        return PairedComparison(math.nan, (math.nan, math.nan), math.nan)
    everything = np.arange(n)
    delta = float(metric_reference(everything) - metric_variant(everything))
    if math.isnan(delta):  # a metric undefined on these samples (no ground truth): nothing to test
        return PairedComparison(math.nan, (math.nan, math.nan), math.nan)
    deltas = np.asarray(
        [
            metric_reference(indices) - metric_variant(indices)
            for block in bootstrap_blocks(n, resamples, seed)
            for indices in block
        ]
    )
    alpha = (1 - level) / 2
    low, high = np.quantile(deltas, [alpha, 1 - alpha])
    below, above = int((deltas <= 0).sum()), int((deltas >= 0).sum())
    p = min(1.0, 2 * (min(below, above) + 1) / (resamples + 1))
    return PairedComparison(delta, (float(low), float(high)), p)


def mcnemar_exact(only_reference_right: int, only_variant_right: int) -> float:
    """Two-sided exact McNemar p-value from the two discordant counts (binomial, p = 1/2)."""
    b, c = int(only_reference_right), int(only_variant_right)
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


def wilson_interval(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    if trials == 0:
        return (math.nan, math.nan)
    z = _normal_quantile(1 - (1 - level) / 2)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return (max(0.0, centre - half), min(1.0, centre + half))


def _normal_quantile(p: float) -> float:
    # Inverse of the standard normal CDF by bisection on erf: exact enough, no scipy import.
    low, high = -10.0, 10.0
    for _ in range(100):
        mid = (low + high) / 2
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < p:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def spread(values: list[float]) -> dict[str, float]:
    """Mean, max and sample std (ddof=1) over a noise's options: the paper's Table 7 uses ddof=1."""
    if not values:
        return {"mean": math.nan, "max": math.nan, "std": math.nan}
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "max": float(arr.max()), "std": float(arr.std(ddof=1)) if arr.size > 1 else 0.0}
