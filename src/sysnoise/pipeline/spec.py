"""The Pipeline value: the whole system between a raw file and the task's answer, as data.

A Pipeline is frozen and hashable, so it can key caches and compare; it round-trips through
JSON and YAML so a user can write down the system they trained with and the one they deploy on.
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable

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


class FieldError(ValueError):
    """One field's value is wrong: the field is kept apart so a reader can say where it was written."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


# What each field holds when read from a file (from_dict): checked before the value is built, so
# `input_size: [1, 2]` or `mean: 5` is an error naming the field, never a TypeError from inside.
_KINDS: dict[str, str] = {
    "decoder": "a name",
    "colour": "a name",
    "resize": "a name",
    "crop": "a name",
    "precision": "a name",
    "runtime": "a name",
    "input_size": "an integer",
    "crop_pct": "a number",
    "mean": "three numbers",
    "std": "three numbers",
    "operators": "a list of names",
    "postprocess": "a list of names",
}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fits(kind: str, value: Any) -> bool:
    if kind == "a name":
        return isinstance(value, str)
    if kind == "an integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "a number":
        return _is_number(value)
    if kind == "three numbers":
        return isinstance(value, (list, tuple)) and len(value) == 3 and all(_is_number(v) for v in value)
    return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)


def key_lines(text: str) -> dict[str, int]:
    """The 1-based line of each top-level key of a YAML/JSON mapping (empty if it is none)."""
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {str(key.value): key.start_mark.line + 1 for key, _ in node.value}


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
        for name in ("mean", "std"):
            values = getattr(self, name)
            if len(values) != 3 or not all(math.isfinite(v) for v in values):
                raise FieldError(name, f"needs three finite values (R, G, B), got {list(values)}")
        if any(s <= 0 for s in self.std):
            raise FieldError("std", f"must be positive (it divides), got {list(self.std)}")
        if self.input_size <= 0:
            raise FieldError("input_size", f"must be a positive number of pixels, got {self.input_size}")
        if self.input_size > MAX_INPUT_SIZE:  # refused before any work, not after gigabytes of it
            raise FieldError("input_size", f"{self.input_size} exceeds the limit of {MAX_INPUT_SIZE} pixels")
        if not 0 < self.crop_pct <= 1:
            raise FieldError(
                "crop_pct", f"must be in (0, 1] (the crop's share of the resized side), got {self.crop_pct}"
            )

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
    def from_dict(
        cls, data: dict[str, Any], *, source: str = "pipeline", lines: dict[str, int] | None = None
    ) -> "Pipeline":
        """A Pipeline from its fields, each checked; errors start with `source` (and the field's line
        when `lines` has it)."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a mapping of pipeline fields, got {type(data).__name__}")
        known = [f.name for f in fields(cls)]
        for key in data:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=2)
                hint = f"did you mean {', '.join(close)}? " if close else ""
                raise ValueError(
                    f"{_where(source, lines, key)}: unknown pipeline field {str(key)!r}; {hint}"
                    f"known fields: {', '.join(known)}"
                )
        try:
            for key, value in data.items():
                if not _fits(_KINDS[key], value):
                    raise FieldError(key, f"should be {_KINDS[key]}, got {value!r}")
            return cls(**data)
        except FieldError as err:
            raise ValueError(f"{_where(source, lines, err.field)}: {err}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Pipeline":
        return cls.from_dict(json.loads(text))

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def load(
        cls, path: str | Path, *, base: "Pipeline | None" = None, prepare: Callable[[dict], dict] | None = None
    ) -> "Pipeline":
        """Read a YAML/JSON file; fields it leaves out come from `base` (default: the defaults).
        prepare: the file's own mapping -> the fields to use (e.g. other tools' spellings translated);
        a FieldError it raises is reported at the field's line. Every error is a ValueError that
        starts with FILE[:line]."""
        import yaml

        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else err
            raise ValueError(f"{path}: cannot read pipeline file: {reason}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise ValueError(
                f"{where}: not a YAML/JSON pipeline ({problem}); write plain `field: value` lines "
                "(no tags such as !!python/...)"
            ) from None
        except RecursionError:
            raise ValueError(f"{path}: nested too deeply to read; write plain `field: value` lines") from None
        except ValueError as err:  # an integer beyond Python's digit limit
            raise ValueError(f"{path}: a number too long to read ({str(err).split(';')[0]})") from None
        data = {} if data is None else data
        if not isinstance(data, dict):
            raise ValueError(
                f"{path}: expected a mapping of pipeline fields (`field: value` lines), got {type(data).__name__}"
            )
        lines = key_lines(text)
        if prepare is not None:
            try:
                data = prepare(data)
            except FieldError as err:
                raise ValueError(f"{_where(str(path), lines, err.field)}: {err}") from None
        merged = (base or cls()).to_dict()
        merged.update(data)
        return cls.from_dict(merged, source=str(path), lines=lines)

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


def _where(source: str, lines: dict[str, int] | None, field: Any) -> str:
    line = (lines or {}).get(str(field))
    return f"{source}:{line}" if line else source
