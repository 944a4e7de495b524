"""Each of the paper's 11 resize options equals a direct call of the library and filter it names."""

import cv2
import numpy as np
import pytest
from PIL import Image

from sysnoise.pipeline.resize import RESIZES

PAPER_OPTIONS = {
    "pillow-bilinear": ("pil", Image.Resampling.BILINEAR),
    "pillow-nearest": ("pil", Image.Resampling.NEAREST),
    "pillow-box": ("pil", Image.Resampling.BOX),
    "pillow-hamming": ("pil", Image.Resampling.HAMMING),
    "pillow-bicubic": ("pil", Image.Resampling.BICUBIC),
    "pillow-lanczos": ("pil", Image.Resampling.LANCZOS),
    "opencv-nearest": ("cv2", cv2.INTER_NEAREST),
    "opencv-bilinear": ("cv2", cv2.INTER_LINEAR),
    "opencv-area": ("cv2", cv2.INTER_AREA),
    "opencv-bicubic": ("cv2", cv2.INTER_CUBIC),
    "opencv-lanczos4": ("cv2", cv2.INTER_LANCZOS4),
}


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(1).integers(0, 256, (97, 131, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", sorted(PAPER_OPTIONS))
@pytest.mark.parametrize("size", [(50, 40), (200, 150)])  # down and up
def test_option_equals_the_library_it_names(name, size, image):
    library, flag = PAPER_OPTIONS[name]
    if library == "pil":
        expected = np.asarray(Image.fromarray(image).resize(size, flag))
    else:
        expected = cv2.resize(image, size, interpolation=flag)
    got = RESIZES(name)(image, size)
    assert got.shape == (size[1], size[0], 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, expected)


def test_the_kernels_really_differ_when_downscaling(image):
    outputs = {name: RESIZES(name)(image, (50, 40)) for name in PAPER_OPTIONS}
    assert not np.array_equal(outputs["pillow-bilinear"], outputs["opencv-bilinear"])  # antialias vs not
    distinct = {o.tobytes() for o in outputs.values()}
    assert len(distinct) >= 9
