"""Post-processing pieces against hand-worked numbers: box decoding conventions, NMS variants,
integer rounding, and the whole chain against torchvision's own post-processing."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from sysnoise.postprocess.boxes import ROUNDINGS, Coder, decode
from sysnoise.postprocess.detection import DetectionPost, detect
from sysnoise.postprocess.nms import NMS_KERNELS, batched
from sysnoise.postprocess.options import POSTPROCESS, configure

FASTER_RCNN = Coder("delta", (10.0, 10.0, 5.0, 5.0))
ANCHOR = torch.tensor([[10.0, 20.0, 30.0, 60.0]])  # w 20, h 40, centre (20, 40)


def _decode(deltas, **kw):
    return decode(torch.tensor([deltas], dtype=torch.float32), ANCHOR, FASTER_RCNN, **kw)[0].tolist()


def test_zero_deltas_give_the_anchor_and_offset_1_moves_x2_y2_by_one_pixel():
    assert _decode([0, 0, 0, 0]) == [10, 20, 30, 60]
    assert _decode([0, 0, 0, 0], decode_offset=1.0) == [10, 20, 29, 59]


def test_decoding_by_hand():
    # dx = 1/10, dy = 2/10, dw = ln 2 (x 5 / 5), dh = 0: centre (22, 48), size 40 x 40
    deltas = [1.0, 2.0, 5 * math.log(2), 0.0]
    assert _decode(deltas) == pytest.approx([2, 28, 42, 68], abs=1e-5)
    assert _decode(deltas, decode_offset=1.0) == pytest.approx([2, 28, 41, 67], abs=1e-5)
    # legacy +1: widths 21, 41, centre (20.5, 40.5) -> (22.6, 48.7), size 42 x 41, x2/y2 - 1
    assert _decode(deltas, legacy=True) == pytest.approx([1.6, 28.2, 42.6, 68.2], abs=1e-5)


def test_exp_in_float16():
    dw = 0.3
    expected_w = 20 * float(np.exp(np.float16(dw)).astype(np.float32))
    box = _decode([0, 0, 5 * dw, 0], exp_dtype="float16")
    assert box[2] - box[0] == pytest.approx(expected_w, abs=1e-4)
    assert box[2] - box[0] != pytest.approx(20 * math.exp(dw), abs=1e-4)  # float16 exp is visibly coarser


def test_reference_decoding_is_torchvisions_bit_for_bit():
    from torchvision.models.detection._utils import BoxCoder

    g = torch.Generator().manual_seed(0)
    anchors = torch.rand(50, 2, generator=g) * 80
    anchors = torch.cat([anchors, anchors + 1 + torch.rand(50, 2, generator=g) * 40], 1)
    deltas = torch.randn(50, 4, generator=g)
    ours = decode(deltas, anchors, FASTER_RCNN)
    theirs = BoxCoder((10.0, 10.0, 5.0, 5.0)).decode_single(deltas, anchors)
    assert torch.equal(ours, theirs)


def test_linear_coder_is_torchvisions_and_offset_moves_x2():
    from torchvision.models.detection._utils import BoxLinearCoder

    anchors = torch.tensor([[8.0, 8.0, 24.0, 40.0]])
    deltas = torch.tensor([[0.5, 0.25, 1.0, 0.5]])
    theirs = BoxLinearCoder(normalize_by_size=True).decode(deltas, anchors)
    assert torch.equal(decode(deltas, anchors, Coder("linear")), theirs)
    shifted = decode(deltas, anchors, Coder("linear"), decode_offset=1.0)
    assert (shifted - theirs).tolist() == [[0, 0, -1, -1]]


# Three boxes of class 1 and one of class 2:
#   A [0, 0, 10, 10] .9;  B [5, 0, 15, 10] .8: IoU(A, B) = 50 / 150 = 1/3, with +1 areas 66 / 176 = 0.375
#   C [0, 0, 10, 10] class 2 .85: the same box as A, another class
#   D [20, 20, 30, 30] .7: overlaps nothing
BOXES = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
SCORES = np.array([0.9, 0.8, 0.85, 0.7], np.float32)
CLASSES = np.array([1, 1, 2, 1])


@pytest.mark.parametrize("kernel", ["torchvision", "greedy", "greedy-plus1"])
def test_each_kernel_at_threshold_one_half_keeps_everything_apart(kernel):
    assert batched(kernel, BOXES, SCORES, CLASSES, 0.5).tolist() == [0, 2, 1, 3]  # by score


def test_plus1_areas_suppress_what_continuous_areas_keep():
    assert batched("greedy", BOXES, SCORES, CLASSES, 0.35).tolist() == [0, 2, 1, 3]  # 1/3 <= 0.35
    assert batched("greedy-plus1", BOXES, SCORES, CLASSES, 0.35).tolist() == [0, 2, 3]  # 0.375 > 0.35
    assert batched("torchvision", BOXES, SCORES, CLASSES, 0.35).tolist() == [0, 2, 1, 3]


def test_class_agnostic_lets_classes_suppress_each_other():
    assert batched("greedy", BOXES, SCORES, CLASSES, 0.5, class_aware=False).tolist() == [0, 1, 3]
    assert batched("torchvision", BOXES, SCORES, CLASSES, 0.5, class_aware=False).tolist() == [0, 1, 3]


def test_greedy_equals_torchvision_on_random_boxes():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, (300, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + rng.uniform(5, 40, (300, 2)).astype(np.float32)], 1)
    scores = rng.permutation(300).astype(np.float32) / 300  # distinct scores: one right order
    classes = rng.integers(0, 3, 300)
    for iou in (0.3, 0.5, 0.7):
        assert np.array_equal(
            batched("greedy", boxes, scores, classes, iou), batched("torchvision", boxes, scores, classes, iou)
        )
    assert set(NMS_KERNELS.names()) == {"torchvision", "greedy", "greedy-plus1"}


def test_roundings_by_hand():
    boxes = np.array([[-0.5, 1.5, 10.49, 20.5]], np.float32)
    assert ROUNDINGS("round")(boxes, 15, 18).tolist() == [[0, 2, 10, 21]]
    assert ROUNDINGS("floor")(boxes, 15, 18).tolist() == [[-1, 1, 10, 20]]
    assert ROUNDINGS("trunc-after-clip")(boxes, 15, 18).tolist() == [[0, 1, 10, 18]]


def test_options_change_one_field_and_belong_to_a_task():
    reference = DetectionPost("two-stage", score_thresh=0.05, max_dets=100)
    assert configure(reference, ("score-0.3", "max-dets-20"), "detection") == DetectionPost(
        "two-stage", score_thresh=0.3, max_dets=20
    )
    with pytest.raises(ValueError, match="segmentation"):
        configure(reference, ("labels-nearest",), "detection")
    assert all(entry.meta["task"] in ("detection", "segmentation") for entry in POSTPROCESS)


def _dense_raw(scores, labels, anchors, deltas, groups):
    return {
        "scores": np.asarray(scores, np.float32),
        "labels": np.asarray(labels),
        "groups": np.asarray(groups),
        "anchors": np.asarray(anchors, np.float32),
        "deltas": np.asarray(deltas, np.float32),
        "valid": np.ones(len(scores), bool),
    }


def test_dense_chain_threshold_topk_nms_and_mapping_back():
    anchors = [[0, 0, 10, 10], [1, 0, 11, 10], [40, 40, 50, 50], [60, 0, 70, 10]]
    raw = _dense_raw([0.9, 0.8, 0.6, 0.04], [1, 1, 2, 1], anchors, np.zeros((4, 4)), [0, 0, 0, 1])
    config = DetectionPost("dense", score_thresh=0.05, nms_iou=0.5, max_dets=100, pre_nms_topk=1000, background=False)
    # input 64 x 64 is the source scaled by 1/2 and shifted: x_source = 2 x + 3, y_source = 2 y + 5
    out = detect(raw, config, (64, 64), (2.0, 3.0, 2.0, 5.0), (131, 133))
    kept = out["labels"] >= 0
    assert out["labels"][kept].tolist() == [1, 2]  # B suppressed by A (IoU 0.82), the 0.04 one under the threshold
    assert out["boxes"][kept].tolist() == [[3, 5, 23, 25], [83, 85, 103, 105]]
    assert out["scores"][kept].tolist() == pytest.approx([0.9, 0.6])
    topk = detect(raw, configure(config, ("pre-nms-100", "score-0.001"), "detection"), (64, 64), (1, 0, 1, 0), (64, 64))
    assert sorted(topk["labels"][topk["labels"] >= 0].tolist()) == [1, 1, 2]  # the 0.04 box now passes
    clipped = detect(
        _dense_raw([0.9], [1], [[-5, -5, 70, 30]], np.zeros((1, 4)), [0]), config, (64, 64), (1, 0, 1, 0), (64, 64)
    )
    assert clipped["boxes"][0].tolist() == [0, 0, 64, 30]
    unclipped = detect(
        _dense_raw([0.9], [1], [[-5, -5, 70, 30]], np.zeros((1, 4)), [0]),
        configure(config, ("no-clip",), "detection"),
        (64, 64),
        (1, 0, 1, 0),
        (64, 64),
    )
    assert unclipped["boxes"][0].tolist() == [-5, -5, 70, 30]


DENSE = DetectionPost("dense", score_thresh=0.05, nms_iou=0.5, max_dets=100, pre_nms_topk=1000, background=False)
IDENTITY = (1.0, 0.0, 1.0, 0.0)  # input pixels are source pixels


def _detected(raw, config, size=64):
    out = detect(raw, config, (size, size), IDENTITY, (size, size))
    kept = out["labels"] >= 0
    return out["boxes"][kept].tolist(), out["scores"][kept].tolist()


def test_clipping_after_nms_keeps_a_box_that_clipping_before_suppresses():
    # input 64 x 64, one class, zero deltas (the boxes are the anchors):
    #   A [-40, 0, 20, 20] .9: area 60 x 20 = 1200; B [0, 0, 20, 20] .8: area 400
    #   unclipped IoU(A, B) = 400 / (1200 + 400 - 400) = 1/3 <= 0.5: both kept
    #   clipped first, A is [0, 0, 20, 20] = B: IoU 1 > 0.5, B is suppressed
    raw = _dense_raw([0.9, 0.8], [1, 1], [[-40, 0, 20, 20], [0, 0, 20, 20]], np.zeros((2, 4)), [0, 0])
    assert _detected(raw, DENSE)[0] == [[0, 0, 20, 20]]
    after = configure(DENSE, ("clip-after-nms",), "detection")
    assert _detected(raw, after) == ([[0, 0, 20, 20], [0, 0, 20, 20]], pytest.approx([0.9, 0.8]))
    assert _detected(raw, configure(DENSE, ("no-clip",), "detection"))[0] == [[-40, 0, 20, 20], [0, 0, 20, 20]]


def test_pre_nms_top_100_drops_a_candidate_the_reference_keeps():
    # group 0: 100 copies of [0, 0, 10, 10] scoring .9, .899, ..., .801, then a lone box at rank 101
    # (.5); group 1: one box (.1). Top-1000 lets the lone box into NMS, where the copies suppress
    # each other down to one; top-100 cuts the lone box before NMS; group 1's box is ranked apart
    copies = [[0, 0, 10, 10]] * 100
    scores = [0.9 - 0.001 * i for i in range(100)] + [0.5, 0.1]
    anchors = copies + [[20, 20, 30, 30], [40, 40, 50, 50]]
    raw = _dense_raw(scores, [1] * 102, anchors, np.zeros((102, 4)), [0] * 101 + [1])
    assert _detected(raw, DENSE) == (
        [[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]],
        pytest.approx([0.9, 0.5, 0.1]),
    )
    top100 = configure(DENSE, ("pre-nms-100",), "detection")
    assert _detected(raw, top100) == ([[0, 0, 10, 10], [40, 40, 50, 50]], pytest.approx([0.9, 0.1]))


def test_max_dets_20_keeps_the_20_highest_scores_in_order():
    # 30 disjoint 8 x 8 boxes on a 6 x 5 lattice (nothing suppressed), scores 0.10 ... 0.39 shuffled
    rng = np.random.default_rng(0)
    scores = rng.permutation(np.arange(10, 40)) / 100
    anchors = [[10 * (i % 6), 10 * (i // 6), 10 * (i % 6) + 8, 10 * (i // 6) + 8] for i in range(30)]
    raw = _dense_raw(scores, [1] * 30, anchors, np.zeros((30, 4)), [0] * 30)
    assert len(_detected(raw, DENSE)[1]) == 30
    boxes, kept = _detected(raw, configure(DENSE, ("max-dets-20",), "detection"))
    assert kept == pytest.approx([i / 100 for i in range(39, 19, -1)])
    assert boxes == [anchors[i] for i in np.argsort(-scores)[:20]]


def test_score_005_drops_what_a_lower_reference_threshold_keeps():
    raw = _dense_raw(
        [0.06, 0.04, 0.02], [1, 1, 1], [[0, 0, 8, 8], [10, 0, 18, 8], [20, 0, 28, 8]], np.zeros((3, 4)), [0, 0, 0]
    )
    low = replace(DENSE, score_thresh=0.001)  # a YOLO / mmdet-style reference
    assert _detected(raw, low)[1] == pytest.approx([0.06, 0.04, 0.02])
    assert _detected(raw, configure(low, ("score-0.05",), "detection"))[1] == pytest.approx([0.06])
