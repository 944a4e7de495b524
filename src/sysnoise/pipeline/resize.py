"""Resize kernels: (HxWx3 uint8, (width, height)) -> uint8 array, named by library and filter.

As clean-fid showed, these are different functions, not one function with small errors: Pillow
widens its filter when downscaling (antialiasing), OpenCV samples a fixed-width kernel.
"""

from __future__ import annotations

import numpy as np

from sysnoise.registry import Registry

RESIZES: Registry = Registry("resize")


def _pillow(filter_name: str):
    def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        from PIL import Image

        return np.asarray(Image.fromarray(image).resize(size, getattr(Image.Resampling, filter_name)))

    return resize


def _opencv(flag_name: str):
    def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        import cv2

        return cv2.resize(image, size, interpolation=getattr(cv2, flag_name))

    return resize


for _filter, _text in [
    ("BILINEAR", "Pillow bilinear (antialiased when downscaling)"),
    ("NEAREST", "Pillow nearest neighbour"),
    ("BOX", "Pillow box filter"),
    ("HAMMING", "Pillow Hamming filter"),
    ("BICUBIC", "Pillow bicubic (antialiased when downscaling)"),
    ("LANCZOS", "Pillow Lanczos-3 (antialiased when downscaling)"),
]:
    RESIZES.register(f"pillow-{_filter.lower()}", _text, library="PIL", flag=_filter)(_pillow(_filter))

for _flag, _text in [
    ("INTER_NEAREST", "OpenCV INTER_NEAREST (no antialiasing)"),
    ("INTER_LINEAR", "OpenCV INTER_LINEAR, fixed 2x2 kernel (aliases when downscaling)"),
    ("INTER_AREA", "OpenCV INTER_AREA, pixel-area averaging"),
    ("INTER_CUBIC", "OpenCV INTER_CUBIC, fixed 4x4 kernel"),
    ("INTER_LANCZOS4", "OpenCV INTER_LANCZOS4, fixed 8x8 kernel"),
]:
    _short = {"INTER_LINEAR": "bilinear", "INTER_CUBIC": "bicubic"}.get(_flag, _flag[6:].lower())
    RESIZES.register(f"opencv-{_short}", _text, library="cv2", flag=_flag)(_opencv(_flag))

for _flag, _short, _text in [
    (
        "INTER_LINEAR_EXACT",
        "bilinear-exact",
        "OpenCV INTER_LINEAR_EXACT, bit-exact fixed-point bilinear (no antialiasing)",
    ),
    ("INTER_NEAREST_EXACT", "nearest-exact", "OpenCV INTER_NEAREST_EXACT, nearest with half-pixel centres (as Pillow)"),
]:
    RESIZES.register(f"opencv-{_short}", _text, library="cv2", flag=_flag)(_opencv(_flag))


def _torchvision(mode: str, antialias: bool):
    def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        import torch
        from torchvision.transforms.v2 import InterpolationMode
        from torchvision.transforms.v2.functional import resize as tv_resize

        tensor = torch.from_numpy(np.array(image)).permute(2, 0, 1)  # a writable uint8 CHW copy, as decode_jpeg gives
        out = tv_resize(tensor, [size[1], size[0]], interpolation=InterpolationMode(mode), antialias=antialias)
        return np.ascontiguousarray(out.permute(1, 2, 0).numpy())

    return resize


for _mode, _aa, _text in [
    ("bilinear", True, "torchvision tensor resize (uint8), bilinear, antialias=True (close to Pillow's)"),
    ("bilinear", False, "torchvision tensor resize (uint8), bilinear, antialias=False (the pre-0.17 tensor default)"),
    ("bicubic", True, "torchvision tensor resize (uint8), bicubic, antialias=True"),
    ("bicubic", False, "torchvision tensor resize (uint8), bicubic, antialias=False (aliases when downscaling)"),
    ("nearest", False, "torchvision tensor resize, nearest: source index floor(i * scale) (asymmetric)"),
    ("nearest-exact", False, "torchvision tensor resize, nearest-exact: source index floor((i + 0.5) * scale)"),
]:
    _name = f"torchvision-{_mode}" + ("-noaa" if _mode in ("bilinear", "bicubic") and not _aa else "")
    RESIZES.register(_name, _text, library="torchvision", mode=_mode, antialias=_aa)(_torchvision(_mode, _aa))
