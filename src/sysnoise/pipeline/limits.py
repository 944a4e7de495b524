"""What one sample may cost: bytes read, pixels per stage, seconds of pre-processing.

A hostile or unlucky file must cost one skipped sample, never the run: a named pipe would block
the read forever, a symlink to /dev/zero would read until memory runs out, a 196-byte 1x60000
PNG asks the resize for 256 x 15,360,000 pixels, some files keep a decoder busy for minutes.
Each bound refuses with a reason (a SampleError: the run records it and goes on).

The limits come from environment variables, read where they are used, so DataLoader workers
see what the main process sees (docs/reliability.md):
  SYSNOISE_MAX_FILE_MB      largest file read, in MiB (default 256)
  SYSNOISE_MAX_PIXELS       largest image any stage may produce or take (default Pillow's
                            decompression-bomb limit, 89,478,485)
  SYSNOISE_SAMPLE_SECONDS   wall-clock budget of one sample's pre-processing (default 120; 0: none)
"""

from __future__ import annotations

import math
import os
import signal
import stat
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from sysnoise.errors import SampleError, UserInputError

# The largest input_size a Pipeline may ask for: 4096 x 4096 float32 RGB is already 200 MB per input.
MAX_INPUT_SIZE = 4096


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 256 * 2**20
    max_pixels: int = 89_478_485
    sample_seconds: float = 120.0

    def to_dict(self) -> dict:
        return asdict(self)


# field -> (environment variable, unit: how many of the field's units one of the variable's is)
ENVIRONMENT = {
    "max_file_bytes": ("SYSNOISE_MAX_FILE_MB", 2**20),
    "max_pixels": ("SYSNOISE_MAX_PIXELS", 1),
    "sample_seconds": ("SYSNOISE_SAMPLE_SECONDS", 1),
}


def current() -> Limits:
    """The limits in force: the defaults, overridden by the environment variables that are set."""
    values = {}
    for name, (variable, unit) in ENVIRONMENT.items():
        raw = os.environ.get(variable, "").strip()
        if not raw:
            continue
        try:
            value = float(raw) * unit
        except ValueError:
            value = float("nan")
        if not (math.isfinite(value) and value >= (0 if name == "sample_seconds" else 1)):
            raise UserInputError(
                f"{variable}={raw!r}: expected a positive number"
                + (" (0 turns the budget off)" if name == "sample_seconds" else "")
            )
        values[name] = value if name == "sample_seconds" else int(value)
    return Limits(**values)


def check_pixels(width: int, height: int, what: str, limit: int | None = None, error=SampleError) -> None:
    """Refuse an image (or a stage's output) larger than the pixel limit before anything allocates it."""
    limit = limit or current().max_pixels
    if width * height > limit:
        raise error(f"{what} of {width}x{height} pixels exceeds the limit of {limit} (SYSNOISE_MAX_PIXELS)")


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


@contextmanager
def _regular_file(path):
    """(descriptor, stat) of `path`, refused unless it is a regular file.

    Opened without blocking (a named pipe with no writer would block the open itself), then
    checked on the open descriptor, so a symlink is judged by what it points to."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as err:
        raise SampleError(f"cannot read file: {err.strerror or err}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next((text for test, text in _KINDS if test(info.st_mode)), "not a regular file")
            raise SampleError(f"not a regular file ({kind}): only regular files are read")
        yield fd, info
    finally:
        os.close(fd)


def read_file(path) -> bytes:
    """A sample's bytes, from a regular file within the size limit."""
    limit = current().max_file_bytes
    with _regular_file(path) as (fd, info):
        check_size(info.st_size, "file")
        with open(fd, "rb", closefd=False) as handle:
            data = handle.read(limit + 1)  # the file may grow while read
    if len(data) > limit:
        raise SampleError(f"file grew past the limit of {limit} bytes while read (SYSNOISE_MAX_FILE_MB)")
    return data


def check_size(size: int, what: str = "sample") -> None:
    """Refuse a sample (a file, a tar member, a dataset row's image) above the file size limit."""
    limit = current().max_file_bytes
    if size > limit:
        raise SampleError(f"{what} of {size} bytes exceeds the limit of {limit} (SYSNOISE_MAX_FILE_MB)")


def read_slice(path, offset: int, size: int) -> bytes:
    """`size` bytes at `offset` of a regular file: a sample stored inside a container (a tar
    member), within the size limit like a file of its own."""
    check_size(size, "member")
    with _regular_file(path) as (fd, info):
        if offset + size > info.st_size:
            raise SampleError(
                f"member at bytes {offset}..{offset + size} lies past the end of the "
                f"{info.st_size}-byte file (truncated?)"
            )
        return os.pread(fd, size, offset)


class OverBudget(BaseException):
    """Raised by the alarm inside a sample's pre-processing. A BaseException, so the libraries'
    and the memo's `except Exception` cannot swallow it: it ends the whole sample's work."""


def _alarm(signum, frame):
    raise OverBudget(
        f"pre-processing took longer than the budget of {current().sample_seconds:g} s (SYSNOISE_SAMPLE_SECONDS)"
    )


def budget_available() -> bool:
    """Whether time_budget can interrupt here: SIGALRM exists (not on Windows) and this is the
    process's main thread (DataLoader workers, or the main process with --workers 0)."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextmanager
def time_budget():
    """Raise OverBudget in the body once it has run SYSNOISE_SAMPLE_SECONDS of wall-clock time.

    The alarm interrupts Python code; a library call that never returns to Python is only
    interrupted when it does. Where no alarm is available (budget_available), no budget applies."""
    seconds = current().sample_seconds
    if not seconds or not budget_available():
        yield
        return
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
