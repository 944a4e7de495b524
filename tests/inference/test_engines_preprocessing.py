"""Deployed pre-processing as options: OpenVINO's PrePostProcessor (resize algorithms, NV12 -> RGB
inside the model) and the installed transformers' image processor, each checked against an
independent implementation of what it claims to compute."""

import numpy as np
import pytest
from PIL import Image

from sysnoise import extras
from sysnoise.pipeline import hf_processor, openvino_preprocess, yuv  # noqa: F401  (register the options)
from sysnoise.pipeline.colour import COLOURS
from sysnoise.pipeline.resize import RESIZES


@pytest.fixture(scope="module")
def photo():
    """A smooth image with edges (gradients plus a disc), odd-sized, so kernels and chroma both matter."""
    height, width = 181, 243
    rows, cols = np.mgrid[0:height, 0:width]
    disc = ((rows - 90) ** 2 + (cols - 120) ** 2 < 60**2) * 120
    image = np.stack([cols * 255 // width, rows * 255 // height, (disc + rows // 3) % 256], axis=-1)
    return np.ascontiguousarray(image.astype(np.uint8))


def _pillow(image, size, name):
    return np.asarray(Image.fromarray(image).resize(size, getattr(Image.Resampling, name)))


def _opencv_linear(image, size):
    import cv2

    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


def _levels(a, b):
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def test_openvino_linear_resize_is_opencv_inter_linear_within_a_level(photo):
    pytest.importorskip("openvino", reason=extras.install_line("openvino"))
    for size in [(64, 64), (96, 72), (300, 200)]:  # down, down and not square, up
        out = RESIZES("openvino-linear")(photo, size)
        assert out.shape == (size[1], size[0], 3) and out.dtype == np.uint8
        assert _levels(out, _opencv_linear(photo, size)) <= 1  # float arithmetic, rounded once


def test_openvino_nv12_matches_the_integer_nv12_path_within_a_level(photo):
    """Same camera side (BT.601 limited, integer form, 2x2 chroma average); OpenVINO's in-model
    conversion back to RGB is float, the reference path's is the integer >>8 form."""
    pytest.importorskip("openvino", reason=extras.install_line("openvino"))
    out = COLOURS("nv12-openvino")(photo)
    assert out.shape == photo.shape
    reference = yuv.yuv_to_rgb_int(yuv.chroma_420(yuv.rgb_to_yuv_int(photo), "average", "nearest"))
    assert _levels(out, reference) <= 1
    assert _levels(out, photo) > 1  # chroma subsampling is visible at the disc's edge


@pytest.mark.parametrize(
    "option, filter_name", [("transformers-bilinear", "BILINEAR"), ("transformers-bicubic", "BICUBIC")]
)
def test_transformers_processor_is_pillow_within_a_level(photo, option, filter_name):
    pytest.importorskip("transformers", reason=extras.install_line("lm"))
    out = RESIZES(option)(photo, (96, 72))
    pil = _pillow(photo, (96, 72), filter_name)
    assert out.shape == pil.shape and _levels(out, pil) <= 1
