"""Optional on-disk cache of pre-processed model inputs, keyed by (file content hash, pipeline
prefix): a second run that adds variants recomputes only the new nodes, and an edited file or a
changed pipeline can never hit a stale entry because both are in the key."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from sysnoise.engine.store import atomic_write_bytes, digest


def cache_root() -> Path:
    """sysnoise's own cache folder ($SYSNOISE_CACHE, default ~/.cache/sysnoise): generated data sets,
    the demo's photos, the forward plans probed on this machine (engine.forward_plan)."""
    return Path(os.environ.get("SYSNOISE_CACHE", Path.home() / ".cache" / "sysnoise"))


class InputCache:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    @staticmethod
    def content_hash(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    def path(self, content: str, node_key: tuple) -> Path:
        return self.folder / content[:2] / f"{content}-{digest(list(node_key))[:24]}.npy"

    def get(self, content: str, node_key: tuple) -> np.ndarray | None:
        path = self.path(content, node_key)
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError):  # absent, or a torn file from a killed writer
            return None

    def put(self, content: str, node_key: tuple, array: np.ndarray) -> None:
        import io

        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        atomic_write_bytes(self.path(content, node_key), buffer.getvalue())
