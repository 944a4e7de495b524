"""Detectors as model stages that end at the raw head outputs.

`raw_detector(module)` wraps a torchvision detector in a module whose forward takes a normalised
batch (N, 3, H, W) and returns fixed-shape raw outputs (tasks/detection.py pads nothing itself).
The wrapper skips the detector's GeneralizedRCNNTransform: sysnoise's pipeline decodes, resizes and
normalises (the Pipeline is the system), the wrapper only pads to the transform's size_divisible
with zeros, as the transform's batching does. Everything after the heads (decoding, thresholds,
NMS) is post-processing (postprocess/detection.py), applied per column to the shared raw outputs.

Because the wrapper is an ordinary module called on a batch tensor, every model-stage variant
applies to it unchanged: operator rewrites reach the backbone's max-pool and the FPN's
interpolate, emulated precision rounds its modules, INT8 calibrates on batches.

Any other detector works through the Python API as a module with the same contract: forward(batch)
-> the raw dict of one of the two formats, and an attribute `post_reference` (a DetectionPost).
"""

from __future__ import annotations

import torch

from sysnoise.errors import UserInputError
from sysnoise.pipeline.spec import Pipeline
from sysnoise.postprocess.boxes import Coder
from sysnoise.postprocess.detection import MAX_DETECTIONS, DetectionPost, detect
from sysnoise.weights import load_into


def _pad(x, divisible: int):
    """Zero padding on the right and bottom to multiples of `divisible` (the transform's batching)."""
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    ph, pw = (-h) % divisible, (-w) % divisible
    return F.pad(x, (0, pw, 0, ph)) if ph or pw else x


def _image_list(x, divisible: int):
    from torchvision.models.detection.image_list import ImageList

    h, w = x.shape[-2:]
    padded = _pad(x, divisible)
    return ImageList(padded, [(int(h), int(w))] * x.shape[0])


def _features(backbone, tensors):
    from collections import OrderedDict

    features = backbone(tensors)
    return OrderedDict([("0", features)]) if isinstance(features, torch.Tensor) else features


def _coder(box_coder) -> Coder:
    if hasattr(box_coder, "weights"):
        return Coder("delta", tuple(float(w) for w in box_coder.weights), float(box_coder.bbox_xform_clip))
    return Coder("linear", normalize_by_size=bool(box_coder.normalize_by_size))


