"""Box arithmetic of detector post-processing: decoding regression deltas against reference boxes
(anchors or proposals), clipping, and the integer rounding deployment code applies at the end.

Decoding follows torchvision's BoxCoder / BoxLinearCoder operation for operation, so the
reference decoding is bit-identical to the model's own. The variants are the conventions other
code bases use:

* offset 1 on decoding (`decode_offset=1`): x2 = centre + w/2 - 1, the integer-pixel convention
  of pre-2018 detection code (Detectron's ALIGNED_FLAG off) applied when decoding only.
* legacy +1 (`legacy=True`): Detectron v1 / mmdetection v1 throughout: reference widths are
  x2 - x1 + 1 and decoded boxes end at centre + w/2 - 1.
* exp in float16: dw/dh exponentiated in half precision (a half-precision post-processing kernel).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sysnoise.registry import Registry

BBOX_XFORM_CLIP = math.log(1000.0 / 16)  # torchvision's default: no box grows beyond 1000/16 x its anchor


@dataclass(frozen=True)
class Coder:
    kind: str = "delta"  # "delta" (Faster R-CNN, RetinaNet, SSD) | "linear" (FCOS: distances to the edges)
    weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    xform_clip: float = BBOX_XFORM_CLIP
    normalize_by_size: bool = True  # linear coder: distances are in units of the anchor's size


def decode(
    deltas, reference, coder: Coder, *, decode_offset: float = 0.0, legacy: bool = False, exp_dtype: str = "float32"
):
    """(K, 4) boxes x1, y1, x2, y2 from (K, 4) deltas and (K, 4) reference boxes (torch tensors)."""
    import torch

    reference = reference.to(deltas.dtype)
    plus = 1.0 if legacy else 0.0
    end = decode_offset + plus  # what x2/y2 lose at the end: the +1 convention's "inclusive" corner
    if coder.kind == "linear":
        ctr_x = 0.5 * (reference[:, 0] + reference[:, 2])
        ctr_y = 0.5 * (reference[:, 1] + reference[:, 3])
        if coder.normalize_by_size:
            w = reference[:, 2] - reference[:, 0] + plus
            h = reference[:, 3] - reference[:, 1] + plus
            deltas = deltas * torch.stack((w, h, w, h), dim=-1)
        boxes = torch.stack(
            (ctr_x - deltas[:, 0], ctr_y - deltas[:, 1], ctr_x + deltas[:, 2], ctr_y + deltas[:, 3]), -1
        )
    elif coder.kind == "delta":
        widths = reference[:, 2] - reference[:, 0] + plus
        heights = reference[:, 3] - reference[:, 1] + plus
        ctr_x = reference[:, 0] + 0.5 * widths
        ctr_y = reference[:, 1] + 0.5 * heights
        wx, wy, ww, wh = coder.weights
        dx, dy = deltas[:, 0] / wx, deltas[:, 1] / wy
        dw = torch.clamp(deltas[:, 2] / ww, max=coder.xform_clip)
        dh = torch.clamp(deltas[:, 3] / wh, max=coder.xform_clip)
        pred_ctr_x = dx * widths + ctr_x
        pred_ctr_y = dy * heights + ctr_y
        pred_w = _exp(dw, exp_dtype) * widths
        pred_h = _exp(dh, exp_dtype) * heights
        half_w = torch.tensor(0.5, dtype=pred_ctr_x.dtype) * pred_w
        half_h = torch.tensor(0.5, dtype=pred_ctr_y.dtype) * pred_h
        boxes = torch.stack((pred_ctr_x - half_w, pred_ctr_y - half_h, pred_ctr_x + half_w, pred_ctr_y + half_h), -1)
    else:
        raise ValueError(f"unknown box coder {coder.kind!r}; known: delta, linear")
    if end:
        boxes = boxes - boxes.new_tensor([0.0, 0.0, end, end])
    return boxes


def _exp(values, dtype: str):
    import torch

    if dtype == "float32":
        return torch.exp(values)
    return torch.exp(values.to(getattr(torch, dtype))).to(values.dtype)


def clip(boxes, height: float, width: float):
    """torchvision's clip_boxes_to_image: x into [0, width], y into [0, height]."""
    import torch

    x = boxes[..., 0::2].clamp(min=0, max=width)
    y = boxes[..., 1::2].clamp(min=0, max=height)
    return torch.stack((x, y), dim=boxes.dim()).reshape(boxes.shape)


def large_enough(boxes, min_size: float):
    """torchvision's remove_small_boxes: indices of boxes with both sides >= min_size."""
    import torch

    keep = ((boxes[:, 2] - boxes[:, 0]) >= min_size) & ((boxes[:, 3] - boxes[:, 1]) >= min_size)
    return torch.where(keep)[0]


# Integer coordinates the way deployment code writes its boxes out (in the original image):
# fn(boxes (n, 4) float numpy, width, height) -> boxes.
ROUNDINGS: Registry = Registry("box rounding")


@ROUNDINGS.register("round", "to the nearest integer pixel, halves up (C's floor(x + 0.5))")
def round_half_up(boxes, width: int, height: int):
    import numpy as np

    return np.floor(boxes + 0.5)


@ROUNDINGS.register("floor", "every coordinate floored (an int cast of positive values), before any clipping")
def floor(boxes, width: int, height: int):
    import numpy as np

    return np.floor(boxes)


@ROUNDINGS.register("trunc-after-clip", "clipped to the image, then cast to int (truncation toward zero)")
def trunc_after_clip(boxes, width: int, height: int):
    import numpy as np

    limits = np.asarray([width, height, width, height], boxes.dtype)
    return np.trunc(np.clip(boxes, 0, limits))
