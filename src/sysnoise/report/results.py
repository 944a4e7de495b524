"""The results document: one JSON per run, schema-versioned, recomputable from outputs.npz."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

from sysnoise.analysis import combine
from sysnoise.analysis.summary import VariantStats, noise_summary, reference_metrics, variant_stats
from sysnoise.engine.outputs import RunOutputs
from sysnoise.engine.plan import Plan
from sysnoise.engine.store import atomic_write_text, digest
from sysnoise.errors import UserInputError
from sysnoise.pipeline.integrity import CORRUPT

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


def variant_stats_of(plan: Plan, outputs: RunOutputs, analysis=None) -> list[VariantStats]:
    """analysis: the task's statistics (analysis.detection / .segmentation: metric, reference_metrics,
    variant_stats); None for classification."""
    stats = analysis.variant_stats if analysis is not None else variant_stats
    return [stats(outputs, c.id, c.noise, c.option) for c in plan.columns[1:]]


def variant_row(plan: Plan, stats: VariantStats) -> dict:
    pipeline = next(c.pipeline for c in plan.columns if c.id == stats.id)
    return {
        **stats.to_dict(),
        "pipeline": pipeline.to_dict(),
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
    return {"n_corrupt": None if included else sum(str(s["reason"]).startswith(CORRUPT) for s in skipped),
            "include_corrupt": included}


def build_results(*, task: str, model: dict, dataset: dict, plan: Plan, outputs: RunOutputs,
                  noises: list[dict], environment: dict, run: dict, problems: list[dict], analysis=None) -> dict:
    """noises: [{name, stage, description, applies}] in the order the user asked for them."""
    stats = variant_stats_of(plan, outputs, analysis)
    variants = [variant_row(plan, s) for s in stats]
    by_noise: dict[str, list[VariantStats]] = {}
    for one in stats:
        by_noise.setdefault(one.noise, []).append(one)
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
        "dataset": {**dataset, "samples_sha256": samples_digest(outputs), **corrupt_count(skipped, run)},
        "reference": {"pipeline": plan.reference.to_dict(), "metric": analysis.metric if analysis else "top1",
                      **(analysis.reference_metrics(outputs) if analysis else reference_metrics(outputs))},
        "variants": variants,
        "noises": noise_rows,
        "skipped": skipped,
        "variant_failures": failures,
        "environment": environment,
        "run": run,
    })


def add_combined(results: dict, plan: Plan, outputs: RunOutputs, *, steps: list[combine.Step] | None = None,
                 order: str | None = None, deploy=None, analysis=None) -> dict:
    """Fold the second (combined) pass into the results: the stepwise table and/or the deployment
    attribution, each computed against the second pass's own reference column."""
    rows = {s.id: variant_row(plan, s) for s in variant_stats_of(plan, outputs, analysis)}
    rows = _clean(rows)
    if steps:
        omitted = combine.left_out(results, steps) if order == combine.GREEDY else []
        results["stepwise"] = combine.stepwise_table(steps, rows, order or "given", omitted)
    if deploy is not None:
        results["deploy"] = combine.attribution(plan.reference, deploy, rows)
    return results


def all_variant_rows(results: dict) -> list[dict]:
    """Every measured variant: single noises, then stepwise steps, then deployment variants."""
    return (list(results["variants"]) + list(results.get("stepwise", {}).get("steps", []))
            + list(results.get("deploy", {}).get("variants", [])))


def write_results(results: dict, path: Path) -> None:
    atomic_write_text(path, json.dumps(results, indent=1, sort_keys=False) + "\n")


REPORTS = ("report.md", "report.html", "report.csv")


def write_reports(results: dict, folder: Path) -> list[Path]:
    """Render report.md, report.html and report.csv from the results alone (figures are read from
    `folder`), which is all `sysnoise report` needs to re-render a stored run."""
    from sysnoise.report import csv, html, markdown

    folder = Path(folder)
    if results.get("task") == "language":  # its own report.md (the paper's Table 5 shape)
        from sysnoise.report import language

        atomic_write_text(folder / "report.md", encodable(language.render(results)))
        return [folder / "report.md"]
    written = []
    for name, text in (("report.md", markdown.render(results)), ("report.html", html.render(results, folder)),
                       ("report.csv", csv.render(results))):
        atomic_write_text(folder / name, encodable(text))
        written.append(folder / name)
    return written


def encodable(text: str) -> str:
    """`text` with any lone surrogate (an undecodable byte of a file or folder name the renderers
    did not escape) as a backslash escape, so writing it as UTF-8 cannot fail."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


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