class TwoStageRaw(torch.nn.Module):
    """Faster / Mask R-CNN up to the box predictor: the RPN's proposals (its own NMS is part of the
    model), and per proposal the class logits and per-class box deltas, padded to the RPN's
    post-NMS count with a validity mask.

    With a mask head (Mask R-CNN, `has_masks`), also "mask_probs" (MAX_DETECTIONS, M, M): the mask
    head run, as torchvision runs it, on the detections of the model's own post-processing
    (`post_reference`, boxes in input pixels) with the predicted class's channel, sigmoid applied.
    They belong to those boxes only: columns with other post-processing get no masks."""

    def __init__(self, detector):
        super().__init__()
        self.backbone, self.rpn, self.roi_heads = detector.backbone, detector.rpn, detector.roi_heads
        self.size_divisible = int(detector.transform.size_divisible)
        heads = detector.roi_heads
        self.post_reference = DetectionPost(
            "two-stage",
            coder=_coder(heads.box_coder),
            score_thresh=float(heads.score_thresh),
            nms_iou=float(heads.nms_thresh),
            max_dets=int(heads.detections_per_img),
            min_size=1e-2,
            background=True,
        )
        self.has_masks = bool(heads.has_mask())

    def forward(self, x):
        images = _image_list(x, self.size_divisible)
        features = _features(self.backbone, images.tensors)
        proposals, _ = self.rpn(images, features)
        heads = self.roi_heads
        pooled = heads.box_roi_pool(features, proposals, images.image_sizes)
        class_logits, box_regression = heads.box_predictor(heads.box_head(pooled))
        n, classes, width = x.shape[0], class_logits.shape[-1], int(self.rpn._post_nms_top_n["testing"])
        out = {
            "proposals": x.new_zeros(n, width, 4),
            "proposal_valid": torch.zeros(n, width, dtype=torch.bool),
            "class_logits": x.new_zeros(n, width, classes),
            "box_regression": x.new_zeros(n, width, classes, 4),
        }
        counts = [len(p) for p in proposals]
        parts = zip(proposals, class_logits.split(counts), box_regression.split(counts))
        for i, (boxes, logits, deltas) in enumerate(parts):
            k = len(boxes)
            out["proposals"][i, :k] = boxes
            out["proposal_valid"][i, :k] = True
            out["class_logits"][i, :k] = logits
            out["box_regression"][i, :k] = deltas.reshape(k, classes, 4)
        if self.has_masks:
            out["mask_probs"] = self._masks(x, out, features, images.image_sizes)
        return out

    def _masks(self, x, out, features, image_sizes):
        """The mask head on each image's reference detections (what finish() computes from the
        same raw outputs, as float32 arrays): (n, MAX_DETECTIONS, M, M), zeros past the last one."""
        heads, (h, w) = self.roi_heads, x.shape[-2:]
        dtype = next(iter(features.values())).dtype  # roi_align wants boxes of the features' type
        raw = {
            name: value.detach().float().cpu().numpy() if value.is_floating_point() else value.cpu().numpy()
            for name, value in out.items()
        }
        boxes, labels = [], []
        for i in range(x.shape[0]):
            found = detect(
                {name: value[i] for name, value in raw.items()},
                self.post_reference,
                (int(h), int(w)),
                (1.0, 0.0, 1.0, 0.0),
                (int(w), int(h)),
            )
            k = int((found["labels"] >= 0).sum())
            boxes.append(torch.from_numpy(found["boxes"][:k]).to(device=x.device, dtype=dtype))
            labels.append(torch.from_numpy(found["labels"][:k].astype("int64")).to(x.device))
        empty = sum(len(b) for b in boxes) == 0
        if empty:  # one throw-away box: the mask size is whatever the head makes
            boxes[0] = boxes[0].new_tensor([[0.0, 0.0, 1.0, 1.0]])
            labels[0] = labels[0].new_zeros(1)
        logits = heads.mask_predictor(heads.mask_head(heads.mask_roi_pool(features, boxes, image_sizes)))
        chosen = logits[torch.arange(len(logits), device=logits.device), torch.cat(labels)].sigmoid()
        size = chosen.shape[-1]
        masks = x.new_zeros(x.shape[0], MAX_DETECTIONS, size, size)
        if not empty:
            for i, part in enumerate(chosen.split([len(b) for b in boxes])):
                masks[i, : len(part)] = part
        return masks


