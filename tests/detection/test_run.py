"""A detection run end to end on scenes-det with a randomly initialised zoo detector: the reference
column reproduces the training code's own evaluation (torchvision's post-processing, boxes scaled
back, pycocotools), post-processing variants cost no forward pass, and the reports render."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sysnoise import api
from sysnoise.engine.execute import EngineOptions
from sysnoise.loaded_model import LoadedModel
from sysnoise.train import zoo_training as zt
from sysnoise.zoo import detector, scenes

N = 6


def _random_detector():
    torch.manual_seed(0)
    module = detector.build(len(scenes.CLASSES) + 1).eval()
    return LoadedModel("random-detector", module, detector.reference_pipeline(), len(scenes.CLASSES) + 1)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    loaded = _random_detector()
    module = loaded.module
    folder = scenes.materialise("detection", "val", n=N)
    options = EngineOptions(batch_size=N, workers=0, progress=False)
    out = tmp_path_factory.mktemp("det")
    results = api.run(
        loaded,
        folder / "annotations.json",
        task="detection",
        out=out,
        options=options,
        figures=False,
        noises=[
            "resize=opencv-bilinear",
            "ceil-mode",
            "nms=nms-plus1,nms-class-agnostic",
            "box-decoding=decode-offset-1",
            "score-threshold=score-0.3",
        ],
    )
    return results, options, out, folder, module


def test_reference_column_is_the_training_codes_own_evaluation(run):
    results, _, _, folder, module = run
    paths, _, coco = zt.detection_split(folder)
    images = zt.pipeline_pixels(paths, detector.reference_pipeline())
    expected = zt.coco_map(coco, zt.detections(module, images, detector.reference_pipeline()), 128 / 96)
    assert results["reference"]["map"] == pytest.approx(100 * expected["mAP"], abs=0.01)
    assert results["reference"]["ap50"] == pytest.approx(100 * expected["AP50"], abs=0.01)


def test_post_processing_variants_share_the_forward(run):
    results, options, _, _, _ = run
    # the reference model sees the reference and the resize variant's inputs; ceil mode is its own
    # model; the four post-processing variants add nothing
    assert options.forward_counter == {("fp32", (), "torch"): 2 * N, ("fp32", ("maxpool-ceil",), "torch"): N}
    ids = [v["id"] for v in results["variants"]]
    assert {
        "nms/nms-plus1",
        "nms/nms-class-agnostic",
        "box-decoding/decode-offset-1",
        "score-threshold/score-0.3",
    } <= set(ids)


def test_results_have_the_classification_shape_and_sensible_numbers(run):
    results, _, out, _, _ = run
    assert results["task"] == "detection" and results["reference"]["metric"] == "map"
    for v in results["variants"]:
        assert {"map", "delta", "delta_ci", "p_value", "flip_rate", "identical", "correct_to_wrong"} <= set(v)
        assert v["delta"] == pytest.approx(results["reference"]["map"] - v["map"], abs=1e-9)
    by_id = {v["id"]: v for v in results["variants"]}
    # x2/y2 one pixel short can only change boxes, never which classes or scores come out
    assert by_id["box-decoding/decode-offset-1"]["identical"] == 0
    # a higher threshold keeps a subset: its mAP cannot be above the reference's by construction of AP
    assert by_id["score-threshold/score-0.3"]["map"] <= results["reference"]["map"] + 1e-9
    report = (out / "report.md").read_text()
    assert "Table 3" in report and "mAP" in report and "nms-plus1" in report
    stored = json.loads((out / "results.json").read_text())
    assert stored["reference"]["map"] == results["reference"]["map"]


def test_reference_detections_are_written_as_coco_results(run):
    results, _, out, folder, _ = run
    detections = json.loads((out / "detections-reference.json").read_text())
    ids = {img["id"] for img in json.loads((folder / "annotations.json").read_text())["images"]}
    assert detections and {d["image_id"] for d in detections} <= ids
    assert all(set(d) == {"image_id", "category_id", "bbox", "score"} for d in detections)
    assert api.coco_detections(out, "score-threshold/score-0.3") is not None
    assert all(d["score"] > 0.3 for d in api.coco_detections(out, "score-threshold/score-0.3"))


def test_boxes_map_back_to_the_annotated_image(run):
    """The stored boxes are in the 128 px file's pixels: the 96 px input's boxes x 4/3."""
    _, _, out, folder, module = run
    from sysnoise.engine.outputs import RunOutputs

    outputs = RunOutputs.load(out / "outputs.npz")
    paths, _, _ = zt.detection_split(folder)
    images = zt.pipeline_pixels(paths[:1], detector.reference_pipeline())
    direct = zt.detections(module, images, detector.reference_pipeline())[0]
    n = len(direct["scores"])
    np.testing.assert_allclose(outputs.arrays["reference"]["boxes"][0, :n], direct["boxes"] * 128 / 96, atol=1e-4)


@pytest.fixture(scope="module")
def inference_run(tmp_path_factory):
    """The FPN's upsampling, emulated FP16 and simulated INT8 (calibrated on 2 held-out images)."""
    options = EngineOptions(batch_size=N, workers=0, progress=False)
    out = tmp_path_factory.mktemp("det-inference")
    results = api.run(
        _random_detector(),
        scenes.materialise("detection", "val", n=N),
        task="detection",
        out=out,
        options=options,
        figures=False,
        calibration_samples=2,
        noises=["upsample=upsample-bilinear", "precision=fp16", "int8=int8"],
    )
    return results, options, out


def test_inference_noises_apply_to_the_raw_detector_stage(inference_run):
    results, options, out = inference_run
    from sysnoise.engine.outputs import RunOutputs

    for row in results["noises"]:
        assert row["applies"] and not row["unavailable"] and not row["not_applicable"], row
    # each column ran its own model stage on the N - 2 evaluated images
    assert options.forward_counter == {
        ("fp32", (), "torch"): N - 2,
        ("fp32", ("upsample-bilinear",), "torch"): N - 2,
        ("fp16", (), "torch"): N - 2,
        ("int8", (), "torch"): N - 2,
    }
    assert all(np.isfinite(v["map"]) for v in results["variants"]) and np.isfinite(results["reference"]["map"])
    arrays = RunOutputs.load(out / "outputs.npz").arrays
    # detections are a function of the raw outputs: other scores mean other raw outputs (bilinear
    # instead of nearest top-down in the FPN; INT8-rounded weights and activations)
    for column in ("upsample/upsample-bilinear", "int8/int8"):
        assert not np.array_equal(arrays[column]["scores"], arrays["reference"]["scores"]), column
