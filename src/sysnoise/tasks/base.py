"""What the engine needs from a task: how a sample becomes model inputs (once per distinct
pre-processing node), how a batch of inputs becomes fixed-shape per-sample outputs, and what a
failed sample's outputs look like. A task's definition (tasks/definition.py) makes one per run.
"""

from __future__ import annotations

import hashlib

import numpy as np

from sysnoise.data.formats import read_bytes
from sysnoise.errors import SampleError
from sysnoise.pipeline.integrity import check_intact
from sysnoise.pipeline.preprocess import tensors


def read_sample(path, include_corrupt: bool = False) -> bytes:
    """A sample file's bytes, or SampleError: a regular file (or a member of a container:
    data.formats.read_bytes) within the size limit (pipeline.limits) whose data passes the
    pre-flight check (pipeline.integrity) unless corrupt samples are to be measured too."""
    data = read_bytes(path)
    if not include_corrupt:
        check_intact(data)
    return data


def forward_by_shape(model, inputs: list, batch_size: int, device: str) -> dict[str, np.ndarray | list]:
    """Run `model` on inputs of possibly different sizes: equal shapes batched together (a batch of
    one size needs no padding beyond the model's own), outputs back in input order: per name one
    array, or a list of per-input arrays where their shapes differ (a segmenter's logits have its
    input's size). A model that returns one tensor (a segmenter's logits) gives {"logits": ...}."""
    import torch

    arrays = [np.asarray(i, dtype=np.float32) for i in inputs]
    by_shape: dict[tuple, list[int]] = {}
    for index, array in enumerate(arrays):
        by_shape.setdefault(array.shape, []).append(index)
    rows: dict[int, dict[str, np.ndarray]] = {}
    for indices in by_shape.values():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            out = model(torch.from_numpy(np.stack([arrays[i] for i in chunk])).to(device))
            out = {"logits": out} if isinstance(out, torch.Tensor) else out
            out = {
                name: value.detach().float().cpu().numpy() if value.is_floating_point() else value.cpu().numpy()
                for name, value in out.items()
            }
            for row, index in enumerate(chunk):
                rows[index] = {name: value[row] for name, value in out.items()}
    out = {}
    for name in rows[0]:
        values = [rows[i][name] for i in range(len(arrays))]
        out[name] = np.stack(values) if len({v.shape for v in values}) == 1 else values
    return out


class Task:
    name = "task"

    def load_input(self, sample, pipelines, cache=None, include_corrupt: bool = False) -> dict[tuple, object]:
        """{pipeline.prefix('normalise'): model input or SampleError} for one sample (runs in workers).

        `sample` is the dataset's sample object (for images: .path); the default reads an image
        file once (read_sample) and computes every pipeline's input from its bytes, reusing `cache`
        entries.
        """
        try:
            data = read_sample(sample.path, include_corrupt)
        except SampleError as err:
            error = SampleError(str(err))  # its text only: no traceback kept
            return {p.prefix("normalise"): error for p in pipelines}
        sample_id = getattr(sample, "id", None)  # stored-pixel pipelines read by sample id, not by content
        if cache is None:
            return self.inputs_from_bytes(data, pipelines, sample_id)
        content = cache.content_hash(data)
        found = {
            p.prefix("normalise"): None
            if p.decoder.startswith("stored:")
            else cache.get(content, p.prefix("normalise"))
            for p in pipelines
        }
        missing = [p for p in pipelines if found[p.prefix("normalise")] is None]
        computed = self.inputs_from_bytes(data, missing, sample_id) if missing else {}
        for key, value in computed.items():
            if isinstance(value, np.ndarray):
                cache.put(content, key, value)
        return {**found, **computed}

    def inputs_from_bytes(self, data: bytes, pipelines, sample_id: str | None = None) -> dict[tuple, object]:
        return tensors(data, pipelines, sample_id=sample_id)

    def content_key(self, model_input) -> bytes:
        """Equal keys mean equal inputs, so one forward serves both."""
        array = np.ascontiguousarray(model_input)
        return hashlib.blake2b(memoryview(array), digest_size=16).digest() + str(array.shape).encode()

    def forward(self, model, inputs: list, batch_size: int, device: str) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def finish(self, pipeline, outputs: dict[str, np.ndarray], model_input) -> dict[str, np.ndarray]:
        """One sample's stored outputs from its forward outputs under `pipeline`'s post-processing.

        Runs per column after the shared forward, so columns that differ only after the model
        (pipeline.postprocess) share one forward pass. The default keeps the outputs as they are."""
        return outputs

    def failed_outputs(self, n: int) -> dict[str, np.ndarray]:
        raise NotImplementedError
