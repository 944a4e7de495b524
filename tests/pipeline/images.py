"""Small test images made on the fly, one per format edge case (nothing binary is committed)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def photo(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus texture: JPEG chroma subsampling and IDCT choices both show on it."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, 128 + 100 * np.sin((x + y) / 5)], -1)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def jpeg(array: np.ndarray, **options) -> bytes:
    return encode(Image.fromarray(array), "JPEG", **{"quality": 90, **options})


def exif_rotated_jpeg(array: np.ndarray, orientation: int = 6) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return jpeg(array, exif=exif)


def cmyk_jpeg(array: np.ndarray) -> bytes:
    """Adobe CMYK JPEG (inverted, no colour transform), as Photoshop writes."""
    return encode(Image.fromarray(array).convert("CMYK"), "JPEG", quality=95)


def ycck_jpeg(array: np.ndarray) -> bytes:
    """YCCK JPEG: libjpeg-turbo's compressor writes CMYK input as YCCK (Adobe transform 2)."""
    import simplejpeg

    cmyk = np.ascontiguousarray(np.asarray(Image.fromarray(array).convert("CMYK")))
    return simplejpeg.encode_jpeg(cmyk, quality=95, colorspace="CMYK")


def bomb_png(width: int = 20_000, height: int = 20_000) -> bytes:
    """A valid PNG header claiming width x height pixels (far over the pixel limit), tiny on disk."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
