"""mIoU from hand-made masks, predictions brought back through the geometry, and the label-map
data reader."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sysnoise.analysis.segmentation import miou
from sysnoise.postprocess.segmentation import NO_PREDICTION, SegmentationPost, confusion, iou, predict
from sysnoise.tasks.segmentation import read_segmentation_list

IGNORE = 255


def test_miou_on_hand_made_masks():
    target = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, IGNORE, IGNORE], [2, 2, 2, 2]])
    prediction = np.array([[0, 1, 1, 1], [0, 0, 1, 1], [2, 2, 0, 0], [2, 2, 1, 2]])
    counts, unknown = confusion(target, prediction, 3, IGNORE)
    assert unknown == 0
    # class 0: 3 right, 1 predicted as 1; class 1: 4 right; class 2: 5 right, 1 as class 1 (ignore pixels skipped)
    assert counts.tolist() == [[3, 1, 0, 0], [0, 4, 0, 0], [0, 1, 5, 0]]
    # IoU: 0: 3 / (4 + 3 - 3) = 3/4; 1: 4 / (4 + 6 - 4) = 4/6; 2: 5 / (6 + 5 - 5) = 5/6
    assert iou(counts) == pytest.approx([3 / 4, 4 / 6, 5 / 6])
    assert miou(counts) == pytest.approx(100 * (3 / 4 + 4 / 6 + 5 / 6) / 3)


def test_missed_pixels_and_unknown_labels_and_absent_classes():
    target = np.array([[1, 1, 7, IGNORE]])
    prediction = np.array([[1, NO_PREDICTION, 1, 0]])
    counts, unknown = confusion(target, prediction, 3, IGNORE)
    assert unknown == 1  # label 7 is no class of the model
    assert counts.tolist() == [[0, 0, 0, 0], [0, 1, 0, 1], [0, 0, 0, 0]]  # one hit, one missed
    values = iou(counts)
    assert np.isnan(values[0]) and np.isnan(values[2]) and values[1] == pytest.approx(1 / 2)
    assert miou(counts) == pytest.approx(50.0)  # classes in neither labels nor predictions are left out


def _one_hot(labels: np.ndarray, classes: int) -> np.ndarray:
    return np.eye(classes, dtype=np.float32)[labels].transpose(2, 0, 1)


def test_nearest_resize_back_is_pytorchs_nearest_exact_and_legacy_nearest():
    labels = np.array([[0, 1, 2]])  # 1 x 3 at the input, label map 1 x 4
    logits = _one_hot(labels, 3)
    scale = (4 / 3, 0.0, 1.0, 0.0)  # input -> source: x * 4/3
    exact = predict(logits, SegmentationPost(resize="labels-nearest"), scale, (1, 4))
    legacy = predict(logits, SegmentationPost(resize="labels-nearest-legacy"), scale, (1, 4))
    x = torch.from_numpy(labels.astype(np.float32))[None, None]
    assert exact.tolist() == F.interpolate(x, size=(1, 4), mode="nearest-exact")[0, 0].long().tolist() == [[0, 1, 1, 2]]
    assert legacy.tolist() == F.interpolate(x, size=(1, 4), mode="nearest")[0, 0].long().tolist() == [[0, 0, 1, 2]]


def test_bilinear_resize_back_whole_image_is_f_interpolate_and_the_general_path_agrees():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 24, 24)).astype(np.float32)
    to_source = (128 / 24, 0.0, 128 / 24, 0.0)
    expected = (
        F.interpolate(torch.from_numpy(logits)[None], size=(128, 128), mode="bilinear", align_corners=False)[0]
        .argmax(0)
        .numpy()
    )
    assert np.array_equal(predict(logits, SegmentationPost(), to_source, (128, 128)), expected)
    # the general path (any geometry) samples the same points: a shift of 1e-7 px forces it
    general = predict(logits, SegmentationPost(), (128 / 24, 1e-7, 128 / 24, 0.0), (128, 128))
    assert (general == expected).mean() > 0.999


def test_pixels_outside_the_input_get_no_prediction():
    logits = _one_hot(np.ones((4, 4), np.int64), 2)
    # a centre crop: the 4 x 4 input covers source columns 2..6 of an 8-wide label map (scale 1)
    out = predict(logits, SegmentationPost(resize="labels-nearest"), (1.0, 2.0, 1.0, 0.0), (4, 8))
    assert out[0].tolist() == [NO_PREDICTION, NO_PREDICTION, 1, 1, 1, 1, NO_PREDICTION, NO_PREDICTION]


def test_segmentation_list_reader(tmp_path):
    from PIL import Image

    from sysnoise.errors import UserInputError

    for name in ("a", "b"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / f"{name}.jpg")
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / f"{name}.png")
    (tmp_path / "segmentation.txt").write_text("# image label\na.jpg a.png\nb.jpg missing.png\na.jpg a.png\nc.jpg\n")
    dataset = read_segmentation_list(tmp_path)
    assert [s.id for s in dataset.samples] == ["a.jpg"]
    assert sorted(p["reason"] for p in dataset.problems) == [
        "duplicate entry (kept the first)",
        "expected 'image label-map'",
        "image or label map not found",
    ]
    (tmp_path / "empty.txt").write_text("b.jpg missing.png\n")
    with pytest.raises(UserInputError, match="no usable"):
        read_segmentation_list(tmp_path / "empty.txt")
