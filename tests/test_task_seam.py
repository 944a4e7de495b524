"""The task seam: a task defined only here (a toy "mean intensity" regression: the model predicts an
image's mean grey level, the metric is the mean absolute error) runs end to end through
`sysnoise run`'s entry point and renders its reports, with no edit to api, cli, engine or report.
Its numbers are checked against a direct computation on the stored outputs."""

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sysnoise import cli
from sysnoise.analysis import statistics as st
from sysnoise.analysis.metric import Metric
from sysnoise.analysis.stats import VariantStats
from sysnoise.data.images import Dataset, Sample
from sysnoise.loaded_model import MODELS, LoadedModel
from sysnoise.pipeline.spec import Pipeline
from sysnoise.tasks.base import Task, forward_by_shape
from sysnoise.tasks.definition import TASKS, Prepared, TaskDefinition

NAME, MODEL = "intensity-test", "intensity-probe"
REFERENCE = Pipeline(input_size=16, crop_pct=1.0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))  # raw 0..255 levels
MAE = Metric(
    "mae",
    "MAE (grey levels)",
    "-",
    "paired bootstrap over images",
    "% of images whose prediction moved by more than one grey level",
    "-",
    places=2,
    higher_is_better=False,
)


class IntensityTask(Task):
    name = NAME

    def forward(self, model, inputs, batch_size, device):
        return {"value": forward_by_shape(model, inputs, batch_size, device)["logits"][:, 0].astype(np.float32)}

    def failed_outputs(self, n):
        return {"value": np.full(n, np.nan, np.float32)}


class IntensityAnalysis:
    metric = MAE
    resamples = 500

    def _errors(self, outputs, column):
        valid = outputs.valid
        return np.abs(outputs.arrays[column]["value"][valid] - outputs.labels[valid, 0])

    def reference_metrics(self, outputs):
        errors = self._errors(outputs, "reference")
        return {
            "n": int(outputs.valid.sum()),
            "n_labeled": int(outputs.valid.sum()),
            "mae": float(errors.mean()),
            "mae_ci": None,
        }

    def variant_stats(self, outputs, column_id, noise, option):
        ref, var = self._errors(outputs, "reference"), self._errors(outputs, column_id)
        diff = var - ref  # a loss: positive when the variant is worse
        low, high = st.paired_bootstrap_ci(diff, resamples=self.resamples)
        valid = outputs.valid
        moved = np.abs(outputs.arrays[column_id]["value"][valid] - outputs.arrays["reference"]["value"][valid]) > 1
        flip_low, flip_high = st.wilson_interval(int(moved.sum()), int(moved.size))
        return VariantStats(
            id=column_id,
            noise=noise,
            option=option,
            n=int(valid.sum()),
            n_labeled=int(valid.sum()),
            metric="mae",
            value=float(var.mean()),
            delta=float(diff.mean()),
            delta_ci=(low, high),
            p_value=None,
            correct_to_wrong=int((diff > 0).sum()),
            wrong_to_correct=int((diff < 0).sum()),
            flip_rate=float(100 * moved.mean()),
            flip_ci=(100 * flip_low, 100 * flip_high),
            n_failed=0,
            identical=float(100 * (diff == 0).mean()),
        )


class Intensity(TaskDefinition):
    name = NAME

    def read(self, data, *, allow_outside_root=False):
        data = Path(data)
        samples = [
            Sample(p.name, p, (int(round(np.asarray(Image.open(p).convert("L")).mean())),))
            for p in sorted(data.glob("*.png"))
        ]
        return Dataset(data, samples, "listfile")

    def prepare(self, loaded, dataset):
        return Prepared(IntensityTask(), IntensityAnalysis())


class MeanGrey(torch.nn.Module):
    """Predicts the mean grey level of its (0..255-scaled) input."""

    def forward(self, x):
        return x.mean(dim=(1, 2, 3))[:, None]


@pytest.fixture
def registered():
    TASKS.register(NAME, "toy regression: mean grey level, mean absolute error")(Intensity())
    MODELS.register(MODEL, "mean grey level of the input")(
        lambda weights: LoadedModel(MODEL, MeanGrey().eval(), REFERENCE, num_classes=1)
    )
    yield
    TASKS.unregister(NAME)
    MODELS.unregister(MODEL)


def write_images(folder, n=12):
    rng = np.random.default_rng(0)
    folder.mkdir()
    for i in range(n):
        y, x = np.mgrid[0:48, 0:48]  # square: the 16x16 input is the whole image resized, no crop
        image = ((x * (3 + i) + y * 5 + rng.integers(0, 60, (48, 48))) % 256).astype(np.uint8)
        Image.fromarray(np.stack([image] * 3, -1)).save(folder / f"img{i:02d}.png")
    return folder


def test_a_task_defined_in_a_test_runs_end_to_end_through_the_cli(registered, tmp_path, capsys):
    data, out = write_images(tmp_path / "images"), tmp_path / "out"
    code = cli.main(
        [
            "run",
            "--task",
            NAME,
            "--model",
            MODEL,
            "--data",
            str(data),
            "--out",
            str(out),
            "--noise",
            "resize=opencv-nearest,pillow-nearest",
            "--workers",
            "0",
            "--no-progress",
        ]
    )
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == NAME and results["reference"]["metric_info"]["label"] == MAE.label
    outputs = np.load(out / "outputs.npz")
    truth = np.array([int(round(np.asarray(Image.open(p).convert("L")).mean())) for p in sorted(data.glob("*.png"))])
    predicted = {str(c): outputs[f"c{i}.value"] for i, c in enumerate(outputs["column_ids"])}
    assert set(predicted) == {"reference", "resize/opencv-nearest", "resize/pillow-nearest"}
    # the model is what it says: the reference prediction is the mean of the 16x16 Pillow-resized grey image
    first = sorted(data.glob("*.png"))[0]
    resized = np.asarray(Image.open(first).convert("RGB").resize((16, 16), Image.BILINEAR), np.float64)
    assert predicted["reference"][0] == pytest.approx(resized.mean(), abs=0.01)
    # the metric and each delta, recomputed directly from the stored predictions
    assert results["reference"]["mae"] == pytest.approx(np.abs(predicted["reference"] - truth).mean(), abs=1e-4)
    for variant in results["variants"]:
        errors = np.abs(predicted[variant["id"]] - truth)
        assert variant["mae"] == pytest.approx(errors.mean(), abs=1e-4)
        assert variant["delta"] == pytest.approx(
            errors.mean() - np.abs(predicted["reference"] - truth).mean(), abs=1e-4
        )
    # the reports render with the task's own metric label, from results.json alone
    report = (out / "report.md").read_text()
    assert f"Reference {MAE.label}: {results['reference']['mae']:.2f}" in report
    assert f"| noise | option | {MAE.label} | delta |" in report
    rows = list(csv.DictReader(io.StringIO((out / "report.csv").read_text())))
    assert rows[0]["metric"] == "mae" and float(rows[1]["value"]) == pytest.approx(results["variants"][0]["mae"])
    assert "<html" in (out / "report.html").read_text()


def test_unknown_reading_settings_are_refused_for_the_task(registered, tmp_path):
    data = write_images(tmp_path / "images", n=2)
    code = cli.main(
        [
            "run",
            "--task",
            NAME,
            "--model",
            MODEL,
            "--data",
            str(data),
            "--out",
            str(tmp_path / "o"),
            "--noise",
            "resize=opencv-nearest",
            "--class-map",
            str(tmp_path / "map.json"),
        ]
    )
    assert code == 2
