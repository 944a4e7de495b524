"""Detector post-processing: raw head outputs -> at most MAX_DETECTIONS boxes in the source image.

Two raw formats come out of the model stage (tasks/detection_heads.py):

* two-stage (Faster/Mask R-CNN): per proposal, its box, class logits and per-class deltas. The
  candidates are every (proposal, class) pair but the background, proposal-major, as torchvision
  builds them; scores are the softmax.
* dense (RetinaNet, FCOS, SSD): candidate pairs already ranked within groups (a pyramid level, or
  a class for SSD), each group cut to a superset of what any option keeps: score, label, anchor,
  deltas.

Then, as torchvision: score threshold, top-k per group, decoding, clipping, removing empty boxes,
NMS, the first max_dets. The reference configuration is read from the model's own heads, so the
reference column reproduces the model's own outputs; the options below are what other code does.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from sysnoise.postprocess import boxes as box_ops
from sysnoise.postprocess.nms import batched
from sysnoise.postprocess.options import POSTPROCESS

MAX_DETECTIONS = 100  # COCOeval's largest maxDets: stored outputs hold this many per image
CLIPS = ("before-nms", "after-nms", "none")


@dataclass(frozen=True)
class DetectionPost:
    family: str  # "two-stage" | "dense"
    coder: box_ops.Coder = field(default_factory=box_ops.Coder)
    score_thresh: float = 0.05
    nms_iou: float = 0.5
    max_dets: int = 100
    pre_nms_topk: int | None = None  # per group, after the score threshold
    min_size: float | None = None  # boxes with a side under this are dropped (torchvision two-stage: 0.01)
    background: bool = True  # two-stage: class 0 is background and never a detection
    decode_offset: float = 0.0
    legacy: bool = False
    exp_dtype: str = "float32"
    nms: str = "torchvision"
    class_aware: bool = True
    clip: str = "before-nms"
    rounding: str | None = None

    def __post_init__(self) -> None:
        if self.family not in ("two-stage", "dense") or self.clip not in CLIPS:
            raise ValueError(f"bad detection post-processing: family={self.family!r}, clip={self.clip!r}")


def _option(name: str, noise: str, description: str, **changes) -> None:
    POSTPROCESS.register(name, description, noise=noise, task="detection")(lambda config: replace(config, **changes))


# noise "box-decoding"
_option(
    "decode-offset-1",
    "box-decoding",
    "x2/y2 decoded as centre + w/2 - 1 (integer-pixel convention, ALIGNED_FLAG off)",
    decode_offset=1.0,
)
_option(
    "legacy-offset-1",
    "box-decoding",
    "Detectron v1 / mmdet v1 legacy: reference widths x2 - x1 + 1 and x2 = centre + w/2 - 1",
    legacy=True,
)
_option("exp-fp16", "box-decoding", "exp(dw), exp(dh) computed in float16", exp_dtype="float16")
# noise "box-rounding"
_option("round", "box-rounding", "final boxes rounded to integer pixels (halves up)", rounding="round")
_option("floor", "box-rounding", "final boxes floored to integer pixels", rounding="floor")
_option(
    "trunc-after-clip",
    "box-rounding",
    "final boxes clipped to the image, then cast to int",
    rounding="trunc-after-clip",
)
# noise "nms"
_option("nms-greedy", "nms", "a plain greedy NMS loop instead of torchvision's kernel", nms="greedy")
_option("nms-plus1", "nms", "greedy NMS with +1 pixel areas in the IoU (legacy)", nms="greedy-plus1")
_option("nms-class-agnostic", "nms", "one NMS over all classes instead of one per class", class_aware=False)
_option("nms-iou-0.45", "nms", "NMS IoU threshold 0.45 (YOLO's default)", nms_iou=0.45)
_option("nms-iou-0.6", "nms", "NMS IoU threshold 0.6", nms_iou=0.6)
# noise "score-threshold"
_option(
    "score-0.001",
    "score-threshold",
    "keep candidates scoring above 0.001 (YOLO / mmdet test setting)",
    score_thresh=0.001,
)
_option(
    "score-0.05",
    "score-threshold",
    "keep candidates scoring above 0.05 (torchvision / Detectron2 default)",
    score_thresh=0.05,
)
_option("score-0.3", "score-threshold", "keep candidates scoring above 0.3 (a display threshold)", score_thresh=0.3)
# noise "top-k"
_option("pre-nms-100", "top-k", "at most 100 candidates per level (per class for SSD) enter NMS", pre_nms_topk=100)
_option("pre-nms-1000", "top-k", "at most 1000 candidates per level (per class for SSD) enter NMS", pre_nms_topk=1000)
_option("max-dets-20", "top-k", "at most 20 detections per image after NMS", max_dets=20)
_option("max-dets-100", "top-k", "at most 100 detections per image after NMS (COCO's maxDets)", max_dets=100)
# noise "box-clip"
_option("clip-after-nms", "box-clip", "boxes clipped to the input after NMS instead of before", clip="after-nms")
_option("no-clip", "box-clip", "boxes never clipped to the input", clip="none")


@dataclass(frozen=True)
class Candidates:
    scores: np.ndarray  # (K,) float32
    labels: np.ndarray  # (K,) int64, the model's label index
    reference: np.ndarray  # (K, 4) anchors or proposals, input pixels
    deltas: np.ndarray  # (K, 4)
    groups: np.ndarray  # (K,) int: top-k applies per group


def candidates(raw: dict, config: DetectionPost) -> Candidates:
    if config.family == "dense":
        valid = raw["valid"].astype(bool)
        return Candidates(
            raw["scores"][valid],
            raw["labels"][valid].astype(np.int64),
            raw["anchors"][valid],
            raw["deltas"][valid],
            raw["groups"][valid],
        )
    import torch

    valid = raw["proposal_valid"].astype(bool)
    proposals, logits, regression = raw["proposals"][valid], raw["class_logits"][valid], raw["box_regression"][valid]
    scores = torch.softmax(torch.from_numpy(logits), -1).numpy()
    first = 1 if config.background else 0
    n, classes = scores.shape
    labels = np.broadcast_to(np.arange(first, classes), (n, classes - first))
    return Candidates(
        scores[:, first:].reshape(-1),
        labels.reshape(-1).astype(np.int64),
        np.repeat(proposals, classes - first, axis=0),
        regression[:, first:].reshape(-1, 4),
        np.zeros(n * (classes - first), np.int64),
    )


def _top_per_group(scores: np.ndarray, groups: np.ndarray, k: int | None) -> np.ndarray:
    """Indices (ascending within each group's ranking, groups in order of appearance) of each
    group's k highest scores; a stable sort keeps the model's order among equal scores."""
    if k is None:
        return np.arange(scores.size)
    picked = []
    for group in dict.fromkeys(groups.tolist()):
        members = np.flatnonzero(groups == group)
        picked.append(members[np.argsort(-scores[members], kind="stable")[:k]])
    return np.concatenate(picked) if picked else np.zeros(0, np.int64)


def detect(
    raw: dict,
    config: DetectionPost,
    input_size: tuple[int, int],
    to_source: tuple[float, float, float, float],
    source_size: tuple[int, int],
) -> dict[str, np.ndarray]:
    """Detections of one image: boxes (MAX_DETECTIONS, 4) x1 y1 x2 y2 in source pixels, scores,
    labels (the model's label index, -1 padding), highest score first.

    input_size: (height, width) of the model input (boxes are clipped to it); to_source: the
    geometry's (ax, bx, ay, by) back to the source; source_size: (width, height) of the source.
    """
    import torch

    found = candidates(raw, config)
    kept = np.flatnonzero(found.scores > config.score_thresh)
    kept = kept[_top_per_group(found.scores[kept], found.groups[kept], config.pre_nms_topk)]
    scores, labels = found.scores[kept], found.labels[kept]
    boxes = box_ops.decode(
        torch.from_numpy(np.ascontiguousarray(found.deltas[kept])),
        torch.from_numpy(np.ascontiguousarray(found.reference[kept])),
        config.coder,
        decode_offset=config.decode_offset,
        legacy=config.legacy,
        exp_dtype=config.exp_dtype,
    )
    height, width = input_size
    if config.clip == "before-nms":
        boxes = box_ops.clip(boxes, height, width)
    if config.min_size is not None:
        large = box_ops.large_enough(boxes, config.min_size).numpy()
        boxes, scores, labels = boxes[large], scores[large], labels[large]
    boxes = boxes.numpy()
    keep = batched(config.nms, boxes, scores, labels, config.nms_iou, config.class_aware)
    keep = keep[: min(config.max_dets, MAX_DETECTIONS)]
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    if config.clip == "after-nms":
        boxes = box_ops.clip(torch.from_numpy(boxes), height, width).numpy()
    ax, bx, ay, by = to_source
    boxes = boxes * np.asarray([ax, ay, ax, ay], np.float32) + np.asarray([bx, by, bx, by], np.float32)
    if config.rounding is not None:
        boxes = box_ops.ROUNDINGS(config.rounding)(boxes, *source_size)
    return padded(boxes, scores, labels)


def padded(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    out = empty(1)
    n = min(len(scores), MAX_DETECTIONS)
    out["boxes"][0, :n] = boxes[:n]
    out["scores"][0, :n] = scores[:n]
    out["labels"][0, :n] = labels[:n]
    return {name: value[0] for name, value in out.items()}


def empty(n: int) -> dict[str, np.ndarray]:
    """n images without detections (a failed sample detects nothing)."""
    return {
        "boxes": np.zeros((n, MAX_DETECTIONS, 4), np.float32),
        "scores": np.zeros((n, MAX_DETECTIONS), np.float32),
        "labels": np.full((n, MAX_DETECTIONS), -1, np.int32),
    }


MASK_THRESHOLD = 0.5  # torchvision's Mask R-CNN evaluation: pasted probability > 0.5
PASTE_CHUNK = 8  # masks pasted at a time: each is a float (height, width) image


def encode_masks(mask_probs: np.ndarray, boxes: np.ndarray, source_size: tuple[int, int]) -> bytes:
    """Per-detection masks in the annotated image as one byte string: b"HEIGHT WIDTH" then one
    line per detection with its COCO compressed-RLE counts (pycocotools.mask.encode).

    mask_probs: (k, M, M) the mask head's probabilities for the k detections whose boxes (k, 4) x1
    y1 x2 y2 are in source pixels: pasted into the source image as torchvision pastes them
    (`paste_masks_in_image`, after its postprocess mapped the boxes to the original image), then
    thresholded at MASK_THRESHOLD. Any pipeline's geometry is an axis-aligned scale and offset, so
    pasting on the source box is the mask mapped back with the boxes."""
    import torch
    from pycocotools import mask as mask_utils
    from torchvision.models.detection.roi_heads import paste_masks_in_image

    width, height = (int(v) for v in source_size)
    lines = [f"{height} {width}".encode("ascii")]
    probs = torch.from_numpy(np.ascontiguousarray(mask_probs, np.float32))[:, None]
    boxes = torch.from_numpy(np.ascontiguousarray(boxes, np.float32))
    for start in range(0, len(probs), PASTE_CHUNK):
        pasted = paste_masks_in_image(
            probs[start : start + PASTE_CHUNK], boxes[start : start + PASTE_CHUNK], (height, width)
        )
        binary = (pasted[:, 0] > MASK_THRESHOLD).numpy().astype(np.uint8)  # (k, h, w)
        encoded = mask_utils.encode(np.asfortranarray(binary.transpose(1, 2, 0)))
        lines += [e["counts"] for e in encoded]
    return b"\n".join(lines)


def decode_masks(blob: bytes) -> list[dict]:
    """encode_masks' byte string as COCO RLEs [{size: [h, w], counts: str}], one per detection;
    [] for b"" (no masks: a failed sample, or a column whose post-processing is not the model's)."""
    if not blob:
        return []
    head, *counts = blob.split(b"\n")
    size = [int(v) for v in head.split()]
    return [{"size": size, "counts": c.decode("ascii")} for c in counts]
