"""The summary a person sees in the terminal at the end of a run."""

from __future__ import annotations

from sysnoise.report.markdown import fmt, fmt_ci, metric_label, places_for, task_words


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
