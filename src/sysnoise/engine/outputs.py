"""The per-sample outputs of a run: everything the analysis and the reports are computed from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sysnoise.engine.store import load_arrays, save_arrays

FIELDS = ("topk", "prob")


@dataclass
class RunOutputs:
    column_ids: list[str]  # "reference" first, then variant ids
    sample_ids: list[str]
    labels: np.ndarray  # (n, L) acceptable classes, -1 padded
    arrays: dict[str, dict[str, np.ndarray]]  # column id -> field -> (n, ...) array
    errors: dict[str, np.ndarray]  # column id -> (n,) str, "" where the sample went through

    @property
    def valid(self) -> np.ndarray:
        """Samples the reference pipeline could process; the others are skipped everywhere."""
        return self.errors[self.column_ids[0]] == ""

    def save(self, path: Path) -> None:
        flat = {"sample_ids": np.asarray(self.sample_ids, dtype=str), "labels": self.labels,
                "column_ids": np.asarray(self.column_ids, dtype=str)}
        for index, column in enumerate(self.column_ids):
            for name, array in self.arrays[column].items():
                flat[f"c{index}.{name}"] = array
            flat[f"c{index}.error"] = self.errors[column]
        save_arrays(path, flat)

    @classmethod
    def load(cls, path: Path) -> "RunOutputs":
        flat = load_arrays(path)
        column_ids = [str(c) for c in flat["column_ids"]]
        arrays, errors = {}, {}
        for index, column in enumerate(column_ids):
            prefix = f"c{index}."
            arrays[column] = {k[len(prefix):]: v for k, v in flat.items() if k.startswith(prefix) and not k.endswith(".error")}
            errors[column] = flat[f"{prefix}error"]
        return cls(column_ids, [str(s) for s in flat["sample_ids"]], flat["labels"], arrays, errors)
