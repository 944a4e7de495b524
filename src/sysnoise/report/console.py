"""The summary a person sees in the terminal at the end of a run."""

from __future__ import annotations

from sysnoise.report.markdown import fmt, fmt_ci, metric_label, nothing_measured, places_for, task_words


def reference_lines(model_name: str, resolved) -> list[str]:
    """The reference pipeline a run measures against, each field with where its value came from,
    grouped by source (printed before any work, so a wrong baseline is seen at once)."""
    by_source: dict[str, list[str]] = {}
    for row in resolved.describe():
        value = row["value"]
        shown = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) if isinstance(value, list) else (
            f"{value:g}" if isinstance(value, float) else str(value))
        by_source.setdefault(row["source"], []).append(f"{row['field']}={shown or '()'}")
    lines = [f"sysnoise: {model_name}: reference pipeline (the baseline every delta is measured against):"]
    lines += [f"  {'; '.join(fields)}  [from {source}]" for source, fields in by_source.items()]
    return lines


# (header, cell of a variant row) for the number columns, in the order they are dropped last to
# first when the terminal is narrow; numbers are never cut, names wrap instead.
NAME_MIN_WIDTH = 8


def _number_columns(results: dict, places: int, metric: str, label: str) -> list[tuple[str, object]]:
    return [
        (label, lambda v: fmt(v[metric], places)),
        ("delta", lambda v: fmt(v["delta"], places) + ("*" if v["distinguishable_from_zero"] else "")),
        ("95% CI", lambda v: fmt_ci(v["delta_ci"], places)),
        ("flips %", lambda v: fmt(v["flip_rate"], places)),
        ("identical %", lambda v: fmt(v["identical"], 0)),
    ]


def summary_table(results: dict, width: int):
    """The variants as a rich Table that fits `width` columns: the number columns that fit whole
    (a cell's full width each), the noise and option names wrapping in what is left."""
    from rich.table import Table

    ref = results["reference"]
    places, metric, label = places_for(results), ref.get("metric", "top1"), metric_label(results)
    columns = _number_columns(results, places, metric, label)
    rows = results["variants"]
    widths = [max([len(header)] + [len(cell(v)) for v in rows]) for header, cell in columns]
    # each column costs its content, one space of padding either side and one border
    while columns and 1 + 2 * (NAME_MIN_WIDTH + 3) + sum(w + 3 for w in widths) > width:
        columns, widths = columns[:-1], widths[:-1]
    table = Table(title=f"{results['model']['name']}: reference {label} {fmt(ref[metric], places)} "
                        f"on {ref['n_labeled']} labeled / {ref['n']} samples")
    for header in ("noise", "option"):
        table.add_column(header, overflow="fold", min_width=NAME_MIN_WIDTH)
    for (header, _), column_width in zip(columns, widths):
        table.add_column(header, justify="right", no_wrap=True, min_width=column_width)
    for v in rows:
        table.add_row(v["noise"], v["option"], *(cell(v) for _, cell in columns))
    for noise in results["noises"]:
        if not noise["applies"]:
            table.add_row(noise["name"], "n/a", *("" for _ in columns))
    return table


def print_summary(results: dict, console=None) -> None:
    from rich.console import Console

    if results.get("task") == "language":
        from sysnoise.report import language

        return language.print_summary(results, console)
    console = console or Console()
    console.print(summary_table(results, console.width))
    console.print(f"* delta distinguishable from zero ({task_words(results)['test']}, p < 0.05)")
    if nothing_measured(results):
        console.print(nothing_measured(results), markup=False, highlight=False, style="bold")
    for line in combined_lines(results, places_for(results)):
        console.print(line, markup=False, highlight=False)


def combined_lines(results: dict, places: int) -> list[str]:
    """The stepwise path and the deployment total, one line each step."""
    from sysnoise.analysis.combine import effect, effect_ci

    lines = []
    steps = results.get("stepwise", {}).get("steps", [])
    if steps:
        lines.append(f"stepwise ({results['stepwise']['order']}), cumulative:")
        lines += [f"  ({o['noise']}={o['option']} left out: same pipeline field {o['field']} as "
                  f"{o['kept_noise']}={o['kept_option']}, worse alone)" for o in results["stepwise"].get("left_out", [])]
    for s in steps:
        lines.append(f"  {s['step']}. +{s['added_noise']}={s['added_option']}: {fmt(effect(s), places)}"
                     f"{'*' if s['distinguishable_from_zero'] else ''} {fmt_ci(effect_ci(s), places)}")
    deploy = results.get("deploy")
    if deploy:
        total = deploy["total"]
        parts = ", ".join(f"{c['field']} alone {fmt(c['effect_alone'], places)} / last {fmt(c['effect_last'], places)}"
                          for c in deploy["changes"])
        lines.append(f"deployment: {fmt(effect(total), places)}{'*' if total['distinguishable_from_zero'] else ''} "
                     f"{fmt_ci(effect_ci(total), places)} ({parts})")
    return lines
