"""Bootstrap helpers for metrics that are not means over samples (mAP, mIoU): the metric on each
resample memoised, and the percentile interval of the resampled values."""

from __future__ import annotations

import hashlib

import numpy as np

from sysnoise.analysis import statistics as st


class CachedMetric:
    """metric(indices) memoised on the indices. `prefill` computes the bootstrap's resamples ahead,
    from the very draws paired_bootstrap_metric makes (statistics.bootstrap_blocks), several at a
    time when a `batch` function (integer weights (B, n) -> (B,) values) is given; the bootstrap
    then finds them here, and the reference's values serve every variant."""

    CHUNK = 256  # resamples handed to `batch` together (it bounds its own memory)

    def __init__(self, fn, batch=None):
        self.fn, self.batch, self.values, self.filled = fn, batch, {}, None

    @staticmethod
    def _key(indices: np.ndarray) -> bytes:
        return hashlib.blake2b(np.ascontiguousarray(indices).tobytes(), digest_size=16).digest()

    def __call__(self, indices: np.ndarray) -> float:
        key = self._key(indices)
        if key not in self.values:
            self.values[key] = self.fn(indices)
        return self.values[key]

    def prefill(self, n: int, resamples: int, seed: int = st.DEFAULT_SEED) -> np.ndarray:
        """The metric on each bootstrap resample, in draw order (computed once)."""
        if self.filled is None:
            out = []
            for block in st.bootstrap_blocks(n, resamples, seed):
                for start in range(0, len(block), self.CHUNK):
                    rows = block[start : start + self.CHUNK]
                    if self.batch is None:
                        values = [self(r) for r in rows]
                    else:
                        values = self.batch(np.stack([np.bincount(r, minlength=n) for r in rows]))
                    for r, value in zip(rows, values):
                        self.values[self._key(r)] = float(value)
                        out.append(float(value))
            self.filled = np.asarray(out)
        return self.filled


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float] | None:
    values = values[np.isfinite(values)]
    if not values.size:
        return None
    alpha = (1 - level) / 2
    return tuple(float(v) for v in np.quantile(values, [alpha, 1 - alpha]))
