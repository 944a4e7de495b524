"""A deployed ONNX file alone as the model under test (`--model onnx:FILE`) and as the
`--deployed-onnx` variant, including files exported with a fixed batch size."""

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from sysnoise import api, cli
from sysnoise.engine.execute import EngineOptions
from sysnoise.errors import UserInputError
from sysnoise.inference import calibrate
from sysnoise.models import load_model, wrap_module
from sysnoise.pipeline.spec import Pipeline
from sysnoise.reference_sources import DEFAULT_SOURCE
from sysnoise.tasks.classification import read_dataset

pytest.importorskip("onnxruntime", reason="pip install sysnoise[onnx]")

SIZE = 32
CLASSES = 4
REFERENCE = Pipeline(input_size=SIZE, crop_pct=1.0)


class TinyCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.pool = torch.nn.MaxPool2d(2)
        self.fc = torch.nn.Linear(8, CLASSES)

    def forward(self, x):
        return self.fc(self.pool(torch.relu(self.conv(x))).mean((2, 3)))


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return TinyCNN().eval()


def _export_static(model, batch: int, path):
    """torch.onnx.export with no dynamic axes: the file takes exactly `batch` images of SIZE."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros(batch, 3, SIZE, SIZE),),
            str(path),
            dynamo=False,
            input_names=["images"],
            output_names=["logits"],
        )
    return path


def _images(folder, n: int):
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(folder / f"img{i:02d}.png")
        lines.append(f"img{i:02d}.png {i % CLASSES}")
    (folder / "labels.txt").write_text("\n".join(lines) + "\n")
    return folder / "labels.txt"


@pytest.mark.parametrize("batch", [1, 4])
def test_static_batch_file_gives_the_torch_logits_for_any_number_of_images(tiny, tmp_path, batch):
    path = _export_static(tiny, batch, tmp_path / f"b{batch}.onnx")
    loaded = load_model(f"onnx:{path}")
    assert loaded.num_classes == CLASSES and loaded.weights_sha256 and loaded.module.input_shape[0] == batch
    x = torch.randn(7, 3, SIZE, SIZE)  # 7: not a multiple of 4, so the last chunk is padded
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(x), tiny(x), rtol=0, atol=1e-4)
    # the file fixes 32x32 inputs: the default reference takes that size and says where it came from
    provenance = loaded.reference_provenance
    assert loaded.reference == Pipeline(input_size=SIZE)
    assert provenance["input_size"].endswith("fixed input shape") and provenance["resize"] == DEFAULT_SOURCE


def test_onnx_model_refusals(tiny, tmp_path):
    with pytest.raises(UserInputError, match="ONNX file not found"):
        load_model(f"onnx:{tmp_path / 'missing.onnx'}")
    (tmp_path / "text.onnx").write_text("not a model")
    with pytest.raises(UserInputError, match="text.onnx: ONNX Runtime cannot run it"):
        load_model(f"onnx:{tmp_path / 'text.onnx'}")
    path = _export_static(tiny, 1, tmp_path / "b1.onnx")
    with pytest.raises(UserInputError, match="carries its own weights"):
        load_model(f"onnx:{path}", weights=path)


@pytest.mark.parametrize("batch", [1, 4])
def test_onnx_file_as_the_model_under_test_through_the_cli(tiny, tmp_path, batch):
    data = _images(tmp_path / "data", 10)
    path = _export_static(tiny, batch, tmp_path / f"b{batch}.onnx")
    (tmp_path / "ref.yaml").write_text("crop_pct: 1.0\n")
    out = tmp_path / "out"
    code = cli.main(
        [
            "run",
            "--model",
            f"onnx:{path}",
            "--data",
            str(data),
            "--reference",
            str(tmp_path / "ref.yaml"),
            "--out",
            str(out),
            "--noise",
            "resize=pillow-nearest",
            "--noise",
            "precision",
            "--noise",
            "int8",
            "--noise",
            "runtime",
            "--noise",
            "ceil-mode",
            "--workers",
            "0",
            "--batch-size",
            "3",
            "--quiet",
        ]
    )
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["reference"]["n"] == 10
    assert results["model"]["reference_provenance"]["crop_pct"] == f"--reference {tmp_path / 'ref.yaml'}"
    assert [v["id"] for v in results["variants"]] == ["resize/pillow-nearest"]
    rows = {row["name"]: row for row in results["noises"]}
    # torch-level noises cannot reach inside a session: n/a, not a column of build failures
    assert not rows["precision"]["applies"] and not rows["int8"]["applies"] and not rows["ceil-mode"]["applies"]
    assert "onnxruntime" in rows["runtime"]["not_applicable"]
    # the reference column's predictions are the torch module's on the reference pipeline's inputs
    stored = np.load(out / "outputs.npz")
    samples = read_dataset(data).samples
    inputs = torch.cat(calibrate.batches(samples, REFERENCE, batch_size=len(samples)))
    with torch.no_grad():
        expected = tiny(inputs).argmax(1).numpy()
    order = [str(s.id) for s in samples]
    assert stored["sample_ids"].tolist() == order
    assert not any(stored["c0.error"])  # c0: the reference column, every sample measured
    np.testing.assert_array_equal(stored["c0.topk"][:, 0], expected)


@pytest.mark.parametrize("batch", [1, 4])
def test_static_batch_file_as_the_deployed_variant(tiny, tmp_path, batch):
    data = _images(tmp_path / "data", 10)
    path = _export_static(tiny, batch, tmp_path / f"b{batch}.onnx")
    model = wrap_module(tiny, reference=REFERENCE, num_classes=CLASSES)
    results = api.run(
        model,
        data,
        out=tmp_path / "out",
        noises=[],
        deployed_onnx=path,
        figures=False,
        options=EngineOptions(progress=False, workers=0, batch_size=3),
    )
    variant = results["variants"][0]
    assert variant["id"] == "deployed/onnx-file" and variant["n_failed"] == 0 and variant["flip_rate"] == 0
    built = next(s["built"] for s in results["run"]["model_stages"].values() if "built" in s)
    assert built["batch"] == batch
