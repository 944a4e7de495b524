"""Crop policies: where to resize to and which box to keep, as pure arithmetic on sizes.

A policy maps (source width, height, input size, crop_pct) to a resize target and a crop box;
the resize kernel itself is a separate choice (pipeline.resize), so the two noises stay apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sysnoise.registry import Registry

CROPS: Registry = Registry("crop policy")


@dataclass(frozen=True)
class Geometry:
    resize_to: tuple[int, int]  # (width, height) handed to the resize kernel
    box: tuple[int, int, int, int]  # (left, top, right, bottom) kept after resizing


def centre_box(width: int, height: int, crop_w: int, crop_h: int) -> tuple[int, int, int, int]:
    # torchvision's center_crop rounds the offset half-to-even after halving.
    left = int(round((width - crop_w) / 2.0))
    top = int(round((height - crop_h) / 2.0))
    return left, top, left + crop_w, top + crop_h


@CROPS.register(
    "shorter-centre-crop",
    "resize the shorter side to floor(size/crop_pct) keeping aspect, centre-crop size x size (timm eval)",
)
def shorter_centre_crop(width: int, height: int, size: int, crop_pct: float) -> Geometry:
    short = math.floor(size / crop_pct)
    # torchvision Resize(int): the long side is int(short * long / short_side), truncated.
    if width <= height:
        target = (short, int(short * height / width))
    else:
        target = (int(short * width / height), short)
    return Geometry(target, centre_box(*target, size, size))


def apply_geometry(image: np.ndarray, geometry: Geometry, resize_fn) -> np.ndarray:
    resized = resize_fn(image, geometry.resize_to)
    left, top, right, bottom = geometry.box
    if right > resized.shape[1] or bottom > resized.shape[0] or left < 0 or top < 0:
        raise ValueError(f"crop box {geometry.box} outside resized image {resized.shape[1]}x{resized.shape[0]}")
    return np.ascontiguousarray(resized[top:bottom, left:right])
