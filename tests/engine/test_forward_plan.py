"""The forward plan (engine/forward_plan.py) changes how fast a model stage runs, never what it
computes beyond float rounding: checked against a direct plain-torch NCHW forward on the demo's
photos, and through whole runs whose deltas and per-sample top-1 must not move."""

import json

import numpy as np
import pytest
import torch

from sysnoise import api
from sysnoise.engine import forward_plan
from sysnoise.engine.execute import EngineOptions
from sysnoise.engine.forward_plan import CHANNELS_LAST, CONTIGUOUS, ForwardPlan, Planned, Planner
from sysnoise.engine.outputs import RunOutputs
from sysnoise.models import wrap_module
from sysnoise.pipeline.preprocess import tensors
from sysnoise.pipeline.spec import Pipeline
from sysnoise.tasks.base import forward_by_shape
from sysnoise.tasks.classification import ClassificationTask

RESIZES = ["pillow-nearest", "opencv-area"]


@pytest.fixture(scope="module")
def lite0_inputs(demo_list_file):
    """EfficientNet-Lite0 and 8 demo photos under the reference and two resize variants."""
    from sysnoise.models import load_model

    loaded = load_model("efficientnet_lite0")
    photos = sorted(demo_list_file.parent.glob("*.jpg"))[:8]
    pipelines = [loaded.reference] + [loaded.reference.replace(resize=r) for r in RESIZES]
    inputs = [tensors(p.read_bytes(), [q])[q.prefix("normalise")] for q in pipelines for p in photos]
    return loaded, inputs


def tiny_cnn():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, stride=2),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 5),
    ).eval()


