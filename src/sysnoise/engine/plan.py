"""The plan: which distinct pieces of work a set of variants needs.

Columns are the reference plus each variant. Pipelines that share a pre-processing prefix share
its output, and columns whose model stage matches share one built model; the executor walks the
data once and computes each distinct node once per sample.
"""

from __future__ import annotations

from dataclasses import dataclass

from sysnoise.noises import Variant
from sysnoise.pipeline.spec import Pipeline

REFERENCE = "reference"


def model_key(pipeline: Pipeline) -> tuple:
    return (pipeline.precision, pipeline.operators, pipeline.runtime)


@dataclass(frozen=True)
class Column:
    id: str
    pipeline: Pipeline
    noise: str | None = None
    option: str | None = None
    model_owner: str | None = None  # set when the model stage is stateful (inference/adapt.py): not shared

    @property
    def tensor_key(self) -> tuple:
        return self.pipeline.prefix("normalise")

    @property
    def model_key(self) -> tuple:
        return model_key(self.pipeline) + ((self.model_owner,) if self.model_owner else ())


@dataclass(frozen=True)
class Plan:
    reference: Pipeline
    variants: tuple[Variant, ...]

    def __post_init__(self) -> None:
        ids = [v.id for v in self.variants]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"variant ids must be unique; repeated: {duplicates}")

    @property
    def columns(self) -> list[Column]:
        return [Column(REFERENCE, self.reference)] + [
            Column(v.id, v.pipeline, v.noise, v.option) for v in self.variants
        ]

    def tensor_pipelines(self) -> list[Pipeline]:
        """One pipeline per distinct model input (pre-processing prefix)."""
        seen: dict[tuple, Pipeline] = {}
        for column in self.columns:
            seen.setdefault(column.tensor_key, column.pipeline)
        return list(seen.values())

    def model_pipelines(self) -> dict[tuple, Pipeline]:
        """One pipeline per distinct model stage, keyed by model_key."""
        seen: dict[tuple, Pipeline] = {}
        for column in self.columns:
            seen.setdefault(column.model_key, column.pipeline)
        return seen

    def fingerprint(self) -> list[dict]:
        return [{"id": c.id, "pipeline": c.pipeline.to_dict()} for c in self.columns]
