"""DATA_FORMATS: the dataset formats read besides ImageFolder trees and list files, each with a
`matches(path)` test and a `member(container, key)` reader for one sample's bytes.

read_bytes() is how every sample's bytes are read: an ordinary file within the limits
(pipeline.limits.read_file), or a member of a container its format reads, within the same size
limit. A file whose name merely holds a MARK is read as a file."""

from __future__ import annotations

import os
from pathlib import Path

from sysnoise.data import hf_datasets, members, webdataset
from sysnoise.pipeline.limits import read_file
from sysnoise.registry import Entry, Registry

DATA_FORMATS: Registry = Registry("data format")

DATA_FORMATS.register(
    "webdataset",
    "WebDataset tar shards: KEY.jpg/KEY.png with KEY.cls (class index as text)",
    matches=webdataset.matches,
    member=webdataset.read_member,
)(webdataset.read)
DATA_FORMATS.register(
    "hf-datasets",
    "Hugging Face datasets: a save_to_disk folder or a parquet file with an image column and a label column",
    matches=hf_datasets.matches,
    member=hf_datasets.read_member,
)(hf_datasets.read)


def find(path: Path) -> Entry | None:
    """The format `path` is in, None for the folder and list-file forms classification reads itself."""
    return next((entry for entry in DATA_FORMATS if entry.meta["matches"](path)), None)


def read_bytes(path) -> bytes:
    """A sample's bytes: a regular file within the size limit, or CONTAINER#KEY read by the
    container's format (SampleError when it cannot be read)."""
    if not os.path.lexists(path):
        for container, key in members.splits(path):
            entry = find(container) if container.exists() else None
            if entry is not None:
                return entry.meta["member"](container, key)
    return read_file(path)
