"""Colour paths: HxWx3 uint8 RGB -> HxWx3 uint8 RGB, modelling what a deployment's conversions do.

The YUV maths lives in pipeline.yuv. Options marked kind="misconfiguration" (a channel swap) are
configuration errors rather than noise: the `colour` noise leaves them out, the `channel-order`
noise measures them and the report lists them apart.
"""

from __future__ import annotations

import numpy as np

from sysnoise.pipeline import yuv
from sysnoise.registry import Registry

COLOURS: Registry = Registry("colour")


@COLOURS.register("rgb", "RGB kept as decoded (no conversion)")
def rgb(image: np.ndarray) -> np.ndarray:
    return image


def _nv12(forward, inverse, subsampling: str, upsampling: str):
    def convert(image: np.ndarray) -> np.ndarray:
        return inverse(yuv.chroma_420(forward(image), subsampling, upsampling))

    return convert


_INT = (yuv.rgb_to_yuv_int, yuv.yuv_to_rgb_int)
_FLOAT = (yuv.rgb_to_yuv_paper_float, yuv.yuv_to_rgb_paper_float)

for _name, (_forward, _inverse), _sub, _up, _text in [
    ("nv12-int", _INT, "average", "nearest",
     "RGB->YUV 4:2:0 (NV12)->RGB, BT.601 limited, integer form (>>8); chroma 2x2 average, nearest upsampling"),
    ("nv12-float", _FLOAT, "average", "nearest",
     "as nv12-int with the paper's float form (rounded); chroma 2x2 average, nearest upsampling"),
    ("nv12-int-topleft", _INT, "topleft", "nearest",
     "as nv12-int but chroma subsampled by keeping the top-left sample of each 2x2 block"),
    ("nv12-int-bilinear", _INT, "average", "bilinear",
     "as nv12-int but chroma upsampled bilinearly (centre-sited, 3/4-1/4 weights)"),
]:
    COLOURS.register(_name, _text, subsampling=_sub, upsampling=_up, arithmetic=_name.split("-")[1])(
        _nv12(_forward, _inverse, _sub, _up))


@COLOURS.register("yuv444-int", "RGB->YUV 4:4:4->RGB, BT.601 limited, integer form: rounding loss only, no subsampling")
def yuv444_int(image: np.ndarray) -> np.ndarray:
    return yuv.yuv_to_rgb_int(yuv.rgb_to_yuv_int(image))


@COLOURS.register("range-full-as-limited",
                  "YUV 4:4:4 encoded full range (JFIF) but decoded as limited range: contrast stretched, clipped")
def range_full_as_limited(image: np.ndarray) -> np.ndarray:
    return yuv.yuv_to_rgb_float(yuv.rgb_to_yuv_float(image, full_range=True), full_range=False)


@COLOURS.register("range-limited-as-full",
                  "YUV 4:4:4 encoded limited range (16-235) but decoded as full range: washed out")
def range_limited_as_full(image: np.ndarray) -> np.ndarray:
    return yuv.yuv_to_rgb_float(yuv.rgb_to_yuv_float(image, full_range=False), full_range=True)


@COLOURS.register("matrix-601-as-709", "YUV 4:4:4 encoded with BT.601 but decoded with the BT.709 matrix (limited range)")
def matrix_601_as_709(image: np.ndarray) -> np.ndarray:
    return yuv.yuv_to_rgb_float(yuv.rgb_to_yuv_float(image, "bt601"), "bt709")


@COLOURS.register("bgr", "channels swapped (BGR fed as RGB): a configuration error, not noise", kind="misconfiguration")
def bgr(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[..., ::-1])


def is_misconfiguration(name: str) -> bool:
    return COLOURS.get(name).meta.get("kind") == "misconfiguration"
