"""report.csv: one row per measured variant (single noises, stepwise steps, deployment variants),
after one row for the reference. Numbers are unrounded: the file is for programs, which can
apply their own precision; the human reports round to what the data supports. Its columns are
the declared variant columns (report/columns.py) and the metric's breakdown."""

from __future__ import annotations

import csv
import io

from sysnoise.analysis.document import all_variant_rows
from sysnoise.analysis.metric import metric_of
from sysnoise.report.columns import breakdown_columns, columns_for, value_of


def _kind(row: dict) -> str:
    return {"combined": "stepwise", "deploy": "deploy"}.get(row["noise"], "single")


def _changes(row: dict) -> str:
    return "; ".join(f"{field}: {a} -> {b}" for field, (a, b) in row["changed"].items())


def _left_out(results: dict) -> str:
    return "; ".join(
        f"{o['noise']}={o['option']} (same field {o['field']} as {o['kept_noise']})"
        for o in results.get("stepwise", {}).get("left_out", [])
    )


def render(results: dict) -> str:
    reference, metric = results["reference"], metric_of(results)
    rows = all_variant_rows(results)
    columns = columns_for(rows)
    value_at = next(i for i, c in enumerate(columns) if c.key == "value") + 1
    columns[value_at:value_at] = breakdown_columns(metric)
    cells = lambda row: {k: v for c in columns for k, v in c.csv_cells(row, metric).items()}  # noqa: E731
    fields = ["kind", "id", "noise", "option", "n", "n_labeled"]
    fields += [k for c in columns[2:] for k in c.csv_fields] + ["changed", "left_out"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerow(
        {
            "kind": "reference",
            "id": "reference",
            "n": reference["n"],
            "n_labeled": reference["n_labeled"],
            "metric": metric.key,
            "value": value_of(reference, metric),
            **{c.key: reference.get(c.key, "") for c in breakdown_columns(metric)},
        }
    )
    for row in rows:
        writer.writerow(
            {
                "kind": _kind(row),
                "id": row["id"],
                "n": row["n"],
                "n_labeled": row.get("n_labeled", ""),
                **cells(row),
                "changed": _changes(row),
                "left_out": _left_out(results) if _kind(row) == "stepwise" else "",
            }
        )
    return buffer.getvalue()
