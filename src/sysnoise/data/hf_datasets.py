"""Hugging Face `datasets` data: a folder written by `Dataset.save_to_disk`, or a parquet file,
with one image column (feature `Image`) and a label column found by its type: the `ClassLabel`
column (its names become the dataset's class names), else the one integer column; without either
the samples are unlabeled. Rows are read in place from the memory-mapped Arrow table, by row
index (sample id = the row). `datasets` is an optional extra (`pip install sysnoise[datasets]`)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from sysnoise import extras
from sysnoise.data.images import Dataset, Sample
from sysnoise.data.members import member_path
from sysnoise.errors import SampleError, UserInputError
from sysnoise.pipeline.limits import check_size, read_file

SAVED = ("state.json", "dataset_info.json")  # what save_to_disk writes beside the Arrow files
SPLITS = "dataset_dict.json"  # a DatasetDict saved to disk: one folder per split
INTEGER_TYPES = {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"}


def matches(path: Path) -> bool:
    if path.is_file():
        return path.suffix == ".parquet"
    return path.is_dir() and (all((path / name).is_file() for name in SAVED) or (path / SPLITS).is_file())


def _stamp(path: Path) -> int:
    return os.stat(path / SAVED[0] if path.is_dir() else path).st_mtime_ns


@lru_cache(maxsize=4)
def _table(source: str, stamp: int):
    """(Arrow table, datasets.Features) of a saved folder or parquet file, memory-mapped; `stamp`
    makes a rewritten dataset read again."""
    import datasets

    if Path(source).is_dir():
        loaded = datasets.load_from_disk(source)
        return loaded.data.table, loaded.features
    import pyarrow.parquet

    table = pyarrow.parquet.read_table(source, memory_map=True)
    return table, datasets.Features.from_arrow_schema(table.schema)


def columns(features, where: str) -> tuple[str, str | None]:
    """(image column, label column or None), by the columns' feature types."""
    import datasets

    described = ", ".join(f"{name} ({type(feature).__name__})" for name, feature in features.items())
    images = [name for name, feature in features.items() if isinstance(feature, datasets.Image)]
    if len(images) != 1:
        raise UserInputError(
            f"{where}: {len(images)} image columns among {described}; sysnoise reads a dataset "
            "with exactly one column of the Image feature type"
        )
    labels = [name for name, feature in features.items() if isinstance(feature, datasets.ClassLabel)] or [
        name
        for name, feature in features.items()
        if isinstance(feature, datasets.Value) and feature.dtype in INTEGER_TYPES
    ]
    if len(labels) > 1:
        raise UserInputError(
            f"{where}: {len(labels)} candidate label columns ({', '.join(labels)}); keep one "
            "(dataset.select_columns([...]).save_to_disk(...)) or cast it to ClassLabel"
        )
    return images[0], (labels[0] if labels else None)


def read(path: Path) -> Dataset:
    extras.require("datasets", f"{path} (Hugging Face datasets)")
    if (path / SPLITS).is_file():
        import json

        splits = json.loads((path / SPLITS).read_text()).get("splits", [])
        raise UserInputError(
            f"{path}: a dataset with splits ({', '.join(splits)}); pass one split's folder, "
            f"e.g. {path / (splits[0] if splits else 'test')}"
        )
    try:
        table, features = _table(str(path), _stamp(path))
    except UserInputError:
        raise
    except Exception as err:  # datasets' and pyarrow's own error types
        raise UserInputError(f"{path}: not a readable Hugging Face dataset ({type(err).__name__}: {err})") from None
    image, label = columns(features, str(path))
    values = table.column(label).to_pylist() if label else [None] * table.num_rows
    samples = [
        Sample(str(row), member_path(path, str(row)), (value,) if value is not None and value >= 0 else ())
        for row, value in enumerate(values)
    ]
    names = list(features[label].names) if label and hasattr(features[label], "names") else None
    return Dataset(path, samples, "hf-datasets", class_names=names)


def read_member(source: Path, key: str) -> bytes:
    """Row `key`'s image bytes, within the file size limit; an image stored as a path is read as a
    file (pipeline.limits.read_file)."""
    if not key.isdigit():
        raise SampleError(f"{source}: {key!r} is not a row index")
    try:
        table, features = _table(str(source), _stamp(source))
        image, _ = columns(features, str(source))
        cell = table.column(image)[int(key)]
    except (UserInputError, ValueError, IndexError, OSError) as err:
        raise SampleError(f"{source}: no row {key!r} with an image ({err})") from None
    data = cell["bytes"].as_buffer()
    if data is None:
        stored = cell["path"].as_py()
        if not stored:
            raise SampleError(f"{source}: row {key} holds no image (neither bytes nor a path)")
        return read_file(stored)
    check_size(data.size, "image")
    return data.to_pybytes()
