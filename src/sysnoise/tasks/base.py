"""What the engine needs from a task: how a sample becomes model inputs (once per distinct
pre-processing node), how a batch of inputs becomes fixed-shape per-sample outputs, and what a
failed sample's outputs look like. Tasks register by name; `sysnoise run --task NAME` picks one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from sysnoise.errors import SampleError
from sysnoise.registry import Registry

TASKS: Registry = Registry("task")


class Task:
    name = "task"

    def load_input(self, sample, pipelines) -> dict[tuple, object]:
        """{pipeline.prefix('normalise'): model input or SampleError} for one sample (runs in workers).

        `sample` is the dataset's sample object (for images: .path); the default reads an image file.
        """
        from sysnoise.pipeline.preprocess import tensors

        try:
            data = Path(sample.path).read_bytes()
        except OSError as err:
            error = SampleError(f"cannot read file: {err.strerror or err}")
            return {p.prefix("normalise"): error for p in pipelines}
        return tensors(data, pipelines, sample_id=getattr(sample, "id", None))

    def content_key(self, model_input) -> bytes:
        """Equal keys mean equal inputs, so one forward serves both."""
        array = np.ascontiguousarray(model_input)
        return hashlib.blake2b(memoryview(array), digest_size=16).digest() + str(array.shape).encode()

    def forward(self, model, inputs: list, batch_size: int, device: str) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def failed_outputs(self, n: int) -> dict[str, np.ndarray]:
        raise NotImplementedError
