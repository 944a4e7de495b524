"""report.md: a table shaped like the paper's Table 2 (Tables 3/4 for other metrics), every option in
detail, the stepwise combination, the deployment attribution and the pictures."""

from __future__ import annotations

from pathlib import Path

from sysnoise.analysis.metric import metric_of, places_of
from sysnoise.report.columns import STEPWISE, columns_for, fmt, fmt_ci, fmt_p, star, value_of


def shown(name: str) -> str:
    """A file name as text any report can hold: bytes that were not UTF-8 (which Python keeps as
    lone surrogates) as \\xNN, control characters and other lone surrogates escaped."""
    out = []
    for char in name:
        if 0xDC80 <= ord(char) <= 0xDCFF:  # an undecodable byte of the name (os.fsdecode's surrogateescape)
            out.append(f"\\x{ord(char) - 0xDC00:02x}")
        elif char.isprintable():
            out.append(char)
        else:
            out.append(char.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def nothing_measured(results: dict) -> str:
    """Why the run has no metric, said first in every report; "" when it has one."""
    ref = results["reference"]
    if not ref["n"]:
        return (
            f"No evaluable samples: all {len(results['skipped'])} samples were skipped (the reasons are listed "
            "under the skipped samples); nothing was measured."
        )
    if ref["n_labeled"] and value_of(ref, metric_of(results)) is None:
        return (
            f"No evaluable samples for {metric_of(results).label}: the ground truth holds no objects, so the metric "
            "is undefined; only the agreement with the reference (flips) is measured."
        )
    return ""


def precision_note(results: dict, places: int) -> str:
    ref = results["reference"]
    if metric_of(results).places is not None:
        return (
            f"Numbers are printed to {places} decimals, as the paper's tables; intervals from "
            f"{results['run'].get('bootstrap_resamples', 2000)} paired bootstrap resamples of the images."
        )
    return (
        f"Numbers are printed to {places} decimal(s): one sample moves a percentage by "
        f"{100 / max(1, ref['n_labeled'] or ref['n']):.2g} points here."
    )


def labeled(results: dict) -> bool:
    return results["reference"]["n_labeled"] > 0


MISCONFIGURATION = "misconfiguration"  # a noise stage: configuration errors (RGB fed as BGR), not noise


def misconfigured(results: dict) -> set[str]:
    """Noises that are configuration errors: reported apart, left out of the summary."""
    return {n["name"] for n in results["noises"] if n["stage"] == MISCONFIGURATION}


def noise_cell(noise: dict, places: int) -> str:
    """One noise in the summary: its delta (flip rate without labels); over several options
    mean ± std (max), the std over options with ddof=1 as the paper's tables."""
    if not noise["applies"]:
        return "n/a"
    summary = noise.get("summary")
    if not summary:
        return "-"
    stat = summary["delta"] or summary["flip_rate"]
    if len(summary["options"]) == 1:
        return fmt(stat["mean"], places)
    return f"{fmt(stat['mean'], places)} ± {fmt(stat['std'], places)} (max {fmt(stat['max'], places)})"


def corrupt_note(results: dict) -> str:
    """How many skipped samples hold corrupt data (a dataset problem, counted apart from noise)."""
    n = results["dataset"].get("n_corrupt")
    if results["dataset"].get("include_corrupt"):
        return " (corrupt data measured too: --include-corrupt)"
    return f" ({n} of them with corrupt data)" if n else ""


def data_title(results: dict) -> str:
    """The data as a title names it: its name (not a cache path), and the --limit subset if any."""
    dataset = results["dataset"]
    name = dataset.get("name") or Path(dataset["path"]).name
    limit = dataset.get("limit")
    return f"{name} (--limit: {limit['n']} of {limit['of']} samples)" if limit else name


def calibration_note(results: dict) -> str:
    """Which samples INT8 calibrated on: held out of every column's evaluation, or the user's own."""
    record = results["dataset"].get("calibration")
    if not record:
        return ""
    ids = record["ids"]
    shown = ", ".join(ids[:12]) + (
        f", ... ({len(ids) - 12} more; results.json dataset.calibration.ids)" if len(ids) > 12 else ""
    )
    if record["source"] == "held-out":
        return (
            f"INT8 calibration: {len(ids)} samples held out of the dataset and left out of every column's "
            f"evaluation: {shown}."
        )
    return f"INT8 calibration: {len(ids)} samples of the calibration data given (--calibration-data): {shown}."


def combined_what(results: dict) -> str:
    """What the combined pipeline holds, and which measured noises it leaves out and why."""
    stepwise = results["stepwise"]
    text = "+".join(f"{s['added_noise']}={s['added_option']}" for s in stepwise["steps"])
    for o in stepwise.get("left_out", []):
        text += (
            f"; {o['noise']}={o['option']} left out: it sets the same pipeline field ({o['field']}) as "
            f"{o['kept_noise']}={o['kept_option']}, which did worse alone"
        )
    return text


def combined_cell(results: dict, places: int) -> str:
    steps = results.get("stepwise", {}).get("steps")
    if not steps:
        return ""
    last = steps[-1]
    value = last["delta"] if last["delta"] is not None else last["flip_rate"]
    return f"{fmt(value, places)}{star(last)}"


def summary_table(results: dict, places: int) -> list[str]:
    ref, metric = results["reference"], metric_of(results)
    noises = [n for n in results["noises"] if n["stage"] != MISCONFIGURATION]  # reported apart: not noise
    combined = combined_cell(results, places)
    headers = ["model", f"reference {metric.label}"] + [n["name"] for n in noises]
    cells = [results["model"]["name"], fmt(value_of(ref, metric), places)] + [noise_cell(n, places) for n in noises]
    if combined:
        headers.append("combined")
        cells.append(combined)
    return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers), "| " + " | ".join(cells) + " |"]


