"""The train-by-test matrix (paper Tables 7 and 8) as Markdown and CSV, from matrix.json alone."""

from __future__ import annotations

import csv
import io

from sysnoise.analysis.matrix import paper_headers
from sysnoise.analysis.metric import decimals_for
from sysnoise.report.columns import fmt, fmt_ci, fmt_p


def trained_text(row: dict) -> str:
    values = row["trained"]
    if len(values) == 1:
        return next(iter(values))
    return "mix: " + ", ".join(f"{name} {probability:.2g}" for name, probability in values.items())


def render_markdown(doc: dict, title: str | None = None) -> str:
    places = decimals_for(doc["n"])
    level = f"{100 * doc['level']:.0f}%"
    tests = doc["tests"]
    headers = paper_headers(doc["field"], tests) or tests
    lines = [
        f"## {title or 'Train-by-test matrix: ' + doc['field']} (top-1 %, n = {doc['n']})",
        "",
        f"Rows: the {doc['field']} each model was trained with; columns: the {doc['field']} it is tested with; "
        f"everything else is the same pipeline. **Bold**: trained and tested alike. Brackets: {level} interval "
        f"(Wilson per cell; mean and std over the columns (ddof = 1) by bootstrap over samples, "
        f"{doc['resamples']} resamples).",
        "",
        "| trained \\ tested | " + " | ".join(headers) + " | mean | std |",
        "|---|" + "---|" * (len(tests) + 2),
    ]
    for row in doc["rows"]:
        cells = []
        for cell in row["cells"]:
            value = fmt(cell["top1"], places)
            value = f"**{value}**" if cell["test"] == row["matched"] else value
            cells.append(f"{value} {fmt_ci(cell['ci'], places)}")
        lines.append(
            f"| {row['label']} | " + " | ".join(cells) + f" | {fmt(row['mean'], places)} "
            f"{fmt_ci(row['mean_ci'], places)} | {fmt(row['std'], places)} {fmt_ci(row['std_ci'], places)} |"
        )
    lines.append("")
    lines += [
        f"- **{row['label']}**: trained with {trained_text(row)}" + (f" ({row['source']})" if row["source"] else "")
        for row in doc["rows"]
    ]
    lines.append("")
    if doc["mix_vs_fixed"]:
        lines += [
            "### Mixed against fixed training: spread and mean over the test columns",
            "",
            "Negative std difference: the mixed model's accuracy varies less across the test systems. "
            "Paired (same samples, same resamples for both rows).",
            "",
            f"| mixed | against | std difference | {level} CI | mean difference | {level} CI |",
            "|---|---|---|---|---|---|",
        ]
        for c in doc["mix_vs_fixed"]:
            lines.append(
                f"| {c['row']} | {c['against']} | {fmt(c['std_difference'], places)} | "
                f"{fmt_ci(c['std_difference_ci'], places)} | {fmt(c['mean_difference'], places)} | "
                f"{fmt_ci(c['mean_difference_ci'], places)} |"
            )
        lines.append("")
    if doc["mix_cost_vs_matched"]:
        lines += [
            "### What the mixed model gives up against the matched model",
            "",
            "cost = top-1 of the model trained with the column's system, tested with it, minus the mixed "
            "model's top-1 under that system (positive: matched training is better). p: McNemar exact.",
            "",
            f"| mixed | tested with | matched model | matched top-1 | mixed top-1 | cost | {level} CI | p |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for c in doc["mix_cost_vs_matched"]:
            lines.append(
                f"| {c['row']} | {c['test']} | {c['matched_row']} | {fmt(c['matched_top1'], places)} | "
                f"{fmt(c['top1'], places)} | {fmt(c['cost'], places)} | {fmt_ci(c['cost_ci'], places)} | "
                f"{fmt_p(c['p_value'])} |"
            )
        lines.append("")
    return "\n".join(lines)


CSV_COLUMNS = ("field", "kind", "row", "trained", "test", "value", "ci_low", "ci_high", "n", "p_value")


def render_csv(doc: dict) -> str:
    """Long format, unrounded: kind is cell (top-1), mean, std (per row), std_difference and
    mean_difference (a mixed row against a fixed one, named in `test`), or cost (against matched)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    base = {"field": doc["field"], "n": doc["n"]}

    def put(kind, row, trained, test, value, ci, p=None):
        writer.writerow(
            {
                **base,
                "kind": kind,
                "row": row,
                "trained": trained,
                "test": test,
                "value": value,
                "ci_low": ci[0],
                "ci_high": ci[1],
                "p_value": "" if p is None else p,
            }
        )

    for row in doc["rows"]:
        trained = trained_text(row)
        for cell in row["cells"]:
            put("cell", row["label"], trained, cell["test"], cell["top1"], cell["ci"])
        put("mean", row["label"], trained, "", row["mean"], row["mean_ci"])
        put("std", row["label"], trained, "", row["std"], row["std_ci"])
    for c in doc["mix_vs_fixed"]:
        put("std_difference", c["row"], "", c["against"], c["std_difference"], c["std_difference_ci"])
        put("mean_difference", c["row"], "", c["against"], c["mean_difference"], c["mean_difference_ci"])
    for c in doc["mix_cost_vs_matched"]:
        put("cost", c["row"], "", c["test"], c["cost"], c["cost_ci"], c["p_value"])
    return buffer.getvalue()
