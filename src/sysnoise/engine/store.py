"""Per-sample results on disk: committed in chunks, each written atomically, so a killed run
loses at most the chunk in flight and a restarted run continues from what is on disk."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from sysnoise.engine.lock import FolderLock
from sysnoise.errors import UserInputError


def _process_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _process_umask()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are for others to read, as any tool's
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


RUN_FILE = "run.json"
RUN_KEY = "__run__"  # in every chunk: the identity key of the run that wrote it
_SPAN = re.compile(r"(\d{9})-(\d{9})\.npz")


class ChunkStore:
    """A run folder's per-sample outputs, bound to one run identity (engine/identity.py).

    run.json holds the identity and is written before any output; each chunk,
    chunks/START-STOP.npz (samples START..STOP-1), carries the identity's key, and run.json records
    the sha256 of the merged outputs once they are complete. Chunks are named by the samples they
    hold, not by a chunk number, so a resume may use another chunk size. The owner holds the
    folder's lock from construction to `close`: one run at a time per folder."""

    def __init__(self, folder: Path, identity, *, fresh: bool = False, owner: bool = True):
        """owner: this process locks and validates the folder and writes run.json (under torchrun only
        rank 0 is the owner; the other ranks use the folder after it has, without racing it)."""
        self.folder = Path(folder)
        self.chunks = self.folder / "chunks"
        self.final = self.folder / "outputs.npz"  # the merged outputs (RunOutputs.save)
        self.identity = identity
        self.lock = FolderLock(self.folder)
        if not owner:
            return
        self.lock.acquire()
        try:
            self._claim(fresh)
        except BaseException:
            self.lock.release()
            raise

    def close(self) -> None:
        self.lock.release()

    def _claim(self, fresh: bool) -> None:
        """Refuse a folder holding another run's outputs (unless fresh: they are removed), then
        record this run's identity, keeping the completion record of a finished same run."""
        found = self._outputs()
        if fresh:
            for path in found:
                path.unlink()
            found = []
        record = self._record()
        stored = record.get("identity")
        if found and stored is None:
            raise UserInputError(
                f"{self.folder}: holds outputs without a recorded run identity (from an earlier sysnoise "
                "version or another tool). Pass --fresh to replace them, or choose another --out folder."
            )
        if found:
            self._refuse_if_other(stored, RUN_FILE)
            self._check_results_file()
        if stored is None or stored.get("digests") != self.identity.digests:
            atomic_write_text(
                self.folder / RUN_FILE, json.dumps({"identity": self.identity.record()}, indent=1, default=str) + "\n"
            )

    def _outputs(self) -> list[Path]:
        """Every file here that holds results: chunks, merged outputs (with their side files), results.json."""
        return [
            p
            for p in [
                *self.chunks.glob("*.npz"),
                *self.folder.glob(f"{self.final.stem}*.npz"),
                self.folder / "results.json",
            ]
            if p.is_file()
        ]

    def _record(self) -> dict:
        try:
            return json.loads((self.folder / RUN_FILE).read_text())
        except (OSError, ValueError):
            return {}

    def _refuse_if_other(self, stored: dict, where: str) -> None:
        """stored: an identity record ({"digests": ..., "details": ...}) found in this folder."""
        if stored.get("digests") == self.identity.digests:
            return
        changes = "; ".join(self.identity.differences(stored)) or "its run identity differs"
        raise UserInputError(
            f"{self.folder}: holds the outputs of another run ({where}): {changes}. Pass --fresh to replace "
            "them, or choose another --out folder."
        )

    def _check_results_file(self) -> None:
        """results.json names the identity it was computed from (run.identity): it must be this one."""
        path = self.folder / "results.json"
        if not path.is_file():
            return
        try:
            digests = json.loads(path.read_text()).get("run", {}).get("identity")
        except (OSError, ValueError, AttributeError):
            digests = None
        if not isinstance(digests, dict):
            raise UserInputError(
                f"{path}: records no run identity (an earlier sysnoise version). Pass --fresh to "
                "replace this folder's results, or choose another --out folder."
            )
        self._refuse_if_other({"digests": digests}, "results.json")

    def spans(self) -> list[tuple[int, int]]:
        """The committed chunks as (start, stop), in order and never overlapping."""
        found = sorted((int(m[1]), int(m[2])) for p in self.chunks.glob("*.npz") if (m := _SPAN.fullmatch(p.name)))
        spans: list[tuple[int, int]] = []
        for start, stop in found:
            if start < stop and (not spans or start >= spans[-1][1]):
                spans.append((start, stop))
        return spans

    def path(self, span: tuple[int, int]) -> Path:
        return self.chunks / f"{span[0]:09d}-{span[1]:09d}.npz"

    def write(self, span: tuple[int, int], arrays: dict[str, np.ndarray]) -> None:
        save_arrays(self.path(span), {**arrays, RUN_KEY: np.asarray(self.identity.key)})

    def read(self, span: tuple[int, int]) -> dict[str, np.ndarray]:
        path = self.path(span)
        arrays = load_arrays(path)
        if str(arrays.pop(RUN_KEY, "")) != self.identity.key:
            raise UserInputError(
                f"{path}: a chunk of another run. Pass --fresh to replace this folder's outputs, "
                "or choose another --out folder."
            )
        return arrays

    def complete(self) -> None:
        """The merged outputs are saved: record their digests, and only then drop the chunks."""
        record = {"identity": self.identity.record(), "outputs": _digests(self.final)}
        atomic_write_text(self.folder / RUN_FILE, json.dumps(record, indent=1, default=str) + "\n")
        for chunk in self.chunks.glob("*.npz"):
            chunk.unlink()

    def reusable(self) -> bool:
        """This run finished here before: its merged outputs are on disk, unchanged since."""
        recorded = self._record().get("outputs")
        return bool(recorded) and self.final.is_file() and recorded == _digests(self.final)


def _digests(final: Path) -> dict[str, str]:
    """sha256 of the merged outputs file and its side files (outputs.NAME.npz)."""
    files = [final, *sorted(final.parent.glob(f"{final.stem}.*{final.suffix}"))]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files if p.is_file()}
