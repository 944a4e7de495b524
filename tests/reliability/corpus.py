"""A corpus of broken and unusual image files, made on the fly (nothing binary is committed)."""

from __future__ import annotations

import io
import os
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def _encode(image: Image.Image, fmt: str, **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kw)
    return buffer.getvalue()


def photo(seed: int, size=(48, 64)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : size[0], 0 : size[1]]
    base = np.stack([x * 4, y * 4, (x + y) * 2], -1) % 256
    return (base + rng.integers(0, 40, (*size, 3))).clip(0, 255).astype(np.uint8)


def build(folder: Path) -> dict[str, str]:
    """Write the corpus; return {file name: expected outcome} with 'ok' or a reason fragment."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = Image.fromarray(photo(0))
    jpeg = _encode(rgb, "JPEG", quality=90)
    files = {
        "good.jpg": (jpeg, "ok"),
        "zero.jpg": (b"", "empty file"),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "truncated"),
        "random.jpg": (np.random.default_rng(1).bytes(700), "not a readable image"),
        "png_named.jpg": (_encode(rgb, "PNG"), "ok"),  # wrong extension: decoded by content
        "cmyk.jpg": (_encode(rgb.convert("CMYK"), "JPEG"), "ok"),
        "gray.png": (_encode(rgb.convert("L"), "PNG"), "ok"),
        "rgba.png": (_encode(rgb.convert("RGBA"), "PNG"), "ok"),
        "palette.png": (_encode(rgb.convert("P"), "PNG"), "ok"),
        "sixteen.png": (_encode(Image.fromarray((photo(2)[..., 0].astype(np.uint16) * 257)), "PNG"), "ok"),
        "bomb.png": (_encode(Image.new("1", (10_000, 10_000)), "PNG"), "exceeds the limit"),
    }
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    return {name: outcome for name, (_, outcome) in files.items()}


def add_awkward_names(folder: Path) -> tuple[str, str]:
    """A file whose name is not valid UTF-8 and a symlink loop; returns their ids as os.walk sees them."""
    odd = os.fsencode(folder) + b"/caf\xe9.jpg"  # Latin-1 byte, invalid UTF-8
    with open(odd, "wb") as fh:
        fh.write(_encode(Image.fromarray(photo(3)), "JPEG"))
    loop = folder / "loop.jpg"
    os.symlink(loop, loop)  # points at itself
    (folder / "subdir").mkdir()
    os.symlink(folder, folder / "subdir" / "back")  # a directory loop
    return os.fsdecode(b"caf\xe9.jpg"), "loop.jpg"


# Hostile and awkward files of issue 18, each made from a clean encoding.


def jpeg_bytes(seed: int = 0, size=(96, 128)) -> bytes:
    return _encode(Image.fromarray(photo(seed, size)), "JPEG", quality=90)


def truncated_then_eoi(jpeg: bytes) -> bytes:
    """Cut in the middle of the entropy-coded data, then closed with an end-of-image marker: passes
    decode()'s truncation check, and libjpeg only warns ("premature end of data segment")."""
    scan = jpeg.rfind(b"\xff\xda")
    return jpeg[: scan + (len(jpeg) - scan) // 2] + b"\xff\xd9"


def bit_flipped(data: bytes, seed: int = 0, flips: int = 8, start: int | None = None) -> bytes:
    """`flips` single-bit flips at seeded positions after `start` (default: a JPEG's last scan header)."""
    rng = np.random.default_rng(seed)
    start = data.rfind(b"\xff\xda") + 20 if start is None else start
    out = bytearray(data)
    for offset in rng.integers(start, len(data) - 2, flips):
        out[offset] ^= 1 << int(rng.integers(0, 8))
    return bytes(out)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")


def png_idat_flipped() -> bytes:
    """A PNG with one bit flipped inside its image data (IDAT): the chunk's CRC no longer matches."""
    png = _encode(Image.fromarray(photo(4)), "PNG")
    idat = png.find(b"IDAT")
    return bit_flipped(png, seed=1, flips=1, start=idat + 30)[: len(png)]


def tall_png(height: int = 60_000) -> bytes:
    """1 x height pixels: 196 bytes that a shorter-side-256 resize turns into 256 x (256 * height)."""
    return _encode(Image.new("L", (1, height), 128), "PNG", optimize=True)


def huge_truncated_png(side: int = 8000) -> bytes:
    """A side x side RGB PNG header (within the pixel limit) whose image data stops after one row,
    closed by IEND: Pillow allocates the whole image, then fails ('image file is truncated')."""
    header = side.to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    row = zlib.compress(b"\x00" + bytes(3 * side))
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", row) + _chunk(b"IEND", b"")


def broken_stream_png(side: int = 4000, missing_rows: int = 10) -> bytes:
    """A side x side RGB PNG whose image data is valid for all but its last rows, then broken
    (every CRC right): Pillow writes most of the image into memory, then raises."""
    row = b"\x00" + (bytes(range(256)) * (3 * side // 256 + 1))[: 3 * side]
    deflate = zlib.compressobj()
    data = deflate.compress(row * (side - missing_rows)) + deflate.flush(zlib.Z_SYNC_FLUSH) + b"\xff" * 64
    header = side.to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def adam7_png(image: np.ndarray, drop_last_row: bool = False) -> bytes:
    """An interlaced (Adam7) 8-bit RGB PNG written pass by pass (Pillow writes none); with
    drop_last_row, the last pass lacks its last row."""
    height, width = image.shape[:2]
    passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
    raw = []
    for x0, y0, dx, dy in passes:
        reduced = image[y0::dy, x0::dx]
        raw += [b"\x00" + row.tobytes() for row in reduced] if reduced.size else []
    if drop_last_row:
        raw = raw[:-1]
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 1])
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b"".join(raw)))
        + _chunk(b"IEND", b"")
    )
