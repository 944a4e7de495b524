"""Fuzz: mutated JPEG/PNG bytes through every decoder and colour path never crash the process and
never raise; every outcome is a pixel array or a per-file SampleError."""

import io
import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from sysnoise.errors import SampleError
from sysnoise.pipeline.colour import COLOURS
from sysnoise.pipeline.decode import DECODERS
from sysnoise.pipeline.preprocess import pixels
from sysnoise.pipeline.spec import Pipeline


def _seed_files() -> list[bytes]:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    out = []
    for fmt, kw in [("JPEG", {"quality": 80}), ("JPEG", {"quality": 90, "progressive": True}), ("PNG", {})]:
        buffer = io.BytesIO()
        image.save(buffer, fmt, **kw)
        out.append(buffer.getvalue())
    return out


SEEDS = _seed_files()


def _available(entry) -> bool:
    check = entry.meta.get("available")
    return check is None or bool(check())


PIPELINES = [
    Pipeline(decoder=d.name, colour=c, input_size=16) for d in DECODERS if _available(d) for c in COLOURS.names()
]


@st.composite
def mutated(draw):
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        position = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[position] ^= draw(st.integers(1, 255))
        elif kind == "truncate":
            del data[position:]
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[position : position + draw(st.integers(1, 32))]
    return bytes(data)


@settings(
    max_examples=1500,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated())
def test_mutated_files_give_arrays_or_clean_errors(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # libraries may warn about odd files; they must not raise
        outcomes = pixels(data, PIPELINES)
    for outcome in outcomes.values():
        if isinstance(outcome, SampleError):
            assert str(outcome)
        else:
            assert isinstance(outcome, np.ndarray) and outcome.dtype == np.uint8 and outcome.shape == (16, 16, 3)
