"""JSON a user gives (COCO annotations, JSONL records), parsed with errors that say where and why.

Python's reader raises more than JSONDecodeError on hostile text: ValueError for an integer of
more than 4300 digits, RecursionError for deep nesting. Each becomes a UserInputError naming the
file (and line), never a traceback.
"""

from __future__ import annotations

import json
from typing import Any

from sysnoise.errors import UserInputError


def loads(text: str, source: str, line: int | None = None) -> Any:
    """json.loads(text); errors start with `source` and the line (`line`: the text's own line in
    `source`, for one record of a JSONL file; else the line inside `text` where known)."""
    where = f"{source}:{line}" if line else source
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise UserInputError(
            f"{source}:{line or err.lineno}: not valid JSON ({err.msg} at column {err.colno})"
        ) from None
    except RecursionError:
        raise UserInputError(f"{where}: JSON nested too deeply to read; the data nests a few levels") from None
    except ValueError as err:  # an integer literal beyond Python's digit limit
        raise UserInputError(
            f"{where}: a number in the JSON is too long to read ({str(err).split(';')[0]}); "
            "ids, sizes and labels are ordinary numbers"
        ) from None
