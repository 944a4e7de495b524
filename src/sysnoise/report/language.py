"""The language task's report.md (paper Table 5 shape) and terminal table.

A language run's results.json has the vision document's shape (analysis/document.py); its rows
carry next-token agreement and log-likelihood change beside the metric, and for texts the
harness's perplexity forms. `scoring` records the window the requests were scored in.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from sysnoise.analysis.metric import metric_of, places_of
from sysnoise.engine.store import atomic_write_text
from sysnoise.report.columns import TERMINAL, columns_for, fmt, fmt_ci, value_of

# Table 5's columns: the paper's FP16 and INT8, then the other reduced precisions measured here
# and the runtimes (ONNX Runtime float32 and INT8) when the run measured them
TABLE_OPTIONS = (
    "fp16",
    "int8-llm",
    "int8-dynamic",
    "bf16",
    "w8-weight-only",
    "w4-g128-weight-only",
    "attention-fp16",
    "attention-bf16",
    "fp16-native",
    "bf16-native",
    "onnxruntime-lm",
    "onnxruntime-lm-int8",
    "onnxruntime-lm-int8-reduce-range",
)
TABLE_NOISES = ("precision", "runtime")
PERPLEXITY_FORMS = (
    ("token_perplexity", "token perplexity"),
    ("word_perplexity", "word perplexity"),
    ("byte_perplexity", "byte perplexity"),
    ("bits_per_byte", "bits per byte"),
)


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
        ref, places = results["reference"], places_of(results)
        metric = metric_of(results)
        ci = ref.get(f"{metric.key}_ci", ref.get("ci"))
        fp32 = fmt(value_of(ref, metric), places) + (f" {fmt_ci(ci, places)}" if ci else "")
        task = f"{results['dataset']['format']}: {Path(results['dataset']['path']).stem}"  # format and data set
        lines.append(
            f"| {results['model']['name']} | {task} | "
            f"{metric_of(results).label} | {fp32} | "
            + " | ".join(_delta_cell(options.get(o), places) for o in columns)
            + " |"
        )
    return lines


def write_table(runs: list[dict], path: Path) -> Path:
    """Several runs' Table 5 rows in one markdown file (the language demo's summary)."""
    lines = ["# sysnoise language summary (paper Table 5 shape)", ""] + table5(runs) + [""]
    lines += [f"- {r['dataset']['format']}: {r['dataset']['path']}, {r['reference']['n']} items" for r in runs]
    atomic_write_text(path, "\n".join(lines + [""]))
    return path


def render(results: dict) -> str:
    ref, data = results["reference"], results["dataset"]
    places = places_of(results)
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
    ]
    metric, columns = metric_of(results), columns_for(results["variants"])
    lines += ["| " + " | ".join(c.title(metric) for c in columns) + " |", "|" + "---|" * len(columns)]
    for v in results["variants"]:
        if _all_failed(v):
            lines.append(
                f"| {v['noise']} | {v['option']} | failed |" + " - |" * (len(columns) - 4) + f" {v['n_failed']} |"
            )
            continue
        lines.append("| " + " | ".join(c.text(v, places, metric) for c in columns) + " |")
    lines += _perplexity_table(results)
    not_applicable = [
        f"{n['name']}" if not n["applies"] else f"{n['name']}={','.join(n['not_applicable'])}"
        for n in results["noises"]
        if not n["applies"] or n.get("not_applicable")
    ]
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
        lines += (
            [f"## Failures under {column}", ""] + [f"- {n} items: {reason}" for reason, n in reasons.items()] + [""]
        )
    env = results["environment"]
    lines += ["## Environment", "", f"- Python {env['python']} on {env['platform']}, CPU: {env['cpu']}"]
    lines += [f"- {name} {version}" for name, version in env["libraries"].items() if version]
    return "\n".join(lines + [""])


def _scoring_lines(results: dict) -> list[str]:
    scoring = results.get("scoring")
    if not scoring:
        return []
    return [
        "",
        f"Scored in windows of {scoring['window_tokens']} tokens ({scoring['window_from']}); texts longer "
        f"than a window in rolling windows as {scoring['rolling_windows']}.",
    ]


def _perplexity_table(results: dict) -> list[str]:
    """Texts: token perplexity beside the harness's word and byte perplexity and bits per byte."""
    rows = [("reference", "", results["reference"].get("perplexities"))]
    rows += [(v["noise"], v["option"], v.get("perplexities")) for v in results["variants"] if not _all_failed(v)]
    if rows[0][2] is None:
        return []
    forms = rows[0][2]
    lines = [
        "",
        "## Perplexity forms",
        "",
        f"The same summed log-likelihood per scored token, per word ({forms['words']} words: whitespace-separated, "
        f"as the harness counts them) and per UTF-8 byte ({forms['bytes']} bytes), as lm-evaluation-harness "
        "reports them for rolling log-likelihood tasks.",
        "",
        "| noise | option | " + " | ".join(label for _, label in PERPLEXITY_FORMS) + " |",
        "|---|---|" + "---|" * len(PERPLEXITY_FORMS),
    ]
    for noise, option, values in rows:
        if values:
            lines.append(
                f"| {noise} | {option} | " + " | ".join(fmt(values[key], 4) for key, _ in PERPLEXITY_FORMS) + " |"
            )
    return lines


def print_summary(results: dict, console=None) -> None:
    console = console or Console()
    if not console.is_terminal:  # a log file: rich would squeeze the columns into 80 characters
        console.width = max(console.width, 130)
    ref, metric, places = results["reference"], metric_of(results), places_of(results)
    columns = columns_for(results["variants"], TERMINAL + ("token_agreement", "mean_abs_loglik_change"))
    table = Table(
        title=f"{results['model']['name']} on {results['dataset']['format']}: FP32 "
        f"{metric.label} {fmt(value_of(ref, metric), places)} ({ref['n']} items)"
    )
    for header in ["noise", "option"] + [c.title(metric) for c in columns]:
        table.add_column(header, justify="left" if header in ("noise", "option") else "right", no_wrap=True)
    for v in results["variants"]:
        if _all_failed(v):
            table.add_row(v["noise"], v["option"], "failed", *["-"] * (len(columns) - 1))
            continue
        table.add_row(v["noise"], v["option"], *(c.text(v, places, metric) for c in columns))
    console.print(table)
    console.print("delta: loss (positive = worse); * distinguishable from zero (p < 0.05)")
