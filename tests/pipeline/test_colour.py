"""YUV formulas on hand-computed pixels, NV12 layout, and properties of every colour path."""

import numpy as np
import pytest

from sysnoise.pipeline import yuv
from sysnoise.pipeline.colour import COLOURS, is_misconfiguration

# (R, G, B) -> (Y, U, V), BT.601 limited range, worked by hand.
# Float form (the paper's appendix A):
#   white: Y = round(255 * (0.256788 + 0.504129 + 0.097906)) + 16 = round(219.0) + 16 = 235
#   red:   Y = round(65.48) + 16 = 81, U = round(-37.80) + 128 = 90, V = round(112.0) + 128 = 240
#   blue:  Y = round(24.97) + 16 = 41, U = round(112.0) + 128 = 240, V = round(-18.21) + 128 = 110
HAND_FLOAT = [
    ((0, 0, 0), (16, 128, 128)),
    ((255, 255, 255), (235, 128, 128)),
    ((255, 0, 0), (81, 90, 240)),
    ((0, 255, 0), (145, 54, 34)),
    ((0, 0, 255), (41, 240, 110)),
]
# Integer form: red Y = ((66*255 + 128) >> 8) + 16 = (16958 >> 8) + 16 = 66 + 16 = 82;
#               green Y = ((129*255 + 128) >> 8) + 16 = (33023 >> 8) + 16 = 128 + 16 = 144
HAND_INT = [
    ((0, 0, 0), (16, 128, 128)),
    ((255, 255, 255), (235, 128, 128)),
    ((255, 0, 0), (82, 90, 240)),
    ((0, 255, 0), (144, 54, 34)),
    ((0, 0, 255), (41, 240, 110)),
]


def pixels(values) -> np.ndarray:
    return np.asarray(values, np.uint8).reshape(1, -1, 3)


@pytest.mark.parametrize(
    "forward, hand",
    [(yuv.rgb_to_yuv_paper_float, HAND_FLOAT), (yuv.rgb_to_yuv_float, HAND_FLOAT), (yuv.rgb_to_yuv_int, HAND_INT)],
)
def test_forward_on_hand_computed_pixels(forward, hand):
    rgb, expected = zip(*hand)
    np.testing.assert_array_equal(forward(pixels(rgb)), pixels(expected))


def test_inverse_integer_form_by_hand():
    # Y=81, U=90, V=240: C=65, D=-38, E=112
    #   R = (298*65 + 409*112 + 128) >> 8 = (19370 + 45808 + 128) >> 8 = 65306 >> 8 = 255
    #   G = (19370 + 3800 - 23296 + 128) >> 8 = 2 >> 8 = 0
    #   B = (19370 - 19608 + 128) >> 8 = -110 >> 8 = -1 -> clipped to 0
    np.testing.assert_array_equal(yuv.yuv_to_rgb_int(pixels([(81, 90, 240)])), pixels([(255, 0, 0)]))
    # mid grey Y=126: C=110, R = G = B = (298*110 + 128) >> 8 = 32908 >> 8 = 128
    np.testing.assert_array_equal(yuv.yuv_to_rgb_int(pixels([(126, 128, 128)])), pixels([(128, 128, 128)]))


def test_inverse_float_form_by_hand():
    # Y=145, U=54, V=34: C=129, D=-74, E=-94
    #   R = round(1.164383*129 + 1.596027*-94) = round(150.205 - 150.027) = 0
    #   G = round(150.205 + 0.391762*74 + 0.812968*94) = round(150.205 + 28.990 + 76.419) = 256 -> 255
    #   B = round(150.205 - 2.017232*74) = round(0.930) = 1
    np.testing.assert_array_equal(yuv.yuv_to_rgb_paper_float(pixels([(145, 54, 34)])), pixels([(0, 255, 1)]))


def test_subsampling_methods_by_hand():
    plane = np.array([[10, 20, 30], [40, 51, 60]], np.uint8)
    # 2x2 mean (10+20+40+51+2)>>2 = 30; the odd column is edge-replicated: (30+30+60+60+2)>>2 = 45
    np.testing.assert_array_equal(yuv.subsample(plane, "average"), [[30, 45]])
    np.testing.assert_array_equal(yuv.subsample(plane, "topleft"), [[10, 30]])


def test_upsampling_methods_by_hand():
    half = np.array([[0, 100]], np.uint8)
    np.testing.assert_array_equal(yuv.upsample(half, (2, 4), "nearest"), [[0, 0, 100, 100]] * 2)
    # centre-sited: 0, 0.75*0+0.25*100 = 25, 0.75*100+0.25*0 = 75, 100
    np.testing.assert_array_equal(yuv.upsample(half, (2, 4), "bilinear"), [[0, 25, 75, 100]] * 2)


