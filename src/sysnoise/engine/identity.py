"""A run's identity: everything its stored outputs depend on, one sha256 per part.

The parts are the model (its class and its weights file's digest, or for a module handed in
from Python a digest of its state_dict tensors), the data (the sample list), the reference
pipeline, the task with its settings, the variants (each one's changes to the reference), the
INT8 calibration samples, the device type and the caller's other settings that change outputs
(how samples are read). The model's name is not part of it: renaming changes no output.

A results folder holds the outputs of one identity (engine/store.py); when two identities
differ, `differences` says in words which parts do, so a refusal can tell the user what changed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sysnoise.engine.store import digest

PARTS = ("model", "data", "reference", "task", "variants", "calibration", "device", "settings")
SHORT = 12  # hex digits of a digest shown to people


def module_digest(module) -> str:
    """sha256 over the module's class and every state_dict entry's name, dtype, shape and bytes:
    two modules digest alike exactly when they compute with the same weights and buffers."""
    import torch

    hasher = hashlib.sha256(f"{type(module).__module__}.{type(module).__qualname__}\n".encode())
    for name, value in module.state_dict().items():
        if isinstance(value, torch.Tensor):
            tensor = value.detach().cpu().contiguous().reshape(-1)  # reshape: 0-d tensors get a byte view too
            hasher.update(f"{name}:{tensor.dtype}:{tuple(value.shape)}\n".encode())
            hasher.update(tensor.view(torch.uint8).numpy())  # the bytes in place, not a copy
        else:  # a module's extra state: whatever it is, its repr stands for it
            hasher.update(f"{name}:{value!r}\n".encode())
    return hasher.hexdigest()


def task_settings(task) -> dict[str, Any]:
    """The task's name and its plain settings (segmentation's ignore_index, a language window...):
    bound tasks carry what changes their outputs as simple attributes."""
    plain = {
        key: value
        for key, value in sorted(vars(task).items())
        if isinstance(value, (bool, int, float, str)) or value is None
    }
    return {"name": task.name, **plain}


@dataclass(frozen=True)
class RunIdentity:
    digests: dict[str, str]  # part -> sha256 hex
    details: dict[str, Any]  # part -> what a person reads about it in a refusal

    @property
    def key(self) -> str:
        return digest(self.digests)

    def record(self) -> dict[str, Any]:
        return {"digests": self.digests, "details": self.details}

    def differences(self, stored: dict) -> list[str]:
        """What changed from `stored` (a record: {"digests": ..., "details": ...}; details may be
        missing) to this identity, one phrase per differing part."""
        digests, details = stored.get("digests") or {}, stored.get("details") or {}
        return [
            _describe(part, details.get(part), self.details.get(part))
            for part in PARTS
            if digests.get(part) != self.digests.get(part)
        ]


def identify(loaded, samples: list, plan, task, calibration, device: str, settings: dict) -> RunIdentity:
    """The identity of one engine pass: `samples` is the caller's list of what each sample's
    outputs depend on (ids, labels, label files), `calibration` the INT8 calibration samples,
    `settings` any other option that changes outputs (a JSON-able dict)."""
    weights = loaded.weights_sha256 or module_digest(loaded.module)
    module_class = f"{type(loaded.module).__module__}.{type(loaded.module).__qualname__}"
    reference = plan.reference.to_dict()
    variants = {
        column.id: {name: new for name, (_, new) in plan.reference.diff(column.pipeline).items()}
        for column in plan.columns[1:]
    }
    task_values = task_settings(task)
    calibrated = [s.id for s in calibration] if calibration else []
    device_type = device.split(":")[0]  # cuda:1 under torchrun computes as cuda does
    values = {
        "model": {"class": module_class, "weights": weights},
        "data": samples,
        "reference": reference,
        "task": task_values,
        "variants": variants,
        "calibration": calibrated,
        "device": device_type,
        "settings": settings,
    }
    details = {
        "model": f"{loaded.name} ({type(loaded.module).__qualname__}, weights {weights[:SHORT]})",
        "data": f"{len(samples)} samples",
        "reference": reference,
        "task": task_values,
        "variants": sorted(variants),
        "calibration": f"{len(calibrated)} samples",
        "device": device_type,
        "settings": settings,
    }
    # details as run.json stores them (lists, not tuples), so a stored record compares field by field
    return RunIdentity({part: digest(values[part]) for part in PARTS}, json.loads(json.dumps(details, default=str)))


PHRASES = {
    "model": "model weights differ",
    "data": "the sample list differs",
    "reference": "reference pipeline differs",
    "task": "the task or its settings differ",
    "variants": "variants differ",
    "calibration": "the INT8 calibration samples differ",
    "device": "the device type differs",
    "settings": "the reading settings differ",
}


def _describe(part: str, old, new) -> str:
    """One differing part in words; `old` is None when the folder recorded digests only."""
    phrase = PHRASES[part]
    if isinstance(old, dict) and isinstance(new, dict):  # the reference, the task settings: field by field
        changed = [
            f"{name} {_value(old.get(name))} -> {_value(new.get(name))}"
            for name in {**old, **new}
            if old.get(name) != new.get(name)
        ]
        return phrase + (f": {', '.join(changed)}" if changed else "")
    if isinstance(old, list) and isinstance(new, list):  # the variants, by id
        added, removed = [v for v in new if v not in old], [v for v in old if v not in new]
        said = [f"added {', '.join(added)}"] * bool(added) + [f"removed {', '.join(removed)}"] * bool(removed)
        return f"{phrase}: {'; '.join(said) or 'the same names with other pipelines'}"
    return phrase + (f" ({old} -> {new})" if old is not None and old != new else "")


def _value(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)
