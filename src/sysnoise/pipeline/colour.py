"""Colour paths: HxWx3 uint8 RGB -> HxWx3 uint8 RGB, modelling what a deployment's conversions do."""

from __future__ import annotations

import numpy as np

from sysnoise.registry import Registry

COLOURS: Registry = Registry("colour")


@COLOURS.register("rgb", "RGB kept as decoded (no conversion)")
def rgb(image: np.ndarray) -> np.ndarray:
    return image
