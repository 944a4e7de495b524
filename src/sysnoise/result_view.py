"""`Results`: a run's results.json as returned by the Python API, with its headline as attributes.

It is the results dictionary itself (a dict subclass: every key of results.json is there, and it
serialises as before); the attributes only read it.
"""

from __future__ import annotations

from typing import Any

from sysnoise.analysis.metric import metric_of
from sysnoise.report.columns import value_of


class Results(dict):
    """results.json of one run. `reference`: the reference metric; `deltas` / `flip_rates`: per
    variant id; `noise(name)`: a noise's summary; `to_frame()`: one row per variant (pandas)."""

    @property
    def task(self) -> str:
        return self["task"]

    @property
    def metric(self) -> str:
        return metric_of(self).key

    @property
    def reference(self) -> float | None:
        """The task metric under the reference pipeline (top-1 %, mAP, mIoU, ...)."""
        return value_of(self["reference"], metric_of(self))

    @property
    def deltas(self) -> dict[str, float | None]:
        """Reference minus variant, in the metric's points, per variant id (None without labels)."""
        return {v["id"]: v.get("delta") for v in self["variants"]}

    @property
    def flip_rates(self) -> dict[str, float]:
        """% of samples whose answer changed, per variant id."""
        return {v["id"]: v.get("flip_rate") for v in self["variants"]}

    def noise(self, name: str) -> dict[str, Any]:
        """One noise's row: stage, applies, and its summary (mean/max/std over its options)."""
        for row in self["noises"]:
            if row["name"] == name:
                return row
        raise KeyError(f"no noise {name!r} in this run; noises: {', '.join(n['name'] for n in self['noises'])}")

    def to_frame(self):
        """The variants as a pandas DataFrame (pandas is optional: `pip install pandas`)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("Results.to_frame needs pandas: pip install pandas") from None
        rows = [{k: v for k, v in row.items() if not isinstance(v, dict)} for row in self["variants"]]
        return pd.DataFrame(rows)
