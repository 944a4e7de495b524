"""Train-by-test matrix (the paper's Tables 7 and 8): models trained under different systems, each
evaluated under the same test pipelines on the same samples, from their stored per-sample outputs.

Per cell: top-1 with a Wilson interval. Per row: mean and std over the test columns (ddof=1, as
`statistics.spread` and the paper), each with a percentile bootstrap interval. Because every row
saw the same samples, one set of resampled sample indices serves every row, so differences
between rows are paired: a mixed row's std minus a fixed row's std, and what a mixed row loses
against the model trained on exactly the test column's system ("matched"), with a McNemar p.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sysnoise.analysis import statistics as st
from sysnoise.analysis.classification import correct
from sysnoise.engine.outputs import RunOutputs
from sysnoise.pipeline.spec import Pipeline

SCHEMA = "sysnoise.matrix/1"

# The paper's test columns, in its order (Table 7: six resizes; Table 8: three decoders), with its
# column names; `--test paper-resize` stands for the whole FIELD=OPTION,... spec.
PAPER_LAYOUTS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "paper-resize": (
        "resize",
        (
            ("pillow-bilinear", "Pil-bilinear"),
            ("pillow-nearest", "Pil-nearest"),
            ("pillow-bicubic", "Pil-cubic"),
            ("opencv-nearest", "CV-nearest"),
            ("opencv-bilinear", "CV-bilinear"),
            ("opencv-bicubic", "CV-cubic"),
        ),
    ),
    "paper-decoder": ("decoder", (("pillow", "Pillow"), ("opencv", "OpenCV"), ("ffmpeg", "FFmpeg"))),
}


def expand_test(test: str) -> str:
    """A paper layout's name -> its FIELD=OPTION,... spec; any other spec unchanged."""
    if test not in PAPER_LAYOUTS:
        return test
    field, columns = PAPER_LAYOUTS[test]
    return f"{field}={','.join(option for option, _ in columns)}"


def paper_headers(field: str, tests: list[str]) -> list[str] | None:
    """The paper's column names when `tests` is exactly one of its layouts (same order), else None."""
    for layout_field, columns in PAPER_LAYOUTS.values():
        if layout_field == field and [option for option, _ in columns] == list(tests):
            return [header for _, header in columns]
    return None


@dataclass
class RowRun:
    label: str
    training: list[tuple[Pipeline, float]]  # the systems it trained with and how often (one: fixed)
    outputs: RunOutputs
    columns: dict[str, str]  # test option -> column id in outputs
    source: str = ""  # where the model came from (weights path or zoo name)


def training_of(card: dict, reference: Pipeline) -> list[tuple[Pipeline, float]]:
    """What a model trained with, from its record: `sysnoise train`'s JSON (its pipelines and their
    probabilities), a zoo card's training_system (one pipeline, or a list drawn uniformly), else
    its reference pipeline."""
    training, system = card.get("training"), card.get("training_system")
    if isinstance(training, dict) and "pipelines" in training:
        return [(Pipeline.from_dict(p), float(q)) for p, q in zip(training["pipelines"], training["probabilities"])]
    if isinstance(system, dict):
        return [(Pipeline.from_dict(system), 1.0)]
    if isinstance(system, list) and system:
        return [(Pipeline.from_dict(p), 1.0 / len(system)) for p in system]
    return [(reference, 1.0)]


def trained_values(row: RowRun, field: str) -> dict[str, float]:
    """The row's training distribution over `field`'s values."""
    out: dict[str, float] = {}
    for pipeline, probability in row.training:
        value = str(getattr(pipeline, field))
        out[value] = out.get(value, 0.0) + probability
    return out


def _hits(row: RowRun, option: str) -> np.ndarray:
    """(n,) bool over all samples: top-1 right and the column's pipeline went through."""
    column = row.columns[option]
    topk = row.outputs.arrays[column]["topk"]
    return correct(topk, row.outputs.labels, 1) & (row.outputs.errors[column] == "")


def _usable(rows: list[RowRun]) -> np.ndarray:
    first = rows[0].outputs
    for row in rows[1:]:
        if row.outputs.sample_ids != first.sample_ids or not np.array_equal(row.outputs.labels, first.labels):
            raise ValueError(
                f"rows {rows[0].label!r} and {row.label!r} were evaluated on different samples; "
                "a train-by-test matrix compares models on the same data"
            )
    keep = (first.labels >= 0).any(axis=1)
    for row in rows:  # samples a row's reference pipeline could not read are left out of every row
        keep &= row.outputs.valid
    return keep


