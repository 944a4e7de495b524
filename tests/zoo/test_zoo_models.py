"""The committed zoo models: they load, match their cards, reproduce the recorded reference metric
on the first images of the val split (within the tolerance the card states), and carry a
strided max-pool so the ceil-mode noise applies."""

from __future__ import annotations

import pytest

from sysnoise.inference.operators import applies
from sysnoise.loaded_model import MODELS
from sysnoise.models import load_model
from sysnoise.train import zoo_training as zt
from sysnoise.zoo import scenes

ZOO = ("zoo-resnet", "zoo-detector", "zoo-segmenter")


@pytest.fixture(scope="module", autouse=True)
def _threads():
    zt.set_threads(1)


@pytest.mark.parametrize("name", ZOO)
def test_registered_loads_and_matches_card(name):
    import sysnoise.zoo  # noqa: F401

    assert name in MODELS
    loaded = load_model(name)
    card = loaded.card
    assert card["name"] == name
    assert card["weights_sha256"] == loaded.weights_sha256
    assert card["reference_pipeline"] == loaded.reference.to_dict()
    assert loaded.weights_sha256 and loaded.source.endswith(f"{name}.safetensors")
    assert applies("maxpool-ceil", loaded.module)
    assert (zt.ZOO_DIR / "weights" / f"{name}.safetensors").stat().st_size < 10 * 2**20


def _reference(card: dict) -> tuple[int, float, float]:
    ref = card["reference_metric"]
    return int(ref["subset"]), float(ref["value"]), float(ref["tolerance"])


def test_classifier_reproduces_reference_top1():
    loaded = load_model("zoo-resnet")
    n, value, tolerance = _reference(loaded.card)
    # scenes images depend only on (seed, split, index): the n-image prefix is the val split's start
    paths, labels = zt.read_list(scenes.materialise("classification", "val", n=n) / "labels.txt")
    images = zt.pipeline_pixels(paths, loaded.reference)
    top1 = zt.classifier_top1(loaded.module, images, labels, loaded.reference)
    assert abs(top1 - value) <= tolerance, (top1, value)
    assert 0.3 < top1 < 0.99  # real, unsaturated accuracy (see the card for the reached value)


def test_detector_reproduces_reference_map():
    loaded = load_model("zoo-detector")
    n, value, tolerance = _reference(loaded.card)
    folder = scenes.materialise("detection", "val", n=n)
    paths, _, coco = zt.detection_split(folder)
    images = zt.pipeline_pixels(paths, loaded.reference)
    dets = zt.detections(loaded.module, images, loaded.reference)
    scale = scenes.CONFIGS["detection"].size / loaded.reference.input_size
    result = zt.coco_map(coco, dets, scale)
    assert abs(result["mAP"] - value) <= tolerance, (result, value)


def test_segmenter_reproduces_reference_miou():
    loaded = load_model("zoo-segmenter")
    n, value, tolerance = _reference(loaded.card)
    folder = scenes.materialise("detection", "val", n=n)
    paths, maps = zt.read_label_maps(folder)
    images = zt.pipeline_pixels(paths, loaded.reference)
    scores = zt.segmentation_scores(loaded.module, images, maps, loaded.reference, loaded.num_classes)
    assert abs(scores["mIoU"] - value) <= tolerance, (scores, value)


def test_ceil_mode_grows_the_classifier_maps():
    import torch

    model = load_model("zoo-resnet").module
    x = torch.zeros(1, 3, 64, 64)
    with torch.no_grad():
        floor = model.maxpool(model.relu(model.bn1(model.conv1(x)))).shape[-1]
        model.maxpool.ceil_mode = True
        ceil = model.maxpool(model.relu(model.bn1(model.conv1(x)))).shape[-1]
    assert (floor, ceil) == (16, 17)


def test_run_on_scenes_reports_ceil_mode(tmp_path):
    """`sysnoise run --model zoo-resnet --data scenes` on a 64-image val prefix (the name itself
    resolves through sysnoise.zoo.datasets, tested in test_scenes): the engine's reference top-1
    equals the training module's own measurement, and the ceil-mode noise applies."""
    from sysnoise import api
    from sysnoise.engine.execute import EngineOptions

    list_file = scenes.materialise("classification", "val", n=64) / "labels.txt"
    results = api.run(
        "zoo-resnet",
        list_file,
        noises=["ceil-mode"],
        out=tmp_path / "run",
        options=EngineOptions(batch_size=32, workers=0, progress=False),
        figures=False,
    )
    loaded = load_model("zoo-resnet")
    paths, labels = zt.read_list(list_file)
    top1 = zt.classifier_top1(loaded.module, zt.pipeline_pixels(paths, loaded.reference), labels, loaded.reference)
    assert results["reference"]["n"] == 64
    assert abs(results["reference"]["top1"] - 100 * top1) < 1e-6
    row = next(r for r in results["noises"] if r["name"] == "ceil-mode")
    assert row["applies"]


def _card_file(tmp_path, card: dict):
    path = tmp_path / "model.md"
    zt.write_card("model", card, "prose", tmp_path)
    return path


def _stage(command: str, n_train: int, top1: float) -> dict:
    return {
        "command": command,
        "n_train": n_train,
        "metrics": {"val_top1": top1},
        "history": [],
        "train_seconds": 1,
        "weights_sha256": command[-1] * 64,
    }


def test_training_stages_carry_over_from_the_card(tmp_path):
    assert zt.earlier_stages(tmp_path / "missing.md") == []
    # a card written before stages were records: `stage1` plus the card's own (last) stage
    legacy = {
        "recipe": {
            "command": "train b",
            "stages": ["train a", "train b"],
            "stage1": {k: v for k, v in _stage("train a", 0, 0.3).items() if k != "n_train"},
        },
        "data": {"n_train": 5000},
        "metrics": {"val_top1": 0.5},
        "history": [],
        "train_seconds": 1,
        "weights_sha256": "b" * 64,
    }
    stages = zt.earlier_stages(_card_file(tmp_path, legacy))
    assert [s["command"] for s in stages] == ["train a", "train b"]
    assert [s["n_train"] for s in stages] == [5000, 5000]
    assert [s["metrics"]["val_top1"] for s in stages] == [0.3, 0.5]
    # a current card: its stage list is returned as written
    current = {"recipe": {"command": "train c", "stages": stages + [_stage("train c", 20000, 0.8)]}}
    again = zt.earlier_stages(_card_file(tmp_path, current))
    assert [s["command"] for s in again] == ["train a", "train b", "train c"]
    text = zt.describe_stages(again)
    assert text.splitlines()[2] == "3. `train c` (20000 training images): val top-1 80.00 %"
    assert (
        zt.train_command("zoo-resnet", 0, 12, "zoo-resnet", 20000)
        == "sysnoise train-zoo zoo-resnet --seed 0 --epochs 12 --init zoo-resnet --n-train 20000"
    )
    assert (
        zt.train_command("zoo-detector", 1, 3, None, None)
        == "sysnoise train-zoo zoo-detector --seed 1 --epochs 3 --init none"
    )
