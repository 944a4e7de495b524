"""Hugging Face image classifiers from local files: a folder (config.json, weights,
preprocessor_config.json) or a name already in the local Hugging Face cache. Nothing is downloaded.

The model returns `ImageClassifierOutput`; the engine forwards tensors, so the module is wrapped to
return its `.logits`. The reference pipeline is the processor config's (reference_sources), the
class names the config's `id2label`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from sysnoise import extras
from sysnoise.errors import UserInputError
from sysnoise.loaded_model import LoadedModel, hf_cached_snapshot
from sysnoise.reference_sources import from_hf_processor
from sysnoise.weights import sha256_file

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def _folder(name: str) -> Path:
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        return hf_cached_snapshot(name)
    except Exception as err:  # huggingface_hub's LocalEntryNotFoundError and friends
        raise UserInputError(
            f"{name}: not a folder and not in the local Hugging Face cache ({type(err).__name__}); "
            "give a folder with config.json, weights and preprocessor_config.json"
        ) from None


def _logits_module(model):
    import torch

    class Logits(torch.nn.Module):
        """The transformers model, returning the logits tensor the engine compares."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, pixel_values):
            return self.inner(pixel_values=pixel_values).logits

    return Logits(model).eval()


def load_image_classifier(name: str) -> LoadedModel:
    folder = _folder(name)
    processor_file = folder / "preprocessor_config.json"
    if not processor_file.is_file():
        raise UserInputError(
            f"{folder}: no preprocessor_config.json: the reference pipeline comes from it "
            "(save the image processor with save_pretrained beside the model)"
        )
    try:
        processor = json.loads(processor_file.read_text())
    except (OSError, ValueError) as err:
        raise UserInputError(f"{processor_file}: cannot read: {err}") from None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    extras.require("lm", "Hugging Face image classifiers")
    from transformers import AutoModelForImageClassification

    try:
        model = AutoModelForImageClassification.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as err:
        raise UserInputError(f"{folder}: cannot load an image classifier from local files: {err}") from None
    resolved = from_hf_processor(processor, str(processor_file))
    labels = model.config.id2label
    weights = next((folder / f for f in WEIGHT_FILES if (folder / f).is_file()), None)
    return LoadedModel(
        name=f"hf:{name}",
        module=_logits_module(model),
        reference=resolved.pipeline,
        reference_provenance=dict(resolved.provenance),
        num_classes=int(model.config.num_labels),
        class_names=[labels[i] for i in range(len(labels))] if labels else None,
        source=str(folder),
        weights_sha256=sha256_file(weights) if weights else None,
        card={"architecture": type(model).__name__, "image_processor": processor.get("image_processor_type")},
    )
