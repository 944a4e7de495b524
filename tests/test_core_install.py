"""A core install (no extras): the classification pre-processing and precision noises run, the
options that need an extra are "n/a" with the line that installs it. Simulated in a fresh
interpreter whose imports of the extras' modules fail, as they would when not installed."""

import json
import subprocess
import sys

SCRIPT = r"""
import importlib.abc, json, sys
BLOCKED = {"onnx", "onnxruntime", "pycocotools", "transformers", "tokenizers", "timm", "datasets", "pyarrow",
           "openvino", "nncf", "executorch", "torchao", "ncnn", "pnnx"}

class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, NotInstalled())
import numpy as np, torch
from PIL import Image
import sysnoise
from sysnoise.engine.execute import EngineOptions

folder = sys.argv[1]
rng = np.random.default_rng(0)
for i in range(6):
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(f"{folder}/i{i}.png")
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                            torch.nn.Linear(4, 5))
wrapped = sysnoise.wrap_module(model, reference=sysnoise.Pipeline(input_size=32, crop_pct=1.0))
results = sysnoise.run(wrapped, folder, noises=["decoder=opencv", "resize=opencv-area", "precision=fp16", "runtime"],
                       out=folder + "/out", figures=False, options=EngineOptions(progress=False, workers=0))
print(json.dumps({"variants": [v["id"] for v in results["variants"]],
                  "runtime": next(n for n in results["noises"] if n["name"] == "runtime"),
                  "loaded": sorted(m for m in BLOCKED if m in sys.modules)}))
"""


def test_core_install_measures_preprocessing_and_precision_and_says_what_is_missing(tmp_path):
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["variants"] == ["decoder/opencv", "resize/opencv-area", "precision/fp16"]
    unavailable = report["runtime"]["unavailable"]
    extra = {
        "onnxruntime": "onnx",
        "onnxruntime-int8-qdq": "onnx",
        "onnxruntime-int8-qoperator": "onnx",
        "openvino": "openvino",
        "openvino-fp16": "openvino",
        "openvino-int8-nncf": "nncf",
    }
    # the default runtimes; ExecuTorch, ncnn, OpenVINO's bf16 hint and torch.ao are opt-in
    assert set(unavailable) == set(extra)
    assert all(f"pip install sysnoise[{extra[option]}]" in why for option, why in unavailable.items())
    assert report["loaded"] == []
    assert (
        "n/a" in (tmp_path / "out" / "report.md").read_text()
        and "sysnoise[onnx]" in (tmp_path / "out" / "report.md").read_text()
    )


def test_tasks_that_need_an_extra_refuse_with_its_install_line(monkeypatch):
    import pytest

    from sysnoise import api, extras
    from sysnoise.errors import UserInputError

    monkeypatch.setitem(sys.modules, "pycocotools", None)  # import pycocotools now fails
    extras.available.cache_clear()
    try:
        with pytest.raises(UserInputError, match=r"detection .* needs pycocotools: pip install sysnoise\[coco\]"):
            api.run("zoo-detector", "scenes", task="detection")
    finally:
        extras.available.cache_clear()
