"""The Python API as the README shows it: `import sysnoise` is cheap and gives run, wrap_module,
Pipeline, list_noises; run returns Results whose attributes agree with a direct evaluation."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import sysnoise


def test_import_is_cheap_and_the_public_names_resolve():
    done = subprocess.run(
        [sys.executable, "-c", "import sys, sysnoise; print('torch' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "False"
    assert callable(sysnoise.run) and callable(sysnoise.wrap_module) and sysnoise.Pipeline().input_size == 224
    noises = sysnoise.list_noises()
    assert "pillow-bicubic" in noises["resize"]["options"] and noises["int8"]["stage"] == "inference"
    with pytest.raises(AttributeError):
        sysnoise.no_such_name


class TenClasses(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=2)
        self.fc = torch.nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


def test_run_on_a_wrapped_module_with_ten_classes(tmp_path):
    rng = np.random.default_rng(1)
    lines = []
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(tmp_path / f"i{i}.png")
        lines.append(f"i{i}.png {i % 10}")
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    reference = sysnoise.Pipeline(input_size=32, crop_pct=1.0)
    wrapped = sysnoise.wrap_module(TenClasses(), reference=reference)
    assert wrapped.num_classes == 10  # from the output's width, not assumed 1000
    results = sysnoise.run(
        wrapped, tmp_path / "list.txt", noises=["resize=opencv-area"], out=tmp_path / "out", figures=False
    )
    assert isinstance(results, sysnoise.Results) and isinstance(results, dict)
    # the reference top-1, evaluated here directly from the same pipeline's tensors
    from sysnoise.pipeline.preprocess import tensors

    right = 0
    for i in range(12):
        (tensor,) = tensors((tmp_path / f"i{i}.png").read_bytes(), [reference]).values()
        with torch.no_grad():
            right += int(TenClasses()(torch.as_tensor(tensor)[None]).argmax()) == i % 10
    assert results.reference == pytest.approx(100 * right / 12)
    assert results.metric == "top1" and set(results.deltas) == {"resize/opencv-area"}
    row = results["variants"][0]
    assert results.deltas["resize/opencv-area"] == row["delta"] and results.flip_rates[row["id"]] == row["flip_rate"]
    assert results.noise("resize")["summary"]["delta"]["max"] == pytest.approx(row["delta"])
    pd = pytest.importorskip("pandas")
    frame = results.to_frame()
    assert isinstance(frame, pd.DataFrame) and list(frame["id"]) == ["resize/opencv-area"]


def test_the_documented_example_runs(tmp_path, gradient_images):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "examples" / "evaluate_module.py"
    spec = importlib.util.spec_from_file_location("evaluate_module", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    results = example.main(str(gradient_images[0].parent), str(tmp_path / "out"))
    assert (tmp_path / "out" / "resize.png").stat().st_size > 1000
    assert {v["noise"] for v in results["variants"]} == {"resize", "decoder", "precision"}
    assert results.deltas["precision/fp16"] is None  # unlabeled images: flip rates only
