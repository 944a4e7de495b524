"""Record the system a result was measured on: library versions are themselves part of the noise."""

from __future__ import annotations

import importlib
import os
import platform
import re
import sys


def _version(module: str) -> str | None:
    """The module's __version__: from the module when it is imported already, else read without
    importing it (torchvision, scipy, onnxruntime cost a run seconds to import only for this)."""
    if module not in sys.modules:
        found = _version_unimported(module)
        if found is not None:
            return found
    try:
        mod = importlib.import_module(module)
    except Exception:
        return None
    return str(getattr(mod, "__version__", None) or getattr(mod, "VERSION", "unknown"))


def _version_unimported(module: str) -> str | None:
    """A package's `__version__ = "..."` line in its version.py (torchvision's carries the build's
    local tag, +cpu or +cu130, that its distribution's metadata lacks), else the version of the
    distribution of the same name; None when neither says (the caller then imports it)."""
    import importlib.metadata
    import importlib.util

    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    version_file = os.path.join(os.path.dirname(spec.origin), "version.py")
    if os.path.isfile(version_file):
        with open(version_file, encoding="utf-8") as fh:
            match = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", fh.read(), re.M)
        if match:
            return match.group(1)
    try:
        return importlib.metadata.version(module)  # the distribution of the module's name, if any
    except importlib.metadata.PackageNotFoundError:
        return None


library_version = _version


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _opencv_jpeg() -> str | None:
    try:
        import cv2

        match = re.search(r"JPEG:\s*(.+)", cv2.getBuildInformation())
        return match.group(1).strip() if match else None
    except Exception:
        return None


def _pillow_codecs() -> dict:
    try:
        from PIL import features

        return {name: features.version(name) for name in ("libjpeg_turbo", "jpg", "zlib") if features.check(name)}
    except Exception:
        return {}


def _ffmpeg() -> dict | None:
    try:
        import av

        return {name: ".".join(map(str, version)) for name, version in av.library_versions.items()}
    except Exception:
        return None


def _decoders() -> dict:
    from sysnoise.pipeline.decode import decoder_versions

    return decoder_versions()


def describe() -> dict:
    import torch

    decoder_libraries = {  # first: these import OpenCV, Pillow and PyAV, whose versions come from the modules
        "Pillow": _pillow_codecs(),
        "opencv_jpeg": _opencv_jpeg(),
        "ffmpeg": _ffmpeg(),
        "decoders": _decoders(),
    }
    info = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "libraries": {
            name: _version(module)
            for name, module in [
                ("sysnoise", "sysnoise"), ("torch", "torch"), ("torchvision", "torchvision"), ("numpy", "numpy"),
                ("Pillow", "PIL"), ("opencv", "cv2"), ("av", "av"), ("simplejpeg", "simplejpeg"),
                ("onnxruntime", "onnxruntime"), ("onnx", "onnx"), ("scipy", "scipy"),
            ]
        },
        "decoder_libraries": decoder_libraries,
    }
    return info
