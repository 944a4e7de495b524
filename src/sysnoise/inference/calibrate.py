"""Calibration data for INT8: which samples, and the input batches made from them.

A quantizer calibrated on the images it is then scored on is flattered; sysnoise never does
that. The calibration split is either the user's own files (checked to be disjoint from the
evaluation set by path and by content) or a deterministic held-out slice of the dataset:
the samples whose id hashes lowest, at most `MAX_HELD_OUT` and at most a fifth of the data.
Held-out samples are removed from the evaluation of every column (reference included), so all
columns are scored on the same samples; results.json lists them under dataset.calibration.

Calibration inputs are made by the REFERENCE pipeline (the training system's pre-processing),
as a deployer calibrates with the pre-processing they validated.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from sysnoise.errors import SampleError, UserInputError
from sysnoise.tasks.base import Task

MAX_HELD_OUT = 32
HELD_OUT_FRACTION = 5  # at most 1/5 of the dataset
MIN_DATASET = 10  # below this, holding out would leave too little: ask for calibration data


@dataclass
class CalibrationSplit:
    paths: list[Path]
    ids: list[str]
    source: str  # "held-out" | "user"
    notes: list[str] = field(default_factory=list)

    def describe(self) -> dict:
        return {
            "source": self.source,
            "n_samples": len(self.ids),
            "ids": self.ids,
            "pipeline": "reference",
            "notes": self.notes,
        }


def _rank(sample_id: str) -> bytes:
    return hashlib.blake2b(sample_id.encode(), digest_size=8).digest()


def held_out_count(n: int, requested: int | None = None) -> int:
    if requested is not None:
        return max(0, min(int(requested), n - 1))
    return min(MAX_HELD_OUT, n // HELD_OUT_FRACTION)


def hold_out(samples: list, requested: int | None = None) -> tuple[list, list]:
    """(evaluation samples, calibration samples): the calibration samples are those whose id hashes
    lowest, so the choice does not depend on file order and is the same on every run."""
    if requested is None and len(samples) < MIN_DATASET:
        raise UserInputError(
            f"INT8 calibration needs data: the dataset has only {len(samples)} samples, too few to hold "
            f"some out; pass calibration data (--calibration-data PATH)"
        )
    count = held_out_count(len(samples), requested)
    chosen = {s.id for s in sorted(samples, key=lambda s: _rank(s.id))[:count]}
    return [s for s in samples if s.id not in chosen], [s for s in samples if s.id in chosen]


def _digest(path: Path) -> str:
    return hashlib.blake2b(Path(path).read_bytes(), digest_size=16).hexdigest()


def check_disjoint(calibration: list, evaluation: list) -> None:
    """Refuse calibration files that are evaluation files (same resolved path or same bytes)."""
    eval_paths = {Path(s.path).resolve() for s in evaluation}
    same_path = [s.id for s in calibration if Path(s.path).resolve() in eval_paths]
    eval_digests = {}
    for s in evaluation:
        try:
            eval_digests[_digest(s.path)] = s.id
        except OSError:
            continue
    same_bytes = []
    for s in calibration:
        try:
            digest = _digest(s.path)
        except OSError:
            continue
        if digest in eval_digests:
            same_bytes.append(f"{s.id} = {eval_digests[digest]}")
    if same_path or same_bytes:
        raise UserInputError(
            "calibration data must be disjoint from the evaluation data; shared: "
            + ", ".join((same_path + same_bytes)[:5])
            + (" ..." if len(same_path + same_bytes) > 5 else "")
        )


def batches(samples, pipeline, batch_size: int = 16, task=None) -> list:
    """Float32 input batches (torch tensors) made from `samples` under `pipeline` by the task's own
    input loading; samples that fail to load are skipped (they would be skipped in evaluation too).
    `samples` may also be plain paths."""
    import numpy as np
    import torch

    task = task or Task()
    key = pipeline.prefix("normalise")
    arrays = []
    for sample in samples:
        if isinstance(sample, (str, Path)):
            sample = _PathSample(Path(sample))
        node = task.load_input(sample, [pipeline]).get(key)
        if node is not None and not isinstance(node, SampleError):
            arrays.append(np.asarray(node, dtype=np.float32))
    batches = []
    for shape in dict.fromkeys(a.shape for a in arrays):  # keep-ratio inputs (detection) differ in size
        same = [a for a in arrays if a.shape == shape]
        batches += [torch.from_numpy(np.stack(same[i : i + batch_size])) for i in range(0, len(same), batch_size)]
    return batches


@dataclass(frozen=True)
class _PathSample:
    path: Path

    @property
    def id(self) -> str:
        return self.path.name
