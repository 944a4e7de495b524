"""ONNX Runtime (and OpenVINO) for detectors: the raw detector exported up to its head outputs
(several named outputs), so sysnoise's post-processing stays, and a detection run that measures it."""

import pytest
import torch

from sysnoise import api, extras
from sysnoise.engine.execute import EngineOptions
from sysnoise.inference.build import build_model
from sysnoise.models import LoadedModel
from sysnoise.pipeline.spec import Pipeline
from sysnoise.tasks.detection_heads import raw_detector
from sysnoise.zoo import detector, scenes

N = 4


@pytest.fixture(scope="module")
def random_detector():
    torch.manual_seed(0)
    return detector.build(len(scenes.CLASSES) + 1).eval()


@pytest.mark.parametrize("runtime, extra", [("onnxruntime", "onnx"), ("openvino", "openvino")])
def test_the_raw_heads_come_back_as_named_outputs(random_detector, runtime, extra):
    pytest.importorskip(extra, reason=extras.install_line(extra))
    raw = raw_detector(random_detector)
    x = torch.randn(3, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    info = {}
    model = build_model(raw, Pipeline(runtime=runtime, input_size=96), example=x[:1], info=info)
    with torch.no_grad():
        expected, got = raw(x), model(x)
    assert list(got) == list(expected)  # the dict's keys, in order
    for name, tensor in expected.items():
        assert got[name].dtype == tensor.dtype and got[name].shape == tensor.shape
    # float32 either side; an engine's fused arithmetic may swap two near-tied proposals in the
    # ranking, so compare proposal by proposal: almost all are the same box with the same logits
    same = [
        torch.isclose(got[name].float(), expected[name].float(), rtol=1e-3, atol=1e-3).flatten(2).all(-1)
        for name in ("proposals", "class_logits")
    ]
    assert (same[0] & same[1]).float().mean() > 0.95
    detail = info["runtime_detail"]
    assert detail["outputs"] == list(expected) and detail["input_shape"][0] == 1  # one image per call


def test_a_detection_run_measures_onnx_runtime(random_detector, tmp_path):
    pytest.importorskip("onnxruntime", reason=extras.install_line("onnx"))
    loaded = LoadedModel("random-detector", random_detector, detector.reference_pipeline(), len(scenes.CLASSES) + 1)
    folder = scenes.materialise("detection", "val", n=N)
    results = api.run(
        loaded,
        folder / "annotations.json",
        task="detection",
        out=tmp_path,
        figures=False,
        noises=["runtime=onnxruntime"],
        options=EngineOptions(batch_size=N, workers=0, progress=False),
    )
    variant = {v["id"]: v for v in results["variants"]}["runtime/onnxruntime"]
    assert variant["n_failed"] == 0
    # float32 ORT against float32 torch: the same detections up to rounding, so the same mAP
    assert variant["delta"] == pytest.approx(0, abs=0.5)
