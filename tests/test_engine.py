"""The engine walks the data once, computes shared work once, and its outputs recompute the report."""

import json

import numpy as np
import pytest
import torch

from sysnoise import api, measure
from sysnoise.analysis.classification import correct
from sysnoise.engine.execute import EngineOptions
from sysnoise.engine.outputs import RunOutputs
from sysnoise.models import wrap_module
from sysnoise.pipeline import decode as decode_module
from sysnoise.pipeline.spec import Pipeline
from sysnoise.registry import Entry

REFERENCE = Pipeline(input_size=32, crop_pct=0.875)


def tiny_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(3, stride=2, padding=1),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 3),
    )


@pytest.fixture
def labeled_list(gradient_images, tmp_path):
    folder = gradient_images[0].parent
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    lines = [f"{p.name} {i % 3}" for i, p in enumerate(gradient_images)] + ["broken.jpg 1"]
    (folder / "list.txt").write_text("\n".join(lines) + "\n")
    return folder / "list.txt"


def count_calls(monkeypatch, name):
    calls = []
    entry = decode_module.DECODERS.get(name)

    def counted(data):
        calls.append(len(data))
        return entry.fn(data)

    monkeypatch.setitem(decode_module.DECODERS._entries, name, Entry(name, counted, entry.description, entry.meta))
    return calls


def test_each_distinct_decode_and_forward_happens_once(monkeypatch, gradient_images, tmp_path):
    pillow_calls = count_calls(monkeypatch, "pillow")
    opencv_calls = count_calls(monkeypatch, "opencv")
    options = EngineOptions(batch_size=2, workers=0, progress=False)
    resizes = ["opencv-nearest", "opencv-area", "pillow-box"]
    results = api.run(
        wrap_module(tiny_model(), reference=REFERENCE),
        gradient_images[0].parent,
        noises=["resize=" + ",".join(resizes), "decoder=opencv", "precision=fp16"],
        out=tmp_path / "run",
        options=options,
        figures=False,  # the report's pictures decode a few samples again, after the engine's single pass
    )
    n = len(gradient_images)
    assert len(results["variants"]) == 5
    assert len(pillow_calls) == n  # the reference decode, shared by 3 resizes and fp16
    assert len(opencv_calls) == n
    forwards = options.forward_counter
    fp32 = ("fp32", (), "torch")
    # OpenCV and Pillow decode these ordinary JPEGs bit-identically: the decoder variant reuses the
    # reference forward. Reference + 3 resizes are 4 distinct inputs per image.
    assert forwards[fp32] == 4 * n
    assert forwards[("fp16", (), "torch")] == n
    decoder = next(v for v in results["variants"] if v["noise"] == "decoder")
    assert decoder["identical"] == 100.0 and decoder["flip_rate"] == 0.0


def test_results_recompute_from_stored_outputs(labeled_list, tmp_path):
    out = tmp_path / "run"
    api.run(
        wrap_module(tiny_model(), reference=REFERENCE, num_classes=3),
        labeled_list,
        noises=["resize=opencv-nearest,pillow-nearest", "ceil-mode"],
        out=out,
        options=EngineOptions(batch_size=2, workers=0, progress=False),
    )
    stored = json.loads((out / "results.json").read_text())
    assert stored["schema"].startswith("sysnoise.results/")
    assert stored["dataset"]["n_samples"] == 4
    assert [s["id"] for s in stored["skipped"]] == ["broken.jpg"]  # reference could not decode it
    assert stored["reference"]["n"] == 3
    outputs = RunOutputs.load(out / "outputs.npz")
    valid = outputs.valid
    assert valid.tolist() == [True, True, True, False]
    ref_hits = correct(outputs.arrays["reference"]["topk"][valid], outputs.labels[valid], 1)
    assert stored["reference"]["top1"] == pytest.approx(100 * ref_hits.mean())
    for variant in stored["variants"]:
        top = outputs.arrays[variant["id"]]["topk"][valid]
        hits = correct(top, outputs.labels[valid], 1)
        assert variant["top1"] == pytest.approx(100 * hits.mean())
        assert variant["delta"] == pytest.approx(100 * (ref_hits.mean() - hits.mean()))
        flips = (top[:, 0] != outputs.arrays["reference"]["topk"][valid][:, 0]).mean()
        assert variant["flip_rate"] == pytest.approx(100 * flips)
    ceil = next(n for n in stored["noises"] if n["name"] == "ceil-mode")
    assert ceil["applies"] is True
    resize = next(n for n in stored["noises"] if n["name"] == "resize")
    deltas = [v["delta"] for v in stored["variants"] if v["noise"] == "resize"]
    assert resize["summary"]["delta"]["mean"] == pytest.approx(np.mean(deltas))
    assert resize["summary"]["delta"]["max"] == pytest.approx(max(deltas))
    report_lines = (out / "report.md").read_text().splitlines()
    assert sum(line.startswith("| resize |") for line in report_lines) == 2  # one row per option


