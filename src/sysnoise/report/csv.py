"""report.csv: one row per measured variant (single noises, stepwise steps, deployment variants),
after one row for the reference. Numbers are unrounded: the file is for programs, which can
apply their own precision; the human reports round to what the data supports."""

from __future__ import annotations

import csv
import io

from sysnoise.report.results import all_variant_rows

COLUMNS = (
    "kind", "id", "noise", "option", "n", "n_labeled", "metric", "value", "top5", "delta", "delta_ci_low",
    "delta_ci_high", "p_value", "distinguishable_from_zero", "flip_rate", "flip_ci_low", "flip_ci_high",
    "correct_to_wrong", "wrong_to_correct", "identical", "n_failed", "changed", "left_out",
)


def _kind(row: dict) -> str:
    return {"combined": "stepwise", "deploy": "deploy"}.get(row["noise"], "single")


def _pair(values, index: int):
    return "" if not values else values[index]


def _cell(value):
    return "" if value is None else value


def render(results: dict) -> str:
    reference = results["reference"]
    metric = reference.get("metric", "top1")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerow({
        "kind": "reference", "id": "reference", "n": reference["n"], "n_labeled": reference["n_labeled"],
        "metric": metric, "value": _cell(reference.get(metric)), "top5": _cell(reference.get("top5")),
    })
    for row in all_variant_rows(results):
        writer.writerow({
            "kind": _kind(row), "id": row["id"], "noise": row["noise"], "option": row["option"],
            "n": row["n"], "n_labeled": row["n_labeled"], "metric": metric, "value": _cell(row.get(metric)),
            "top5": _cell(row.get("top5")), "delta": _cell(row["delta"]),
            "delta_ci_low": _pair(row["delta_ci"], 0), "delta_ci_high": _pair(row["delta_ci"], 1),
            "p_value": _cell(row["p_value"]), "distinguishable_from_zero": row["distinguishable_from_zero"],
            "flip_rate": _cell(row["flip_rate"]), "flip_ci_low": _pair(row["flip_ci"], 0),
            "flip_ci_high": _pair(row["flip_ci"], 1), "correct_to_wrong": row["correct_to_wrong"],
            "wrong_to_correct": row["wrong_to_correct"], "identical": _cell(row["identical"]),
            "n_failed": row["n_failed"],
            "changed": "; ".join(f"{field}: {a} -> {b}" for field, (a, b) in row["changed"].items()),
            "left_out": "; ".join(f"{o['noise']}={o['option']} (same field {o['field']} as {o['kept_noise']})"
                                  for o in results.get("stepwise", {}).get("left_out", []))
            if _kind(row) == "stepwise" else "",
        })
    return buffer.getvalue()
