"""zoo-segmenter: an encoder-decoder (U-Net-style) on the zoo ResNet body, trained on `scenes`.

* Encoder: the zoo-resnet body (7x7/2 conv stem + 3x3/2 max-pool in floor mode, so the
  ceil-mode noise applies), initialised from zoo-resnet's weights.
* Decoder: top-down path over layer4 -> layer1 (strides 32 -> 4): each step upsamples the
  coarser map to the size of the finer skip (`F.interpolate`, mode `upsample_mode`, bilinear
  as trained), adds a 1x1 lateral of the skip and applies a 3x3 conv; a 1x1 classifier at
  stride 4 and a final upsampling to the input size. Upsampling to the skip's *size* (not a
  fixed factor) keeps the network valid when ceil mode changes the feature-map sizes.
  `upsample_mode` is an attribute so an operator variant can swap the kernel.
* Input: the 128x128 scene resized to 96x96 by the reference pipeline (Pillow bilinear),
  ImageNet mean/std. Output: (N, 11, 96, 96) logits; class 0 is background, 1..10 the
  scenes classes (the values of the PNG label maps). The metric upsamples the logits
  bilinearly to the label map's 128x128 and ignores label 255.
"""

from __future__ import annotations

from pathlib import Path

from sysnoise.loaded_model import MODELS, LoadedModel
from sysnoise.pipeline.spec import Pipeline
from sysnoise.zoo import resnet
from sysnoise.zoo.scenes import CLASSES

NAME = "zoo-segmenter"
INPUT_SIZE = 96
DECODER_CHANNELS = 48


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
    import torch.nn.functional as F
    from torch import nn

    class ZooSegmenter(nn.Module):
        def __init__(self):
            super().__init__()
            self.upsample_mode = "bilinear"
            self.backbone = resnet.build(10)
            if backbone_state is not None:
                missing, unexpected = self.backbone.load_state_dict(backbone_state, strict=False)
                if unexpected or any(not k.startswith("fc.") for k in missing):
                    raise ValueError(f"backbone weights do not fit: missing {missing}, unexpected {unexpected}")
            del self.backbone.fc, self.backbone.avgpool
            c = DECODER_CHANNELS
            widths = self.backbone.widths
            self.lateral = nn.ModuleList(nn.Conv2d(w, c, 1) for w in widths)
            self.smooth = nn.ModuleList(
                nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True))
                for _ in widths[:-1]
            )
            self.head = nn.Sequential(
                nn.Conv2d(c, c, 3, padding=1, bias=False),
                nn.BatchNorm2d(c),
                nn.ReLU(inplace=True),
                nn.Conv2d(c, num_classes, 1),
            )

        def _up(self, x, size):
            if self.upsample_mode in ("bilinear", "bicubic"):
                return F.interpolate(x, size=size, mode=self.upsample_mode, align_corners=False)
            return F.interpolate(x, size=size, mode=self.upsample_mode)

        def forward(self, x):
            b = self.backbone
            size = x.shape[-2:]
            x = b.maxpool(b.relu(b.bn1(b.conv1(x))))
            feats = []
            for layer in (b.layer1, b.layer2, b.layer3, b.layer4):
                x = layer(x)
                feats.append(x)
            y = self.lateral[3](feats[3])
            for i in (2, 1, 0):
                skip = self.lateral[i](feats[i])
                y = self.smooth[i](self._up(y, skip.shape[-2:]) + skip)
            return self._up(self.head(y), size)

    return ZooSegmenter()


@MODELS.register(
    NAME,
    "U-Net-style segmenter (bilinear upsampling) on the zoo ResNet, trained here on scenes-seg, 96 px",
    task="segmentation",
)
def load(weights: Path | None = None) -> LoadedModel:
    return resnet.load_dense(NAME, build(len(CLASSES) + 1), reference_pipeline(), weights)
