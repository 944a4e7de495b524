"""`sysnoise run --task detection` from the command line: a run with bad annotations warns and
finishes; bad requests are clear errors."""

from __future__ import annotations

import json
import shutil
import warnings

import pytest

from sysnoise.cli import main
from sysnoise.zoo import scenes
from sysnoise.zoo.resnet import weights_path


@pytest.fixture
def small_coco(tmp_path):
    """Four scenes, one annotation pointing at a category that does not exist."""
    source = scenes.materialise("detection", "val", n=4)
    shutil.copytree(source / "images", tmp_path / "images")
    coco = json.loads((source / "annotations.json").read_text())
    coco["annotations"][0]["category_id"] = 99
    (tmp_path / "annotations.json").write_text(json.dumps(coco))
    return tmp_path / "annotations.json"


@pytest.mark.skipif(not weights_path("zoo-detector").is_file(), reason="zoo-detector weights not trained yet")
def test_run_detection_from_the_command_line(small_coco, tmp_path, capsys):
    out = tmp_path / "out"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(
            [
                "run",
                "--task",
                "detection",
                "--model",
                "zoo-detector",
                "--data",
                str(small_coco),
                "--noise",
                "nms=nms-plus1",
                "--noise",
                "box-decoding=decode-offset-1",
                "--workers",
                "0",
                "--no-progress",
                "--out",
                str(out),
            ]
        )
    assert code == 0
    assert any("unknown category id" in str(w.message) for w in caught)
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == "detection" and results["dataset"]["warnings"][0]["count"] == 1
    assert {v["id"] for v in results["variants"]} == {"nms/nms-plus1", "box-decoding/decode-offset-1"}
    assert (out / "report.html").is_file() and (out / "detections-reference.json").is_file()
    assert "mAP" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "efficientnet_lite0", "--data", "{coco}"], "is not a detector"),
        (["--model", "zoo-resnet", "--data", "{tmp}/nothing.json"], "dataset not found"),
    ],
)
def test_bad_detection_requests_are_clear_errors(argv, message, small_coco, tmp_path, capsys):
    argv = [a.replace("{coco}", str(small_coco)).replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["run", "--task", "detection", *argv, "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sysnoise: error:") and message in err


@pytest.mark.parametrize(
    "task, model, metric", [("detection", "zoo-detector", "mAP"), ("segmentation", "zoo-segmenter", "mIoU")]
)
def test_the_issue_commands_read_scenes_for_their_task(task, model, metric, tmp_path, monkeypatch, capsys):
    """`sysnoise run --task detection --model zoo-detector --data scenes` (and segmentation): the
    plain name resolves to that task's split, here shrunk to 3 images."""
    if not weights_path(model).is_file():
        pytest.skip(f"{model} weights not trained yet")
    monkeypatch.setenv("SYSNOISE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(scenes, "DEFAULT_SIZES", {k: 3 for k in scenes.DEFAULT_SIZES})
    out = tmp_path / "out"
    assert (
        main(
            [
                "run",
                "--task",
                task,
                "--model",
                model,
                "--data",
                "scenes",
                "--noise",
                "ceil-mode",
                "--workers",
                "0",
                "--no-progress",
                "--stepwise",
                "none",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == task and results["reference"]["n"] == 3
    assert metric in capsys.readouterr().out
