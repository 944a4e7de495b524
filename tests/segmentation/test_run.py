"""A segmentation run end to end on scenes-seg with a randomly initialised zoo segmenter: the
reference mIoU is the training code's own evaluation, the mask-resize variants share the forward,
and the per-image counts add up to the labeled pixels."""

from __future__ import annotations

import pytest
import torch

from sysnoise import api
from sysnoise.engine.execute import EngineOptions
from sysnoise.engine.outputs import RunOutputs
from sysnoise.loaded_model import LoadedModel
from sysnoise.train import zoo_training as zt
from sysnoise.zoo import scenes, segmenter

N = 5


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    torch.manual_seed(1)
    module = segmenter.build(len(scenes.CLASSES) + 1).eval()
    loaded = LoadedModel(
        "random-segmenter",
        module,
        segmenter.reference_pipeline(),
        len(scenes.CLASSES) + 1,
        ["background", *scenes.CLASSES],
    )
    folder = scenes.materialise("detection", "val", n=N)
    options = EngineOptions(batch_size=N, workers=0, progress=False)
    out = tmp_path_factory.mktemp("seg")
    results = api.run(
        loaded,
        folder / "segmentation.txt",
        task="segmentation",
        out=out,
        options=options,
        figures=False,
        noises=["mask-resize", "upsample=upsample-align-corners", "precision=fp16"],
    )
    return results, options, out, folder, module


def test_reference_miou_is_the_training_codes_own(run):
    results, _, _, folder, module = run
    paths, maps = zt.read_label_maps(folder)
    images = zt.pipeline_pixels(paths, segmenter.reference_pipeline())
    expected = zt.segmentation_scores(module, images, maps, segmenter.reference_pipeline(), len(scenes.CLASSES) + 1)
    assert results["reference"]["miou"] == pytest.approx(100 * expected["mIoU"], abs=0.01)
    assert results["reference"]["pixel_accuracy"] == pytest.approx(100 * expected["pixel_accuracy"], abs=0.01)


def test_counts_cover_every_labeled_pixel_and_variants_share_the_forward(run):
    results, options, out, folder, _ = run
    _, maps = zt.read_label_maps(folder)
    outputs = RunOutputs.load(out / "outputs.npz")
    for column in outputs.column_ids:
        per_image = outputs.arrays[column]["confusion"].sum(axis=(1, 2))
        assert per_image.tolist() == [(m != scenes.IGNORE).sum() for m in maps]
    # mask-resize options are post-processing: one model for them and the reference; the others
    # are the upsample and fp16 models
    assert options.forward_counter[("fp32", (), "torch")] == N
    assert len(options.forward_counter) == 3
    ids = {v["id"] for v in results["variants"]}
    assert {
        "mask-resize/labels-nearest",
        "mask-resize/labels-nearest-legacy",
        "mask-resize/logits-bilinear-align-corners",
    } <= ids
    assert (
        "mask-resize/logits-bilinear" not in ids
        or next(v for v in results["variants"] if v["id"] == "mask-resize/logits-bilinear")["identical"] == 100
    )


def test_report_is_table_4_shaped(run):
    results, _, out, _, _ = run
    report = (out / "report.md").read_text()
    assert "Table 4" in report and "mIoU" in report
    assert set(results["reference"]["per_class_iou"]) == {"background", *scenes.CLASSES}
    for v in results["variants"]:
        assert v["delta"] == pytest.approx(results["reference"]["miou"] - v["miou"], abs=1e-9)
        assert 0 <= v["flip_rate"] <= 100
