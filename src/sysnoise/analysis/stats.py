"""One variant's numbers, the same shape for every task: its metric, the delta against the
reference with an interval and a paired test, flips, and the per-noise spread over options."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sysnoise.analysis import statistics as st

SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class VariantStats:
    id: str
    noise: str
    option: str
    n: int  # valid samples
    n_labeled: int
    metric: str  # the key of the task's metric (analysis.metric.Metric.key)
    value: float | None  # the variant's metric; None when nothing is labeled
    delta: float | None  # a loss: reference minus variant (lower-is-better metrics: the reverse)
    delta_ci: tuple[float, float] | None
    p_value: float | None  # the metric's paired test (Metric.test)
    correct_to_wrong: int
    wrong_to_correct: int
    flip_rate: float  # percent (Metric.flips says of what)
    flip_ci: tuple[float, float]
    n_failed: int  # samples the variant could not process (counted as wrong and flipped)
    identical: float  # percent of samples with outputs bit-identical to the reference
    extra: dict = field(default_factory=dict)  # the task's other numbers: top-5, AP50, per-class IoU, ...

    @property
    def distinguishable(self) -> bool:
        return self.p_value is not None and self.p_value < SIGNIFICANCE

    def to_dict(self) -> dict:
        """A results.json row: the metric under its own key (top1, map, acc...), the extra numbers flat."""
        out = {k: v for k, v in self.__dict__.items() if k not in ("metric", "value", "extra")}
        out[self.metric] = self.value
        out.update(self.extra)
        out["distinguishable_from_zero"] = self.distinguishable
        return out


def noise_summary(stats: list[VariantStats]) -> dict:
    """Per noise: mean/max/std of the delta (labeled data) and of the flip rate over its options."""
    deltas = [s.delta for s in stats if s.delta is not None]
    return {
        "options": [s.option for s in stats],
        "delta": st.spread(deltas) if deltas else None,
        "flip_rate": st.spread([s.flip_rate for s in stats]),
        "worst_option": max(stats, key=lambda s: (s.delta if s.delta is not None else -math.inf, s.flip_rate)).option
        if stats
        else None,
    }