def table(rows: list[dict], columns, places: int, metric) -> list[str]:
    """A Markdown table of `rows` under the declared `columns` (report/columns.py)."""
    lines = ["| " + " | ".join(c.title(metric) for c in columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(c.text(row, places, metric) for c in columns) + " |" for row in rows]


def option_table(rows: list[dict], places: int, metric) -> list[str]:
    return table(rows, columns_for(rows), places, metric)


def breakdown_section(results: dict, places: int) -> list[str]:
    """The metric's breakdown per column (detection: COCOeval's AP/AR; segmentation: pixel
    accuracy) and the reference's per-class numbers, for metrics that have them."""
    metric = metric_of(results)
    if metric.per_class is None:
        return []
    columns = [("reference", results["reference"])] + [(v["id"], v) for v in results["variants"]]
    lines = [
        "## Breakdown",
        "",
        "| column | " + " | ".join(h for _, h in metric.breakdown) + " |",
        "|---|" + "---|" * len(metric.breakdown),
    ]
    lines += [
        f"| {name} | " + " | ".join(fmt(row.get(key), places) for key, _ in metric.breakdown) + " |"
        for name, row in columns
    ]
    key, header = metric.per_class
    per_class = results["reference"].get(key) or {}
    if per_class:
        lines += [
            "",
            f"Reference {header} per class:",
            "",
            "| class | " + " | ".join(per_class) + " |",
            "|---|" + "---|" * len(per_class),
            f"| {header} | " + " | ".join(fmt(v, places) for v in per_class.values()) + " |",
        ]
    return lines + [""]


def segm_section(results: dict, places: int) -> list[str]:
    """Detection with a mask head: COCO mask AP (segm) per column, its delta and interval; columns
    without it (post-processing noise, or ground truth without masks) say why."""
    ref = results["reference"]
    if not ({"segm_ap", "segm_not_computed"} & set(ref)):
        return []
    lines = ["## Mask AP (segm)", ""]
    if "segm_ap" not in ref:
        return lines + [f"Not computed: {ref['segm_not_computed']}.", ""]
    lines += [
        f"pycocotools COCOeval(segm) on the RLE masks stored in outputs.masks.npz (mask head on each "
        f"column's final boxes, pasted into the annotated image, threshold 0.5). Reference mask AP "
        f"{fmt(ref['segm_ap'], places)} (95% CI {fmt_ci(ref.get('segm_ap_ci'), places)}); delta: reference "
        "minus variant, paired bootstrap over images.",
        "",
        "| column | mask AP | AP50 | AP75 | delta | 95% CI | p |",
        "|---|---|---|---|---|---|---|",
        f"| reference | {fmt(ref['segm_ap'], places)} | {fmt(ref.get('segm_ap50'), places)} | "
        f"{fmt(ref.get('segm_ap75'), places)} | - | - | - |",
    ]
    reasons = {}
    for v in results["variants"]:
        if "segm_ap" in v:
            mark = "*" if v.get("segm_p_value") is not None and v["segm_p_value"] < 0.05 else ""
            lines.append(
                f"| {v['id']} | {fmt(v['segm_ap'], places)} | {fmt(v.get('segm_ap50'), places)} | "
                f"{fmt(v.get('segm_ap75'), places)} | {fmt(v.get('segm_delta'), places)}{mark} | "
                f"{fmt_ci(v.get('segm_delta_ci'), places)} | {fmt_p(v.get('segm_p_value'))} |"
            )
        elif "segm_not_computed" in v:
            lines.append(f"| {v['id']} | n/a | n/a | n/a | - | - | - |")
            reasons.setdefault(v["segm_not_computed"], []).append(v["id"])
    for reason, ids in reasons.items():
        lines += ["", f"n/a ({', '.join(ids)}): {reason}."]
    return lines + [""]


def stepwise_section(results: dict, places: int, metric) -> list[str]:
    stepwise = results.get("stepwise")
    if not stepwise:
        return []
    how = "greedily, the worst single noise first" if stepwise["order"] == "greedy" else "in the order given"
    lines = [
        "## Combined noise, step by step (paper Fig. 3)",
        "",
        f"Noises added one at a time ({how}), each at its chosen option; every row is measured on the "
        "reference with all options so far applied, so the delta is cumulative. The last row holds "
        f"{combined_what(results)}.",
        "",
        f"| step | added | {metric.label} | cumulative delta | 95% CI | p | flips % |",
        "|---|---|---|---|---|---|---|",
    ]
    columns = columns_for(stepwise["steps"], STEPWISE)
    for s in stepwise["steps"]:
        cells = " | ".join(c.text(s, places, metric) for c in columns)
        lines.append(f"| {s['step']} | +{s['added_noise']} = {s['added_option']} | {cells} |")
    return lines + [""]


def deploy_section(results: dict, places: int) -> list[str]:
    deploy = results.get("deploy")
    if not deploy:
        return []
    total = deploy["total"]
    what = "delta" if total["delta"] is not None else "flip rate"
    value = total["delta"] if total["delta"] is not None else total["flip_rate"]
    ci = total["delta_ci"] if total["delta"] is not None else total["flip_ci"]
    lines = [
        "## Deployment pipeline",
        "",
        f"Total {what}: {fmt(value, places)}{star(total)} {fmt_ci(ci, places)}. Attribution to the fields it "
        "changes: *alone* applies one change to the reference; *last* is the total minus the deployment "
        "with that change undone (what the change adds when everything else is deployed). "
        f"Interaction (total minus the sum of 'alone'): {fmt(deploy['interaction'], places)}.",
        "",
        "| field | reference | deployed | alone | 95% CI | last |",
        "|---|---|---|---|---|---|",
    ]
    for c in deploy["changes"]:
        lines.append(
            f"| {c['field']} | {c['reference']} | {c['deploy']} | {fmt(c['effect_alone'], places)}"
            f"{'*' if c['alone_distinguishable'] else ''} | {fmt_ci(c['effect_alone_ci'], places)} | "
            f"{fmt(c['effect_last'], places)} |"
        )
    return lines + [""]


def figures_section(results: dict) -> list[str]:
    figures = results.get("figures") or {}
    lines = []
    if figures.get("differences"):
        lines += [
            "## Pixel differences (paper Fig. 5)",
            "",
            "Each picture: reference input | variant input | |difference| amplified.",
            "",
        ]
        for d in figures["differences"]:
            lines += [
                f"![{d['variant']} on {shown(d['sample'])}]({d['file']})",
                "",
                f"{d['variant']} on `{shown(d['sample'])}`: max |diff| {d['max_abs']}, mean {d['mean_abs']:.2f}, "
                f"{d['changed_pct']:.0f}% of values differ; shown x{d['amplification']}.",
                "",
            ]
    if figures.get("flips"):
        lines += [
            "## Flipped predictions",
            "",
            "| sample | variant | kind | labels | reference | variant |",
            "|---|---|---|---|---|---|",
        ]
        for f in figures["flips"]:
            labels = ", ".join(item["name"] for item in f["labels"]) or "(unlabeled)"
            lines.append(
                f"| `{shown(f['sample'])}` | {f['variant']} | {f['kind']} | {labels} | "
                f"{f['reference']['name']} ({f['reference']['prob']:.2f}) | "
                f"{f['prediction']['name']} ({f['prediction']['prob']:.2f}) |"
            )
        lines.append("")
    return lines


def render(results: dict) -> str:
    ref, metric = results["reference"], metric_of(results)
    label = metric.label
    places = places_of(results)
    misconfigured_noises = misconfigured(results)
    what = (
        f"{label} delta in points (reference minus variant)"
        if labeled(results)
        else f"{label} flip rate in % (no labels)"
    )
    lines = [
        f"# sysnoise report: {results['model']['name']} on {data_title(results)}",
        "",
        f"Task: {results['task']}. Samples: {ref['n']} ({ref['n_labeled']} labeled), "
        f"{len(results['skipped'])} skipped{corrupt_note(results)}. Reference {label}: {fmt(value_of(ref, metric), places)} "
        f"(95% CI {fmt_ci(ref.get(metric.key + '_ci'), places)}). Created {results['created']}.",
        "",
        *([f"**{nothing_measured(results)}**", ""] if nothing_measured(results) else []),
        *([calibration_note(results), ""] if calibration_note(results) else []),
        precision_note(results, places),
        "",
        f"## Summary (paper {metric.table} shape)",
        "",
        f'Cells: {what}; several options show mean ± std (max) over the options. "n/a": the noise does '
        "not apply to this model."
        + (f" combined: the last stepwise step, {combined_what(results)}." if results.get("stepwise") else ""),
        "",
        *summary_table(results, places),
        "",
        "## Every option",
        "",
        f"Delta: reference minus variant, points, with a 95% paired bootstrap interval; p: "
        f"{metric.test}; * marks deltas distinguishable from zero (p < 0.05). Flips: "
        f"{metric.flips}. c->w / w->c: {metric.changes}. Identical: % of samples "
        "whose outputs are bit-identical to the reference.",
        "",
        *option_table([v for v in results["variants"] if v["noise"] not in misconfigured_noises], places, metric),
    ]
    identical = [v["id"] for v in results["variants"] if v["identical"] == 100]
    if identical:
        lines += ["", "Bit-identical to the reference on every sample: " + ", ".join(identical) + "."]
    differing = [
        v["id"] for v in results["variants"] if v["identical"] != 100 and v["noise"] not in misconfigured_noises
    ]
    if identical and differing:
        lines += ["", "Not bit-identical (outputs differ on at least one sample): " + ", ".join(differing) + "."]
    unavailable = [
        f"{n['name']}/{option} ({why})" for n in results["noises"] for option, why in n.get("unavailable", {}).items()
    ]
    if unavailable:
        lines += ["", "Not measured here, an optional library is missing: " + "; ".join(unavailable) + "."]
    misconfigurations = [v for v in results["variants"] if v["noise"] in misconfigured_noises]
    if misconfigurations:
        lines += [
            "",
            "## Configuration errors (not noise)",
            "",
            "What a wrong setting costs, shown apart from the noises above and left out of the summary.",
            "",
            *option_table(misconfigurations, places, metric),
        ]
    lines += [""]
    lines += breakdown_section(results, places)
    lines += segm_section(results, places)
    lines += stepwise_section(results, places, metric)
    lines += deploy_section(results, places)
    lines += figures_section(results)
    lines += ["## Reference pipeline", "", "```yaml"]
    lines += [f"{k}: {v}" for k, v in results["reference"]["pipeline"].items()]
    lines += ["```", ""]
    if results["skipped"]:
        lines += (
            ["## Skipped samples", ""] + [f"- `{shown(s['id'])}`: {s['reason']}" for s in results["skipped"]] + [""]
        )
    for column, failures in results.get("variant_failures", {}).items():
        lines += [f"## Failures under {column}", ""] + [f"- `{shown(f['id'])}`: {f['reason']}" for f in failures] + [""]
    env = results["environment"]
    lines += ["## Environment", "", f"- Python {env['python']} on {env['platform']}, CPU: {env['cpu']}"]
    lines += [f"- {name} {version}" for name, version in env["libraries"].items() if version]
    libraries = {k: v for k, v in env["decoder_libraries"].items() if k != "decoders"}
    lines += [f"- decoder libraries: {libraries}"]
    lines += [
        f"- decoder `{name}`: {version}" for name, version in env["decoder_libraries"].get("decoders", {}).items()
    ]
    lines += [""]
    return "\n".join(lines)
