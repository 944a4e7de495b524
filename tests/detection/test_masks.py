"""Mask AP (COCOeval segm) for detectors with a mask head: a hand-worked segm evaluation, the raw
stage's masks against torchvision's own Mask R-CNN outputs, and a run of a random-init Mask R-CNN
loaded by name: masks for the reference and pre-processing columns (RLE beside outputs.npz), none
for a post-processing column, which says why."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
import torchvision
from pycocotools import mask as mask_utils

from sysnoise.analysis.detection import (
    SEGM_NOT_APPLICABLE,
    DetectionAnalysis,
    ResampledAP,
    coco_eval,
    ground_truth,
    segm_problem,
    segmentations_json,
)
from sysnoise.engine.outputs import RunOutputs
from sysnoise.postprocess.detection import decode_masks, detect, encode_masks
from sysnoise.tasks.detection import CocoDataset, CocoImage
from sysnoise.tasks.detection_heads import raw_detector


@pytest.fixture
def one_thread():
    """A random-weights ResNet-50 is ~40x faster on one thread than on two busy cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _rect(top: int, left: int, height: int, width: int, size: int = 100) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[top : top + height, left : left + width] = 1
    return mask


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


# One image (100 x 100), two objects of category 3: a polygon square and an RLE rectangle (20 x 30).
# Three predicted masks: A (0.9) is the square's own rasterised polygon (IoU 1), B (0.8) touches no
# object, C (0.7) covers 22 of the rectangle's 30 columns (IoU 22/30 = 0.733). At the five IoU
# thresholds 0.50-0.70 C is a hit: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1, AP (51 + 50 * 2/3) /
# 101 = 253/303. At 0.75-0.95 only A hits: precision 1 up to recall 1/2, AP 51/101 = 153/303.
# Mask AP = (253 + 153) / 606 = 203/303; AP50 = 253/303; AP75 = 153/303.
SQUARE = [10.0, 10.0, 30.0, 10.0, 30.0, 30.0, 10.0, 30.0]
RECTANGLE = _rect(50, 50, 20, 30)


def _hand_coco(segmentation: bool = True) -> dict:
    anns = [
        {
            "id": 1,
            "image_id": 7,
            "category_id": 3,
            "bbox": [10, 10, 20, 20],
            "area": 400,
            "iscrowd": 0,
            "segmentation": [SQUARE],
        },
        {
            "id": 2,
            "image_id": 7,
            "category_id": 3,
            "bbox": [50, 50, 30, 20],
            "area": 600,
            "iscrowd": 0,
            "segmentation": _rle(RECTANGLE),
        },
    ]
    if not segmentation:
        for ann in anns:
            del ann["segmentation"]
    return {
        "images": [{"id": 7, "file_name": "a.jpg", "width": 100, "height": 100}],
        "annotations": anns,
        "categories": [{"id": 3, "name": "square"}],
    }


def _hand_blob() -> bytes:
    square = mask_utils.merge(mask_utils.frPyObjects([SQUARE], 100, 100))  # exactly the ground truth's pixels
    masks = [
        square["counts"],
        mask_utils.encode(np.asfortranarray(_rect(0, 80, 10, 10)))["counts"],
        mask_utils.encode(np.asfortranarray(_rect(50, 50, 20, 22)))["counts"],
    ]
    return b"\n".join([b"100 100"] + masks)


HAND_SCORES = np.asarray([[0.9, 0.8, 0.7, 0.0]], np.float32)
HAND_LABELS = np.asarray([[3, 3, 3, -1]], np.int32)


def test_segm_ap_on_a_hand_worked_case():
    results = segmentations_json([_hand_blob()], HAND_SCORES, HAND_LABELS, [7])
    assert [r["score"] for r in results] == pytest.approx([0.9, 0.8, 0.7]) and results[0]["category_id"] == 3
    evaluation = coco_eval(ground_truth(_hand_coco()), results, [7], "segm")
    assert evaluation.stats[0] == pytest.approx(203 / 303)
    assert evaluation.stats[1] == pytest.approx(253 / 303)
    assert evaluation.stats[2] == pytest.approx(153 / 303)
    assert ResampledAP(evaluation, [7])(np.ones(1)) == pytest.approx(100 * 203 / 303)  # the bootstrap's AP
    assert segm_problem(_hand_coco()) is None


