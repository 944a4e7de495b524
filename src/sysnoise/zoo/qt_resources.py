"""Files inside a Qt binary resource (.rcc), as GCompris ships its images.

The format (Qt's rcc, versions 1-3): a "qres" header with the offsets of the tree, the data and
the names; tree nodes of 14 (v1) or 22 bytes; names as length + hash + UTF-16BE; a file's data as
a 4-byte size and its bytes, zlib-compressed (with Qt's 4-byte length prefix) when flag 1 is set.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

COMPRESSED, DIRECTORY, COMPRESSED_ZSTD = 1, 2, 4


def rcc_files(blob: bytes) -> Iterator[tuple[str, bytes]]:
    """(path, bytes) of every file in an .rcc blob, paths starting with '/'."""
    if blob[:4] != b"qres":
        raise ValueError("not a Qt resource file (no 'qres' magic)")
    version, tree, data, names = struct.unpack(">4I", blob[4:20])
    node_size = 14 if version == 1 else 22

    def name(offset: int) -> str:
        (length,) = struct.unpack(">H", blob[names + offset : names + offset + 2])
        start = names + offset + 6  # after the length and the 4-byte hash
        return blob[start : start + 2 * length].decode("utf-16-be")

    def walk(index: int, prefix: str) -> Iterator[tuple[str, bytes]]:
        base = tree + index * node_size
        name_offset, flags = struct.unpack(">IH", blob[base : base + 6])
        path = f"{prefix}/{name(name_offset)}" if index else ""
        if flags & DIRECTORY:
            count, first = struct.unpack(">II", blob[base + 6 : base + 14])
            for child in range(first, first + count):
                yield from walk(child, path)
            return
        (offset,) = struct.unpack(">I", blob[base + 10 : base + 14])
        (size,) = struct.unpack(">I", blob[data + offset : data + offset + 4])
        raw = blob[data + offset + 4 : data + offset + 4 + size]
        if flags & COMPRESSED_ZSTD:
            raise ValueError(f"{path}: zstd-compressed resource (not supported)")
        yield path, zlib.decompress(raw[4:]) if flags & COMPRESSED else raw

    yield from walk(0, "")
