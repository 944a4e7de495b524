"""OpenVINO as runtime options (f32, the f16/bf16 precision hints, NNCF INT8) and an OpenVINO IR
built here as the model under test (`--model openvino:FILE.xml`), end to end."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from sysnoise import cli, extras
from sysnoise.inference import calibrate
from sysnoise.inference.build import build_model
from sysnoise.models import load_model
from sysnoise.pipeline.spec import Pipeline
from sysnoise.tasks.classification import read_dataset

ov = pytest.importorskip("openvino", reason=extras.install_line("openvino"))


def test_openvino_fp32_gives_the_torch_logits_at_any_batch_and_size(engine_cnn, engine_batches):
    _, x = engine_batches
    info = {}
    model = build_model(engine_cnn, Pipeline(runtime="openvino", input_size=32), info=info)
    with torch.no_grad():
        torch.testing.assert_close(model(x), engine_cnn(x), rtol=1e-4, atol=1e-4)
        other = torch.randn(3, 3, 40, 48)
        torch.testing.assert_close(model(other), engine_cnn(other), rtol=1e-4, atol=1e-4)
    detail = info["runtime_detail"]
    # the plugin's default on a bf16 CPU would be bf16: f32 is asked for and compiled
    assert detail["inference_precision_hint"] == "f32" and detail["compiled_inference_precision"] == "f32"
    assert detail["timing"]["images"] == 9 and detail["timing"]["build_seconds"] > 0


@pytest.mark.parametrize("runtime, hint", [("openvino-fp16", "f16"), ("openvino-bf16", "bf16")])
def test_reduced_precision_hints_record_what_the_plugin_compiled(engine_cnn, engine_batches, runtime, hint):
    _, x = engine_batches
    info = {}
    model = build_model(engine_cnn, Pipeline(runtime=runtime, input_size=32), info=info)
    detail = info["runtime_detail"]
    assert detail["inference_precision_hint"] == hint
    compiled = detail["compiled_inference_precision"]
    assert compiled in ("f16", "bf16", "f32")
    with torch.no_grad():
        expected, got = engine_cnn(x), model(x)
    error = (got - expected).abs().max().item()
    if compiled == "f32":  # a CPU with neither: the plugin keeps float32
        assert error < 1e-4
    else:  # 8 (bf16) or 11 (f16) significant bits: visible, and within a few units of the last bit
        assert 0 < error < 0.05 * expected.abs().max().item()


def test_nncf_int8_is_close_but_not_equal_and_records_its_calibration(engine_cnn, engine_batches, capsys):
    pytest.importorskip("nncf", reason=extras.install_line("nncf"))
    calibration, x = engine_batches
    info = {}
    model = build_model(engine_cnn, Pipeline(runtime="openvino-int8-nncf", input_size=32), calibration, info=info)
    assert capsys.readouterr().out == ""  # NNCF's progress bars stay off stdout, which --json owns
    with torch.no_grad():
        expected, got = engine_cnn(x), model(x)
    error = (got - expected).abs().max().item()
    assert 0 < error < 0.2 * expected.abs().max().item()
    quantization = info["runtime_detail"]["quantization"]
    assert quantization["tool"] == "nncf.quantize" and quantization["calibration_samples"] == 16


def _images(folder, n: int, classes: int):
    rng = np.random.default_rng(2)
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(folder / f"img{i:02d}.png")
        lines.append(f"img{i:02d}.png {i % classes}")
    (folder / "labels.txt").write_text("\n".join(lines) + "\n")
    return folder / "labels.txt"


def test_an_ir_built_here_runs_end_to_end_as_the_model(engine_cnn, tmp_path):
    xml = tmp_path / "model.xml"
    ov.save_model(
        ov.convert_model(engine_cnn, example_input=torch.zeros(1, 3, 32, 32), input=[1, 3, 32, 32]), str(xml)
    )  # a static 32x32 file, batch 1
    loaded = load_model(f"openvino:{xml}")
    assert loaded.num_classes == 4 and loaded.reference.input_size == 32
    data = _images(tmp_path / "data", 10, 4)
    (tmp_path / "ref.yaml").write_text("crop_pct: 1.0\n")
    out = tmp_path / "out"
    code = cli.main(
        [
            "run",
            "--model",
            f"openvino:{xml}",
            "--data",
            str(data),
            "--reference",
            str(tmp_path / "ref.yaml"),
            "--out",
            str(out),
            "--noise",
            "resize=pillow-nearest",
            "--noise",
            "runtime",
            "--workers",
            "0",
            "--batch-size",
            "3",
            "--quiet",
        ]
    )
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["reference"]["n"] == 10 and [v["id"] for v in results["variants"]] == ["resize/pillow-nearest"]
    assert "openvino" in {row["name"]: row for row in results["noises"]}["runtime"]["not_applicable"]
    # the reference column's top-1 is the torch module's on the reference pipeline's inputs
    samples = read_dataset(data).samples
    inputs = torch.cat(calibrate.batches(samples, Pipeline(input_size=32, crop_pct=1.0), batch_size=len(samples)))
    with torch.no_grad():
        expected = engine_cnn(inputs).argmax(1).numpy()
    stored = np.load(out / "outputs.npz")
    np.testing.assert_array_equal(stored["c0.topk"][:, 0], expected)
