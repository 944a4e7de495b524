"""A sample stored inside a container (a tar shard, a dataset's table) is named by the path
CONTAINER#KEY, so it travels wherever a sample's file path does (DataLoader workers, calibration
splits, figures) and one function reads it back (formats.read_bytes)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

MARK = "#"


def member_path(container: Path, key: str) -> Path:
    return Path(f"{container}{MARK}{key}")


def splits(path) -> Iterator[tuple[Path, str]]:
    """Every (container, key) reading of `path`, one per MARK in it, shortest container first:
    a file name may hold a MARK too, so which reading names a container is the formats' call."""
    text = os.fspath(path)
    start = text.find(MARK)
    while start != -1:
        yield Path(text[:start]), text[start + 1 :]
        start = text.find(MARK, start + 1)