class DenseRaw(torch.nn.Module):
    """RetinaNet, FCOS (groups = pyramid levels) and SSD (groups = classes): per group the `keep`
    highest-scoring (anchor, class) candidates, no threshold yet, with their anchors and deltas."""

    def __init__(self, detector, kind: str):
        super().__init__()
        self.kind = kind  # "retinanet" | "fcos" | "ssd"
        self.backbone, self.head, self.anchor_generator = detector.backbone, detector.head, detector.anchor_generator
        self.size_divisible = int(detector.transform.size_divisible)
        self.keep = int(detector.topk_candidates)
        self.post_reference = DetectionPost(
            "dense",
            coder=_coder(detector.box_coder),
            score_thresh=float(detector.score_thresh),
            nms_iou=float(detector.nms_thresh),
            max_dets=int(detector.detections_per_img),
            pre_nms_topk=int(detector.topk_candidates),
            background=kind == "ssd",
        )

    def forward(self, x):
        images = _image_list(x, self.size_divisible)
        features = list(_features(self.backbone, images.tensors).values())
        head = self.head(features)
        anchors = self.anchor_generator(images, features)
        if self.kind == "ssd":
            probabilities = torch.softmax(head["cls_logits"], -1)
            groups = [
                [
                    (probabilities[i, :, c : c + 1], head["bbox_regression"][i], anchors[i], c)
                    for c in range(1, probabilities.shape[-1])
                ]
                for i in range(x.shape[0])
            ]
        else:
            per_level = [f.shape[-2] * f.shape[-1] for f in features]
            per_anchor = head["cls_logits"].shape[1] // sum(per_level)
            sizes = [hw * per_anchor for hw in per_level]
            scores = torch.sigmoid(head["cls_logits"])
            if self.kind == "fcos":
                scores = torch.sqrt(scores * torch.sigmoid(head["bbox_ctrness"]))
            groups = [
                list(
                    zip(
                        scores[i].split(sizes),
                        head["bbox_regression"][i].split(sizes),
                        anchors[i].split(sizes),
                        range(len(sizes)),
                    )
                )
                for i in range(x.shape[0])
            ]
        return self._ranked(x, groups)

    def _ranked(self, x, groups):
        n, width = x.shape[0], self.keep * len(groups[0])
        out = {
            "scores": x.new_zeros(n, width),
            "labels": torch.zeros(n, width, dtype=torch.int64),
            "anchors": x.new_zeros(n, width, 4),
            "deltas": x.new_zeros(n, width, 4),
            "groups": torch.zeros(n, width, dtype=torch.int64),
            "valid": torch.zeros(n, width, dtype=torch.bool),
        }
        for i, image_groups in enumerate(groups):
            start = 0
            for scores, deltas, anchors, group in image_groups:
                classes = scores.shape[-1]
                values, index = scores.flatten().topk(min(self.keep, scores.numel()))
                anchor = torch.div(index, classes, rounding_mode="floor")
                label = index % classes if self.kind != "ssd" else torch.full_like(index, group)
                k = len(values)
                out["scores"][i, start : start + k] = values
                out["labels"][i, start : start + k] = label
                out["anchors"][i, start : start + k] = anchors[anchor]
                out["deltas"][i, start : start + k] = deltas[anchor]
                out["groups"][i, start : start + k] = group
                out["valid"][i, start : start + k] = True
                start += self.keep
        return out


class TrainedStrideAnchors(torch.nn.Module):
    """torchvision's AnchorGenerator with each level's stride fixed at the trained network's, as a
    deployed engine precomputes anchors at its configured strides. torchvision derives a level's
    stride as image_size // grid_size, so a ceil-mode pool (one more row and column on every level)
    would also move the anchors: [4, 8, 16, 32, 48] become [3, 7, 13, 24, 48] on the zoo detector."""

    def __init__(self, generator, strides):
        super().__init__()
        self.generator = generator
        self.strides = tuple(tuple(int(v) for v in level) for level in strides)  # per level (height, width)

    def num_anchors_per_location(self):
        return self.generator.num_anchors_per_location()

    def forward(self, image_list, feature_maps):
        grid_sizes = [feature_map.shape[-2:] for feature_map in feature_maps]
        dtype, device = feature_maps[0].dtype, feature_maps[0].device
        strides = [
            [torch.tensor(h, dtype=torch.int64, device=device), torch.tensor(w, dtype=torch.int64, device=device)]
            for h, w in self.strides
        ]
        self.generator.set_cell_anchors(dtype, device)
        per_level = self.generator.grid_anchors(grid_sizes, strides)
        return [torch.cat(per_level) for _ in image_list.image_sizes]


def _anchor_generators(model) -> dict:
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    return {name: m for name, m in model.named_modules() if isinstance(m, AnchorGenerator)}


def has_anchor_generator(model) -> bool:
    return bool(_anchor_generators(model))


def anchor_strides(model, example) -> dict[str, tuple[tuple[int, int], ...]]:
    """{anchor generator's name: per-level (height, width) strides} as torchvision computes them
    (image_size // grid_size) when `model` runs on `example`."""
    generators = _anchor_generators(model)
    found: dict[str, tuple] = {}

    def record(name):
        def hook(_module, inputs):
            image_list, feature_maps = inputs
            size = image_list.tensors.shape[-2:]
            found[name] = tuple(
                (int(size[0]) // int(f.shape[-2]), int(size[1]) // int(f.shape[-1])) for f in feature_maps
            )

        return hook

    handles = [generator.register_forward_pre_hook(record(name)) for name, generator in generators.items()]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    return found


def pin_anchor_strides(model, strides: dict[str, tuple]):
    """`model` (changed in place, and returned) with each named anchor generator's strides fixed."""
    for name, level_strides in strides.items():
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, TrainedStrideAnchors(getattr(parent, child), level_strides))
    return model


