"""zoo-detector: torchvision Faster R-CNN with an FPN on the zoo ResNet body, trained on `scenes`.

* Backbone: the zoo-resnet body (7x7/2 conv stem + 3x3/2 max-pool in floor mode, so the
  ceil-mode noise applies), initialised from zoo-resnet's weights, through torchvision's
  `BackboneWithFPN` (FeaturePyramidNetwork: lateral 1x1 convs, top-down `F.interpolate(mode=
  "nearest")` upsampling, as the paper's detectors were trained; plus LastLevelMaxPool).
* Input: the 128x128 scene resized to 96x96 by the reference pipeline (Pillow bilinear),
  normalised by the pipeline (ImageNet mean/std). The model's own GeneralizedRCNNTransform is
  made an identity: mean 0, std 1 and min/max size 96 (scale factor exactly 1).
* Labels: 0 is background, 1..10 are the scenes classes, equal to the COCO category ids of
  `annotations.json`. Boxes come out in 96x96 input pixels; scale by 128/96 for the file.
"""

from __future__ import annotations

from pathlib import Path

from sysnoise.loaded_model import MODELS, LoadedModel
from sysnoise.pipeline.spec import Pipeline
from sysnoise.zoo import resnet
from sysnoise.zoo.scenes import CLASSES

NAME = "zoo-detector"
INPUT_SIZE = 96
FPN_CHANNELS = 48
ANCHOR_SIZES = ((16,), (32,), (48,), (72,), (96,))


def reference_pipeline() -> Pipeline:
    return Pipeline(
        decoder="pillow",
        colour="rgb",
        resize="pillow-bilinear",
        crop="shorter-centre-crop",
        input_size=INPUT_SIZE,
        crop_pct=1.0,
    )


def build(num_classes: int = 11, backbone_state: dict | None = None):
    """num_classes counts the background. `backbone_state`: zoo-resnet weights for the body."""
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.ops import MultiScaleRoIAlign

    body = resnet.build(10)
    if backbone_state is not None:
        missing, unexpected = body.load_state_dict(backbone_state, strict=False)
        if unexpected or any(not k.startswith("fc.") for k in missing):
            raise ValueError(f"backbone weights do not fit: missing {missing}, unexpected {unexpected}")
    widths = body.widths
    backbone = BackboneWithFPN(
        body, {"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"}, list(widths), FPN_CHANNELS
    )
    anchors = AnchorGenerator(ANCHOR_SIZES, ((0.5, 1.0, 2.0),) * len(ANCHOR_SIZES))
    roi_pool = MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 1)
    return FasterRCNN(
        backbone,
        num_classes=None,
        min_size=INPUT_SIZE,
        max_size=INPUT_SIZE,
        image_mean=[0.0, 0.0, 0.0],
        image_std=[1.0, 1.0, 1.0],
        rpn_anchor_generator=anchors,
        box_roi_pool=roi_pool,
        box_head=TwoMLPHead(FPN_CHANNELS * 7 * 7, 128),
        box_predictor=FastRCNNPredictor(128, num_classes),
        rpn_pre_nms_top_n_train=300,
        rpn_post_nms_top_n_train=150,
        rpn_pre_nms_top_n_test=300,
        rpn_post_nms_top_n_test=100,
        rpn_batch_size_per_image=128,
        box_batch_size_per_image=64,
        box_score_thresh=0.01,
        box_detections_per_img=50,
    )


@MODELS.register(
    NAME,
    "Faster R-CNN + FPN (nearest upsampling) on the zoo ResNet, trained here on scenes-det, 96 px",
    task="detection",
)
def load(weights: Path | None = None) -> LoadedModel:
    return resnet.load_dense(NAME, build(len(CLASSES) + 1), reference_pipeline(), weights)
