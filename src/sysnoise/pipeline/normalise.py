"""Pixels to the model's input tensor: (x - mean) / std, HWC uint8 -> CHW float32."""

from __future__ import annotations

import numpy as np


def normalise(image: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    x = image.astype(np.float32)
    x -= np.asarray(mean, np.float32)
    x /= np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))
