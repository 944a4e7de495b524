"""Record the system a result was measured on: library versions are themselves part of the noise."""

from __future__ import annotations

import os
import platform
import re
import sys

import torch

from sysnoise.pipeline.decode import decoder_versions
from sysnoise.versions import distribution_version, library_version


def cpu_name() -> str:
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


def describe(distributions: tuple[str, ...] = ()) -> dict:
    """The machine and library versions; `distributions`: more installed packages a task depends on
    (a language run's transformers, tokenizers...), recorded by their metadata version."""
    info = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "libraries": {
            name: library_version(module)
            for name, module in [
                ("sysnoise", "sysnoise"),
                ("torch", "torch"),
                ("torchvision", "torchvision"),
                ("numpy", "numpy"),
                ("Pillow", "PIL"),
                ("opencv", "cv2"),
                ("av", "av"),
                ("simplejpeg", "simplejpeg"),
                ("onnxruntime", "onnxruntime"),
                ("onnx", "onnx"),
                ("scipy", "scipy"),
            ]
        }
        | {name: distribution_version(name) for name in distributions},
        "decoder_libraries": {
            "Pillow": _pillow_codecs(),
            "opencv_jpeg": _opencv_jpeg(),
            "ffmpeg": _ffmpeg(),
            "decoders": decoder_versions(),
        },
    }
    return info
