"""The results document: one JSON per run, schema-versioned, recomputable from outputs.npz."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

from sysnoise.analysis.summary import noise_summary, reference_metrics, variant_stats
from sysnoise.engine.outputs import RunOutputs
from sysnoise.engine.plan import Plan
from sysnoise.engine.store import atomic_write_text
from sysnoise.errors import UserInputError

SCHEMA = "sysnoise.results/1"


def _clean(value):
    """JSON without NaN (not valid JSON): NaN becomes null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def build_results(*, task: str, model: dict, dataset: dict, plan: Plan, outputs: RunOutputs,
                  noises: list[dict], environment: dict, run: dict, problems: list[dict]) -> dict:
    """noises: [{name, stage, description, applies}] in the order the user asked for them."""
    variants, by_noise = [], {}
    for column in plan.columns[1:]:
        stats = variant_stats(outputs, column.id, column.noise, column.option)
        by_noise.setdefault(column.noise, []).append(stats)
        variants.append({
            **stats.to_dict(),
            "pipeline": column.pipeline.to_dict(),
            "changed": {k: [a, b] for k, (a, b) in plan.reference.diff(column.pipeline).items()},
        })
    noise_rows = [
        {**noise, "summary": noise_summary(by_noise[noise["name"]]) if noise["name"] in by_noise else None}
        for noise in noises
    ]

    valid = outputs.valid
    skipped = [
        {"id": sid, "reason": str(err)}
        for sid, err, ok in zip(outputs.sample_ids, outputs.errors["reference"], valid)
        if not ok
    ] + problems
    failures = {
        column_id: [{"id": sid, "reason": str(err)} for sid, err, ok in zip(outputs.sample_ids, errs, valid) if ok and err]
        for column_id, errs in outputs.errors.items()
        if column_id != "reference" and (errs[valid] != "").any()
    }
    return _clean({
        "schema": SCHEMA,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "task": task,
        "model": model,
        "dataset": dataset,
        "reference": {"pipeline": plan.reference.to_dict(), "metric": "top1", **reference_metrics(outputs)},
        "variants": variants,
        "noises": noise_rows,
        "skipped": skipped,
        "variant_failures": failures,
        "environment": environment,
        "run": run,
    })


def write_results(results: dict, path: Path) -> None:
    atomic_write_text(path, json.dumps(results, indent=1, sort_keys=False) + "\n")


def read_results(path: str | Path) -> dict:
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    try:
        results = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UserInputError(f"{path}: cannot read results: {err}") from None
    if not str(results.get("schema", "")).startswith("sysnoise.results/"):
        raise UserInputError(f"{path}: not a sysnoise results file (no schema field)")
    return results
