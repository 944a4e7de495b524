"""results.json on disk (written atomically, read back with a check of its schema) and the
reports rendered from it alone (`sysnoise report` re-renders a stored run)."""

from __future__ import annotations

import json
from pathlib import Path

from sysnoise.engine.store import atomic_write_text
from sysnoise.errors import UserInputError
from sysnoise.report import csv, html, language, markdown


def write_results(results: dict, path: Path) -> None:
    atomic_write_text(path, json.dumps(results, indent=1, sort_keys=False) + "\n")


def write_reports(results: dict, folder: Path) -> list[Path]:
    """Render report.md, report.html and report.csv from the results alone (figures are read from
    `folder`), which is all `sysnoise report` needs to re-render a stored run."""
    folder = Path(folder)
    if results.get("task") == "language":  # its own report.md (the paper's Table 5 shape)
        atomic_write_text(folder / "report.md", encodable(language.render(results)))
        return [folder / "report.md"]
    written = []
    for name, text in (
        ("report.md", markdown.render(results)),
        ("report.html", html.render(results, folder)),
        ("report.csv", csv.render(results)),
    ):
        atomic_write_text(folder / name, encodable(text))
        written.append(folder / name)
    return written


def encodable(text: str) -> str:
    """`text` with any lone surrogate (an undecodable byte of a file or folder name the renderers
    did not escape) as a backslash escape, so writing it as UTF-8 cannot fail."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def read_results(path: str | Path) -> dict:
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    try:
        results = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UserInputError(f"{path}: cannot read results: {err}") from None
    if not str(results.get("schema", "")).startswith("sysnoise.results/"):
        raise UserInputError(f"{path}: not a sysnoise results file (no schema field)")
    return results
