"""Decoders: encoded bytes -> HxWx3 uint8 RGB array. One function per library behaviour.

Every decoder goes through `decode()`, which enforces one pixel limit for all of them (Pillow's
decompression-bomb guard, applied before any library allocates) and checks the output's shape,
so a decoder that silently returns nothing is caught here rather than downstream.
"""

from __future__ import annotations

import io

import numpy as np

from sysnoise.errors import DecodeError
from sysnoise.registry import Registry

DECODERS: Registry = Registry("decoder")

# Pillow's own default (about 89.5 Mpx); a larger image is refused by every decoder alike.
MAX_PIXELS = 89_478_485


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the header, without decoding the pixels."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except Image.DecompressionBombError as err:
        raise DecodeError(f"decompression bomb refused: {err}") from None
    except Exception as err:  # Pillow raises many types for unreadable headers
        raise DecodeError(f"not a readable image ({type(err).__name__}: {err})") from None


def decode(name: str, data: bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    if not data:
        raise DecodeError("empty file (0 bytes)")
    width, height = image_size(data)
    if width * height > max_pixels:
        raise DecodeError(f"image of {width}x{height} pixels exceeds the limit of {max_pixels}")
    image = DECODERS(name)(data)
    if image is None or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        got = None if image is None else (image.shape, image.dtype)
        raise DecodeError(f"decoder {name!r} returned no RGB image (got {got})")
    if image.shape[:2] != (height, width):
        raise DecodeError(f"decoder {name!r} returned {image.shape[1]}x{image.shape[0]}, header says {width}x{height}")
    return np.ascontiguousarray(image)


@DECODERS.register("pillow", "Pillow (libjpeg-turbo), Image.convert('RGB'); no EXIF rotation", library="PIL")
def decode_pillow(data: bytes) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"))
    except Exception as err:
        raise DecodeError(f"Pillow cannot decode: {type(err).__name__}: {err}") from None


@DECODERS.register("opencv", "OpenCV cv2.imdecode(IMREAD_COLOR) -> RGB; applies EXIF rotation", library="cv2")
def decode_opencv(data: bytes) -> np.ndarray:
    import cv2

    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:  # OpenCV reports failure (e.g. truncated data) by returning None
        raise DecodeError("OpenCV imdecode returned None (corrupt or unsupported data)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
