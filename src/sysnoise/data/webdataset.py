"""WebDataset tar shards: one sample is the members sharing a key (the member name up to the
first dot of its base name, WebDataset's rule), an image (KEY.jpg, KEY.png, ...) and its class
index as text (KEY.cls; without one the sample is unlabeled). A folder of shards (*.tar, in name
order) or one shard. Members are read in place by offset, never extracted; compressed shards are
refused (they cannot be read by offset)."""

from __future__ import annotations

import os
import stat
import tarfile
from functools import lru_cache
from pathlib import Path, PurePosixPath

from sysnoise.data.images import IMAGE_EXTENSIONS, Dataset, Sample
from sysnoise.data.members import member_path
from sysnoise.errors import SampleError, UserInputError
from sysnoise.pipeline.limits import read_slice

SHARD_SUFFIX = ".tar"
COMPRESSED = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar.zst")
LABEL_EXTENSION = "cls"
MAX_LABEL_BYTES = 64  # a class index as text; anything longer is not one


def _shards(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.endswith((SHARD_SUFFIX,) + COMPRESSED) and p.is_file())


def matches(path: Path) -> bool:
    """A shard, or a folder holding shards and neither images nor class folders."""
    if path.is_file():
        return path.name.endswith((SHARD_SUFFIX,) + COMPRESSED)
    if not path.is_dir() or not _shards(path):
        return False
    return not any(
        p.suffix.lower() in IMAGE_EXTENSIONS or (p.is_dir() and not p.name.startswith(".")) for p in path.iterdir()
    )


def split_key(name: str) -> tuple[str, str]:
    """(key, extension) of a member name: the extension starts at the first dot of the base name."""
    folder, _, base = name.rpartition("/")
    stem, dot, extension = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), (extension.lower() if dot else "")


@lru_cache(maxsize=16)
def _index(shard: str, stamp: tuple[int, int]) -> dict[str, tuple[int, int]]:
    """member name -> (offset of its data, size) for the regular members of `shard`, from one pass
    over its headers; `stamp` (mtime, size) makes a changed shard indexed again."""
    with tarfile.open(shard, mode="r:") as archive:
        return {PurePosixPath(info.name).as_posix(): (info.offset_data, info.size) for info in archive if info.isreg()}


def index(shard: Path) -> dict[str, tuple[int, int]]:
    """The shard's member index; SampleError when it is not a readable uncompressed tar file."""
    try:
        info = os.stat(shard)
    except OSError as err:
        raise SampleError(f"cannot read shard: {err.strerror or err}") from None
    if not stat.S_ISREG(info.st_mode):  # tarfile would block on a named pipe
        raise SampleError(f"{shard}: not a regular file: only regular files are read")
    try:
        return _index(str(shard), (info.st_mtime_ns, info.st_size))
    except (tarfile.TarError, OSError) as err:
        raise SampleError(f"{shard}: not a readable tar file ({err})") from None


def read_member(shard: Path, name: str) -> bytes:
    """One member's bytes, within the file size limit (pipeline.limits.read_slice)."""
    found = index(shard).get(PurePosixPath(name).as_posix())
    if found is None:
        raise SampleError(f"{shard}: no regular member {name!r}")
    offset, size = found
    return read_slice(shard, offset, size)


def _label(shard: Path, name: str, where: str) -> tuple[int, ...] | str:
    """The class index a .cls member holds, or why it holds none."""
    if index(shard)[name][1] > MAX_LABEL_BYTES:
        return f"{where}: more than {MAX_LABEL_BYTES} bytes; a .cls member holds one class index as text"
    text = read_member(shard, name).decode("utf-8", errors="replace").strip()
    try:
        label = int(text)
    except ValueError:
        return f"{where}: {text[:20]!r} is not a class index"
    return (label,) if label >= 0 else f"{where}: negative label {label}"


def _shard_samples(shard: Path) -> tuple[list[Sample], list[dict]]:
    keys: dict[str, dict[str, str]] = {}  # key -> extension -> member name, in archive order
    for name in index(shard):
        key, extension = split_key(name)
        keys.setdefault(key, {}).setdefault(extension, name)
    samples, problems = [], []
    for key, found in keys.items():
        sample_id = f"{shard.name}/{key}"
        images = [name for extension, name in found.items() if f".{extension}" in IMAGE_EXTENSIONS]
        if not images:
            problems.append(
                {"id": sample_id, "where": str(shard), "reason": f"no image member (found .{', .'.join(found)})"}
            )
            continue
        labels: tuple[int, ...] | str = ()
        if LABEL_EXTENSION in found:
            labels = _label(shard, found[LABEL_EXTENSION], f"{shard}#{found[LABEL_EXTENSION]}")
        if isinstance(labels, str):
            problems.append({"id": sample_id, "where": str(shard), "reason": labels})
            continue
        if len(images) > 1:
            problems.append(
                {
                    "id": sample_id,
                    "where": str(shard),
                    "reason": f"{len(images)} image members; measured the first, {images[0]}",
                }
            )
        samples.append(Sample(sample_id, member_path(shard, images[0]), labels))
    return samples, problems


def read(path: Path) -> Dataset:
    """The samples of one shard or of a folder's shards."""
    shards = [path] if path.is_file() else _shards(path)
    compressed = [s.name for s in shards if s.name.endswith(COMPRESSED)]
    if compressed:
        raise UserInputError(
            f"{path}: compressed shards ({', '.join(compressed[:3])}): members are read in place "
            "by offset, so shards must be plain .tar files; decompress them (e.g. gunzip)"
        )
    samples, problems = [], []
    for shard in shards:
        try:
            found, dropped = _shard_samples(shard)
        except SampleError as err:
            raise UserInputError(str(err)) from None
        samples += found
        problems += dropped
    return Dataset(path, samples, "webdataset", problems=problems)
