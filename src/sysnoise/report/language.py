"""The language task's results.json, report.md (paper Table 5 shape) and terminal table.

results.json has the vision document's shape (schema, task, model, dataset, reference,
variants, noises, environment, run); the reference and variant rows carry the language metric
(`metric`, `value`) instead of top-1/top-5, plus next-token agreement and log-likelihood change,
and for texts the harness's perplexity forms. Pipelines list only the model stage's fields: text
has no image pre-processing. `scoring` records the window the requests were scored in.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sysnoise.analysis import language as lang
from sysnoise.analysis.summary import noise_summary
from sysnoise.engine.outputs import RunOutputs
from sysnoise.engine.plan import Plan
from sysnoise.engine.store import atomic_write_text
from sysnoise.pipeline.spec import STAGES
from sysnoise.report.markdown import fmt, fmt_ci
from sysnoise.report.results import SCHEMA, _clean, samples_digest, variant_row

METRIC_NAMES = {"acc": "accuracy %", "acc_norm": "length-normalised accuracy %", "perplexity": "perplexity"}
LM_LIBRARIES = ("transformers", "tokenizers", "huggingface_hub", "accelerate", "gguf")
# Table 5's columns: the paper's FP16 and INT8, then the other reduced precisions measured here
# and the runtimes (ONNX Runtime float32 and INT8) when the run measured them
TABLE_OPTIONS = ("fp16", "int8-llm", "int8-dynamic", "bf16", "w8-weight-only", "w4-g128-weight-only", "attention-fp16",
                 "attention-bf16", "fp16-native", "bf16-native", "onnxruntime-lm", "onnxruntime-lm-int8",
                 "onnxruntime-lm-int8-reduce-range")
TABLE_NOISES = ("precision", "runtime")
MODEL_FIELDS = dict(STAGES)["model"]  # a language run's pipelines: the model stage only
PERPLEXITY_FORMS = (("token_perplexity", "token perplexity"), ("word_perplexity", "word perplexity"),
                    ("byte_perplexity", "byte perplexity"), ("bits_per_byte", "bits per byte"))


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in LM_LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _model_stage(pipeline: dict) -> dict:
    return {k: v for k, v in pipeline.items() if k in MODEL_FIELDS}


def build_results(*, model: dict, dataset: dict, plan: Plan, outputs: RunOutputs, noises: list[dict],
                  environment: dict, run: dict, scoring: dict | None = None) -> dict:
    """scoring: how requests were scored (LanguageTask.describe(): the window and its source)."""
    kind, metric = dataset["kind"], dataset["metric"]
    stats = [lang.variant_stats(outputs, c.id, c.noise, c.option, kind, metric) for c in plan.columns[1:]]
    by_noise: dict[str, list] = {}
    for one in stats:
        by_noise.setdefault(one.noise, []).append(one)
    valid = outputs.valid
    skipped = [{"id": sid, "reason": str(err)} for sid, err, ok in zip(outputs.sample_ids, outputs.errors["reference"], valid)
               if not ok]
    failures = {  # as for vision: per variant column, the items it failed on and why
        column_id: [{"id": sid, "reason": str(err)} for sid, err, ok in zip(outputs.sample_ids, errs, valid) if ok and err]
        for column_id, errs in outputs.errors.items()
        if column_id != "reference" and (errs[valid] != "").any()
    }
    environment = {**environment, "libraries": {**environment.get("libraries", {}), **_versions()}}
    return _clean({
        "schema": SCHEMA,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "task": "language",
        "model": model,
        "dataset": {**dataset, "samples_sha256": samples_digest(outputs)},
        "scoring": scoring,
        "reference": {"pipeline": _model_stage(plan.reference.to_dict()), **lang.reference_metrics(outputs, kind, metric)},
        "variants": [{**row, "pipeline": _model_stage(row["pipeline"])} for row in (variant_row(plan, s) for s in stats)],
        "noises": [{**n, "summary": noise_summary(by_noise[n["name"]]) if n["name"] in by_noise else None}
                   for n in noises],
        "skipped": skipped,
        "variant_failures": failures,
        "environment": environment,
        "run": run,
    })


def _places(results: dict) -> int:
    return 2 if results["reference"]["metric"] == "perplexity" else 1


def _all_failed(variant: dict) -> bool:
    """A column none of whose items ran (its model stage could not be built): no numbers to show."""
    return variant["n_failed"] > 0 and variant["n_failed"] >= variant["n"]


def _delta_cell(variant: dict | None, places: int) -> str:
    if variant is None:
        return "-"
    if _all_failed(variant):
        return "failed"
    star = "*" if variant["distinguishable_from_zero"] else ""
    return f"{fmt(variant['delta'], places)}{star} {fmt_ci(variant['delta_ci'], places)}"


def table5(runs: list[dict]) -> list[str]:
    """One row per run (model x task): FP32 metric, then each precision's (and runtime's) loss with
    its interval."""
    by_run = [{v["option"]: v for v in r["variants"] if v["noise"] in TABLE_NOISES} for r in runs]
    columns = [o for o in TABLE_OPTIONS if any(o in options for options in by_run)]
    lines = [
        "FP32: the reference's metric (accuracy: with its 95% Wilson interval). Other cells: the loss under that "
        "precision or runtime with its 95% paired bootstrap interval (accuracy: reference minus variant, points; "
        "perplexity: variant minus reference; positive = worse; * = distinguishable from zero, p < 0.05).",
        "",
        "| model | task | metric | FP32 | " + " | ".join(columns) + " |",
        "|---|---|---|---|" + "---|" * len(columns),
    ]
    for results, options in zip(runs, by_run):
        ref, places = results["reference"], _places(results)
        fp32 = fmt(ref["value"], places) + (f" {fmt_ci(ref['ci'], places)}" if ref.get("ci") else "")
        task = f"{results['dataset']['format']}: {Path(results['dataset']['path']).stem}"  # format and data set
        lines.append(f"| {results['model']['name']} | {task} | "
                     f"{METRIC_NAMES.get(ref['metric'], ref['metric'])} | {fp32} | "
                     + " | ".join(_delta_cell(options.get(o), places) for o in columns) + " |")
    return lines


def write_table(runs: list[dict], path: Path) -> Path:
    """Several runs' Table 5 rows in one markdown file (the language demo's summary)."""
    lines = ["# sysnoise language summary (paper Table 5 shape)", ""] + table5(runs) + [""]
    lines += [f"- {r['dataset']['format']}: {r['dataset']['path']}, {r['reference']['n']} items" for r in runs]
    atomic_write_text(path, "\n".join(lines + [""]))
    return path


def render(results: dict) -> str:
    ref, data = results["reference"], results["dataset"]
    places = _places(results)
    lines = [
        f"# sysnoise report: {results['model']['name']} on {data['path']}",
        "",
        f"Task: language, {data['format']} format ({ref['n']} items, {ref['tokens']} scored tokens), "
        f"{len(results['skipped'])} skipped. Created {results['created']}.",
        *_scoring_lines(results),
        "",
        "## Summary (paper Table 5 shape)",
        "",
        *table5([results]),
        "",
        "## Every option",
        "",
        "Value: the variant's metric. p: McNemar exact test (accuracy) or bootstrap (perplexity). Flips: % of "
        "items whose answer changed (the chosen ending, or the greedy tokens of the last word; for perplexity, "
        "% of next-token predictions that changed). Agreement: % of scored positions (first "
        "128 per item) with the same top-1 next token. |dLL|: mean absolute change of log-likelihood, nats per "
        "scored token. Identical: % of items whose log-likelihoods are bit-identical to the reference.",
        "",
        "| noise | option | value | delta | 95% CI | p | flips % | c->w | w->c | agreement % | |dLL| | identical % | failed |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v in results["variants"]:
        if _all_failed(v):
            lines.append(f"| {v['noise']} | {v['option']} | failed |" + " - |" * 9 + f" {v['n_failed']} |")
            continue
        star = "*" if v["distinguishable_from_zero"] else ""
        p = "-" if v["p_value"] is None else f"{v['p_value']:.3g}"
        lines.append(
            f"| {v['noise']} | {v['option']} | {fmt(v['value'], places)} | {fmt(v['delta'], places)}{star} | "
            f"{fmt_ci(v['delta_ci'], places)} | {p} | {fmt(v['flip_rate'], 1)} | {v['correct_to_wrong']} | "
            f"{v['wrong_to_correct']} | {fmt(v['token_agreement'], 2)} | {fmt(v['mean_abs_loglik_change'], 4)} | "
            f"{fmt(v['identical'], 0)} | {v['n_failed']} |"
        )
    lines += _perplexity_table(results)
    not_applicable = [f"{n['name']}" if not n["applies"] else f"{n['name']}={','.join(n['not_applicable'])}"
                      for n in results["noises"] if not n["applies"] or n.get("not_applicable")]
    if not_applicable:
        lines += ["", "Not applicable to this model or to text: " + "; ".join(not_applicable) + "."]
    lines += ["", "## Model", ""] + [f"- {k}: {v}" for k, v in results["model"].get("card", {}).items()]
    lines += [f"- source: {results['model']['source']}", f"- weights sha256: {results['model']['weights_sha256']}", ""]
    if results["skipped"]:
        lines += ["## Skipped items", ""] + [f"- `{s['id']}`: {s['reason']}" for s in results["skipped"]] + [""]
    for column, failures in results.get("variant_failures", {}).items():
        reasons: dict[str, int] = {}
        for failure in failures:
            reasons[failure["reason"]] = reasons.get(failure["reason"], 0) + 1
        lines += [f"## Failures under {column}", ""] + [f"- {n} items: {reason}" for reason, n in reasons.items()] + [""]
    env = results["environment"]
    lines += ["## Environment", "", f"- Python {env['python']} on {env['platform']}, CPU: {env['cpu']}"]
    lines += [f"- {name} {version}" for name, version in env["libraries"].items() if version]
    return "\n".join(lines + [""])


def _scoring_lines(results: dict) -> list[str]:
    scoring = results.get("scoring")
    if not scoring:
        return []
    return ["", f"Scored in windows of {scoring['window_tokens']} tokens ({scoring['window_from']}); texts longer "
                f"than a window in rolling windows as {scoring['rolling_windows']}."]


def _perplexity_table(results: dict) -> list[str]:
    """Texts: token perplexity beside the harness's word and byte perplexity and bits per byte."""
    rows = [("reference", "", results["reference"].get("perplexities"))]
    rows += [(v["noise"], v["option"], v.get("perplexities")) for v in results["variants"] if not _all_failed(v)]
    if rows[0][2] is None:
        return []
    forms = rows[0][2]
    lines = ["", "## Perplexity forms", "",
             f"The same summed log-likelihood per scored token, per word ({forms['words']} words: whitespace-separated, "
             f"as the harness counts them) and per UTF-8 byte ({forms['bytes']} bytes), as lm-evaluation-harness "
             "reports them for rolling log-likelihood tasks.", "",
             "| noise | option | " + " | ".join(label for _, label in PERPLEXITY_FORMS) + " |",
             "|---|---|" + "---|" * len(PERPLEXITY_FORMS)]
    for noise, option, values in rows:
        if values:
            lines.append(f"| {noise} | {option} | " + " | ".join(fmt(values[key], 4) for key, _ in PERPLEXITY_FORMS) + " |")
    return lines


def print_summary(results: dict, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    if not console.is_terminal:  # a log file: rich would squeeze the columns into 80 characters
        console.width = max(console.width, 130)
    ref = results["reference"]
    places = _places(results)
    table = Table(title=f"{results['model']['name']} on {results['dataset']['format']}: FP32 "
                        f"{METRIC_NAMES.get(ref['metric'], ref['metric'])} {fmt(ref['value'], places)} ({ref['n']} items)")
    for header in ("noise", "option", "value", "delta", "95% CI", "flips %", "agreement %", "|dLL|"):
        table.add_column(header, justify="left" if header in ("noise", "option") else "right", no_wrap=True)
    for v in results["variants"]:
        if _all_failed(v):
            table.add_row(v["noise"], v["option"], "failed", *["-"] * 5)
            continue
        table.add_row(v["noise"], v["option"], fmt(v["value"], places),
                      fmt(v["delta"], places) + ("*" if v["distinguishable_from_zero"] else ""),
                      fmt_ci(v["delta_ci"], places), fmt(v["flip_rate"], 1), fmt(v["token_agreement"], 2),
                      fmt(v["mean_abs_loglik_change"], 4))
    console.print(table)
    console.print("delta: loss (positive = worse); * distinguishable from zero (p < 0.05)")
