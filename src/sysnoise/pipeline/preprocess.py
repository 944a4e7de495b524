"""Run the pre-processing stages of many pipelines on one sample, computing each distinct stage once.

Pipelines that agree up to a stage share that stage's output (the memo is keyed by the pipeline's
prefix), so a resize variant reuses the reference decode and a precision variant reuses the
reference tensor. A stage that fails stores its error, and every pipeline downstream gets it.
A stored error is a fresh SampleError holding only the failure's text: the exception a library
raised (its traceback, its context) can hold a huge buffer and is dropped as soon as it is read.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from sysnoise.errors import SampleError, message
from sysnoise.pipeline import stored
from sysnoise.pipeline.colour import COLOURS
from sysnoise.pipeline.decode import DECODERS, decode
from sysnoise.pipeline.geometry import CROPS, apply_geometry, source_size_needed
from sysnoise.pipeline.normalise import normalise
from sysnoise.pipeline.resize import RESIZES
from sysnoise.pipeline.spec import Pipeline

Result = "np.ndarray | SampleError"
PIXEL_STAGES = ("decode", "colour", "geometry", "normalise")


class Memo:
    def __init__(self) -> None:
        self.values: dict[tuple, object] = {}

    def get(self, key: tuple, compute):
        if key not in self.values:
            try:
                self.values[key] = compute()
            except SampleError as err:
                self.values[key] = SampleError(message(err))
            except Exception as err:  # a library failing on odd input is a per-sample problem
                self.values[key] = SampleError(message(f"{type(err).__name__}: {err}"))
        return self.values[key]


def _geometry(image: np.ndarray, p: Pipeline) -> np.ndarray:
    h, w = image.shape[:2]
    return apply_geometry(image, CROPS(p.crop)(w, h, p.input_size, p.crop_pct), RESIZES(p.resize))


def _draft_target(p: Pipeline):
    """For a decoder that scales while decoding: the smallest source size the geometry still needs."""
    return lambda w, h: source_size_needed(CROPS(p.crop)(w, h, p.input_size, p.crop_pct), w, h)


def _sized(p: Pipeline) -> bool:
    return p.decoder in DECODERS and bool(DECODERS.get(p.decoder).meta.get("sized"))


def stage_values(data: bytes, p: Pipeline, memo: Memo | None = None, sample_id: str | None = None) -> dict[str, object]:
    """Each pre-processing stage's output for one pipeline, {stage: array | SampleError | None}.

    None marks a stage that did not run here: pixels read from a stored folder enter the pipeline
    after the stage they were saved at. Work is memoised by stage prefix across pipelines.
    """
    memo = memo or Memo()
    # A decoder that scales while decoding makes its output depend on the geometry fields too.
    extra = (p.crop, p.input_size, p.crop_pct) if _sized(p) else ()
    key = lambda stage: (stage,) + p.prefix(stage) + extra  # noqa: E731
    values: dict[str, object] = {}
    if stored.is_stored(p.decoder):
        loaded = memo.get(
            ("stored", p.decoder, p.input_size, sample_id), lambda: stored.load(p.decoder, sample_id, p.input_size)
        )
        first = PIXEL_STAGES.index(loaded[0]) if isinstance(loaded, tuple) else 0
        values = dict.fromkeys(PIXEL_STAGES[:first])
        values[PIXEL_STAGES[first]] = loaded[1] if isinstance(loaded, tuple) else loaded
    else:
        target = _draft_target(p) if extra else None
        values["decode"] = memo.get(key("decode"), lambda: decode(p.decoder, data, target=target))
        first = 0
    steps = {
        "colour": lambda image: COLOURS(p.colour)(image),
        "geometry": lambda image: _geometry(image, p),
        "normalise": lambda image: normalise(image, p.mean, p.std),
    }
    for before, stage in zip(PIXEL_STAGES[first:], PIXEL_STAGES[first + 1 :]):
        upstream = values[before]  # an upstream error passes through to every later stage
        values[stage] = (
            upstream if isinstance(upstream, SampleError) else memo.get(key(stage), lambda: steps[stage](upstream))
        )
    return values


def pixels(
    data: bytes, pipelines: Iterable[Pipeline], memo: Memo | None = None, sample_id: str | None = None
) -> dict[tuple, object]:
    """uint8 HxWx3 arrays after decode, colour and geometry, keyed by each pipeline's geometry prefix."""
    memo = memo or Memo()
    return {p.prefix("geometry"): stage_values(data, p, memo, sample_id)["geometry"] for p in pipelines}


def tensors(data: bytes, pipelines: Iterable[Pipeline], sample_id: str | None = None) -> dict[tuple, object]:
    """CHW float32 model inputs (or the SampleError that stopped them), keyed by normalise prefix."""
    memo = Memo()
    return {p.prefix("normalise"): stage_values(data, p, memo, sample_id)["normalise"] for p in pipelines}
