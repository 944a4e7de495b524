"""What a task's metric is, for everything that shows it: its key in results.json, its label,
how finely it is printed, which way is better, the test behind its p-values, what a flip and a
c->w count mean, and its breakdown columns. The analysis writes it into results.json
(reference.metric_info); the reports read it from there, never from a task name."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Metric:
    key: str  # the field of a results row that holds it (top1, map, miou, acc, perplexity)
    label: str  # as a column header: top-1, mAP, mIoU, accuracy %
    table: str  # the paper's table of that shape
    test: str  # the paired test behind p
    flips: str  # what a flip is
    changes: str  # what c->w / w->c count
    places: int | None = None  # decimals; None: the resolution one sample gives (decimals_for)
    higher_is_better: bool = True  # a delta is a loss either way: reference minus variant, or the reverse
    breakdown: tuple[tuple[str, str], ...] = ()  # (row key, header) per breakdown column, the metric first
    per_class: tuple[str, str] | None = None  # (reference key, header) of per-class values

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> Metric:
        values = dict(values)
        values["breakdown"] = tuple(tuple(pair) for pair in values.get("breakdown", ()))
        if values.get("per_class") is not None:
            values["per_class"] = tuple(values["per_class"])
        return cls(**values)


MCNEMAR = "McNemar exact test"
BOOTSTRAP = "paired bootstrap over images (the interval inverted)"

TOP1 = Metric(
    "top1",
    "top-1",
    "Table 2",
    MCNEMAR,
    "% of samples whose top-1 changed",
    "samples the variant made wrong / right",
    breakdown=(("top1", "top-1"), ("top5", "top-5")),
)
MAP = Metric(
    "map",
    "mAP",
    "Table 3",
    BOOTSTRAP,
    "% of images whose confident detections (score >= 0.5) changed: not matched one to one by the same "
    "class at IoU >= 0.5",
    "images where the variant's confident detections find fewer / more objects (IoU >= 0.5)",
    places=2,
    breakdown=(
        ("map", "AP"),
        ("ap50", "AP50"),
        ("ap75", "AP75"),
        ("ap_small", "APs"),
        ("ap_medium", "APm"),
        ("ap_large", "APl"),
        ("ar100", "AR100"),
    ),
    per_class=("per_class_ap", "AP"),
)
MIOU = Metric(
    "miou",
    "mIoU",
    "Table 4",
    BOOTSTRAP,
    "% of labeled pixels whose predicted class changed (64 x 64 lattice per image, mean over images)",
    "images where the variant labels fewer / more pixels correctly",
    places=2,
    breakdown=(("miou", "mIoU"), ("pixel_accuracy", "pixel acc.")),
    per_class=("per_class_iou", "IoU"),
)
_ANSWERS = ("% of items whose answer changed", "items the variant made wrong / right")
ACC = Metric("acc", "accuracy %", "Table 5", MCNEMAR, *_ANSWERS, places=1)
ACC_NORM = Metric("acc_norm", "length-normalised accuracy %", "Table 5", MCNEMAR, *_ANSWERS, places=1)
PERPLEXITY = Metric(
    "perplexity",
    "perplexity",
    "Table 5",
    "paired bootstrap over texts",
    "% of next-token predictions that changed",
    "-",
    places=2,
    higher_is_better=False,
)

METRICS = {m.key: m for m in (TOP1, MAP, MIOU, ACC, ACC_NORM, PERPLEXITY)}


def metric_of(results: dict) -> Metric:
    """The run's metric: as its analysis recorded it (results.json written before metric_info
    existed: by its key)."""
    reference = results["reference"]
    if "metric_info" in reference:
        return Metric.from_dict(reference["metric_info"])
    return METRICS[reference.get("metric", TOP1.key)]


def decimals_for(n: int) -> int:
    """One sample moves an accuracy by 100/n points: print no finer than that resolution."""
    return max(0, min(3, math.ceil(math.log10(n / 100)))) if n > 0 else 0


def places_of(results: dict) -> int:
    """Decimals a report prints the run's numbers with: the metric's, else the sample resolution."""
    metric, reference = metric_of(results), results["reference"]
    if metric.places is not None:
        return metric.places
    return decimals_for(reference["n_labeled"] or reference["n"])
