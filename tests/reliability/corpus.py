"""A corpus of broken and unusual image files, made on the fly (nothing binary is committed)."""

from __future__ import annotations

import io
import os
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