def _bootstrap_accuracies(hits: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """hits (rows, cols, n) -> accuracies in % (rows, cols, resamples), the same resampled sample
    multiset for every row and column (multinomial counts, in blocks for bounded memory)."""
    rows, cols, n = hits.shape
    flat = hits.reshape(rows * cols, n).astype(np.float64)
    rng = np.random.default_rng(seed)
    out = np.empty((rows * cols, resamples))
    block = max(1, min(resamples, 4_000_000 // max(n, 1)))
    for start in range(0, resamples, block):
        stop = min(resamples, start + block)
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=stop - start)
        out[:, start:stop] = flat @ counts.T
    return (100.0 / n) * out.reshape(rows, cols, resamples)


def _interval(values: np.ndarray, level: float) -> list[float]:
    alpha = (1 - level) / 2
    low, high = np.quantile(values, [alpha, 1 - alpha])
    return [float(low), float(high)]


def compute(
    rows: list[RowRun],
    field: str,
    tests: list[str],
    *,
    level: float = 0.95,
    resamples: int = st.DEFAULT_RESAMPLES,
    seed: int = st.DEFAULT_SEED,
) -> dict:
    if not rows or not tests:
        raise ValueError("a matrix needs at least one row (model) and one test column")
    keep = _usable(rows)
    n = int(keep.sum())
    if n == 0:
        raise ValueError("no labeled sample went through every row's reference pipeline")
    hits = np.stack([np.stack([_hits(row, t)[keep] for t in tests]) for row in rows])  # (R, C, n)
    accuracy = 100.0 * hits.mean(axis=2)
    boot = _bootstrap_accuracies(hits, resamples, seed)  # (R, C, B)
    boot_mean = boot.mean(axis=1)
    boot_std = boot.std(axis=1, ddof=1) if len(tests) > 1 else np.zeros_like(boot_mean)  # as spread()

    described, matched_row = [], {}
    for r, row in enumerate(rows):
        values = trained_values(row, field)
        matched = next(iter(values)) if len(values) == 1 and next(iter(values)) in tests else None
        if matched is not None:
            matched_row.setdefault(matched, r)
        spread = st.spread(accuracy[r].tolist())
        described.append(
            {
                "label": row.label,
                "source": row.source,
                "trained": values,
                "kind": "mix" if len(values) > 1 else "fixed",
                "matched": matched,
                "training_pipelines": [{"pipeline": p.to_dict(), "probability": prob} for p, prob in row.training],
                "cells": [
                    {
                        "test": t,
                        "top1": float(accuracy[r, c]),
                        "correct": int(hits[r, c].sum()),
                        "ci": [100 * v for v in st.wilson_interval(int(hits[r, c].sum()), n, level)],
                    }
                    for c, t in enumerate(tests)
                ],
                "mean": spread["mean"],
                "mean_ci": _interval(boot_mean[r], level),
                "std": spread["std"],
                "std_ci": _interval(boot_std[r], level),
                "min": float(accuracy[r].min()),
                "max": float(accuracy[r].max()),
            }
        )

    comparisons, costs = [], []
    for r, row in enumerate(described):
        if row["kind"] != "mix":
            continue
        for f, other in enumerate(described):
            if other["kind"] == "fixed":
                comparisons.append(
                    {
                        "row": row["label"],
                        "against": other["label"],
                        "std_difference": row["std"] - other["std"],
                        "std_difference_ci": _interval(boot_std[r] - boot_std[f], level),
                        "mean_difference": row["mean"] - other["mean"],
                        "mean_difference_ci": _interval(boot_mean[r] - boot_mean[f], level),
                    }
                )
        for c, t in enumerate(tests):
            m = matched_row.get(t)
            if m is None:
                continue
            only_matched = int((hits[m, c] & ~hits[r, c]).sum())
            only_mix = int((~hits[m, c] & hits[r, c]).sum())
            costs.append(
                {
                    "row": row["label"],
                    "test": t,
                    "matched_row": described[m]["label"],
                    "matched_top1": float(accuracy[m, c]),
                    "top1": float(accuracy[r, c]),
                    "cost": float(accuracy[m, c] - accuracy[r, c]),
                    "cost_ci": _interval(boot[m, c] - boot[r, c], level),
                    "p_value": st.mcnemar_exact(only_matched, only_mix),
                }
            )
    return {
        "schema": SCHEMA,
        "field": field,
        "tests": list(tests),
        "n": n,
        "level": level,
        "resamples": resamples,
        "seed": seed,
        "rows": described,
        "mix_vs_fixed": comparisons,
        "mix_cost_vs_matched": costs,
    }
