"""The image dataset's values: samples with label sets (a classification dataset, also what the
data formats and the calibration split hand around). A leaf, so readers in data/ and the
classification task share it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"}


@dataclass(frozen=True)
class Sample:
    id: str  # path relative to the dataset root, with forward slashes
    path: Path
    labels: tuple[int, ...] = ()


@dataclass
class Dataset:
    root: Path
    samples: list[Sample]
    kind: str  # "imagefolder" | "listfile" | "unlabeled"
    class_names: list[str] | None = None
    problems: list[dict] = field(default_factory=list)  # entries dropped while reading, with reasons

    @property
    def n_labeled(self) -> int:
        return sum(1 for s in self.samples if s.labels)

    def label_matrix(self) -> np.ndarray:
        """(n, max set size) int array of acceptable classes, padded with -1."""
        width = max([len(s.labels) for s in self.samples] + [1])
        out = np.full((len(self.samples), width), -1, np.int64)
        for i, s in enumerate(self.samples):
            out[i, : len(s.labels)] = s.labels
        return out

    def describe(self) -> dict:
        return {
            "path": str(self.root),
            "kind": self.kind,
            "n_samples": len(self.samples),
            "n_labeled": self.n_labeled,
            "n_dropped_while_reading": len(self.problems),
        }
