"""Crop policies: where to resize to and which box to keep, as pure arithmetic on sizes.

A policy maps (source width, height, input size, crop_pct) to a Geometry: an optional box cut
from the source before resizing (TF-style crop-then-resize), the resize target, and the box kept
after resizing, which may reach outside the resized image when the policy pads (letterbox). The
resize kernel itself is a separate choice (pipeline.resize), so the two noises stay apart.

apply_geometry refuses a resize target or a kept box over the pixel limit before allocating it:
a policy's arithmetic on an extreme aspect ratio (a 1x60000 image resized to a shorter side of
256 is 256 x 15,360,000) must cost a skipped sample, not the machine's memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sysnoise.pipeline.limits import check_pixels
from sysnoise.registry import Registry

CROPS: Registry = Registry("crop policy")


Box = tuple[int, int, int, int]  # (left, top, right, bottom)


@dataclass(frozen=True)
class Geometry:
    resize_to: tuple[int, int]  # (width, height) handed to the resize kernel
    box: Box  # kept after resizing; may reach outside the resized image only when pad_value is set
    source_box: Box | None = None  # cut from the source before resizing (None: the whole image)
    pad_value: int | None = None  # fill for the parts of `box` outside the resized image


def _offset(excess: int, rounding: str) -> int:
    if rounding == "half-even":  # torchvision's center_crop: round((size - crop) / 2), half to even
        return int(round(excess / 2.0))
    if rounding == "floor":  # integer division, as most C/C++ deployment code
        return excess // 2
    if rounding == "ceil":  # TF's ((size - crop) + 1) // 2
        return (excess + 1) // 2
    raise ValueError(f"unknown offset rounding {rounding!r}")


def centre_box(width: int, height: int, crop_w: int, crop_h: int, rounding: str = "half-even") -> Box:
    left, top = _offset(width - crop_w, rounding), _offset(height - crop_h, rounding)
    return left, top, left + crop_w, top + crop_h


def shorter_side_target(width: int, height: int, short: int) -> tuple[int, int]:
    # torchvision Resize(int): the long side is int(short * long / short_side), truncated.
    if width <= height:
        return short, int(short * height / width)
    return int(short * width / height), short


@CROPS.register(
    "shorter-centre-crop",
    "resize the shorter side to floor(size/crop_pct) keeping aspect, centre-crop size x size (timm eval)",
)
def shorter_centre_crop(width: int, height: int, size: int, crop_pct: float) -> Geometry:
    target = shorter_side_target(width, height, math.floor(size / crop_pct))
    return Geometry(target, centre_box(*target, size, size))


def _rounded_offsets(rounding: str):
    def policy(width: int, height: int, size: int, crop_pct: float) -> Geometry:
        target = shorter_side_target(width, height, math.floor(size / crop_pct))
        return Geometry(target, centre_box(*target, size, size, rounding))

    return policy


for _rounding in ("floor", "ceil"):
    CROPS.register(
        f"shorter-centre-crop-{_rounding}",
        f"as shorter-centre-crop with the crop offset rounded by {_rounding} instead of half-to-even",
        rounding=_rounding,
    )(_rounded_offsets(_rounding))


@CROPS.register(
    "square-resize-crop",
    "resize to a square floor(size/crop_pct) ignoring aspect, centre-crop size (the SysNoise code's size*8/7)",
)
def square_resize_crop(width: int, height: int, size: int, crop_pct: float) -> Geometry:
    side = math.floor(size / crop_pct)
    return Geometry((side, side), centre_box(side, side, size, size))


@CROPS.register("squash", "resize directly to size x size ignoring aspect, no crop")
def squash(width: int, height: int, size: int, crop_pct: float) -> Geometry:
    return Geometry((size, size), (0, 0, size, size))


LETTERBOX_FILL = 114  # YOLOv5's grey


@CROPS.register(
    "letterbox",
    "resize the longer side to size keeping aspect, pad to size x size with grey 114, centred (offset floor), as YOLO",
)
def letterbox(width: int, height: int, size: int, crop_pct: float) -> Geometry:
    scale = size / max(width, height)
    target = (max(1, round(width * scale)), max(1, round(height * scale)))
    left, top = (size - target[0]) // 2, (size - target[1]) // 2
    return Geometry(target, (-left, -top, size - left, size - top), pad_value=LETTERBOX_FILL)


@CROPS.register(
    "tf-crop-resize",
    "TF eval (EfficientNet, Inception): cut a centred square of crop_pct x the shorter "
    "side from the source (offset ceil), then resize it to size x size",
)
def tf_crop_resize(width: int, height: int, size: int, crop_pct: float) -> Geometry:
    side = int(crop_pct * min(width, height))
    source_box = centre_box(width, height, side, side, "ceil")
    return Geometry((size, size), (0, 0, size, size), source_box=source_box)


# Detection and segmentation keep the whole image and its aspect: the input is not square, so
# these carry square=False (classification's crop noise leaves them out by default).
@CROPS.register(
    "keep-ratio-max-size",
    "detection: scale so the shorter side is size unless the longer would pass "
    "size/crop_pct (torchvision's GeneralizedRCNNTransform: 800 and 800/0.6 = 1333), "
    "sizes floored, no crop, no pad",
    square=False,
)
def keep_ratio_max_size(width: int, height: int, size: int, crop_pct: float) -> Geometry:
    # torchvision: scale = min(min_size / short, max_size / long); interpolate(scale_factor=scale) floors the sizes
    scale = min(size / min(width, height), round(size / crop_pct) / max(width, height))
    target = (max(1, math.floor(width * scale)), max(1, math.floor(height * scale)))
    return Geometry(target, (0, 0, *target))


@CROPS.register(
    "shorter-side",
    "segmentation: resize the shorter side to size keeping aspect (torchvision's "
    "semantic-segmentation eval), no crop, no pad",
    square=False,
)
def shorter_side(width: int, height: int, size: int, crop_pct: float) -> Geometry:
    target = shorter_side_target(width, height, size)
    return Geometry(target, (0, 0, *target))


def input_to_source(geometry: Geometry, width: int, height: int) -> tuple[float, float, float, float]:
    """(ax, bx, ay, by) with x_source = ax * x_input + bx, y_source = ay * y_input + by, in continuous
    pixel-edge coordinates of a width x height source: how boxes and masks found in the model input
    map back onto the image the annotations describe (crop offsets, scale, letterbox padding)."""
    left, top, right, bottom = geometry.source_box or (0, 0, width, height)
    ax, ay = (right - left) / geometry.resize_to[0], (bottom - top) / geometry.resize_to[1]
    return ax, left + ax * geometry.box[0], ay, top + ay * geometry.box[1]


def source_size_needed(geometry: Geometry, width: int, height: int) -> tuple[int, int]:
    """The smallest (width, height) the whole source could shrink to before this geometry's resize
    becomes an enlargement: what a draft-mode decoder may scale the source down to."""
    left, top, right, bottom = geometry.source_box or (0, 0, width, height)
    return (
        math.ceil(width * geometry.resize_to[0] / (right - left)),
        math.ceil(height * geometry.resize_to[1] / (bottom - top)),
    )


def _cut(image: np.ndarray, box: Box, pad_value: int | None) -> np.ndarray:
    height, width = image.shape[:2]
    left, top, right, bottom = box
    inside = 0 <= left < right <= width and 0 <= top < bottom <= height
    if inside:
        return image[top:bottom, left:right]
    if pad_value is None:
        raise ValueError(f"crop box {box} outside image {width}x{height}")
    canvas = np.full((bottom - top, right - left) + image.shape[2:], pad_value, image.dtype)
    src_l, src_t, src_r, src_b = max(left, 0), max(top, 0), min(right, width), min(bottom, height)
    if src_l < src_r and src_t < src_b:
        canvas[src_t - top : src_b - top, src_l - left : src_r - left] = image[src_t:src_b, src_l:src_r]
    return canvas


def apply_geometry(image: np.ndarray, geometry: Geometry, resize_fn) -> np.ndarray:
    left, top, right, bottom = geometry.box
    check_pixels(*geometry.resize_to, "resize target")
    check_pixels(right - left, bottom - top, "crop")
    if geometry.source_box is not None:
        image = np.ascontiguousarray(_cut(image, geometry.source_box, None))
    resized = resize_fn(image, geometry.resize_to)
    return np.ascontiguousarray(_cut(resized, geometry.box, geometry.pad_value))
