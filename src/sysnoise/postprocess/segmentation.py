"""Segmenter post-processing: logits at the model input's resolution -> a label per pixel of the
label map, through the inverse of the pipeline's geometry, and the per-image confusion counts
mIoU is computed from.

How predictions are brought back to the label map's size is itself a deployment choice:
bilinear interpolation of the logits then argmax (the usual evaluation, and the zoo segmenter's),
the same with align_corners=True, or argmax at the input resolution and nearest-neighbour labels
(cheaper, what many deployments do), with half-pixel centres or PyTorch's legacy `nearest`.

Label pixels the input does not cover (a centre crop cut them away) get no prediction: they count
as missed for their class and as nobody's false positive.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from sysnoise.postprocess.options import POSTPROCESS

MASK_RESIZES = ("logits-bilinear", "logits-bilinear-align-corners", "labels-nearest", "labels-nearest-legacy")
GRID = 64  # predictions kept per image on a GRID x GRID lattice, for the pixel-agreement measure
NO_PREDICTION = 255


@dataclass(frozen=True)
class SegmentationPost:
    resize: str = "logits-bilinear"
    ignore_index: int = 255

    def __post_init__(self) -> None:
        if self.resize not in MASK_RESIZES:
            raise ValueError(f"unknown mask resize {self.resize!r}; known: {', '.join(MASK_RESIZES)}")


def _option(name: str, description: str, **changes) -> None:
    POSTPROCESS.register(name, description, noise="mask-resize", task="segmentation")(
        lambda config: replace(config, **changes)
    )


_option(
    "logits-bilinear",
    "logits resized bilinearly (align_corners=False) to the label map, then argmax",
    resize="logits-bilinear",
)
_option(
    "logits-bilinear-align-corners",
    "logits resized bilinearly with align_corners=True, then argmax",
    resize="logits-bilinear-align-corners",
)
_option(
    "labels-nearest",
    "argmax at the input resolution, labels resized by nearest neighbour (half-pixel centres)",
    resize="labels-nearest",
)
_option(
    "labels-nearest-legacy",
    "argmax at the input resolution, labels resized by PyTorch's legacy nearest "
    "(source index floor(i * scale): half a pixel off)",
    resize="labels-nearest-legacy",
)


def _source_coordinates(size: int, scale: float, offset: float, input_size: int, centres: bool):
    """Input coordinates (continuous, pixel-edge convention) of the label map's pixels along one
    axis: centres (i + 0.5) or, for legacy nearest and align_corners, the corners i."""
    position = np.arange(size, dtype=np.float64) + (0.5 if centres else 0.0)
    return (position - offset) / scale


def predict(
    logits: np.ndarray,
    config: SegmentationPost,
    to_source: tuple[float, float, float, float],
    label_size: tuple[int, int],
) -> np.ndarray:
    """(H, W) uint8/int labels for a label map of label_size (height, width); NO_PREDICTION where the
    input does not reach. logits: (C, h, w) at the model input's resolution."""
    import torch
    import torch.nn.functional as F

    height, width = label_size
    classes, h, w = logits.shape
    ax, bx, ay, by = to_source
    whole = abs(bx) < 1e-9 and abs(by) < 1e-9 and abs(ax * w - width) < 1e-6 and abs(ay * h - height) < 1e-6
    x = torch.from_numpy(np.ascontiguousarray(logits, np.float32))[None]
    if config.resize.startswith("logits"):
        corners = config.resize.endswith("align-corners")
        if whole:  # the input is the whole image, scaled: exactly F.interpolate, as training evaluated
            up = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=corners)
            return up[0].argmax(0).numpy().astype(np.int64)
        grid = _grid(to_source, (h, w), label_size, corners)
        up = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=corners)
        labels = up[0].argmax(0).numpy().astype(np.int64)
    else:
        labels_in = x[0].argmax(0).numpy()
        legacy = config.resize.endswith("legacy")
        cols = _source_coordinates(width, ax, bx, w, centres=not legacy)
        rows = _source_coordinates(height, ay, by, h, centres=not legacy)
        ci, ri = np.floor(cols).astype(np.int64), np.floor(rows).astype(np.int64)
        labels = labels_in[np.clip(ri, 0, h - 1)][:, np.clip(ci, 0, w - 1)].astype(np.int64)
    return np.where(_covered(to_source, (h, w), label_size), labels, NO_PREDICTION)


def _grid(to_source, input_hw, label_size, corners: bool):
    """grid_sample's normalised input coordinates of every label-map pixel centre."""
    import torch

    ax, bx, ay, by = to_source
    h, w = input_hw
    height, width = label_size
    cols = _source_coordinates(width, ax, bx, w, centres=True)
    rows = _source_coordinates(height, ay, by, h, centres=True)
    if corners:  # align_corners=True puts -1/+1 on the outer pixels' centres
        gx, gy = (cols - 0.5) / max(w - 1, 1) * 2 - 1, (rows - 0.5) / max(h - 1, 1) * 2 - 1
    else:  # -1/+1 on the outer edges
        gx, gy = cols / w * 2 - 1, rows / h * 2 - 1
    grid = np.stack(np.meshgrid(gx, gy), -1).astype(np.float32)
    return torch.from_numpy(grid)[None]


def _covered(to_source, input_hw, label_size) -> np.ndarray:
    """Label-map pixels whose centre the model input covers."""
    ax, bx, ay, by = to_source
    h, w = input_hw
    height, width = label_size
    cols = _source_coordinates(width, ax, bx, w, centres=True)
    rows = _source_coordinates(height, ay, by, h, centres=True)
    return ((rows >= 0) & (rows <= h))[:, None] & ((cols >= 0) & (cols <= w))[None, :]


def confusion(
    target: np.ndarray, prediction: np.ndarray, num_classes: int, ignore_index: int
) -> tuple[np.ndarray, int]:
    """(num_classes x num_classes counts, rows = true class, columns = predicted; label pixels outside
    0..num_classes-1 that are not ignore_index): the first is all mIoU needs; the second is reported.
    A pixel without a prediction counts in no column (missed, nobody's false positive)."""
    keep = target != ignore_index
    known = keep & (target < num_classes)
    unknown = int((keep & ~known).sum())
    t, p = target[known].astype(np.int64), prediction[known]
    predicted = p != NO_PREDICTION
    counts = np.bincount(t[predicted] * num_classes + p[predicted], minlength=num_classes * num_classes)
    matrix = counts.reshape(num_classes, num_classes)
    missed = np.bincount(t[~predicted], minlength=num_classes)
    # a missed pixel lowers its class's IoU (union grows) without raising any other's: keep it on the
    # diagonal's row through a column no class owns, folded into row sums by analysis (see iou())
    return np.concatenate([matrix, missed[:, None]], axis=1), unknown


def iou(counts: np.ndarray) -> np.ndarray:
    """Per-class IoU from (C x C+1) counts (last column: missed pixels); NaN for classes absent from
    both the labels and the predictions (left out of the mean, as the usual mIoU)."""
    matrix = counts[:, :-1]
    inter = np.diag(matrix).astype(np.float64)
    union = counts.sum(1) + matrix.sum(0) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1), np.nan)


def grid_sample_positions(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the GRID x GRID lattice of pixel centres kept for the agreement measure."""
    rows = np.minimum(((np.arange(GRID) + 0.5) * height / GRID).astype(np.int64), height - 1)
    cols = np.minimum(((np.arange(GRID) + 0.5) * width / GRID).astype(np.int64), width - 1)
    return rows, cols
