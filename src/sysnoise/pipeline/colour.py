"""Colour paths: HxWx3 uint8 RGB -> HxWx3 uint8 RGB, modelling what a deployment's conversions do.

The YUV maths lives in pipeline.yuv. Options marked kind="misconfiguration" (a channel swap) are
configuration errors rather than noise: the `colour` noise leaves them out, the `channel-order`
noise measures them and the report lists them apart.

The YUV conversions hold several float64 planes of their input at once (about 100 bytes a pixel),
so they run tile by tile (`tiled`): the working memory is bounded by the tile, not the image.
"""

from __future__ import annotations

import numpy as np

from sysnoise.pipeline import yuv
from sysnoise.registry import Registry

COLOURS: Registry = Registry("colour")

TILE = 1024  # rows and columns converted at once (even, so 4:2:0 chroma blocks stay whole)


def tiled(convert, margin: int = 0):
    """convert applied tile by tile. margin (even): rows and columns of context each tile reads
    beyond its edges, so a neighbourhood operation (bilinear chroma upsampling) gives exactly the
    whole-image result; the context's own outputs are discarded."""

    def convert_tiled(image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        if height <= TILE and width <= TILE:
            return convert(image)
        out = np.empty_like(image)
        for top in range(0, height, TILE):
            for left in range(0, width, TILE):
                bottom, right = min(top + TILE, height), min(left + TILE, width)
                y0, x0 = max(0, top - margin), max(0, left - margin)
                piece = convert(image[y0 : min(height, bottom + margin), x0 : min(width, right + margin)])
                out[top:bottom, left:right] = piece[top - y0 : bottom - y0, left - x0 : right - x0]
        return out

    return convert_tiled


@COLOURS.register("rgb", "RGB kept as decoded (no conversion)")
def rgb(image: np.ndarray) -> np.ndarray:
    return image


def _nv12(forward, inverse, subsampling: str, upsampling: str):
    def convert(image: np.ndarray) -> np.ndarray:
        return inverse(yuv.chroma_420(forward(image), subsampling, upsampling))

    return tiled(convert, margin=2)  # one chroma row/column each side: bilinear upsampling's reach


_INT = (yuv.rgb_to_yuv_int, yuv.yuv_to_rgb_int)
_FLOAT = (yuv.rgb_to_yuv_paper_float, yuv.yuv_to_rgb_paper_float)

for _name, (_forward, _inverse), _sub, _up, _text in [
    (
        "nv12-int",
        _INT,
        "average",
        "nearest",
        "RGB->YUV 4:2:0 (NV12)->RGB, BT.601 limited, integer form (>>8); chroma 2x2 average, nearest upsampling",
    ),
    (
        "nv12-float",
        _FLOAT,
        "average",
        "nearest",
        "as nv12-int with the paper's float form (rounded); chroma 2x2 average, nearest upsampling",
    ),
    (
        "nv12-int-topleft",
        _INT,
        "topleft",
        "nearest",
        "as nv12-int but chroma subsampled by keeping the top-left sample of each 2x2 block",
    ),
    (
        "nv12-int-bilinear",
        _INT,
        "average",
        "bilinear",
        "as nv12-int but chroma upsampled bilinearly (centre-sited, 3/4-1/4 weights)",
    ),
]:
    COLOURS.register(_name, _text, subsampling=_sub, upsampling=_up, arithmetic=_name.split("-")[1])(
        _nv12(_forward, _inverse, _sub, _up)
    )


@COLOURS.register("yuv444-int", "RGB->YUV 4:4:4->RGB, BT.601 limited, integer form: rounding loss only, no subsampling")
@tiled
def yuv444_int(image: np.ndarray) -> np.ndarray:
    return yuv.yuv_to_rgb_int(yuv.rgb_to_yuv_int(image))


@COLOURS.register(
    "range-full-as-limited",
    "YUV 4:4:4 encoded full range (JFIF) but decoded as limited range: contrast stretched, clipped",
)
@tiled
def range_full_as_limited(image: np.ndarray) -> np.ndarray:
    return yuv.yuv_to_rgb_float(yuv.rgb_to_yuv_float(image, full_range=True), full_range=False)


@COLOURS.register(
    "range-limited-as-full", "YUV 4:4:4 encoded limited range (16-235) but decoded as full range: washed out"
)
@tiled
def range_limited_as_full(image: np.ndarray) -> np.ndarray:
    return yuv.yuv_to_rgb_float(yuv.rgb_to_yuv_float(image, full_range=False), full_range=True)


@COLOURS.register(
    "matrix-601-as-709", "YUV 4:4:4 encoded with BT.601 but decoded with the BT.709 matrix (limited range)"
)
@tiled
def matrix_601_as_709(image: np.ndarray) -> np.ndarray:
    return yuv.yuv_to_rgb_float(yuv.rgb_to_yuv_float(image, "bt601"), "bt709")


@COLOURS.register("bgr", "channels swapped (BGR fed as RGB): a configuration error, not noise", kind="misconfiguration")
def bgr(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[..., ::-1])


def is_misconfiguration(name: str) -> bool:
    return COLOURS.get(name).meta.get("kind") == "misconfiguration"
