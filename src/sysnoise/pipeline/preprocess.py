"""Run the pre-processing stages of many pipelines on one sample, computing each distinct stage once.

Pipelines that agree up to a stage share that stage's output (the memo is keyed by the pipeline's
prefix), so a resize variant reuses the reference decode and a precision variant reuses the
reference tensor. A stage that fails stores its error, and every pipeline downstream gets it.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from sysnoise.errors import SampleError
from sysnoise.pipeline.colour import COLOURS
from sysnoise.pipeline.decode import decode
from sysnoise.pipeline.geometry import CROPS, apply_geometry
from sysnoise.pipeline.normalise import normalise
from sysnoise.pipeline.resize import RESIZES
from sysnoise.pipeline.spec import Pipeline

Result = "np.ndarray | SampleError"


class _Memo:
    def __init__(self) -> None:
        self.values: dict[tuple, object] = {}

    def get(self, key: tuple, compute):
        if key not in self.values:
            try:
                self.values[key] = compute()
            except SampleError as err:
                self.values[key] = err
            except Exception as err:  # a library failing on odd input is a per-sample problem
                self.values[key] = SampleError(f"{type(err).__name__}: {err}")
        return self.values[key]


def _then(upstream, fn):
    """Apply fn to an upstream value, passing an upstream error through unchanged."""
    if isinstance(upstream, SampleError):
        raise upstream
    return fn(upstream)


def pixels(data: bytes, pipelines: Iterable[Pipeline], memo: _Memo | None = None) -> dict[tuple, object]:
    """uint8 HxWx3 arrays after decode, colour and geometry, keyed by each pipeline's geometry prefix."""
    memo = memo or _Memo()
    out: dict[tuple, object] = {}
    for p in pipelines:
        decoded = memo.get(p.prefix("decode"), lambda: decode(p.decoder, data))
        coloured = memo.get(p.prefix("colour"), lambda: _then(decoded, COLOURS(p.colour)))

        def geometry(image: np.ndarray, p: Pipeline = p) -> np.ndarray:
            h, w = image.shape[:2]
            return apply_geometry(image, CROPS(p.crop)(w, h, p.input_size, p.crop_pct), RESIZES(p.resize))

        out[p.prefix("geometry")] = memo.get(p.prefix("geometry"), lambda: _then(coloured, geometry))
    return out


def tensors(data: bytes, pipelines: Iterable[Pipeline]) -> dict[tuple, object]:
    """CHW float32 model inputs (or the SampleError that stopped them), keyed by normalise prefix."""
    pipelines = list(pipelines)
    memo = _Memo()
    geometry = pixels(data, pipelines, memo)
    out: dict[tuple, object] = {}
    for p in pipelines:
        upstream = geometry[p.prefix("geometry")]
        out[p.prefix("normalise")] = memo.get(
            p.prefix("normalise"), lambda: _then(upstream, lambda im: normalise(im, p.mean, p.std))
        )
    return out
