"""JSON Schemas of the files sysnoise writes, shipped with the package for other tools to validate."""

from __future__ import annotations

import json
from importlib import resources


def results_schema() -> dict:
    """The JSON Schema of results.json (schema sysnoise.results/1)."""
    return json.loads(resources.files(__name__).joinpath("results.schema.json").read_text())


def summary_schema() -> dict:
    """The JSON Schema of the `--json` summary (schema sysnoise.summary/1)."""
    return json.loads(resources.files(__name__).joinpath("summary.schema.json").read_text())
