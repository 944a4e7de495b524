"""report.md: a table shaped like the paper's Table 2, then every option in detail."""

from __future__ import annotations

import math


def decimals_for(n: int) -> int:
    """One sample moves an accuracy by 100/n points: print no finer than that resolution."""
    return max(0, min(3, math.ceil(math.log10(n / 100)))) if n > 0 else 0


def fmt(value, places: int) -> str:
    return "-" if value is None else f"{value:.{places}f}"


def fmt_ci(ci, places: int) -> str:
    return "-" if not ci else f"[{ci[0]:.{places}f}, {ci[1]:.{places}f}]"


def noise_cell(noise: dict, places: int) -> str:
    if not noise["applies"]:
        return "n/a"
    summary = noise.get("summary")
    if not summary:
        return "-"
    stat = summary["delta"] or summary["flip_rate"]
    if len(summary["options"]) == 1:
        return fmt(stat["mean"], places)
    return f"{fmt(stat['mean'], places)} ({fmt(stat['max'], places)})"


def render(results: dict) -> str:
    ref = results["reference"]
    labeled = ref["n_labeled"] > 0
    places = decimals_for(ref["n_labeled"] if labeled else ref["n"])
    noises = results["noises"]
    what = "top-1 delta in points (reference minus variant)" if labeled else "top-1 flip rate in % (no labels)"
    lines = [
        f"# sysnoise report: {results['model']['name']} on {results['dataset']['path']}",
        "",
        f"Task: {results['task']}. Samples: {ref['n']} ({ref['n_labeled']} labeled), "
        f"{len(results['skipped'])} skipped. Created {results['created']}.",
        "",
        "## Summary (paper Table 2 shape)",
        "",
        f"Cells: {what}; several options show mean (max) over the options. "
        "\"n/a\": the noise does not apply to this model.",
        "",
        "| model | reference top-1 | " + " | ".join(n["name"] for n in noises) + " |",
        "|---|---|" + "---|" * len(noises),
        f"| {results['model']['name']} | {fmt(ref['top1'], places)} | "
        + " | ".join(noise_cell(n, places) for n in noises) + " |",
        "",
        "## Every option",
        "",
        "Delta: reference minus variant top-1, points, with a 95% paired bootstrap interval; p: McNemar "
        "exact test; * marks deltas distinguishable from zero (p < 0.05). Flips: % of samples whose top-1 "
        "changed. Identical: % of samples whose outputs are bit-identical to the reference.",
        "",
        "| noise | option | top-1 | delta | 95% CI | p | flips % | c->w | w->c | identical % | failed |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v in results["variants"]:
        star = "*" if v["distinguishable_from_zero"] else ""
        p = "-" if v["p_value"] is None else f"{v['p_value']:.3g}"
        lines.append(
            f"| {v['noise']} | {v['option']} | {fmt(v['top1'], places)} | {fmt(v['delta'], places)}{star} | "
            f"{fmt_ci(v['delta_ci'], places)} | {p} | {fmt(v['flip_rate'], places)} | {v['correct_to_wrong']} | "
            f"{v['wrong_to_correct']} | {fmt(v['identical'], 0)} | {v['n_failed']} |"
        )
    identical = [v["id"] for v in results["variants"] if v["identical"] == 100]
    if identical:
        lines += ["", "Bit-identical to the reference on every sample: " + ", ".join(identical) + "."]
    lines += ["", "## Reference pipeline", "", "```yaml"]
    lines += [f"{k}: {v}" for k, v in results["reference"]["pipeline"].items()]
    lines += ["```", ""]
    if results["skipped"]:
        lines += ["## Skipped samples", ""] + [f"- `{s['id']}`: {s['reason']}" for s in results["skipped"]] + [""]
    for column, failures in results.get("variant_failures", {}).items():
        lines += [f"## Failures under {column}", ""] + [f"- `{f['id']}`: {f['reason']}" for f in failures] + [""]
    env = results["environment"]
    lines += ["## Environment", "", f"- Python {env['python']} on {env['platform']}, CPU: {env['cpu']}"]
    lines += [f"- {name} {version}" for name, version in env["libraries"].items() if version]
    lines += [f"- decoder libraries: {env['decoder_libraries']}", ""]
    return "\n".join(lines)
