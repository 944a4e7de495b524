"""Bad inputs never abort a run: each is skipped with a reason naming the file, and the metrics
use the remaining files."""

import json

import pytest

from sysnoise.cli import main
from sysnoise.engine.outputs import RunOutputs
from tests.reliability import corpus


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    expected = corpus.build(root / "images")
    lines = [f"images/{name} 1" for name in expected if name != "rgba.png"]
    lines += [
        "images/missing.jpg 1",  # named in the list, absent on disk
        "images/good.jpg 2",  # duplicate entry
        "../outside.jpg 1",  # escapes the dataset root
        "images/rgba.png 5000",  # label the model cannot output (1000 classes)
    ]
    (root / "outside.jpg").write_bytes(b"")
    (root / "val.txt").write_text("\n".join(lines) + "\n")
    out = root / "out"
    code = main(
        [
            "run",
            "--model",
            "efficientnet_lite0",
            "--data",
            str(root),
            "--list-file",
            str(root / "val.txt"),
            "--noise",
            "decoder=opencv",
            "--out",
            str(out),
            "--no-progress",
            "--workers",
            "0",
        ]
    )
    return code, json.loads((out / "results.json").read_text()), expected


def test_run_completes_and_lists_every_bad_file_with_its_reason(corpus_run):
    code, results, expected = corpus_run
    assert code == 0
    skipped = {s["id"]: s["reason"] for s in results["skipped"]}
    for name, outcome in expected.items():
        if outcome == "ok":
            continue
        assert f"images/{name}" in skipped, name
        assert outcome in skipped[f"images/{name}"]
    assert skipped["images/missing.jpg"] == "file not found"
    assert "outside the model's 1000 classes" in skipped["images/rgba.png"]
    assert any("duplicate" in s["reason"] for s in results["skipped"] if s["id"] == "images/good.jpg")
    assert "escapes the dataset root" in skipped["../outside.jpg"]


def test_metrics_use_exactly_the_remaining_files(corpus_run):
    _, results, expected = corpus_run
    decodable = [n for n, outcome in expected.items() if outcome == "ok" and n != "rgba.png"]
    assert results["reference"]["n"] == len(decodable)
    assert results["reference"]["n_labeled"] == len(decodable)
    assert results["dataset"]["n_samples"] == len(expected) - 1  # rgba.png dropped for its label


def test_awkward_names_and_symlink_loops(tmp_path):
    folder = tmp_path / "unlabeled"
    corpus.build(folder)
    odd_id, loop_id = corpus.add_awkward_names(folder)
    out = tmp_path / "out"
    code = main(
        [
            "run",
            "--model",
            "efficientnet_lite0",
            "--data",
            str(folder),
            "--noise",
            "decoder=opencv",
            "--out",
            str(out),
            "--no-progress",
            "--workers",
            "0",
        ]
    )
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    skipped = {s["id"]: s["reason"] for s in results["skipped"]}
    assert "cannot read file" in skipped[loop_id]
    assert odd_id not in skipped  # processed like any other file
    assert results["reference"]["n"] >= 8
    assert odd_id in RunOutputs.load(out / "outputs.npz").sample_ids  # stored and read back intact