def family(module) -> str | None:
    """'two-stage', 'retinanet', 'fcos', 'ssd', 'raw' (already a raw detector) or None."""
    if hasattr(module, "post_reference") and isinstance(module.post_reference, DetectionPost):
        return "raw"
    from torchvision.models.detection.fcos import FCOS
    from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
    from torchvision.models.detection.retinanet import RetinaNet
    from torchvision.models.detection.ssd import SSD

    for kind, cls in (("two-stage", GeneralizedRCNN), ("retinanet", RetinaNet), ("fcos", FCOS), ("ssd", SSD)):
        if isinstance(module, cls):
            return kind
    return None


def raw_detector(module):
    """The module as a raw-output detector; a module that already is one is returned as it is."""
    kind = family(module)
    if kind is None:
        raise ValueError(
            f"{type(module).__name__} is not a detector sysnoise knows (torchvision Faster/Mask R-CNN, "
            "RetinaNet, FCOS, SSD); wrap it so that forward(batch) returns the raw outputs and "
            "`post_reference` is a DetectionPost (see tasks/detection_heads.py)"
        )
    if kind == "raw":
        return module
    return (TwoStageRaw(module) if kind == "two-stage" else DenseRaw(module, kind)).eval()


def reference_pipeline(detector):
    """The pipeline a torchvision detector's own transform describes: its mean/std (as 0-255
    values), keep-ratio resize to min_size with max_size (or SSD's fixed size), bilinear without
    antialiasing on the image (the transform interpolates the normalised float image; sysnoise
    resizes the uint8 image and normalises after: a difference below one grey level)."""
    t = detector.transform
    mean = tuple(round(255 * float(v), 6) for v in t.image_mean)
    std = tuple(round(255 * float(v), 6) for v in t.image_std)
    if t.fixed_size:
        return Pipeline(
            resize="torchvision-bilinear-noaa",
            crop="squash",
            input_size=int(t.fixed_size[0]),
            crop_pct=1.0,
            mean=mean,
            std=std,
        )
    size = int(t.min_size[-1])
    return Pipeline(
        resize="torchvision-bilinear-noaa",
        crop="keep-ratio-max-size",
        input_size=size,
        crop_pct=size / float(t.max_size),
        mean=mean,
        std=std,
    )


HEAD_KEYS = (  # (classification, box regression) weights: first dimensions anchors x classes, anchors x 4
    ("roi_heads.box_predictor.cls_score.weight", None),  # Faster / Mask R-CNN: one row per class
    ("head.classification_head.cls_logits.weight", "head.regression_head.bbox_reg.weight"),  # RetinaNet, FCOS
    ("head.classification_head.module_list.0.weight", "head.regression_head.module_list.0.weight"),  # SSD300
    # SSDlite: a depthwise block (.0) before the 1x1 convolution that predicts
    ("head.classification_head.module_list.0.1.weight", "head.regression_head.module_list.0.1.weight"),
)


def load_torchvision(arch: str, weights, state: dict):
    """A torchvision detection architecture with the classes its state dict has (nothing downloaded:
    no pretrained backbone either). The classes come from the head's shapes, so the architecture is
    built once (building SSD300's VGG costs seconds)."""
    import torchvision

    found = next(((c, r) for c, r in HEAD_KEYS if c in state and (r is None or r in state)), None)
    if found is None:
        raise UserInputError(
            f"{weights}: not a state dict of torchvision's {arch} (no detection head: none of "
            f"{', '.join(c for c, _ in HEAD_KEYS)})"
        )
    classification, regression = found
    per_location = 1 if regression is None else int(state[regression].shape[0]) // 4
    num_classes = int(state[classification].shape[0]) // per_location
    module = torchvision.models.get_model(arch, weights=None, weights_backbone=None, num_classes=num_classes)
    load_into(module, state, weights)
    return module.eval(), num_classes
