"""zoo-resnet: a small ResNet trained here on `scenes` under a declared training system.

Architecture: ResNet stem (7x7 conv stride 2, BN, ReLU, 3x3 max-pool stride 2 padding 1, floor
mode) and four stages of one BasicBlock each. At the 64 px input the stem conv gives 32x32 and
the max-pool 16x16 in floor mode but 17x17 in ceil mode, so the ceil-mode noise changes every
later feature map (stage outputs 16/8/4/2 become 17/9/5/3). The same body (with its named children) is the detector's and segmenter's
backbone.

Reference pipeline (the training system, the one `sysnoise train-zoo zoo-resnet` feeds the
training images through): Pillow decode, RGB, Pillow bilinear resize of the 80x80 scene
straight to 64x64 (shorter-centre-crop with crop_pct 1 is a plain resize on square images),
ImageNet mean/std, FP32, torch eager, floor-mode max-pool.
"""

from __future__ import annotations

import json
from pathlib import Path

from sysnoise.loaded_model import MODELS, LoadedModel
from sysnoise.pipeline.spec import Pipeline
from sysnoise.weights import load_into, load_state_dict, sha256_file
from sysnoise.zoo.scenes import CLASSES

NAME = "zoo-resnet"
WIDTHS = (16, 32, 64, 128)
INPUT_SIZE = 64
ZOO = Path(__file__).parent


def reference_pipeline() -> Pipeline:
    return Pipeline(decoder="pillow", colour="rgb", resize="pillow-bilinear", crop="shorter-centre-crop",
                    input_size=INPUT_SIZE, crop_pct=1.0)


def _torch_modules():
    import torch
    from torch import nn

    class BasicBlock(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu(out + identity)

    class ZooResNet(nn.Module):
        """torchvision-style names (conv1, bn1, relu, maxpool, layer1..4, avgpool, fc), so
        torchvision's IntermediateLayerGetter / BackboneWithFPN can take the body as it is."""

        def __init__(self, num_classes: int = 10, widths=WIDTHS):
            super().__init__()
            self.widths = tuple(widths)
            self.conv1 = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(widths[0])
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)  # floor mode, as trained
            cin = widths[0]
            for i, w in enumerate(widths):
                setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(cin, w, 1 if i == 0 else 2)))
                cin = w
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(cin, num_classes)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

        def features(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            return self.layer4(self.layer3(self.layer2(self.layer1(x))))

        def forward(self, x):
            return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))

    return BasicBlock, ZooResNet


def build(num_classes: int = 10, widths=WIDTHS):
    return _torch_modules()[1](num_classes, widths)


def weights_path(name: str = NAME) -> Path:
    return ZOO / "weights" / f"{name}.safetensors"


def read_card(name: str) -> dict:
    """The machine-readable part of a model card: the JSON block between ```json fences."""
    path = ZOO / "cards" / f"{name}.md"
    if not path.is_file():
        return {}
    text = path.read_text()
    start = text.find("```json\n")
    if start < 0:
        return {"card": str(path)}
    end = text.find("```", start + 8)
    return {**json.loads(text[start + 8 : end]), "card": str(path)}


@MODELS.register(NAME, "ResNet-style classifier trained here on `scenes` (10 shapes on real photos), 64 px, "
                 "strided max-pool", task="classification")
def load(weights: Path | None = None) -> LoadedModel:
    path = Path(weights) if weights else weights_path()
    module = build(len(CLASSES))
    load_into(module, load_state_dict(path), path)
    # Weights from `sysnoise train` carry NAME.json beside them: their name, training system and
    # the reference pipeline that system implies.
    sidecar = path.with_suffix(".json")
    if weights and sidecar.is_file():
        card = json.loads(sidecar.read_text())
        reference = Pipeline.from_dict(card["reference_pipeline"], source=str(sidecar))
    else:
        card, reference = read_card(NAME), reference_pipeline()
    return LoadedModel(name=card.get("name", NAME), module=module.eval(), reference=reference,
                       num_classes=len(CLASSES), class_names=list(CLASSES), source=str(path),
                       weights_sha256=sha256_file(path), card=card)
