"""The run's summary as one JSON document (`--json`): what a script or CI step reads. The full
record stays results.json; this is its headline: the reference metric, each noise's spread and
each option's delta and flip rate with their intervals, and the gates that failed."""

from __future__ import annotations

from sysnoise.analysis.metric import metric_of
from sysnoise.report.columns import value_of

VARIANT_KEYS = (
    "id",
    "noise",
    "option",
    "delta",
    "delta_ci",
    "p_value",
    "distinguishable_from_zero",
    "flip_rate",
    "flip_ci",
    "n",
    "n_failed",
)


def summary(results: dict, failed_gates: list[dict] | None = None) -> dict:
    reference = results["reference"]
    metric = metric_of(results)
    doc = {
        "schema": "sysnoise.summary/1",
        "task": results["task"],
        "model": results["model"]["name"],
        "data": results["dataset"].get("name", results["dataset"]["path"]),
        "reference": {
            "metric": metric.key,
            "value": value_of(reference, metric),
            "ci": reference.get(f"{metric.key}_ci"),
            "n": reference.get("n"),
            "n_labeled": reference.get("n_labeled"),
        },
        "noises": [
            {"name": n["name"], "stage": n["stage"], "applies": n["applies"], "summary": n.get("summary")}
            for n in results["noises"]
        ],
        "variants": [{k: v.get(k) for k in VARIANT_KEYS} for v in results["variants"]],
        "gates": {"failed": failed_gates or []},
    }
    if results.get("stepwise"):
        last = results["stepwise"]["steps"][-1]
        doc["combined"] = {"combines": results["stepwise"].get("combines"), **{k: last.get(k) for k in VARIANT_KEYS}}
    if results.get("deploy"):
        doc["deploy"] = {k: results["deploy"]["total"].get(k) for k in VARIANT_KEYS}
    return doc
