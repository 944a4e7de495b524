"""Ceil mode on the zoo detector is the pool change alone: its anchors stay at the trained strides
(torchvision would recompute them as image_size // grid_size from the grown feature maps)."""

import pytest
import torch

from sysnoise.inference.build import build_model
from sysnoise.models import load_model
from sysnoise.tasks.detection_heads import raw_detector


def _anchors_per_level(model, x):
    """Each pyramid level's anchors as (grid height, grid width, anchors per cell, 4), read from
    the output of the module the RPN calls for its anchors."""
    generator = model.rpn.anchor_generator
    seen = {}

    def hook(_module, inputs, output):
        seen["grids"] = [tuple(f.shape[-2:]) for f in inputs[1]]
        seen["anchors"] = output[0]

    handle = generator.register_forward_hook(hook)
    with torch.no_grad():
        model(x)
    handle.remove()
    levels, start = [], 0
    for h, w in seen["grids"]:
        n = h * w * (len(seen["anchors"]) // sum(gh * gw for gh, gw in seen["grids"]))
        levels.append(seen["anchors"][start : start + n].reshape(h, w, -1, 4))
        start += n
    return levels


def _spacing(level):
    """(rows, columns) apart of neighbouring anchor centres."""
    return (
        int(level[1, 0, 0, 1] - level[0, 0, 0, 1]) if level.shape[0] > 1 else None,
        int(level[0, 1, 0, 0] - level[0, 0, 0, 0]) if level.shape[1] > 1 else None,
    )


@pytest.fixture(scope="module")
def detector():
    loaded = load_model("zoo-detector")
    return loaded, raw_detector(loaded.module), torch.randn(1, 3, 96, 96)


def test_ceil_mode_keeps_the_trained_anchor_strides(detector):
    loaded, raw, x = detector
    floor = _anchors_per_level(raw, x)
    ceil = _anchors_per_level(build_model(raw, loaded.reference.replace(operators=("maxpool-ceil",)), example=x), x)
    # the pool really changed the maps: one more row and column on the first levels
    assert [lv.shape[:2] for lv in floor] == [(24, 24), (12, 12), (6, 6), (3, 3), (2, 2)]
    assert [lv.shape[:2] for lv in ceil] == [(25, 25), (13, 13), (7, 7), (4, 4), (2, 2)]
    assert [_spacing(lv) for lv in floor] == [(s, s) for s in (4, 8, 16, 32, 48)]
    assert [_spacing(lv) for lv in ceil] == [(s, s) for s in (4, 8, 16, 32, 48)]
    for before, after in zip(floor, ceil):  # the shared cells carry the very same anchors
        torch.testing.assert_close(after[: before.shape[0], : before.shape[1]], before, rtol=0, atol=0)


def test_the_torchvision_strides_option_recomputes_them_from_the_grown_maps(detector):
    loaded, raw, x = detector
    pipeline = loaded.reference.replace(operators=("maxpool-ceil-torchvision-strides",))
    levels = _anchors_per_level(build_model(raw, pipeline, example=x), x)
    assert [_spacing(lv) for lv in levels] == [(96 // g, 96 // g) for g in (25, 13, 7, 4, 2)]  # 3, 7, 13, 24, 48
