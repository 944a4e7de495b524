"""The leaderboard: many runs (several models, one dataset) in one table shaped like the paper's
Table 2 and the project site's leaderboard pages, as Markdown and HTML.

Runs are kept in an SQLite database. Each row holds the run's results JSON verbatim, which is the
source of truth; the other columns are derived from it for grouping and for replacing a rerun.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sysnoise.analysis.metric import metric_of, places_of
from sysnoise.engine.store import digest
from sysnoise.errors import UserInputError
from sysnoise.report.columns import fmt, value_of
from sysnoise.report.html import STYLE, esc
from sysnoise.report.markdown import misconfigured, noise_cell

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    key TEXT PRIMARY KEY,        -- model, weights, data and reference pipeline: a rerun replaces its row
    task TEXT NOT NULL,
    dataset TEXT NOT NULL,       -- the samples digest: the same data wherever it lives on disk
    dataset_name TEXT NOT NULL,
    model TEXT NOT NULL,
    created TEXT NOT NULL,
    source TEXT,                 -- where the results were read from
    results TEXT NOT NULL        -- the results JSON, verbatim
)
"""


def dataset_key(results: dict) -> str:
    data = results["dataset"]
    return data.get("samples_sha256") or digest({"path": data["path"], "n": data["n_samples"]})


def run_key(results: dict) -> str:
    model = results["model"]
    return digest(
        {
            "task": results["task"],
            "model": model["name"],
            "weights": model.get("weights_sha256"),
            "dataset": dataset_key(results),
            "reference": results["reference"]["pipeline"],
        }
    )


def connect(path: str | Path) -> sqlite3.Connection:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path)
        conn.execute(SCHEMA)
    except sqlite3.DatabaseError as err:
        raise UserInputError(f"{path}: not a usable leaderboard database: {err}") from None
    return conn


def add(conn: sqlite3.Connection, results: dict, source: str = "") -> str:
    """Store one run (replacing an earlier run of the same model on the same data)."""
    key = run_key(results)
    with conn:
        conn.execute(
            "INSERT OR REPLACE INTO runs (key, task, dataset, dataset_name, model, created, source, results) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key,
                results["task"],
                dataset_key(results),
                Path(results["dataset"]["path"]).name,
                results["model"]["name"],
                results["created"],
                source,
                json.dumps(results),
            ),
        )
    return key


@dataclass(frozen=True)
class Board:
    task: str
    dataset: str
    name: str
    runs: tuple[dict, ...]  # results documents


def boards(conn: sqlite3.Connection, dataset: str | None = None) -> list[Board]:
    """One board per (task, dataset). `dataset` filters by name or by a prefix of the digest."""
    grouped: dict[tuple[str, str], list] = {}
    names: dict[tuple[str, str], str] = {}
    for task, key, name, text in conn.execute(
        "SELECT task, dataset, dataset_name, results FROM runs ORDER BY task, dataset, model"
    ):
        if dataset and dataset != name and not key.startswith(dataset):
            continue
        grouped.setdefault((task, key), []).append(json.loads(text))
        names[(task, key)] = name
    return [Board(task, key, names[(task, key)], tuple(runs)) for (task, key), runs in grouped.items()]


def table(board: Board) -> tuple[list[str], list[list[str]], int]:
    """Headers, rows (best reference metric first) and the decimals the data supports."""
    runs = list(board.runs)
    metric = metric_of(runs[0])
    # All runs saw the same samples; skipped samples can differ, so take the coarsest resolution.
    places = min(places_of(r) for r in runs)
    value = lambda r: value_of(r["reference"], metric)  # noqa: E731
    runs.sort(key=lambda r: (-(value(r) if value(r) is not None else float("-inf")), r["model"]["name"]))
    noises: list[str] = []
    for r in runs:  # configuration errors are reported apart, not in this table
        noises += [n["name"] for n in r["noises"] if n["name"] not in noises and n["name"] not in misconfigured(r)]
    combined = any(r.get("stepwise") for r in runs)
    headers = ["model", f"reference {metric.label}"] + noises + (["combined"] if combined else [])
    rows = []
    for r in runs:
        by_name = {n["name"]: n for n in r["noises"]}
        row = [r["model"]["name"], fmt(value(r), places)]
        row += [noise_cell(by_name[name], places) if name in by_name else "" for name in noises]
        if combined:
            steps = r.get("stepwise", {}).get("steps")
            last = steps[-1] if steps else None
            row.append(
                ""
                if last is None
                else fmt(last["delta"] if last["delta"] is not None else last["flip_rate"], places)
                + ("*" if last["distinguishable_from_zero"] else "")
            )
        rows.append(row)
    return headers, rows, places


def _legend(board: Board) -> str:
    ref = board.runs[0]["reference"]
    what = "delta in points (reference minus variant)" if ref["n_labeled"] else "flip rate in % (no labels)"
    return (
        f"{board.task} on {board.name} ({ref['n']} samples, {ref['n_labeled']} labeled; data "
        f"{board.dataset[:12]}). Cells: {what}; mean ± std (max) over a noise's options; blank: not measured; "
        "n/a: does not apply; * distinguishable from zero."
    )


def render_markdown(all_boards: list[Board]) -> str:
    lines = ["# sysnoise leaderboard", ""]
    for board in all_boards:
        headers, rows, _ = table(board)
        lines += [
            f"## {board.task}: {board.name}",
            "",
            _legend(board),
            "",
            "| " + " | ".join(headers) + " |",
            "|" + "---|" * len(headers),
        ]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines.append("")
    return "\n".join(lines)


def render_html(all_boards: list[Board]) -> str:
    parts = []
    for board in all_boards:
        headers, rows, _ = table(board)
        head = "".join(f"<th>{esc(h)}</th>" for h in headers)
        body = "".join(
            "<tr>"
            + "".join(f"<td{'' if i == 0 else ' class=n'}>{esc(cell)}</td>" for i, cell in enumerate(row))
            + "</tr>"
            for row in rows
        )
        parts.append(
            f'<h2>{esc(board.task)}: {esc(board.name)}</h2><p class="note">{esc(_legend(board))}</p>'
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>sysnoise leaderboard</title>'
        f"<style>{STYLE}</style></head><body><main><h1>sysnoise leaderboard</h1>{''.join(parts)}"
        "</main></body></html>\n"
    )
