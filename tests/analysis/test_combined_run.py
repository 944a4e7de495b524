"""The combined pass end to end through the CLI and the real engine: `sysnoise run --stepwise ...
--deploy pipeline.yaml` on a small torchvision model with local weights."""

import json

import numpy as np
import pytest
import yaml

from sysnoise import cli
from sysnoise.engine.outputs import RunOutputs


@pytest.fixture
def shufflenet_weights(tmp_path):
    import torch
    import torchvision
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = torchvision.models.shufflenet_v2_x0_5(weights=None, num_classes=5)
    path = tmp_path / "shufflenet.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def test_stepwise_and_deployment_run_as_a_second_pass(gradient_images, shufflenet_weights, tmp_path):
    folder = gradient_images[0].parent
    (tmp_path / "reference.yaml").write_text(yaml.safe_dump({"input_size": 48, "crop_pct": 0.875}))
    # Fields left out of the deployment file come from the reference (input_size 48 included).
    (tmp_path / "deploy.yaml").write_text(yaml.safe_dump({"resize": "opencv-nearest", "precision": "fp16"}))
    out = tmp_path / "run"
    code = cli.main(
        [
            "run",
            "--model",
            "torchvision:shufflenet_v2_x0_5",
            "--weights",
            str(shufflenet_weights),
            "--data",
            str(folder),
            "--reference",
            str(tmp_path / "reference.yaml"),
            "--out",
            str(out),
            "--workers",
            "0",
            "--no-progress",
            "--noise",
            "resize=opencv-nearest,pillow-box",
            "--noise",
            "precision=fp16",
            "--stepwise",
            "precision,resize=pillow-box",
            "--deploy",
            str(tmp_path / "deploy.yaml"),
        ]
    )
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    steps = results["stepwise"]["steps"]
    assert results["stepwise"]["order"] == "given"
    assert [(s["added_noise"], s["added_option"]) for s in steps] == [("precision", "fp16"), ("resize", "pillow-box")]
    assert steps[1]["changed"] == {"resize": ["pillow-bilinear", "pillow-box"], "precision": ["fp32", "fp16"]}
    assert steps[1]["pipeline"]["input_size"] == 48
    deploy = results["deploy"]
    assert deploy["pipeline"]["input_size"] == 48 and [c["field"] for c in deploy["changes"]] == ["resize", "precision"]

    # The second pass is self-contained and reproduces the first: its reference column and the
    # step that equals a single-noise variant give the same outputs bit for bit.
    single = RunOutputs.load(out / "outputs.npz")
    combined = RunOutputs.load(out / "combined" / "outputs.npz")
    for name in ("topk", "prob"):
        np.testing.assert_array_equal(single.arrays["reference"][name], combined.arrays["reference"][name])
        np.testing.assert_array_equal(
            single.arrays["precision/fp16"][name], combined.arrays["combined/step1:+precision"][name]
        )
        np.testing.assert_array_equal(
            single.arrays["resize/opencv-nearest"][name], combined.arrays["deploy/only:resize"][name]
        )
    assert not list((out / "combined" / "chunks").glob("*.npz"))  # folded into outputs.npz
    for name in ("report.md", "report.html", "report.csv"):
        assert (out / name).stat().st_size > 0
    assert "Combined noise, step by step" in (out / "report.md").read_text()


def test_a_bad_deployment_file_is_named(gradient_images, shufflenet_weights, tmp_path, capsys):
    (tmp_path / "deploy.yaml").write_text("resize: opencv-nearest\nnot_a_field: 3\n")
    code = cli.main(
        [
            "run",
            "--model",
            "torchvision:shufflenet_v2_x0_5",
            "--weights",
            str(shufflenet_weights),
            "--data",
            str(gradient_images[0].parent),
            "--out",
            str(tmp_path / "run"),
            "--workers",
            "0",
            "--no-progress",
            "--noise",
            "precision=fp16",
            "--deploy",
            str(tmp_path / "deploy.yaml"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "deploy.yaml" in err and "not_a_field" in err
    assert not (tmp_path / "run" / "outputs.npz").exists()  # refused before any model ran


def test_a_bad_stepwise_request_fails_before_the_model_runs(gradient_images, shufflenet_weights, tmp_path, capsys):
    code = cli.main(
        [
            "run",
            "--model",
            "torchvision:shufflenet_v2_x0_5",
            "--weights",
            str(shufflenet_weights),
            "--data",
            str(gradient_images[0].parent),
            "--out",
            str(tmp_path / "run"),
            "--workers",
            "0",
            "--no-progress",
            "--noise",
            "precision=fp16",
            "--stepwise",
            "precision,resize",
        ]
    )
    assert code == 2
    assert "'resize' is not measured on its own" in capsys.readouterr().err
    assert not (tmp_path / "run" / "outputs.npz").exists()
