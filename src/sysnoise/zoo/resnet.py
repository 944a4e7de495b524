"""The zoo's ResNet classifiers, trained here on `scenes` under a declared training system.

One architecture, two geometries (`GEOMETRIES`):
* zoo-resnet: ResNet stem (7x7 conv stride 2, BN, ReLU, 3x3 max-pool stride 2 padding 1, floor
  mode) and four stages of one BasicBlock each. At the 64 px input the stem conv gives 32x32 and
  the max-pool 16x16 in floor mode but 17x17 in ceil mode, so the ceil-mode noise changes every
  later feature map (stage outputs 16/8/4/2 become 17/9/5/3): 5 of the 9 globally pooled cells
  are new. The same body (with its named children) is the detector's and segmenter's backbone.
* zoo-resnet7: the same blocks and widths with a 3x3 stride-1 stem and a stride-1 last stage, so
  the final map at its 56 px input is 7x7 as ResNet-50's is at 224 (total stride 8 here, 32
  there). The max-pool (3x3 stride 2 padding 1, floor mode) turns 56 into 28, in ceil mode 29;
  the stages then give 28/14/7/7, in ceil mode 29/15/8/8: 15 of the 64 globally pooled cells are
  new, as 15 of ResNet-50's 64 are (7x7 -> 8x8).

Reference pipeline (the training system, the one `sysnoise train-zoo NAME` feeds the training
images through): Pillow decode, RGB, Pillow bilinear resize of the 80x80 scene straight to the
input size (shorter-centre-crop with crop_pct 1 is a plain resize on square images), ImageNet
mean/std, FP32, torch eager, floor-mode max-pool.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from sysnoise.loaded_model import MODELS, LoadedModel
from sysnoise.pipeline.spec import Pipeline
from sysnoise.weights import load_into, load_state_dict, sha256_file
from sysnoise.zoo.scenes import CLASSES

NAME = "zoo-resnet"
ZOO = Path(__file__).parent


@dataclass(frozen=True)
class Geometry:
    """What sets a classifier's feature-map sizes: input, stem conv, per-stage strides and widths."""

    input_size: int
    stem_kernel: int
    stem_stride: int
    strides: tuple[int, ...]
    widths: tuple[int, ...] = (16, 32, 64, 128)

    def map_sizes(self, ceil_mode: bool = False) -> tuple[int, ...]:
        """Side of each feature map (stem conv, max-pool, every stage) on a square input; the
        max-pool in `ceil_mode` as the ceil-mode noise sets it."""
        side = (self.input_size + 2 * (self.stem_kernel // 2) - self.stem_kernel) // self.stem_stride + 1
        sizes = [side, pooled_side(side, ceil_mode)]
        for stride in self.strides:
            sizes.append((sizes[-1] - 1) // stride + 1)  # 3x3 conv, padding 1
        return tuple(sizes)

    def describe(self) -> str:
        return (
            f"ZooResNet widths {list(self.widths)}, {self.stem_kernel}x{self.stem_kernel}/{self.stem_stride} "
            f"conv stem + 3x3/2 max-pool (floor), {len(self.strides)} stages x 1 BasicBlock "
            f"(strides {list(self.strides)}), {self.input_size} px input"
        )


def pooled_side(side: int, ceil_mode: bool) -> int:
    """Output side of the 3x3 stride-2 padding-1 max-pool (PyTorch's rule: in ceil mode a last
    window is kept only if it starts inside the input or its left padding)."""
    span = side + 2 - 3
    out = (span + 1) // 2 + 1 if ceil_mode else span // 2 + 1
    return out - 1 if ceil_mode and (out - 1) * 2 >= side + 1 else out


GEOMETRIES = {
    "zoo-resnet": Geometry(input_size=64, stem_kernel=7, stem_stride=2, strides=(1, 2, 2, 2)),
    "zoo-resnet7": Geometry(input_size=56, stem_kernel=3, stem_stride=1, strides=(1, 2, 2, 1)),
}


def geometry(name: str) -> Geometry:
    if name not in GEOMETRIES:
        raise KeyError(f"no zoo ResNet {name!r}; known: {', '.join(GEOMETRIES)}")
    return GEOMETRIES[name]


def reference_pipeline(name: str = NAME) -> Pipeline:
    return Pipeline(
        decoder="pillow",
        colour="rgb",
        resize="pillow-bilinear",
        crop="shorter-centre-crop",
        input_size=geometry(name).input_size,
        crop_pct=1.0,
    )


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

        def __init__(self, num_classes: int = 10, shape: Geometry = GEOMETRIES[NAME]):
            super().__init__()
            widths = shape.widths
            self.widths = tuple(widths)
            self.conv1 = nn.Conv2d(
                3, widths[0], shape.stem_kernel, shape.stem_stride, shape.stem_kernel // 2, bias=False
            )
            self.bn1 = nn.BatchNorm2d(widths[0])
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)  # floor mode, as trained
            cin = widths[0]
            for i, (w, stride) in enumerate(zip(widths, shape.strides)):
                setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(cin, w, stride)))
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


def build(num_classes: int = 10, name: str = NAME):
    return _torch_modules()[1](num_classes, geometry(name))


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


def load_dense(name: str, module, reference: Pipeline, weights: Path | None = None) -> LoadedModel:
    """A zoo detector or segmenter (scenes' classes after a background class) with its shipped
    weights, or `weights`, and its card."""
    path = Path(weights) if weights else weights_path(name)
    load_into(module, load_state_dict(path), path)
    return LoadedModel(
        name=name,
        module=module.eval(),
        reference=reference,
        num_classes=len(CLASSES) + 1,
        class_names=["background", *CLASSES],
        source=str(path),
        weights_sha256=sha256_file(path),
        card=read_card(name),
    )


def load(name: str, weights: Path | None = None) -> LoadedModel:
    path = Path(weights) if weights else weights_path(name)
    module = build(len(CLASSES), name)
    load_into(module, load_state_dict(path), path)
    # Weights from `sysnoise train` carry NAME.json beside them: their name, training system and
    # the reference pipeline that system implies.
    sidecar = path.with_suffix(".json")
    if weights and sidecar.is_file():
        card = json.loads(sidecar.read_text())
        reference = Pipeline.from_dict(card["reference_pipeline"], source=str(sidecar))
    else:
        card, reference = read_card(name), reference_pipeline(name)
    return LoadedModel(
        name=card.get("name", name),
        module=module.eval(),
        reference=reference,
        num_classes=len(CLASSES),
        class_names=list(CLASSES),
        source=str(path),
        weights_sha256=sha256_file(path),
        card=card,
    )


def _register(name: str, description: str) -> None:
    MODELS.register(name, description, task="classification")(partial(load, name))


_register(
    "zoo-resnet",
    "ResNet-style classifier trained here on `scenes` (10 shapes on real photos), 64 px, "
    "strided max-pool; final map 2x2",
)
_register(
    "zoo-resnet7",
    "ResNet-style classifier trained here on `scenes`, 56 px, stride-1 stem, strided "
    "max-pool; final map 7x7 like ResNet-50's at 224",
)
