"""The tensor-pipeline and exact resize options against the libraries they name and hand-computed
sampling positions (the paper's 11 are in tests/test_resize_options.py)."""

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from sysnoise.pipeline.resize import RESIZES


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(2).integers(0, 256, (97, 131, 3), dtype=np.uint8)


SIZES = [(50, 40), (200, 150)]  # down and up


def nearest_indices(n_in: int, n_out: int, half_pixel: bool) -> np.ndarray:
    scale = n_in / n_out
    i = np.arange(n_out)
    return np.minimum(np.floor((i + 0.5) * scale if half_pixel else i * scale).astype(int), n_in - 1)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(
    "name, half_pixel",
    [("torchvision-nearest", False), ("torchvision-nearest-exact", True), ("opencv-nearest-exact", True)],
)
def test_nearest_options_pick_hand_computed_source_pixels(image, size, name, half_pixel):
    rows = nearest_indices(image.shape[0], size[1], half_pixel)
    cols = nearest_indices(image.shape[1], size[0], half_pixel)
    np.testing.assert_array_equal(RESIZES(name)(image, size), image[rows][:, cols])


TENSOR_OPTIONS = {
    "torchvision-bilinear": ("bilinear", True),
    "torchvision-bilinear-noaa": ("bilinear", False),
    "torchvision-bicubic": ("bicubic", True),
    "torchvision-bicubic-noaa": ("bicubic", False),
    "torchvision-nearest": ("nearest", False),
    "torchvision-nearest-exact": ("nearest-exact", False),
}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", sorted(TENSOR_OPTIONS))
def test_tensor_options_are_torchvision_resize_on_uint8_chw(image, size, name):
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2.functional import resize

    mode, antialias = TENSOR_OPTIONS[name]
    tensor = torch.from_numpy(image.copy()).permute(2, 0, 1)
    expected = resize(tensor, [size[1], size[0]], interpolation=InterpolationMode(mode), antialias=antialias)
    np.testing.assert_array_equal(RESIZES(name)(image, size), expected.permute(1, 2, 0).numpy())


def smooth_image() -> np.ndarray:
    y, x = np.mgrid[0:97, 0:131]
    return np.stack([x * 1.9, y * 2.5, 128 + 60 * np.sin(x / 9 + y / 7)], -1).astype(np.uint8)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(
    "name", ["torchvision-bilinear", "torchvision-bilinear-noaa", "torchvision-bicubic", "torchvision-bicubic-noaa"]
)
def test_tensor_kernels_match_float_interpolate_on_smooth_images(size, name):
    """The CPU uint8 kernels round in fixed point (and clip between the two separable passes, which
    matters only where bicubic overshoots: random noise), so on smooth content they are within 1."""
    mode, antialias = TENSOR_OPTIONS[name]
    image = smooth_image()
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    expected = torch.nn.functional.interpolate(
        x, size=(size[1], size[0]), mode=mode, align_corners=False, antialias=antialias
    )
    expected = expected.clamp(0, 255).round()[0].permute(1, 2, 0).numpy()
    assert np.abs(RESIZES(name)(image, size).astype(float) - expected).max() <= 1


def test_tensor_bilinear_antialias_is_within_one_of_pillow(image):
    pil = np.asarray(Image.fromarray(image).resize((50, 40), Image.Resampling.BILINEAR)).astype(int)
    got = RESIZES("torchvision-bilinear")(image, (50, 40))
    assert np.abs(got - pil).max() <= 1
    assert np.abs(RESIZES("torchvision-bilinear-noaa")(image, (50, 40)) - pil).max() > 20  # aliasing


@pytest.mark.parametrize("size", SIZES)
def test_opencv_linear_exact_is_bilinear_with_half_pixel_centres(image, size):
    got = RESIZES("opencv-bilinear-exact")(image, size)
    np.testing.assert_array_equal(got, cv2.resize(image, size, interpolation=cv2.INTER_LINEAR_EXACT))
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    reference = torch.nn.functional.interpolate(x, size=(size[1], size[0]), mode="bilinear", align_corners=False)
    assert np.abs(got - reference[0].round().permute(1, 2, 0).numpy()).max() <= 1


def test_options_keep_shape_and_dtype(image):
    for entry in RESIZES:
        out = entry.fn(image, (33, 21))
        assert out.shape == (21, 33, 3) and out.dtype == np.uint8, entry.name
