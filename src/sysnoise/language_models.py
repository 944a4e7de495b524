"""Causal language models from Hugging Face transformers, read from local files only.

A model is a local directory (config.json + weights + tokenizer), a name already in the local
Hugging Face cache, a GGUF file inside a directory, or a zoo name (`sysnoise list`). Nothing is
downloaded: `local_files_only=True` on every call, and HF_HUB_OFFLINE is set before
transformers is first imported so no library underneath goes to the network either.
The model is loaded in float32: the reference system of the paper's Table 5 (FP32).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from sysnoise import extras
from sysnoise.errors import UserInputError
from sysnoise.loaded_model import MODELS, LoadedModel, hf_cached_snapshot
from sysnoise.pipeline.spec import Pipeline
from sysnoise.weights import sha256_file

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")


def _offline() -> None:
    # huggingface_hub reads these once, at import: set them before transformers is imported.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # the tokenizer runs in DataLoader workers forked from a process that already used it
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _weights_digest(files: list[Path]) -> str:
    """sha256 of one weights file; for several, sha256 over their names and sha256s."""
    if len(files) == 1:
        return sha256_file(files[0])
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(f"{path.name}:{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def is_causal_lm(module) -> bool:
    """A transformers model with a language-modelling head: what the LM-only options act on."""
    config = getattr(module, "config", None)
    return config is not None and hasattr(config, "vocab_size") and hasattr(module, "get_output_embeddings")


def load_causal_lm(
    name_or_path: str, *, gguf_file: str | None = None, name: str | None = None, card: dict | None = None
) -> LoadedModel:
    """A LoadedModel whose module is the float32 transformers model and tokenizer its tokenizer."""
    extras.require("lm", "language models")
    _offline()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # per-tensor GGUF bars would drown the run's own progress
    path = Path(name_or_path).expanduser()
    where = str(path) if path.exists() else name_or_path
    if path.exists() and not path.is_dir():
        raise UserInputError(f"{path}: expected a model directory (config.json, weights, tokenizer)")
    extra = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=True, **extra)
        module = AutoModelForCausalLM.from_pretrained(where, local_files_only=True, dtype=torch.float32, **extra)
    except (OSError, ValueError) as err:
        raise UserInputError(
            f"{name_or_path}: cannot load a causal language model from local files ({err}). Give a local "
            "directory with config.json, weights and tokenizer files, or a name in the local Hugging Face "
            "cache; nothing is downloaded."
        ) from None
    folder = path if path.is_dir() else hf_cached_snapshot(name_or_path)
    files = [folder / gguf_file] if gguf_file else [p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES]
    return LoadedModel(
        name=name or name_or_path,
        module=module.eval(),
        reference=Pipeline(),  # only the model-stage fields (precision fp32, runtime torch) apply to text
        num_classes=int(module.config.vocab_size),
        source=where,
        weights_sha256=_weights_digest(files) if files else None,
        card={"architecture": type(module).__name__, **(card or {})},
        tokenizer=tokenizer,
    )


def load_language_model(name: str) -> LoadedModel:
    """A zoo name registered with task='language', else a local directory or cache name."""
    if name in MODELS:
        entry = MODELS.get(name)
        if entry.meta.get("task") != "language":
            raise UserInputError(f"model {name!r} is a {entry.meta.get('task', 'vision')} model, not a language model")
        return entry.fn(None)
    return load_causal_lm(name)
