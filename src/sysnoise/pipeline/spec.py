"""The Pipeline value: the whole system between a raw file and the task's answer, as data.

A Pipeline is frozen and hashable, so it can key caches and compare; it round-trips through
JSON and YAML so a user can write down the system they trained with and the one they deploy on.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from sysnoise.pipeline.limits import MAX_INPUT_SIZE

# Stages in data-flow order, each with the fields it reads. Variants that agree on every field
# up to a stage share that stage's output: the engine keys its work by these prefixes.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("decode", ("decoder",)),
    ("colour", ("colour",)),
    ("geometry", ("resize", "crop", "input_size", "crop_pct")),
    ("normalise", ("mean", "std")),
    ("model", ("precision", "operators", "runtime")),
    ("postprocess", ("postprocess",)),
)
STAGE_NAMES = tuple(name for name, _ in STAGES)


@dataclass(frozen=True)
class Pipeline:
    decoder: str = "pillow"
    colour: str = "rgb"
    resize: str = "pillow-bilinear"
    crop: str = "shorter-centre-crop"
    input_size: int = 224
    crop_pct: float = 0.875
    mean: tuple[float, float, float] = (123.675, 116.28, 103.53)  # in 0..255 pixel units
    std: tuple[float, float, float] = (58.395, 57.12, 57.375)
    precision: str = "fp32"
    operators: tuple[str, ...] = ()
    runtime: str = "torch"
    postprocess: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Normalise containers so equal systems compare and hash equal whatever the input type.
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        object.__setattr__(self, "operators", tuple(sorted(set(self.operators))))
        object.__setattr__(self, "postprocess", tuple(self.postprocess))
        object.__setattr__(self, "input_size", int(self.input_size))
        object.__setattr__(self, "crop_pct", float(self.crop_pct))
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError("mean and std need three values (R, G, B)")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be positive, got {self.std}")
        if self.input_size > MAX_INPUT_SIZE:  # refused before any work, not after gigabytes of it
            raise ValueError(f"input_size: {self.input_size} exceeds the limit of {MAX_INPUT_SIZE} pixels")
        if self.input_size <= 0 or not 0 < self.crop_pct <= 1:
            raise ValueError(f"bad geometry: input_size={self.input_size}, crop_pct={self.crop_pct}")

    def replace(self, **changes: Any) -> "Pipeline":
        return replace(self, **changes)

    def prefix(self, stage: str) -> tuple:
        """The fields that determine this stage's output: equal prefixes mean shared work."""
        key: list = []
        for name, names in STAGES:
            key.extend(getattr(self, f) for f in names)
            if name == stage:
                return tuple(key)
        raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGE_NAMES)}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("mean", "std", "operators", "postprocess"):
            data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "pipeline") -> "Pipeline":
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a mapping of pipeline fields, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{source}: unknown pipeline field(s) {unknown}; known fields: {sorted(known)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Pipeline":
        return cls.from_dict(json.loads(text))

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def load(cls, path: str | Path, *, base: "Pipeline | None" = None) -> "Pipeline":
        """Read a YAML/JSON file; fields it leaves out come from `base` (default: the defaults)."""
        import yaml

        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ValueError(f"{path}: cannot read pipeline: {err}") from None
        merged = (base or cls()).to_dict()
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of pipeline fields")
        merged.update(data)
        return cls.from_dict(merged, source=str(path))

    def diff(self, other: "Pipeline") -> dict[str, tuple[Any, Any]]:
        """Fields that differ, in stage order: {field: (self's value, other's value)}."""
        return {
            f: (getattr(self, f), getattr(other, f))
            for _, names in STAGES
            for f in names
            if getattr(self, f) != getattr(other, f)
        }

    def first_divergent_stage(self, other: "Pipeline") -> str | None:
        for name, names in STAGES:
            if any(getattr(self, f) != getattr(other, f) for f in names):
                return name
        return None