def test_nv12_layout_and_round_trip():
    image = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    buffer = yuv.to_nv12(image)
    assert len(buffer) == 6 * 8 * 3 // 2
    assert buffer[:48] == image[..., 0].tobytes()
    u = yuv.subsample(image[..., 1])
    assert buffer[48] == u[0, 0] and buffer[49] == yuv.subsample(image[..., 2])[0, 0]  # interleaved U, V
    np.testing.assert_array_equal(yuv.from_nv12(buffer, 8, 6), yuv.chroma_420(image))


@pytest.mark.parametrize("name", [n for n in COLOURS.names() if not is_misconfiguration(n)])
def test_grey_stays_grey_within_one(name):
    grey = np.repeat(np.arange(256, dtype=np.uint8).reshape(16, 16, 1), 3, axis=2)
    out = COLOURS(name)(grey).astype(int)
    assert (out.max(axis=2) - out.min(axis=2)).max() <= 1  # still neutral
    if not name.startswith("range-"):  # a range mix-up changes contrast by design
        assert np.abs(out - grey).max() <= 1


def test_range_mix_ups_stretch_and_flatten_contrast():
    grey = np.repeat(np.array([[16, 128, 235]], np.uint8)[..., None], 3, axis=2)
    # full-range Y read as limited: (Y - 16) * 255/219, so 16 -> 0, 128 -> 130.4 -> 130, 235 -> 255
    np.testing.assert_array_equal(COLOURS("range-full-as-limited")(grey)[0, :, 0], [0, 130, 255])
    # limited-range Y read as full: 16 + Y * 219/255: 16 -> 29.7 -> 30, 128 -> 125.9 -> 126, 235 -> 217.8 -> 218
    np.testing.assert_array_equal(COLOURS("range-limited-as-full")(grey)[0, :, 0], [30, 126, 218])


@pytest.mark.parametrize("name, bound", [("yuv444-int", 3), ("matrix-601-as-709", 60)])
def test_error_bounds_on_random_images(name, bound):
    image = np.random.default_rng(3).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    assert np.abs(COLOURS(name)(image).astype(int) - image).max() <= bound


@pytest.mark.parametrize("name", ["nv12-int", "nv12-float", "nv12-int-topleft", "nv12-int-bilinear"])
def test_420_paths_lose_only_chroma_detail(name):
    rng = np.random.default_rng(4)
    y, x = np.mgrid[0:41, 0:57]
    smooth = np.stack([x * 4, y * 5, (x + y) * 2], -1).astype(np.uint8)
    assert np.abs(COLOURS(name)(smooth).astype(int) - smooth).max() <= 6  # smooth: subsampling is nearly free
    noisy = rng.integers(0, 256, (41, 57, 3), dtype=np.uint8)
    out = COLOURS(name)(noisy)
    assert out.shape == noisy.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - noisy).mean() > 10  # random chroma cannot survive 4:2:0


def test_420_keeps_luma_when_chroma_is_flat():
    rng = np.random.default_rng(5)
    luma = rng.integers(16, 236, (8, 10)).astype(np.uint8)
    yuv_image = np.stack([luma, np.full_like(luma, 128), np.full_like(luma, 128)], -1)
    np.testing.assert_array_equal(yuv.chroma_420(yuv_image), yuv_image)


def test_int_and_float_forms_differ_by_at_most_one_level_forward():
    image = np.random.default_rng(6).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    diff = np.abs(yuv.rgb_to_yuv_int(image).astype(int) - yuv.rgb_to_yuv_paper_float(image))
    assert diff.max() <= 1


def test_bgr_is_a_misconfiguration_and_swaps_channels():
    image = np.random.default_rng(7).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    np.testing.assert_array_equal(COLOURS("bgr")(image), image[..., ::-1])
    assert is_misconfiguration("bgr") and not is_misconfiguration("nv12-int")


def test_matrix_mix_up_on_hand_computed_pixels():
    # red -> BT.601 limited (81, 90, 240) -> read as BT.709: y = 65*255/219 = 75.68, u = -38*255/224 = -43.26,
    # v = 112*255/224 = 127.5; R = y + 1.5748 v = 276.5 -> 255, B = y + 1.8556 u = -4.6 -> 0,
    # G = (y - 0.2126 * 276.5 - 0.0722 * -4.6) / 0.7152 = 24.1 -> 24
    red = np.array([[[255, 0, 0]]], np.uint8)
    np.testing.assert_array_equal(COLOURS("matrix-601-as-709")(red), [[[255, 24, 0]]])
