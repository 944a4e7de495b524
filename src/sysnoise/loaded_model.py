"""A loaded model, whatever loaded it: the module, its reference pipeline with where each field
came from, its classes and weights digest; MODELS, the registry of model names; where the
libraries' own caches keep weights (Hugging Face hub, torch.hub). Loaders (models.py, the zoo,
hf_vision, language_models) all return a LoadedModel."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sysnoise.pipeline.spec import Pipeline
from sysnoise.reference_sources import ResolvedReference
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
    reference_provenance: dict[str, str] = field(default_factory=dict)  # field -> where its value came from

    def resolved_reference(self) -> ResolvedReference:
        return ResolvedReference(self.reference, self.reference_provenance)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "weights_sha256": self.weights_sha256,
            "num_classes": self.num_classes,
            "card": self.card,
            "reference_provenance": dict(self.resolved_reference().provenance),
        }


def imagenet_names() -> list[str]:
    """The 1,000 ImageNet class names in torchvision's spelling, from a copy shipped with sysnoise:
    importing torchvision.models for them costs a run 1-3 s (tests compare the copy with it)."""
    return (Path(__file__).parent / "zoo" / "imagenet_classes.txt").read_text().splitlines()


def hf_cache_path(repo_id: str, filename: str) -> str:
    """Where the Hugging Face hub cache keeps `filename` of `repo_id` (for error messages)."""
    from huggingface_hub.constants import HF_HUB_CACHE

    return f"{HF_HUB_CACHE}/models--{repo_id.replace('/', '--')}/snapshots/REVISION/{filename}"


def hf_cached_snapshot(repo_id: str) -> Path:
    """The local Hugging Face cache's snapshot folder of a Hub name (the revision refs/main points
    to); offline, nothing is downloaded (huggingface_hub raises when it is not cached)."""
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id, local_files_only=True))