def test_masks_round_trip_and_mismatched_counts_are_refused():
    rles = decode_masks(_hand_blob())
    assert len(rles) == 3 and all(r["size"] == [100, 100] for r in rles)
    np.testing.assert_array_equal(mask_utils.decode(rles[2]), _rect(50, 50, 20, 22))
    assert decode_masks(b"") == [] and decode_masks(b"100 100") == []
    with pytest.raises(ValueError, match="3 masks stored for 2 detections"):
        segmentations_json([_hand_blob()], HAND_SCORES, np.asarray([[3, 3, -1, -1]]), [7])


def _hand_analysis(segmentation: bool):
    """DetectionAnalysis on hand-made outputs: the reference with masks, a post-processing column without."""
    coco = _hand_coco(segmentation)
    dataset = CocoDataset(
        root=None,
        annotation_file="hand.json",
        samples=[CocoImage("a.jpg", None, 7, 100, 100)],
        coco=coco,
        class_names={3: "square"},
    )
    boxes = np.zeros((1, 4, 4), np.float32)
    boxes[0, :3] = [[10, 10, 30, 30], [80, 0, 90, 10], [50, 50, 72, 70]]
    columns = ["reference", "nms/nms-plus1"]
    arrays = {}
    for column, blob in zip(columns, [_hand_blob(), b""]):
        arrays[column] = {
            "boxes": boxes,
            "scores": HAND_SCORES,
            "labels": HAND_LABELS,
            "masks.bytes": np.frombuffer(blob, np.uint8),
            "masks.lengths": np.asarray([len(blob)]),
        }
    outputs = RunOutputs(columns, ["a.jpg"], np.full((1, 1), -1), arrays, {c: np.asarray([""]) for c in columns})
    return DetectionAnalysis(dataset, resamples=20), outputs


def test_analysis_gives_segm_for_the_reference_and_a_reason_for_post_processing():
    analysis, outputs = _hand_analysis(True)
    ref = analysis.reference_metrics(outputs)
    assert ref["segm_ap"] == pytest.approx(100 * 203 / 303) and ref["segm_ap75"] == pytest.approx(100 * 153 / 303)
    assert ref["segm_ap_ci"] is not None
    row = analysis.variant_stats(outputs, "nms/nms-plus1", "nms", "nms-plus1").to_dict()
    assert "segm_ap" not in row and row["segm_not_computed"] == SEGM_NOT_APPLICABLE


def test_ground_truth_without_masks_gives_no_segm_and_a_warning():
    analysis, outputs = _hand_analysis(False)
    assert "2 of 2 annotations have no segmentation" in segm_problem(_hand_coco(False))
    with pytest.warns(UserWarning, match="segm AP not computed: 2 of 2 annotations have no segmentation"):
        ref = analysis.reference_metrics(outputs)
    assert "segm_ap" not in ref and "no segmentation" in ref["segm_not_computed"]
    assert ref["map"] is not None  # box AP as before


def _small_mask_rcnn(num_classes: int = 3, size: int = 128):
    torch.manual_seed(0)
    model = torchvision.models.get_model(
        "maskrcnn_resnet50_fpn", weights=None, weights_backbone=None, num_classes=num_classes
    )
    return _shrink(model, size)


def _shrink(model, size: int = 128):
    """Inputs of `size`, 100 proposals and 10 detections per image: fast on a CPU."""
    model.transform.min_size, model.transform.max_size = (size,), size
    model.rpn._post_nms_top_n["testing"] = 100
    model.roi_heads.detections_per_img = 10
    return model.eval()


def test_raw_stage_masks_are_torchvisions_own(one_thread):
    model = _small_mask_rcnn()
    t = model.transform
    t.image_mean, t.image_std = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]  # the transform a no-op on 128 x 128
    x = torch.rand(1, 3, 128, 128)
    stage = raw_detector(model)
    assert stage.has_masks
    with torch.no_grad():
        want, raw = model(list(x))[0], stage(x)
    raw = {k: v[0].numpy() for k, v in raw.items()}
    found = detect(raw, stage.post_reference, (128, 128), (1.0, 0.0, 1.0, 0.0), (128, 128))
    k = int((found["labels"] >= 0).sum())
    assert k == len(want["scores"]) > 0
    got = mask_utils.decode(decode_masks(encode_masks(raw["mask_probs"][:k], found["boxes"][:k], (128, 128))))
    np.testing.assert_array_equal(got, (want["masks"][:, 0] > 0.5).numpy().transpose(1, 2, 0))


