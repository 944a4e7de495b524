"""One process at a time in a results folder: an exclusive flock on FOLDER/.sysnoise.lock.

The kernel drops the lock when its holder exits, however it exits (kill -9 included), so a
stale lock file never blocks anyone. The holder writes its process id into the file, for the
refusal message of whoever comes second.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from sysnoise.errors import UserInputError

LOCK_NAME = ".sysnoise.lock"


class FolderLock:
    """Held from `acquire` to `release` (or the holder's exit); refused, not waited for."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> "FolderLock":
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise UserInputError(
                f"{self.folder}: another sysnoise run (process {holder}) is writing into this folder; wait for "
                "it to finish, or choose another --out folder"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> bool:
        self.release()
        return False
