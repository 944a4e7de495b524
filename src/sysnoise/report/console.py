"""The summary a person sees in the terminal at the end of a run."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from sysnoise.analysis.combine import effect, effect_ci
from sysnoise.analysis.metric import metric_of, places_of
from sysnoise.report import language
from sysnoise.report.columns import TERMINAL, columns_for, fmt, fmt_ci, value_of
from sysnoise.report.markdown import nothing_measured


def reference_lines(model_name: str, resolved) -> list[str]:
    """The reference pipeline a run measures against, each field with where its value came from,
    grouped by source (printed before any work, so a wrong baseline is seen at once)."""
    by_source: dict[str, list[str]] = {}
    for row in resolved.describe():
        value = row["value"]
        shown = (
            ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
            if isinstance(value, list)
            else (f"{value:g}" if isinstance(value, float) else str(value))
        )
        by_source.setdefault(row["source"], []).append(f"{row['field']}={shown or '()'}")
    lines = [f"sysnoise: {model_name}: reference pipeline (the baseline every delta is measured against):"]
    lines += [f"  {'; '.join(fields)}  [from {source}]" for source, fields in by_source.items()]
    return lines


NAME_MIN_WIDTH = 8  # numbers are never cut: the noise and option names wrap instead


def summary_table(results: dict, width: int):
    """The variants as a rich Table that fits `width` columns: the number columns that fit whole
    (a cell's full width each), the noise and option names wrapping in what is left."""
    ref, metric, places = results["reference"], metric_of(results), places_of(results)
    rows = results["variants"]
    columns = columns_for(rows, TERMINAL)
    widths = [max([len(c.title(metric))] + [len(c.text(v, places, metric)) for v in rows]) for c in columns]
    # each column costs its content, one space of padding either side and one border
    while columns and 1 + 2 * (NAME_MIN_WIDTH + 3) + sum(w + 3 for w in widths) > width:
        columns, widths = columns[:-1], widths[:-1]
    table = Table(
        title=f"{results['model']['name']}: reference {metric.label} {fmt(value_of(ref, metric), places)} "
        f"on {ref['n_labeled']} labeled / {ref['n']} samples"
    )
    for header in ("noise", "option"):
        table.add_column(header, overflow="fold", min_width=NAME_MIN_WIDTH)
    for column, column_width in zip(columns, widths):
        table.add_column(column.title(metric), justify="right", no_wrap=True, min_width=column_width)
    for v in rows:
        table.add_row(v["noise"], v["option"], *(c.text(v, places, metric) for c in columns))
    for noise in results["noises"]:
        if not noise["applies"]:
            table.add_row(noise["name"], "n/a", *("" for _ in columns))
    return table


def print_summary(results: dict, console=None) -> None:
    if results.get("task") == "language":
        return language.print_summary(results, console)
    console = console or Console()
    console.print(summary_table(results, console.width))
    console.print(f"* delta distinguishable from zero ({metric_of(results).test}, p < 0.05)")
    if nothing_measured(results):
        console.print(nothing_measured(results), markup=False, highlight=False, style="bold")
    for line in combined_lines(results, places_of(results)):
        console.print(line, markup=False, highlight=False)


def combined_lines(results: dict, places: int) -> list[str]:
    """The stepwise path and the deployment total, one line each step."""
    lines = []
    steps = results.get("stepwise", {}).get("steps", [])
    if steps:
        lines.append(f"stepwise ({results['stepwise']['order']}), cumulative:")
        lines += [
            f"  ({o['noise']}={o['option']} left out: same pipeline field {o['field']} as "
            f"{o['kept_noise']}={o['kept_option']}, worse alone)"
            for o in results["stepwise"].get("left_out", [])
        ]
    for s in steps:
        lines.append(
            f"  {s['step']}. +{s['added_noise']}={s['added_option']}: {fmt(effect(s), places)}"
            f"{'*' if s['distinguishable_from_zero'] else ''} {fmt_ci(effect_ci(s), places)}"
        )
    deploy = results.get("deploy")
    if deploy:
        total = deploy["total"]
        parts = ", ".join(
            f"{c['field']} alone {fmt(c['effect_alone'], places)} / last {fmt(c['effect_last'], places)}"
            for c in deploy["changes"]
        )
        lines.append(
            f"deployment: {fmt(effect(total), places)}{'*' if total['distinguishable_from_zero'] else ''} "
            f"{fmt_ci(effect_ci(total), places)} ({parts})"
        )
    return lines