def test_noise_that_does_not_apply_is_reported_na(gradient_images, tmp_path):
    model = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 2))
    results = api.run(
        wrap_module(model, reference=REFERENCE, num_classes=2),
        gradient_images[0].parent,
        noises=["ceil-mode"],
        out=tmp_path / "r",
        options=EngineOptions(workers=0, progress=False),
    )
    assert results["variants"] == []
    assert results["noises"][0]["applies"] is False
    assert "n/a" in (tmp_path / "r" / "report.md").read_text()


class Interrupt(Exception):
    pass


def test_interrupted_run_resumes_from_committed_chunks(labeled_list, tmp_path):
    model = wrap_module(tiny_model(), reference=REFERENCE, num_classes=3)
    noises = ["resize=opencv-area"]
    full = api.run(
        model,
        labeled_list,
        noises=noises,
        out=tmp_path / "full",
        options=EngineOptions(batch_size=1, chunk_size=1, workers=0, progress=False),
    )

    seen = []

    def stop_after_two(n):
        seen.append(n)
        if len(seen) == 3:  # the first call reports already-done work; then two batches
            raise Interrupt

    from sysnoise.engine import execute

    original = execute.evaluate
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(measure, "evaluate", lambda *a, **k: original(*a, **{**k, "on_progress": stop_after_two}))
        with pytest.raises(Interrupt):
            api.run(
                model,
                labeled_list,
                noises=noises,
                out=tmp_path / "cut",
                options=EngineOptions(batch_size=1, chunk_size=1, workers=0, progress=False),
            )
    assert len(list((tmp_path / "cut" / "chunks").glob("*.npz"))) == 2

    forwards = EngineOptions(batch_size=1, chunk_size=1, workers=0, progress=False)
    resumed = api.run(model, labeled_list, noises=noises, out=tmp_path / "cut", options=forwards)
    assert sum(forwards.forward_counter.values()) <= 2 * 2  # only the 2 remaining samples ran
    a = RunOutputs.load(tmp_path / "full" / "outputs.npz")
    b = RunOutputs.load(tmp_path / "cut" / "outputs.npz")
    for column in a.column_ids:
        for name in a.arrays[column]:
            np.testing.assert_array_equal(a.arrays[column][name], b.arrays[column][name])
    assert full["variants"] == resumed["variants"]


def test_partial_results_of_another_run_are_never_overwritten(labeled_list, tmp_path):
    from sysnoise.errors import UserInputError

    model = wrap_module(tiny_model(), reference=REFERENCE, num_classes=3)
    opts = lambda: EngineOptions(batch_size=1, chunk_size=1, workers=0, progress=False)  # noqa: E731
    out = tmp_path / "r"
    (out / "chunks").mkdir(parents=True)
    api.run(model, labeled_list, noises=["resize=opencv-area"], out=out, options=opts())
    (out / "chunks" / "00000.npz").write_bytes(b"partial")  # pretend an interrupted run left work
    with pytest.raises(UserInputError, match="--fresh"):
        api.run(model, labeled_list, noises=["resize=pillow-box"], out=out, options=opts())
    api.run(model, labeled_list, noises=["resize=pillow-box"], out=out, options=opts(), fresh=True)


def test_worker_processes_give_the_same_outputs(labeled_list, tmp_path):
    model = wrap_module(tiny_model(), reference=REFERENCE, num_classes=3)
    runs = []
    for workers in (0, 1):
        api.run(
            model,
            labeled_list,
            noises=["resize=opencv-area", "precision=bf16"],
            out=tmp_path / f"w{workers}",
            options=EngineOptions(batch_size=2, workers=workers, progress=False),
        )
        runs.append(RunOutputs.load(tmp_path / f"w{workers}" / "outputs.npz"))
    for column in runs[0].column_ids:
        np.testing.assert_array_equal(runs[0].arrays[column]["prob"], runs[1].arrays[column]["prob"])
