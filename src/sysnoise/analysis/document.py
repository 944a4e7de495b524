"""The results document (results.json, schema sysnoise.results/1) built from a run's outputs by
the task's analysis: every number the reports show is computed here, recomputable from
outputs.npz. Reports only format it."""

from __future__ import annotations

import datetime as dt
import math
from typing import Callable

from sysnoise.analysis import combine
from sysnoise.analysis.stats import VariantStats, noise_summary
from sysnoise.engine.outputs import RunOutputs
from sysnoise.engine.plan import Plan
from sysnoise.engine.store import digest
from sysnoise.pipeline.integrity import CORRUPT
from sysnoise.pipeline.spec import Pipeline

SCHEMA = "sysnoise.results/1"


def clean(value):
    """JSON without NaN (not valid JSON): NaN becomes null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def all_pipeline_fields(pipeline: Pipeline) -> dict:
    return pipeline.to_dict()


def variant_stats_of(plan: Plan, outputs: RunOutputs, analysis) -> list[VariantStats]:
    return [analysis.variant_stats(outputs, c.id, c.noise, c.option) for c in plan.columns[1:]]


def variant_row(plan: Plan, stats: VariantStats, view: Callable[[Pipeline], dict] = all_pipeline_fields) -> dict:
    pipeline = next(c.pipeline for c in plan.columns if c.id == stats.id)
    return {
        **stats.to_dict(),
        "pipeline": view(pipeline),
        "changed": {k: [a, b] for k, (a, b) in plan.reference.diff(pipeline).items()},
    }


def samples_digest(outputs: RunOutputs) -> str:
    """Identifies the evaluated data (ids and label sets) wherever it lives on disk: runs of
    different models on the same data share it, which is what a leaderboard groups by."""
    return digest({"ids": outputs.sample_ids, "labels": outputs.labels.tolist()})


def corrupt_count(skipped: list[dict], run: dict) -> dict:
    """Samples skipped because the pre-flight found their data corrupt (a dataset problem, not
    decoder noise): counted apart; null when they were measured (--include-corrupt)."""
    included = bool(run.get("include_corrupt"))
    return {
        "n_corrupt": None if included else sum(str(s["reason"]).startswith(CORRUPT) for s in skipped),
        "include_corrupt": included,
    }


def reference_row(analysis, outputs: RunOutputs, pipeline: dict) -> dict:
    """The reference column's numbers (its metric under the metric's key, its interval under
    KEY_ci) and the metric's metadata for the reports."""
    metric = analysis.metric
    return {
        "pipeline": pipeline,
        **analysis.reference_metrics(outputs),
        "metric": metric.key,
        "metric_info": metric.to_dict(),
    }


def build_results(
    *,
    task: str,
    analysis,
    model: dict,
    dataset: dict,
    plan: Plan,
    outputs: RunOutputs,
    noises: list[dict],
    environment: dict,
    run: dict,
    problems: list[dict] = (),
    view: Callable[[Pipeline], dict] = all_pipeline_fields,
    more: dict | None = None,
) -> dict:
    """noises: [{name, stage, description, applies}] in the order the user asked for them.
    view: the pipeline fields a task's rows show (text has no image pre-processing); more: the
    task's own top-level fields (a language run's scoring window)."""
    stats = variant_stats_of(plan, outputs, analysis)
    by_noise: dict[str, list[VariantStats]] = {}
    for one in stats:
        by_noise.setdefault(one.noise, []).append(one)
    valid = outputs.valid
    skipped = [
        {"id": sid, "reason": str(err)}
        for sid, err, ok in zip(outputs.sample_ids, outputs.errors["reference"], valid)
        if not ok
    ] + list(problems)
    failures = {
        column_id: [
            {"id": sid, "reason": str(err)} for sid, err, ok in zip(outputs.sample_ids, errs, valid) if ok and err
        ]
        for column_id, errs in outputs.errors.items()
        if column_id != "reference" and (errs[valid] != "").any()
    }
    return clean(
        {
            "schema": SCHEMA,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "task": task,
            "model": model,
            "dataset": {**dataset, "samples_sha256": samples_digest(outputs), **corrupt_count(skipped, run)},
            **(more or {}),
            "reference": reference_row(analysis, outputs, view(plan.reference)),
            "variants": [variant_row(plan, s, view) for s in stats],
            "noises": [
                {**noise, "summary": noise_summary(by_noise[noise["name"]]) if noise["name"] in by_noise else None}
                for noise in noises
            ],
            "skipped": skipped,
            "variant_failures": failures,
            "environment": environment,
            "run": {**run, "bootstrap_resamples": analysis.resamples},
        }
    )


def add_combined(
    results: dict,
    plan: Plan,
    outputs: RunOutputs,
    analysis,
    *,
    steps: list[combine.Step] | None = None,
    order: str | None = None,
    deploy=None,
) -> dict:
    """Fold the second (combined) pass into the results: the stepwise table and/or the deployment
    attribution, each computed against the second pass's own reference column."""
    rows = clean({s.id: variant_row(plan, s) for s in variant_stats_of(plan, outputs, analysis)})
    if steps:
        omitted = combine.left_out(results, steps) if order == combine.GREEDY else []
        results["stepwise"] = combine.stepwise_table(steps, rows, order or "given", omitted)
    if deploy is not None:
        results["deploy"] = combine.attribution(plan.reference, deploy, rows)
    return results


def all_variant_rows(results: dict) -> list[dict]:
    """Every measured variant: single noises, then stepwise steps, then deployment variants."""
    return (
        list(results["variants"])
        + list(results.get("stepwise", {}).get("steps", []))
        + list(results.get("deploy", {}).get("variants", []))
    )
