"""Models by name: the embedded zoo, torchvision/timm architectures with a local weights file,
or any torch.nn.Module handed in through the Python API.

Weights are read with safetensors or `torch.load(weights_only=True)`, never unrestricted pickle:
a weights file is data from somewhere else and must not be able to run code.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from sysnoise.errors import UserInputError
from sysnoise.pipeline.spec import Pipeline
from sysnoise.registry import Registry

MODELS: Registry = Registry("model")


@dataclass
class LoadedModel:
    name: str
    module: Any  # torch.nn.Module in eval mode
    reference: Pipeline  # the system the model was trained with
    num_classes: int
    class_names: list[str] | None = None
    source: str = "python object"
    weights_sha256: str | None = None
    card: dict[str, Any] = field(default_factory=dict)
    tokenizer: Any = None  # language models: the tokenizer that turns text into the model's tokens

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "weights_sha256": self.weights_sha256,
            "num_classes": self.num_classes,
            "card": self.card,
        }


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_state_dict(path: str | Path) -> dict:
    """A state dict from .safetensors or a torch file, refusing anything but plain tensors."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise UserInputError(
            f"{path}: cannot load as plain tensors with torch.load(weights_only=True) ({err}). "
            "Save the state_dict (not the pickled model) or convert it to .safetensors."
        ) from None
    for key in ("state_dict", "model"):  # common checkpoint wrappers
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise UserInputError(f"{path}: expected a state_dict (name -> tensor), found {type(state).__name__}")
    return state


def _load_into(module, state: dict, source: Path) -> None:
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise UserInputError(
            f"{source}: weights do not fit the architecture: "
            f"{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})"
        )


def _imagenet_names() -> list[str]:
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def _from_library(library: str, arch: str, weights: Path | None, num_classes: int | None, reference: Pipeline):
    if weights is None:
        raise UserInputError(
            f"{library}:{arch} needs --weights PATH (a local state_dict); nothing is downloaded at run time."
        )
    state = load_state_dict(weights)
    classes = num_classes or _infer_num_classes(state) or 1000
    if library == "torchvision":
        import torchvision

        try:
            module = torchvision.models.get_model(arch, weights=None, num_classes=classes)
        except ValueError as err:
            raise UserInputError(f"torchvision has no model {arch!r}: {err}") from None
    else:
        try:
            import timm
        except ImportError:
            raise UserInputError("timm models need `pip install timm` (or `pip install sysnoise[timm]`)") from None
        module = timm.create_model(arch, pretrained=False, num_classes=classes)
    _load_into(module, state, weights)
    return LoadedModel(
        name=f"{library}:{arch}",
        module=module.eval(),
        reference=reference,
        num_classes=classes,
        class_names=_imagenet_names() if classes == 1000 else None,
        source=str(weights),
        weights_sha256=sha256_file(weights),
    )


def _dense_task(arch: str) -> str | None:
    """'detection' / 'segmentation' for torchvision's detection and segmentation architectures."""
    import torchvision

    for task, module in (("detection", torchvision.models.detection), ("segmentation", torchvision.models.segmentation)):
        if arch in torchvision.models.list_models(module=module):
            return task
    return None


def _torchvision_dense(task: str, arch: str, weights: Path, reference: Pipeline | None) -> LoadedModel:
    """A torchvision detector or segmenter; its reference pipeline is what its own transforms do
    (tasks/detection_heads.reference_pipeline, tasks/segmentation.reference_pipeline)."""
    import torchvision

    state = load_state_dict(weights)
    if task == "detection":
        from sysnoise.tasks import detection_heads as loader
    else:
        from sysnoise.tasks import segmentation as loader
    module, classes = loader.load_torchvision(arch, weights, state)
    try:  # category names ship with torchvision's code (no download)
        names = list(torchvision.models.get_model_weights(arch).DEFAULT.meta["categories"])
    except Exception:
        names = None
    return LoadedModel(name=f"torchvision:{arch}", module=module, reference=reference or loader.reference_pipeline(module),
                       num_classes=classes, class_names=names if names and len(names) == classes else None,
                       source=str(weights), weights_sha256=sha256_file(weights))


def _infer_num_classes(state: dict) -> int | None:
    last = [v for k, v in state.items() if k.endswith(".weight") and getattr(v, "ndim", 0) == 2]
    return int(last[-1].shape[0]) if last else None


def load_model(
    name: str,
    weights: str | Path | None = None,
    *,
    reference: Pipeline | None = None,
    num_classes: int | None = None,
) -> LoadedModel:
    """Load `name`: a zoo name (see `sysnoise list`), `torchvision:ARCH` or `timm:ARCH`."""
    import sysnoise.zoo  # noqa: F401  (registers the embedded models)

    weights = Path(weights) if weights is not None else None
    if ":" in name:
        library, arch = name.split(":", 1)
        if library not in ("torchvision", "timm"):
            raise UserInputError(f"unknown model library {library!r} in {name!r}; use torchvision:ARCH or timm:ARCH")
        if library == "torchvision" and weights is not None and (task := _dense_task(arch)):
            return _torchvision_dense(task, arch, weights, reference)
        return _from_library(library, arch, weights, num_classes, reference or Pipeline())
    loader: Callable[..., LoadedModel] = MODELS(name)
    loaded = loader(weights)
    if reference is not None:
        loaded.reference = reference
    return loaded


def wrap_module(module, *, name: str = "model", reference: Pipeline | None = None,
                num_classes: int | None = None, class_names: list[str] | None = None) -> LoadedModel:
    """Any torch.nn.Module as a LoadedModel, for the Python API."""
    return LoadedModel(
        name=name,
        module=module.eval(),
        reference=reference or Pipeline(),
        num_classes=num_classes or (len(class_names) if class_names else 1000),
        class_names=class_names,
    )
