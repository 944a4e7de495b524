"""Per-sample results on disk: committed in chunks, each written atomically, so a killed run
loses at most the chunk in flight and a restarted run continues from what is on disk."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from sysnoise.errors import UserInputError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


class ChunkStore:
    """chunks/NNNNN.npz under a run folder, valid only for the run fingerprint in run.json."""

    def __init__(self, folder: Path, fingerprint: dict, *, fresh: bool = False, owner: bool = True):
        """owner: this process validates the folder and writes run.json (under torchrun only rank 0
        is the owner; the other ranks use the folder after it has, without racing it)."""
        self.folder = Path(folder)
        self.chunks = self.folder / "chunks"
        self.key = digest(fingerprint)
        self.previous = None  # the fingerprint of the run that last used this folder
        if not owner:
            return
        marker = self.folder / "run.json"
        if fresh and self.chunks.exists():
            for old in self.chunks.glob("*.npz"):
                old.unlink()
        if marker.exists() and not fresh:
            stored = self.previous = json.loads(marker.read_text()).get("fingerprint")
            if stored != self.key and any(self.chunks.glob("*.npz")):
                raise UserInputError(
                    f"{self.folder} holds partial results of a different run (other model, data or variants). "
                    "Pass --fresh to discard them, or choose another --out folder."
                )
        atomic_write_text(marker, json.dumps({"fingerprint": self.key, "run": fingerprint}, indent=1, default=str))

    @property
    def same_run_as_before(self) -> bool:
        return self.previous == self.key

    def path(self, index: int) -> Path:
        return self.chunks / f"{index:05d}.npz"

    def done(self, index: int) -> bool:
        return self.path(index).is_file()

    def write(self, index: int, arrays: dict[str, np.ndarray]) -> None:
        save_arrays(self.path(index), arrays)

    def read(self, index: int) -> dict[str, np.ndarray]:
        return load_arrays(self.path(index))
