"""Write a noised copy of a dataset: each image after the decode / colour / geometry (or normalise)
stage of a chosen pipeline, as lossless PNG or .npy, with a list file and a manifest, as the
SysNoise paper generated its ImageNet variants. The folder is then a pipeline input of its own:
`sysnoise run ... --noise stored=FOLDER` evaluates it as a variant (pipeline.stored).
"""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path
from typing import Callable

import numpy as np

from sysnoise.engine.store import atomic_write_bytes, atomic_write_text
from sysnoise.errors import SampleError, UserInputError
from sysnoise.pipeline import stored
from sysnoise.pipeline.decode import decoder_versions
from sysnoise.pipeline.preprocess import stage_values
from sysnoise.pipeline.spec import Pipeline
from sysnoise.tasks.classification import list_line

LIST_FILE = "list.txt"


def _encode(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "npy":
        np.save(buffer, array, allow_pickle=False)
    else:
        from PIL import Image

        Image.fromarray(array).save(buffer, "PNG")  # lossless
    return buffer.getvalue()


def generate(
    samples: list,
    pipeline: Pipeline,
    out: str | Path,
    *,
    fmt: str = "png",
    stage: str = "geometry",
    source: str = "",
    on_progress: Callable[[int], None] | None = None,
) -> dict:
    """samples: objects with .id, .path and .labels (a Dataset's samples). Returns the manifest."""
    if fmt not in stored.FORMATS:
        raise UserInputError(f"format must be one of {stored.FORMATS}, got {fmt!r}")
    if stage not in stored.STAGES:
        raise UserInputError(f"stage must be one of {stored.STAGES}, got {stage!r}")
    if stage == "normalise" and fmt == "png":
        raise UserInputError("the normalise stage is float: write it with --format npy")
    if stored.is_stored(pipeline.decoder):
        raise UserInputError("generate from the original images, not from stored pixels")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files, failures, lines = {}, [], []
    for sample in samples:
        try:
            data = Path(sample.path).read_bytes()
        except OSError as err:
            failures.append({"id": sample.id, "reason": f"cannot read file: {err.strerror or err}"})
            continue
        value = stage_values(data, pipeline, sample_id=sample.id)[stage]
        if isinstance(value, SampleError):
            failures.append({"id": sample.id, "reason": str(value)})
        else:
            name = stored.file_name(sample.id, fmt)
            atomic_write_bytes(out / name, _encode(value, fmt))
            files[sample.id] = name
            lines.append(list_line(name, sample.labels))
        if on_progress:
            on_progress(1)

    manifest = {
        "schema": stored.SCHEMA,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "source": source,
        "stage": stage,
        "format": fmt,
        "pipeline": pipeline.to_dict(),
        "decoder_library": decoder_versions().get(pipeline.decoder),
        "n_written": len(files),
        "failures": failures,
        "files": files,
        "list_file": LIST_FILE,
    }
    atomic_write_text(out / LIST_FILE, f"# {stage} stage of {pipeline.to_json()}\n" + "\n".join(lines) + "\n")
    atomic_write_text(out / stored.MANIFEST, json.dumps(manifest, indent=1) + "\n")
    stored.manifest.cache_clear()  # a folder rewritten in this process must be read afresh
    return manifest
