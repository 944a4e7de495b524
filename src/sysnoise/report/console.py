"""The summary a person sees in the terminal at the end of a run."""

from __future__ import annotations

from sysnoise.report.markdown import fmt, fmt_ci, metric_label, places_for, task_words


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


def print_summary(results: dict, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    if results.get("task") == "language":
        from sysnoise.report import language

        return language.print_summary(results, console)
    console = console or Console()
    ref = results["reference"]
    places, metric, label = places_for(results), ref.get("metric", "top1"), metric_label(results)
    table = Table(title=f"{results['model']['name']}: reference {label} {fmt(ref[metric], places)} "
                        f"on {ref['n_labeled']} labeled / {ref['n']} samples")
    for header in ("noise", "option", label, "delta", "95% CI", "flips %", "identical %"):
        table.add_column(header, justify="left" if header in ("noise", "option") else "right", no_wrap=True)
    for v in results["variants"]:
        delta = fmt(v["delta"], places) + ("*" if v["distinguishable_from_zero"] else "")
        table.add_row(v["noise"], v["option"], fmt(v[metric], places), delta, fmt_ci(v["delta_ci"], places),
                      fmt(v["flip_rate"], places), fmt(v["identical"], 0))
    for noise in results["noises"]:
        if not noise["applies"]:
            table.add_row(noise["name"], "n/a", "", "", "", "", "")
    console.print(table)
    console.print(f"* delta distinguishable from zero ({task_words(results)['test']}, p < 0.05)")
    for line in combined_lines(results, places):
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
