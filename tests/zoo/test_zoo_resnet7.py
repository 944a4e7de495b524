"""zoo-resnet7, the zoo classifier shaped like ResNet-50 where the ceil-mode noise acts: its final
map at its trained input is at least 7x7 (measured with a hook, and computed here from the layers'
own kernel/stride/padding), its max-pool is ResNet's stride-2 floor-mode pool, ceil mode makes
about the share of new globally pooled cells that it makes in ResNet-50 at 224, and its shipped
weights reach 80 % top-1 on scenes."""

from __future__ import annotations

import pytest

from sysnoise.models import MODELS, load_model
from sysnoise.train import zoo_training as zt
from sysnoise.zoo import scenes

NAME = "zoo-resnet7"


@pytest.fixture(scope="module")
def loaded():
    zt.set_threads(1)
    return load_model(NAME)


def _out(side: int, kernel: int, stride: int, padding: int, ceil: bool = False) -> int:
    """PyTorch's output size of a conv/pool, as its docs state it (ceil: the last window must start
    inside the input or its left padding)."""
    span = side + 2 * padding - kernel
    out = -(-span // stride) + 1 if ceil else span // stride + 1
    if ceil and (out - 1) * stride >= side + padding:
        out -= 1
    return out


def _side_from_layers(model, side: int, ceil: bool) -> int:
    """The final map's side, walked through the model's stem conv, max-pool and each stage's first
    (possibly strided) conv: the other convs are 3x3 stride 1 padding 1 and keep the size."""

    def one(layer, side, ceil=False):
        def pair(v):
            return v if isinstance(v, int) else v[0]

        return _out(side, pair(layer.kernel_size), pair(layer.stride), pair(layer.padding), ceil)

    side = one(model.conv1, side)
    side = one(model.maxpool, side, ceil)
    for name in ("layer1", "layer2", "layer3", "layer4"):
        block = getattr(model, name)[0]
        side = one(block.conv1, side)
        assert one(block.conv2, side) == side
    return side


def _hooked_final_side(model, size: int) -> tuple[int, int]:
    import torch

    seen = []
    handle = model.layer4.register_forward_hook(lambda module, args, out: seen.append(tuple(out.shape[-2:])))
    try:
        with torch.no_grad():
            logits = model(torch.zeros(1, 3, size, size))
    finally:
        handle.remove()
    assert logits.shape == (1, len(scenes.CLASSES))
    return seen[0]


def test_registered_and_matches_its_card(loaded):
    assert NAME in MODELS
    assert loaded.card["name"] == NAME
    assert loaded.card["weights_sha256"] == loaded.weights_sha256
    assert loaded.card["reference_pipeline"] == loaded.reference.to_dict()
    assert (zt.ZOO_DIR / "weights" / f"{NAME}.safetensors").stat().st_size < 5 * 2**20


def test_final_map_is_at_least_7x7_at_the_trained_input(loaded):
    import torch

    model = loaded.module
    size = loaded.reference.input_size
    floor = _hooked_final_side(model, size)
    assert floor == (7, 7) and floor[0] == _side_from_layers(model, size, ceil=False)
    assert floor[0] >= 7
    maxpools = [m for m in model.modules() if isinstance(m, torch.nn.MaxPool2d)]
    assert maxpools == [model.maxpool]
    assert (model.maxpool.kernel_size, model.maxpool.stride, model.maxpool.padding) == (3, 2, 1)
    assert model.maxpool.ceil_mode is False


def test_ceil_mode_makes_resnet50s_share_of_new_cells(loaded):
    """Ceil mode grows the final map by one row and column; the share of the globally pooled cells
    that are new is computed here for zoo-resnet7 and for torchvision's ResNet-50 at 224 (shapes
    only, on the meta device), and checked against torch itself on both."""
    import copy

    import torch
    import torchvision

    model = copy.deepcopy(loaded.module)
    size = loaded.reference.input_size
    model.maxpool.ceil_mode = True
    ceil = _hooked_final_side(model, size)
    assert ceil[0] == _side_from_layers(model, size, ceil=True) == 8

    resnet50 = torchvision.models.resnet50().to("meta")
    sides = {}
    for mode in (False, True):
        resnet50.maxpool.ceil_mode = mode
        sides[mode] = resnet50.layer4(
            resnet50.layer3(
                resnet50.layer2(
                    resnet50.layer1(
                        resnet50.maxpool(
                            resnet50.relu(resnet50.bn1(resnet50.conv1(torch.empty(1, 3, 224, 224, device="meta"))))
                        )
                    )
                )
            )
        ).shape[-1]
    assert (sides[False], sides[True]) == (7, 8)

    def new_share(floor: int, ceil: int) -> float:
        return (ceil**2 - floor**2) / ceil**2

    assert new_share(7, ceil[0]) == pytest.approx(new_share(sides[False], sides[True])) == pytest.approx(15 / 64)
    # zoo-resnet, for contrast: 2x2 -> 3x3, 5 of 9 cells new
    assert new_share(
        *(_side_from_layers(load_model("zoo-resnet").module, 64, c) for c in (False, True))
    ) == pytest.approx(5 / 9)


def test_shipped_weights_reach_80_percent_on_scenes(loaded):
    """Top-1 on the first 500 scenes val images (the split's prefix: images depend only on seed,
    split and index), by a direct forward and argmax; the card records the same figure."""
    import numpy as np
    import torch

    card = loaded.card["reference_metric"]
    n = int(card["subset"])
    paths, labels = zt.read_list(scenes.materialise("classification", "val", n=n) / "labels.txt")
    images = zt.pipeline_pixels(paths, loaded.reference)
    with torch.no_grad():
        predicted = loaded.module(zt.to_tensor(images, loaded.reference)).argmax(1).numpy()
    top1 = float(np.mean(predicted == labels))
    assert top1 >= 0.80, top1
    assert abs(top1 - card["value"]) <= card["tolerance"], (top1, card["value"])
