"""`sysnoise train` and `sysnoise matrix` end to end on twelve small files: the weights train on
the pipelines the transform reports, are reproducible from the seed, load with their reference,
and the matrix cells equal top-1 recomputed from the libraries called directly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sysnoise.pipeline.spec import Pipeline
from sysnoise.train import finetune
from sysnoise.train.mix import MixTransform

BASE = Pipeline(input_size=64, crop_pct=1.0)
RECIPE = finetune.Recipe(epochs=1, batch_size=4, lr=1e-3, seed=0)


@pytest.fixture(scope="module")
def trained(scene_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained")
    data = scene_files[0].parent / "labels.txt"
    mix = MixTransform({"resize": ["pillow-bilinear", "opencv-nearest"]}, BASE, seed=0)
    nearest = MixTransform({"resize": ["opencv-nearest"]}, BASE, seed=0)
    records = {
        "mix": finetune.finetune(
            mix, out, "mix", init="random", recipe=RECIPE, label="mixed", train=data, val=data, log=lambda _: None
        ),
        "nearest": finetune.finetune(
            nearest, out, "nearest", init="random", recipe=RECIPE, train=data, val=data, log=lambda _: None
        ),
    }
    return out, data, mix, records


def test_training_draws_are_the_transforms(trained):
    out, _, mix, records = trained
    record = json.loads((out / "mix.json").read_text())
    assert record == json.loads(json.dumps(records["mix"]))
    # one epoch of 3 full batches of 4 visits each of the 12 samples once
    expected = np.bincount([mix.choose(i, 0) for i in range(12)], minlength=2).tolist()
    assert record["training"]["drawn"] == {"counts": expected, "total": 12}
    assert record["training"]["pipelines"] == [p.to_dict() for p in mix.pipelines]
    assert record["reference_pipeline"] == mix.reference.to_dict()
    assert record["recipe"]["epochs"] == 1 and record["recipe"]["init"] == "random"


def test_per_batch_choices_share_one_pipeline():
    mix = MixTransform({"resize": ["pillow-bilinear", "opencv-nearest", "opencv-bilinear"]}, BASE, seed=2)
    for b in range(10):
        chosen = finetune.choices_for(mix, np.arange(8) + 8 * b, epoch=1, batch=b, per="batch")
        assert set(chosen.tolist()) == {mix.choose_batch(b, 1)}


def test_the_same_seed_gives_the_same_weights(trained, tmp_path):
    _, data, _, records = trained
    again = finetune.finetune(
        MixTransform({"resize": ["opencv-nearest"]}, BASE, seed=0),
        tmp_path,
        "nearest",
        init="random",
        recipe=RECIPE,
        train=data,
        val=data,
        log=lambda _: None,
    )
    assert again["weights_sha256"] == records["nearest"]["weights_sha256"]


def test_trained_weights_load_with_their_reference(trained):
    from sysnoise.models import load_model

    out, _, mix, _ = trained
    loaded = load_model("zoo-resnet", out / "nearest.safetensors")
    assert loaded.name == "nearest" and loaded.reference == BASE.replace(resize="opencv-nearest")
    assert load_model("zoo-resnet", out / "mix.safetensors").card["label"] == "mixed"


def test_missing_initial_weights_are_named(tmp_path):
    from sysnoise.errors import UserInputError

    with pytest.raises(UserInputError, match="initial weights not found: .*nothing.safetensors"):
        finetune.initial_state(str(tmp_path / "nothing.safetensors"), 0)


def test_matrix_cells_are_top1_under_each_test_pipeline(trained, tmp_path):
    import cv2
    import torch
    from PIL import Image

    from sysnoise import api
    from sysnoise.engine.execute import EngineOptions
    from sysnoise.models import load_model

    out, data, _, _ = trained
    tests = ["pillow-bilinear", "opencv-nearest"]
    doc = api.matrix(
        [str(out / "nearest.safetensors"), str(out / "mix.safetensors")],
        data,
        "resize=" + ",".join(tests),
        out=tmp_path / "m",
        options=EngineOptions(workers=0, progress=False),
    )
    assert [r["label"] for r in doc["rows"]] == ["nearest", "mixed"]
    assert doc["rows"][0]["matched"] == "opencv-nearest" and doc["rows"][1]["kind"] == "mix"
    assert {p.name for p in (tmp_path / "m").iterdir()} >= {"matrix.json", "matrix.md", "matrix.csv", "runs"}
    lines = [line.split() for line in data.read_text().splitlines()]
    files = [(data.parent / name, int(label)) for name, label in lines]
    for described, name in zip(doc["rows"], ["nearest", "mix"]):
        model = load_model("zoo-resnet", out / f"{name}.safetensors").module
        for cell in described["cells"]:
            right = 0
            for path, label in files:
                decoded = np.asarray(Image.open(path).convert("RGB"))
                pixels = (
                    np.asarray(Image.fromarray(decoded).resize((64, 64), Image.Resampling.BILINEAR))
                    if cell["test"] == "pillow-bilinear"
                    else cv2.resize(decoded, (64, 64), interpolation=cv2.INTER_NEAREST)
                )
                x = (pixels.astype(np.float32) - np.float32(BASE.mean)) / np.float32(BASE.std)
                with torch.no_grad():
                    right += int(model(torch.from_numpy(x.transpose(2, 0, 1))[None]).argmax(1).item() == label)
            assert cell["correct"] == right, (name, cell["test"])


def test_matrix_refuses_bad_requests(trained):
    from sysnoise import api
    from sysnoise.errors import UserInputError

    out, data, _, _ = trained
    with pytest.raises(UserInputError, match="FIELD=OPTION"):
        api.matrix([str(out / "mix.safetensors")], data, "input_size=64,80")
    with pytest.raises(UserInputError, match="distinct"):
        api.matrix([str(out / "mix.safetensors")], data, "resize=opencv-nearest,opencv-nearest")


def test_cli_errors_name_the_problem(trained, capsys):
    from sysnoise.cli import main

    out, data, _, _ = trained
    assert main(["train", "--mix", "resize=opencv-nearst", "--out", str(out)]) == 2
    assert "opencv-nearst" in capsys.readouterr().err
    assert main(["train", "--mix", "precision=fp16", "--out", str(out)]) == 2
    assert "cannot mix 'precision'" in capsys.readouterr().err
    assert main(["matrix", "--models", str(out / "mix.safetensors"), "--test", "resize", "--data", str(data)]) == 2
    assert "FIELD=OPTION" in capsys.readouterr().err