def test_mask_rcnn_by_name_end_to_end(tmp_path, one_thread):
    from sysnoise import api
    from sysnoise.engine.execute import EngineOptions
    from sysnoise.models import load_model
    from sysnoise.tasks.detection_heads import reference_pipeline
    from sysnoise.zoo import scenes

    folder = scenes.materialise("detection", "val", n=3)
    path = tmp_path / "maskrcnn.pth"
    torch.manual_seed(0)
    torch.save(
        torchvision.models.get_model(
            "maskrcnn_resnet50_fpn", weights=None, weights_backbone=None, num_classes=len(scenes.CLASSES) + 1
        ).state_dict(),
        path,
    )
    loaded = load_model("torchvision:maskrcnn_resnet50_fpn", path)
    loaded.module = _shrink(loaded.module)  # random weights: softmax scores ~1/(classes) pass 0.05
    loaded.reference = reference_pipeline(loaded.module)
    out = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # scenes has masks: no segm warning
        results = api.run(
            loaded,
            folder / "annotations.json",
            task="detection",
            out=out,
            figures=False,
            options=EngineOptions(batch_size=3, workers=0, progress=False),
            noises=["resize=opencv-bilinear", "precision=fp16", "nms=nms-plus1"],
        )
    ref = results["reference"]
    assert all(isinstance(ref[k], float) for k in ("segm_ap", "segm_ap50", "segm_ap75")), ref
    rows = {v["id"]: v for v in results["variants"]}
    resize, nms = rows["resize/opencv-bilinear"], rows["nms/nms-plus1"]
    assert isinstance(resize["segm_ap"], float) and isinstance(resize["segm_delta"], float)
    assert resize["segm_delta"] == pytest.approx(ref["segm_ap"] - resize["segm_ap"], abs=1e-9)
    assert resize["segm_delta_ci"] is not None
    assert isinstance(rows["precision/fp16"]["segm_ap"], float)  # an inference column: the mask head in FP16 too
    assert "segm_ap" not in nms and "post-processing" in nms["segm_not_computed"]
    assert isinstance(nms["map"], float)  # its box AP is there

    # RLEs beside outputs.npz, one per detection, at the annotated image size, inside their boxes
    assert (out / "outputs.masks.npz").is_file()
    outputs = RunOutputs.load(out / "outputs.npz")
    sizes = {
        image["file_name"]: (image["height"], image["width"])
        for image in json.loads((folder / "annotations.json").read_text())["images"]
    }
    for column in ("reference", "resize/opencv-bilinear", "precision/fp16"):
        blobs, arrays = outputs.ragged(column, "masks"), outputs.arrays[column]
        for position, (sample, blob) in enumerate(zip(outputs.sample_ids, blobs)):
            rles = decode_masks(blob)
            labels = arrays["labels"][position]
            assert len(rles) == int((labels >= 0).sum()) > 0
            decoded = mask_utils.decode(rles)
            assert decoded.shape[:2] == sizes[sample]
            for rle, box in zip(rles, arrays["boxes"][position]):
                x, y, w, h = mask_utils.toBbox(rle)
                if w and h:
                    slack = 1.5 + 0.05 * max(box[2] - box[0], box[3] - box[1])
                    assert box[0] - slack <= x <= x + w <= box[2] + slack
                    assert box[1] - slack <= y <= y + h <= box[3] + slack
    assert not any(outputs.ragged("nms/nms-plus1", "masks"))
    segm = json.loads((out / "segmentations-reference.json").read_text())
    assert {"image_id", "category_id", "segmentation", "score"} <= set(segm[0])
    report = (out / "report.md").read_text()
    assert "## Mask AP (segm)" in report and "| nms/nms-plus1 | n/a |" in report
