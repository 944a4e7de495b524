"""Optional dependencies, grouped as the package's extras: what each needs, whether it is
installed here, and the line that installs it. A missing extra makes its options "n/a" with that
line, never an ImportError in the middle of a run."""

from __future__ import annotations

from functools import cache
from importlib import import_module

from sysnoise.errors import UserInputError

EXTRAS: dict[str, tuple[str, ...]] = {
    "onnx": ("onnx", "onnxruntime"),
    "coco": ("pycocotools",),
    "lm": ("transformers", "tokenizers"),
    "timm": ("timm",),
    "datasets": ("datasets",),
    "openvino": ("openvino",),
    "nncf": ("openvino", "nncf"),
    "executorch": ("executorch", "torchao"),
    "ncnn": ("ncnn", "pnnx"),
}


@cache
def available(extra: str) -> bool:
    try:
        for module in EXTRAS[extra]:
            import_module(module)
    except ImportError:
        return False
    return True


def install_line(extra: str) -> str:
    return f"pip install sysnoise[{extra}]"


def require(extra: str, what: str) -> None:
    """Refuse `what` (before any work) when its extra is missing."""
    if not available(extra):
        raise UserInputError(f"{what} needs {', '.join(EXTRAS[extra])}: {install_line(extra)}")
