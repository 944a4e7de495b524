"""Non-maximum suppression kernels: fn(boxes (n, 4), scores (n,), iou_threshold) -> kept indices,
highest score first. A box is suppressed when its IoU with a kept, higher-scoring box is above
the threshold (strictly, as torchvision).

The kernels differ the way deployment code differs: torchvision's C++ kernel, a plain greedy loop
(the textbook algorithm most ports write), and the same loop with the legacy +1 pixel areas
((x2 - x1 + 1) * (y2 - y1 + 1)) of Detectron v1 / Caffe-era code. `batched` runs a kernel per
class (class-aware, torchvision's batched_nms) or over all boxes at once (class-agnostic).
"""

from __future__ import annotations

import numpy as np

from sysnoise.registry import Registry

NMS_KERNELS: Registry = Registry("NMS kernel")


@NMS_KERNELS.register("torchvision", "torchvision.ops.nms (C++ kernel, continuous areas)")
def torchvision_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    import torch
    from torchvision.ops import nms

    return nms(torch.from_numpy(boxes), torch.from_numpy(scores), float(iou_threshold)).numpy()


def _greedy(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, plus: float) -> np.ndarray:
    boxes = boxes.astype(np.float64)  # a port computes in double or float; the IoU test is what differs
    areas = (boxes[:, 2] - boxes[:, 0] + plus) * (boxes[:, 3] - boxes[:, 1] + plus)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        w = np.maximum(
            0.0, np.minimum(boxes[best, 2], boxes[rest, 2]) - np.maximum(boxes[best, 0], boxes[rest, 0]) + plus
        )
        h = np.maximum(
            0.0, np.minimum(boxes[best, 3], boxes[rest, 3]) - np.maximum(boxes[best, 1], boxes[rest, 1]) + plus
        )
        inter = w * h
        union = areas[best] + areas[rest] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, np.int64)


@NMS_KERNELS.register("greedy", "plain greedy loop in double precision, continuous areas, stable score order")
def greedy(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    return _greedy(boxes, scores, iou_threshold, 0.0)


@NMS_KERNELS.register("greedy-plus1", "greedy loop with +1 pixel areas and overlaps (Detectron v1, Caffe-era code)")
def greedy_plus1(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    return _greedy(boxes, scores, iou_threshold, 1.0)


def batched(
    kernel: str,
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    iou_threshold: float,
    class_aware: bool = True,
) -> np.ndarray:
    """Kept indices, highest score first (ties: lower index first, except torchvision's own batched
    call, kept verbatim). class_aware: boxes of different classes never suppress each other."""
    fn = NMS_KERNELS(kernel)
    if boxes.shape[0] == 0:
        return np.zeros(0, np.int64)
    if kernel == "torchvision" and class_aware:  # the model's own call, offsets trick and order included
        import torch
        from torchvision.ops import batched_nms

        return batched_nms(
            torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(classes), float(iou_threshold)
        ).numpy()
    if not class_aware:
        keep = fn(boxes, scores, iou_threshold)
    else:
        keep = np.concatenate(
            [
                np.flatnonzero(classes == c)[fn(boxes[classes == c], scores[classes == c], iou_threshold)]
                for c in np.unique(classes)
            ]
        )
    return keep[np.lexsort((keep, -scores[keep]))]
