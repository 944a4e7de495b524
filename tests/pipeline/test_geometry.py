"""Crop policies as hand-computed arithmetic, and apply_geometry's source crop and padding."""

import numpy as np
import pytest

from sysnoise.pipeline.geometry import CROPS, Geometry, apply_geometry, centre_box, source_size_needed
from sysnoise.pipeline.resize import RESIZES

nearest = RESIZES("pillow-nearest")


def test_reference_policy_is_torchvision_resize_then_center_crop():
    import torch
    from torchvision.transforms import v2

    image = np.random.default_rng(0).integers(0, 256, (480, 641, 3), dtype=np.uint8)
    geometry = CROPS("shorter-centre-crop")(641, 480, 224, 0.875)
    assert geometry.resize_to == (341, 256)
    tensor = torch.from_numpy(image).permute(2, 0, 1)
    resized = v2.functional.resize(tensor, 256, interpolation=v2.InterpolationMode.NEAREST_EXACT)
    assert tuple(resized.shape[1:]) == (256, 341)
    expected = v2.functional.center_crop(resized, 224).permute(1, 2, 0).numpy()
    got = apply_geometry(image, geometry, RESIZES("torchvision-nearest-exact"))
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("rounding, left", [("half-even", 58), ("floor", 58), ("ceil", 59)])
def test_offset_rounding_on_an_odd_excess(rounding, left):
    # 341 - 224 = 117: half is 58.5 -> 58 (half to even), 58 (floor), 59 (ceil)
    assert centre_box(341, 256, 224, 224, rounding) == (left, 16, left + 224, 240)


def test_half_even_and_floor_differ_when_the_half_excess_is_odd():
    assert centre_box(339, 256, 224, 224, "half-even")[0] == 58  # 57.5 -> 58
    assert centre_box(339, 256, 224, 224, "floor")[0] == 57


def test_rounded_policies_shift_the_crop_only():
    floor = CROPS("shorter-centre-crop-floor")(339 * 3, 256 * 3, 224, 0.875)
    assert floor.resize_to == (339, 256) and floor.box == (57, 16, 281, 240)
    assert CROPS("shorter-centre-crop-ceil")(339 * 3, 256 * 3, 224, 0.875).box == (58, 16, 282, 240)


def test_square_resize_crop_ignores_aspect():
    assert CROPS("square-resize-crop")(640, 480, 224, 0.875) == Geometry((256, 256), (16, 16, 240, 240))


def test_squash():
    assert CROPS("squash")(640, 480, 224, 0.875) == Geometry((224, 224), (0, 0, 224, 224))


def test_letterbox_pads_grey_around_the_whole_image():
    geometry = CROPS("letterbox")(640, 480, 224, 0.875)
    assert geometry.resize_to == (224, 168) and geometry.box == (0, -28, 224, 196)
    image = np.full((480, 640, 3), 7, np.uint8)
    out = apply_geometry(image, geometry, nearest)
    assert out.shape == (224, 224, 3)
    assert (out[:28] == 114).all() and (out[196:] == 114).all() and (out[28:196] == 7).all()


def test_letterbox_odd_padding_puts_the_extra_row_below():
    geometry = CROPS("letterbox")(100, 31, 32, 0.875)  # 32 x 10 image, 22 rows of padding
    assert geometry.resize_to == (32, 10) and geometry.box == (0, -11, 32, 21)
    geometry = CROPS("letterbox")(100, 37, 32, 0.875)  # 32 x 12: 20 rows -> 10 above, 10 below
    assert geometry.box == (0, -10, 32, 22)


def test_tf_crop_resize_cuts_the_source_first():
    geometry = CROPS("tf-crop-resize")(641, 480, 224, 224 / 256)
    side = int(224 / 256 * 480)  # 420
    assert geometry.source_box == (
        111,
        30,
        111 + side,
        30 + side,
    )  # (641 - 420 + 1) // 2 = 111, (480 - 420 + 1) // 2 = 30
    image = np.zeros((480, 641, 3), np.uint8)
    image[30:450, 111:531] = 200  # exactly the square the policy keeps
    out = apply_geometry(image, geometry, RESIZES("pillow-bicubic"))
    assert out.shape == (224, 224, 3) and (out == 200).all()


def test_box_outside_the_image_without_padding_is_an_error():
    with pytest.raises(ValueError, match="outside"):
        apply_geometry(np.zeros((10, 10, 3), np.uint8), Geometry((10, 10), (-1, 0, 9, 10)), nearest)


def test_every_policy_gives_size_x_size():
    for entry in (e for e in CROPS if e.meta.get("square", True)):  # keep-ratio policies (detection) are not square
        for width, height in [(640, 480), (480, 640), (100, 100), (301, 50)]:
            geometry = entry.fn(width, height, 224, 0.875)
            out = apply_geometry(np.zeros((height, width, 3), np.uint8), geometry, nearest)
            assert out.shape == (224, 224, 3), (entry.name, width, height)


def test_source_size_needed_for_draft_decoding():
    assert source_size_needed(CROPS("shorter-centre-crop")(640, 480, 224, 0.875), 640, 480) == (341, 256)
    tf = CROPS("tf-crop-resize")(640, 480, 224, 224 / 256)  # a 420 px square resized to 224
    assert source_size_needed(tf, 640, 480) == (342, 256)