@pytest.mark.parametrize(
    "plan", [ForwardPlan(4, CHANNELS_LAST), ForwardPlan(8, CONTIGUOUS), ForwardPlan(16, CHANNELS_LAST)]
)
def test_planned_forward_equals_a_plain_nchw_forward_on_demo_photos(lite0_inputs, plan):
    loaded, inputs = lite0_inputs
    model = loaded.module
    with torch.inference_mode():
        plain = model(torch.from_numpy(np.stack(inputs)).contiguous()).numpy()  # one NCHW batch of all 24
        forward_plan.to_layout(model, plan.layout)
        try:
            planned = forward_by_shape(Planned(model, plan), inputs, plan.batch_size, "cpu")["logits"]
            stored = ClassificationTask().forward(Planned(model, plan), inputs, plan.batch_size, "cpu")
        finally:
            forward_plan.to_layout(model, CONTIGUOUS)
    # float rounding only: docs/scale.md states the measured gap (logits of magnitude ~10-20)
    np.testing.assert_allclose(planned, plain, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(planned.argmax(1), plain.argmax(1))
    np.testing.assert_array_equal(stored["topk"][:, 0], plain.argmax(1))


def test_the_plan_leaves_deltas_and_top1_unchanged(lite0_inputs, demo_list_file, tmp_path, monkeypatch):
    loaded, _ = lite0_inputs
    lines = [line for line in demo_list_file.read_text().splitlines() if not line.startswith("#")][:10]
    subset = demo_list_file.parent / "plan-subset.txt"
    subset.write_text("\n".join(lines) + "\n")
    plans = {"nchw-16": ForwardPlan(16, CONTIGUOUS), "channels-last-4": ForwardPlan(4, CHANNELS_LAST)}
    results, outputs = {}, {}
    for name, plan in plans.items():
        monkeypatch.setattr(
            forward_plan,
            "probe",
            lambda model, inputs, device, batch_size=None, plan=plan: (
                forward_plan.to_layout(model, plan.layout),
                plan,
            )[1],
        )
        monkeypatch.setenv("SYSNOISE_CACHE", str(tmp_path / name))  # no plan cached by the other run
        options = EngineOptions(workers=0, progress=False)
        results[name] = api.run(
            loaded, subset, noises=["resize=" + ",".join(RESIZES)], out=tmp_path / name, options=options, figures=False
        )
        assert options.forward_plans["('fp32', (), 'torch')"]["layout"] == plan.layout
        outputs[name] = RunOutputs.load(tmp_path / name / "outputs.npz")
    forward_plan.to_layout(loaded.module, CONTIGUOUS)
    a, b = results["nchw-16"], results["channels-last-4"]
    assert [v["delta"] for v in a["variants"]] == [v["delta"] for v in b["variants"]]
    assert [v["flip_rate"] for v in a["variants"]] == [v["flip_rate"] for v in b["variants"]]
    outputs_a, outputs_b = outputs["nchw-16"], outputs["channels-last-4"]
    for column in outputs_a.column_ids:
        np.testing.assert_array_equal(outputs_a.arrays[column]["topk"][:, 0], outputs_b.arrays[column]["topk"][:, 0])
    # and the reference column's top-1 is what a plain NCHW forward of the same inputs gives
    photos = [demo_list_file.parent / line.split()[0] for line in lines]
    key = loaded.reference.prefix("normalise")
    x = torch.from_numpy(np.stack([tensors(p.read_bytes(), [loaded.reference])[key] for p in photos]))
    with torch.inference_mode():
        plain = loaded.module(x).argmax(1).numpy()
    np.testing.assert_array_equal(outputs_a.arrays[outputs_a.column_ids[0]]["topk"][:, 0], plain)


def fake_costs(table):
    """A `measure` whose seconds per input come from `table[layout][batch]`."""

    def measure(model, inputs, layout, batch_size, device):
        return table[layout][batch_size]

    return measure


def test_probe_keeps_channels_last_only_where_it_is_clearly_faster(monkeypatch):
    model, inputs = tiny_cnn(), [np.zeros((3, 16, 16), np.float32)] * 4
    flat = {4: 1.0, 8: 1.0, 16: 1.0, 32: 1.0}
    monkeypatch.setattr(forward_plan, "measure", fake_costs({CONTIGUOUS: flat, CHANNELS_LAST: {**flat, 8: 0.97}}))
    assert forward_plan.probe(model, inputs, "cpu", batch_size=8).layout == CONTIGUOUS  # 3 % is within the margin
    monkeypatch.setattr(forward_plan, "measure", fake_costs({CONTIGUOUS: flat, CHANNELS_LAST: {**flat, 8: 0.8}}))
    plan = forward_plan.probe(model, inputs, "cpu", batch_size=8)
    assert (plan.layout, plan.batch_size, plan.chosen_by) == (CHANNELS_LAST, 8, "--batch-size; layout by probe")
    assert next(p for p in model.parameters() if p.dim() == 4).is_contiguous(memory_format=torch.channels_last)


def test_probe_picks_the_fastest_batch_and_stops_when_larger_ones_stop_paying(monkeypatch):
    model, inputs = tiny_cnn(), [np.zeros((3, 16, 16), np.float32)] * 4
    calls = []
    costs = {CONTIGUOUS: {4: 2.0, 8: 1.5, 16: 1.2, 32: 1.3}, CHANNELS_LAST: {4: 2.0, 8: 1.5, 16: 1.0, 32: 0.1}}

    def measure(model, inputs, layout, batch_size, device):
        calls.append((layout, batch_size))
        return costs[layout][batch_size] * 1e-4

    monkeypatch.setattr(forward_plan, "measure", measure)
    plan = forward_plan.probe(model, inputs, "cpu")
    assert (plan.layout, plan.batch_size, plan.chosen_by) == (CONTIGUOUS, 16, "probe")  # cl not faster at 8
    assert (CONTIGUOUS, 32) in calls and (CHANNELS_LAST, 32) not in calls
    assert plan.per_image_ms == {
        "channels-last/8": 0.15,
        "contiguous/16": 0.12,
        "contiguous/32": 0.13,
        "contiguous/4": 0.2,
        "contiguous/8": 0.15,
    }


def test_planner_caches_the_choice_per_machine_and_stage(tmp_path):
    model, inputs = tiny_cnn(), [np.random.default_rng(0).normal(size=(3, 16, 16)).astype(np.float32)] * 6
    first, second = {}, {}
    out_first = Planner(None, "cpu", first, tmp_path).forward(ClassificationTask(), "stage", model, inputs)
    assert first["stage"]["chosen_by"] == "probe" and first["stage"]["batch_size"] in forward_plan.PROBE_BATCHES
    assert json.loads((tmp_path / forward_plan.CACHE_FILE).read_text())  # kept for the next run
    out_second = Planner(None, "cpu", second, tmp_path).forward(ClassificationTask(), "stage", model, inputs)
    assert second["stage"] == {**first["stage"], "chosen_by": "cache"}
    np.testing.assert_array_equal(out_first["topk"], out_second["topk"])
    other = {}
    Planner(None, "cpu", other, tmp_path).forward(ClassificationTask(), "another stage", model, inputs)
    assert other["another stage"]["chosen_by"] == "probe"  # another model stage is probed on its own


def test_a_given_batch_size_is_kept_and_non_image_inputs_are_not_probed(tmp_path):
    model, inputs = tiny_cnn(), [np.zeros((3, 16, 16), np.float32)] * 3
    record = {}
    Planner(3, "cpu", record, tmp_path).forward(ClassificationTask(), "stage", model, inputs)
    assert record["stage"]["batch_size"] == 3 and record["stage"]["chosen_by"] == "--batch-size; layout by probe"
    assert Planner(None, "cpu", {}, tmp_path).choose("text", model, [[1, 2, 3]]) == ForwardPlan(16)


def test_run_records_the_forward_plan_and_threads(gradient_images, tmp_path, monkeypatch):
    monkeypatch.delenv("SYSNOISE_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    options = EngineOptions(workers=0, progress=False)
    api.run(
        wrap_module(tiny_cnn(), reference=Pipeline(input_size=32, crop_pct=0.875)),
        gradient_images[0].parent,
        noises=["resize=opencv-area"],
        out=tmp_path / "run",
        options=options,
        figures=False,
    )
    run = json.loads((tmp_path / "run" / "results.json").read_text())["run"]
    cores = len(__import__("os").sched_getaffinity(0))
    assert run["forward"]["threads"] == cores and run["forward"]["workers"] == 0  # no worker: every core
    stage = run["forward"]["stages"]["('fp32', (), 'torch')"]
    assert stage["chosen_by"] in ("probe", "cache") and stage["layout"] in (CONTIGUOUS, CHANNELS_LAST)
    assert forward_plan.model_threads(1, cores=2) == 1 and forward_plan.model_threads(3, cores=2) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the user's (or torchrun's) setting is kept
    assert forward_plan.model_threads(0, cores=2) == 1
    monkeypatch.setenv("SYSNOISE_THREADS", "3")
    assert forward_plan.model_threads(1, cores=2) == 3


def test_an_adapting_stage_is_never_probed(tmp_path):
    """A probe's extra forwards would adapt a test-time-adapting model (--adapt): its plan is fixed."""
    calls = []
    model = tiny_cnn()
    model.register_forward_hook(lambda *_: calls.append(1))
    inputs = [np.zeros((3, 16, 16), np.float32)] * 5
    record = {}
    Planner(16, "cpu", record, tmp_path, probe=False).forward(ClassificationTask(), "stage", model, inputs)
    assert len(calls) == 1  # the one forward of the 5 inputs, nothing else
    assert (record["stage"]["batch_size"], record["stage"]["layout"]) == (16, CONTIGUOUS)
    assert not (tmp_path / forward_plan.CACHE_FILE).exists()
