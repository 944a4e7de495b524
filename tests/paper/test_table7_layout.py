"""The paper's Table 7/8 layouts for `sysnoise matrix`: six test resizes and three decoders in the
paper's order and names, each cell top-1 recomputed with the libraries called directly."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from sysnoise import api
from sysnoise.analysis.matrix import PAPER_LAYOUTS, expand_test
from sysnoise.engine.execute import EngineOptions
from sysnoise.models import load_model
from sysnoise.pipeline.spec import Pipeline
from tests.pipeline.images import jpeg, photo

BASE = Pipeline(input_size=64, crop_pct=1.0)
PAPER_RESIZE_HEADER = (
    "| trained \\ tested | Pil-bilinear | Pil-nearest | Pil-cubic | CV-nearest | CV-bilinear | CV-cubic | mean | std |"
)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("table7")
    lines = []
    for i in range(10):
        (folder / f"{i:02d}.jpg").write_bytes(jpeg(photo(80, 80, seed=100 + i)))
        lines.append(f"{i:02d}.jpg {i}")
    (folder / "labels.txt").write_text("\n".join(lines) + "\n")
    return folder / "labels.txt"


def test_layout_names_expand_to_the_papers_columns():
    assert expand_test("paper-resize") == (
        "resize=pillow-bilinear,pillow-nearest,pillow-bicubic,opencv-nearest,opencv-bilinear,opencv-bicubic"
    )
    assert expand_test("paper-decoder") == "decoder=pillow,opencv,ffmpeg"
    assert expand_test("resize=pillow-box") == "resize=pillow-box"
    assert set(PAPER_LAYOUTS) == {"paper-resize", "paper-decoder"}


RESIZE = {
    "pillow-bilinear": ("pil", Image.Resampling.BILINEAR),
    "pillow-nearest": ("pil", Image.Resampling.NEAREST),
    "pillow-bicubic": ("pil", Image.Resampling.BICUBIC),
    "opencv-nearest": ("cv", cv2.INTER_NEAREST),
    "opencv-bilinear": ("cv", cv2.INTER_LINEAR),
    "opencv-bicubic": ("cv", cv2.INTER_CUBIC),
}


def _top1_right(model, pixels: np.ndarray, label: int) -> int:
    x = (pixels.astype(np.float32) - np.float32(BASE.mean)) / np.float32(BASE.std)
    with torch.no_grad():
        return int(model(torch.from_numpy(x.transpose(2, 0, 1))[None]).argmax(1).item() == label)


def _samples(data):
    return [
        (data.parent / name, int(label)) for name, label in (line.split() for line in data.read_text().splitlines())
    ]


def test_resize_matrix_has_table7_columns_and_cells(data, tmp_path):
    doc = api.matrix(
        ["zoo-resnet"],
        data,
        "paper-resize",
        out=tmp_path,
        reference=BASE,
        options=EngineOptions(workers=0, progress=False),
    )
    assert doc["tests"] == [option for option, _ in PAPER_LAYOUTS["paper-resize"][1]]
    assert PAPER_RESIZE_HEADER in (tmp_path / "matrix.md").read_text().splitlines()
    model = load_model("zoo-resnet").module.eval()
    for cell in doc["rows"][0]["cells"]:
        library, kernel = RESIZE[cell["test"]]
        right = 0
        for path, label in _samples(data):
            decoded = np.asarray(Image.open(path).convert("RGB"))
            pixels = (
                np.asarray(Image.fromarray(decoded).resize((64, 64), kernel))
                if library == "pil"
                else cv2.resize(decoded, (64, 64), interpolation=kernel)
            )
            right += _top1_right(model, pixels, label)
        assert cell["correct"] == right, cell["test"]


def test_decoder_matrix_has_table8_columns(data, tmp_path):
    doc = api.matrix(
        ["zoo-resnet"],
        data,
        "paper-decoder",
        out=tmp_path,
        reference=BASE,
        options=EngineOptions(workers=0, progress=False),
    )
    assert doc["tests"] == ["pillow", "opencv", "ffmpeg"]
    header = "| trained \\ tested | Pillow | OpenCV | FFmpeg | mean | std |"
    assert header in (tmp_path / "matrix.md").read_text().splitlines()
    model = load_model("zoo-resnet").module.eval()
    cells = {c["test"]: c["correct"] for c in doc["rows"][0]["cells"]}
    for test, decode in (
        ("pillow", lambda p: np.asarray(Image.open(p).convert("RGB"))),
        ("opencv", lambda p: cv2.cvtColor(cv2.imread(str(p), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)),
    ):
        right = sum(
            _top1_right(
                model, np.asarray(Image.fromarray(decode(path)).resize((64, 64), Image.Resampling.BILINEAR)), label
            )
            for path, label in _samples(data)
        )
        assert cells[test] == right, test
