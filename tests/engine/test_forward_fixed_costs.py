"""What a short run pays before its first forward: no library is imported only to read its version
or its class names (torchvision alone costs 1-3 s), and what those shortcuts record is what the
libraries themselves say."""

import importlib
import subprocess
import sys
import textwrap

import pytest

from sysnoise.loaded_model import imagenet_names
from sysnoise.versions import version_unimported


def test_shipped_imagenet_names_are_torchvision_s():
    from torchvision.models import ResNet50_Weights

    assert imagenet_names() == list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


@pytest.mark.parametrize(
    "module", ["torch", "torchvision", "numpy", "scipy", "onnx", "onnxruntime", "simplejpeg", "av"]
)
def test_versions_read_without_import_equal_the_modules_own(module):
    try:
        imported = importlib.import_module(module)
    except ImportError:
        pytest.skip(f"{module} is not installed")
    assert version_unimported(module) == imported.__version__


def test_a_classification_run_imports_no_torchvision(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        import torch
        from PIL import Image
        from sysnoise import api
        from sysnoise.engine.execute import EngineOptions
        from sysnoise.models import wrap_module
        from sysnoise.pipeline.spec import Pipeline

        for i in range(2):
            Image.fromarray(np.full((40, 48, 3), 60 * i, np.uint8)).save(r"{tmp_path}/img%d.jpg" % i)
        model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                    torch.nn.Linear(4, 3))
        api.run(wrap_module(model, reference=Pipeline(input_size=32, crop_pct=0.875)), r"{tmp_path}",
                noises=["resize=opencv-area", "decoder=opencv"], out=r"{tmp_path}/run",
                options=EngineOptions(workers=0, progress=False), figures=False)
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("torchvision", "scipy", "onnxruntime")))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
