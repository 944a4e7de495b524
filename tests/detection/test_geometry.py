"""Boxes found in the model input map back onto the source image consistently for every resize
policy: exactly, against the forward mapping written out here, and on real pixels."""

from __future__ import annotations

import numpy as np
import pytest

from sysnoise.pipeline.geometry import CROPS, Geometry, apply_geometry, input_to_source
from sysnoise.pipeline.resize import RESIZES

POLICIES = [
    "keep-ratio-max-size",
    "shorter-side",
    "letterbox",
    "squash",
    "shorter-centre-crop",
    "square-resize-crop",
    "tf-crop-resize",
]
SIZES = [(640, 480), (480, 640), (301, 50), (128, 128)]


def _forward(geometry: Geometry, width: int, height: int, box):
    """Source -> input coordinates, step by step: cut the source box, scale to resize_to, then
    shift by the kept box (negative offsets are letterbox padding)."""
    left, top, right, bottom = geometry.source_box or (0, 0, width, height)
    sx, sy = geometry.resize_to[0] / (right - left), geometry.resize_to[1] / (bottom - top)
    x1, y1, x2, y2 = box
    return (
        (x1 - left) * sx - geometry.box[0],
        (y1 - top) * sy - geometry.box[1],
        (x2 - left) * sx - geometry.box[0],
        (y2 - top) * sy - geometry.box[1],
    )


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("size", SIZES)
def test_input_to_source_inverts_the_forward_mapping(policy, size):
    width, height = size
    geometry = CROPS(policy)(width, height, 96, 0.875)
    ax, bx, ay, by = input_to_source(geometry, width, height)
    box = (0.3 * width, 0.4 * height, 0.7 * width, 0.9 * height)
    x1, y1, x2, y2 = _forward(geometry, width, height, box)
    assert (ax * x1 + bx, ay * y1 + by, ax * x2 + bx, ay * y2 + by) == pytest.approx(box, abs=1e-9)


def test_keep_ratio_max_size_is_torchvisions_transform():
    # 640 x 480 at 800/1333: the shorter side reaches 800 (x 5/3) before the longer passes 1333
    assert CROPS("keep-ratio-max-size")(640, 480, 800, 800 / 1333) == Geometry((1066, 800), (0, 0, 1066, 800))
    # 1000 x 200: the longer side caps the scale at 1333 / 1000
    assert CROPS("keep-ratio-max-size")(1000, 200, 800, 800 / 1333).resize_to == (1333, 266)
    # the zoo detector's 96 / 96 on a 128 x 128 scene
    assert CROPS("keep-ratio-max-size")(128, 128, 96, 1.0).resize_to == (96, 96)


@pytest.mark.parametrize("policy", POLICIES)
def test_a_drawn_rectangle_comes_back_where_it_was(policy):
    width, height = 300, 200
    image = np.zeros((height, width, 3), np.uint8)
    box = (120, 60, 210, 150)  # pixel edges
    image[box[1] : box[3], box[0] : box[2]] = 255
    geometry = CROPS(policy)(width, height, 96, 0.875)
    pixels = apply_geometry(image, geometry, RESIZES("opencv-nearest"))
    ys, xs = np.nonzero(pixels[..., 0] == 255)
    found = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)  # in input pixels, edges
    ax, bx, ay, by = input_to_source(geometry, width, height)
    back = (ax * found[0] + bx, ay * found[1] + by, ax * found[2] + bx, ay * found[3] + by)
    # nearest resampling moves an edge by at most one input pixel: ax (ay) source pixels
    tolerance = max(ax, ay) + 1e-9
    if policy in ("shorter-centre-crop", "tf-crop-resize", "square-resize-crop"):  # crops may cut the box
        left, top, right, bottom = (ax * 0 + bx, ay * 0 + by, ax * pixels.shape[1] + bx, ay * pixels.shape[0] + by)
        box = (max(box[0], left), max(box[1], top), min(box[2], right), min(box[3], bottom))
    assert back == pytest.approx(box, abs=tolerance)


def test_a_decoder_that_shrinks_while_decoding_still_maps_to_the_annotated_size(tmp_path):
    """Pillow's draft mode decodes a 1024 x 768 JPEG at 1/4 or 1/8 scale for a 96 px input; the
    boxes must still land in the 1024 x 768 image the annotations describe."""
    from sysnoise.pipeline.spec import Pipeline
    from sysnoise.tasks.detection import CocoImage, geometric_inputs
    from tests.conftest import write_jpeg

    path = write_jpeg(tmp_path / "big.jpg", np.full((768, 1024, 3), 90, np.uint8))
    sample = CocoImage("big.jpg", path, 1, 1024, 768)
    pipelines = [Pipeline(decoder=d, crop="squash", input_size=96, crop_pct=1.0) for d in ("pillow", "pillow-draft")]
    inputs = geometric_inputs(path.read_bytes(), pipelines, sample)
    for p in pipelines:
        ax, bx, ay, by = inputs[p.prefix("normalise")].to_source
        assert (ax * 96 + bx, ay * 96 + by) == pytest.approx((1024, 768))
        assert inputs[p.prefix("normalise")].source_size == (1024, 768)
