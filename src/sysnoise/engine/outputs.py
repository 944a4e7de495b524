"""The per-sample outputs of a run: everything the analysis and the reports are computed from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sysnoise.engine.store import load_arrays, save_arrays

# A ragged field NAME (one byte string per sample: detection's RLE masks) is held as NAME.bytes
# (the strings end to end, uint8) and NAME.lengths (n,); it is saved beside outputs.npz, in
# outputs.NAME.npz, so the fixed-shape outputs stay small and quick to load.
RAGGED_BYTES, RAGGED_LENGTHS = ".bytes", ".lengths"


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

    def ragged_names(self) -> list[str]:
        """The ragged fields (see RAGGED_BYTES) the columns hold."""
        first = self.arrays[self.column_ids[0]] if self.column_ids else {}
        return [k[: -len(RAGGED_LENGTHS)] for k in first if k.endswith(RAGGED_LENGTHS)]

    def ragged(self, column: str, name: str) -> list[bytes]:
        """One byte string per sample of the ragged field `name` in `column`."""
        arrays = self.arrays[column]
        lengths = arrays[name + RAGGED_LENGTHS].astype(np.int64)
        blob = arrays[name + RAGGED_BYTES].tobytes()
        ends = np.cumsum(lengths)
        return [blob[int(e - n) : int(e)] for e, n in zip(ends, lengths)]

    @staticmethod
    def ragged_path(path: Path, name: str) -> Path:
        path = Path(path)
        return path.with_name(f"{path.stem}.{name}{path.suffix}")

    @staticmethod
    def _ragged_files(path: Path) -> dict[str, Path]:
        """The side files beside `path` (outputs.NAME.npz), by field name."""
        return {
            side.name[len(path.stem) + 1 : -len(path.suffix)]: side
            for side in sorted(path.parent.glob(f"{path.stem}.*{path.suffix}"))
        }

    def save(self, path: Path) -> None:
        """outputs.npz, and each ragged field in outputs.NAME.npz beside it."""
        ragged = self.ragged_names()
        suffixes = tuple(name + end for name in ragged for end in (RAGGED_BYTES, RAGGED_LENGTHS))
        flat = {
            "sample_ids": np.asarray(self.sample_ids, dtype=str),
            "labels": self.labels,
            "column_ids": np.asarray(self.column_ids, dtype=str),
        }
        side = {name: {"sample_ids": flat["sample_ids"], "column_ids": flat["column_ids"]} for name in ragged}
        for index, column in enumerate(self.column_ids):
            for name, array in self.arrays[column].items():
                if name.endswith(suffixes):
                    field, _, end = name.rpartition(".")
                    side[field][f"c{index}.{end}"] = array
                else:
                    flat[f"c{index}.{name}"] = array
            flat[f"c{index}.error"] = self.errors[column]
        save_arrays(path, flat)
        for name, arrays in side.items():
            save_arrays(self.ragged_path(path, name), arrays)
        for name, stale in self._ragged_files(Path(path)).items():  # an earlier run's in this folder
            if name not in side:
                stale.unlink()

    @classmethod
    def load(cls, path: Path) -> "RunOutputs":
        path = Path(path)
        flat = load_arrays(path)
        column_ids = [str(c) for c in flat["column_ids"]]
        arrays, errors = {}, {}
        for index, column in enumerate(column_ids):
            prefix = f"c{index}."
            arrays[column] = {
                k[len(prefix) :]: v for k, v in flat.items() if k.startswith(prefix) and not k.endswith(".error")
            }
            errors[column] = flat[f"{prefix}error"]
        for name, side_path in cls._ragged_files(path).items():
            side = load_arrays(side_path)
            if [str(c) for c in side.get("column_ids", [])] != column_ids or [
                str(c) for c in side.get("sample_ids", [])
            ] != [str(c) for c in flat["sample_ids"]]:
                continue  # not this run's (a stale file): ignored
            for index, column in enumerate(column_ids):
                for end in (RAGGED_BYTES, RAGGED_LENGTHS):
                    arrays[column][name + end] = side[f"c{index}{end}"]
        return cls(column_ids, [str(s) for s in flat["sample_ids"]], flat["labels"], arrays, errors)
