"""Pixels made elsewhere, read back from a folder: a noised copy written by `sysnoise generate`,
or what a device's own pre-processing produced (saved as .npy or lossless .png).

A pipeline whose decoder is `stored:FOLDER` takes each sample's array from FOLDER instead of
decoding its file; the sample's relative id finds the file. The array enters the pipeline at the
stage it was saved after, and the pipeline's later stages run as usual:
- `decode` or `colour`: HxWx3 uint8 at the source size (the later colour/geometry stages run);
- `geometry`: size x size x 3 uint8, the model's input pixels (only normalisation runs);
- `normalise`: 3 x size x size float32, the model input itself.
A folder written by `sysnoise generate` says its stage in sysnoise-stored.json; for a folder
without one the stage follows from the array (float -> normalise, uint8 at the input size ->
geometry, other uint8 -> decode). A 3xHxW uint8 array is taken as channels-first.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path, PurePosixPath

import numpy as np

from sysnoise.errors import SampleError, UserInputError
from sysnoise.pipeline.decode import decode

PREFIX = "stored:"
MANIFEST = "sysnoise-stored.json"
SCHEMA = "sysnoise.stored/1"
STAGES = ("decode", "colour", "geometry", "normalise")
FORMATS = ("png", "npy")


def is_stored(decoder: str) -> bool:
    return decoder.startswith(PREFIX)


def decoder_name(folder: str | Path) -> str:
    return PREFIX + str(Path(folder).resolve())


def file_name(sample_id: str, fmt: str) -> str:
    """Where generate writes a sample: its relative id with the suffix replaced (a/b.jpg -> a/b.png)."""
    return str(PurePosixPath(sample_id).with_suffix(f".{fmt}"))


@functools.lru_cache(maxsize=16)
def manifest(folder: str) -> dict:
    path = Path(folder) / MANIFEST
    if not Path(folder).is_dir():
        raise UserInputError(f"stored pixels: {folder} is not a folder")
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UserInputError(f"{path}: cannot read: {err}") from None
    if data.get("schema") != SCHEMA or data.get("stage") not in STAGES:
        raise UserInputError(f"{path}: not a {SCHEMA} manifest with a stage in {STAGES}")
    return data


def find(folder: str, sample_id: str) -> Path:
    files = manifest(folder).get("files", {})
    if sample_id in files:
        return Path(folder) / files[sample_id]
    candidates = [file_name(sample_id, fmt) for fmt in FORMATS] + [f"{sample_id}.{fmt}" for fmt in FORMATS]
    for name in candidates:
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    raise SampleError(f"no stored pixels for {sample_id!r} in {folder} (looked for {', '.join(candidates)})")


def read_array(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise SampleError(f"{path}: cannot read .npy: {err}") from None
    else:
        try:
            data = path.read_bytes()
        except OSError as err:
            raise SampleError(f"{path}: cannot read: {err}") from None
        array = decode("pillow", data)
    if array.ndim == 3 and array.shape[0] == 3 and array.shape[2] != 3:
        array = array.transpose(1, 2, 0) if array.dtype == np.uint8 else array
    return np.ascontiguousarray(array)


def infer_stage(array: np.ndarray, input_size: int) -> str:
    if array.dtype.kind == "f":
        return "normalise"
    return "geometry" if array.shape[:2] == (input_size, input_size) else "decode"


def load(decoder: str, sample_id: str | None, input_size: int) -> tuple[str, np.ndarray]:
    """(stage the array was saved after, array) for one sample."""
    if sample_id is None:
        raise SampleError("stored pixels need the sample's id")
    folder = decoder[len(PREFIX) :]
    array = read_array(find(folder, sample_id))
    stage = manifest(folder).get("stage") or infer_stage(array, input_size)
    size = input_size
    if stage == "normalise":
        ok, wanted = array.dtype.kind == "f" and array.shape == (3, size, size), f"3x{size}x{size} float"
    elif stage == "geometry":
        ok, wanted = array.dtype == np.uint8 and array.shape == (size, size, 3), f"{size}x{size}x3 uint8"
    else:
        ok, wanted = array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3, "HxWx3 uint8"
    if not ok:
        raise SampleError(f"stored {stage} array for {sample_id!r} is {array.shape} {array.dtype}; expected {wanted}")
    return stage, (array.astype(np.float32) if stage == "normalise" else array)
