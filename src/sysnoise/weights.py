"""Weights files: their digest, their tensors read safely, and loading them into a module with
errors that name the file. Read with safetensors or `torch.load(weights_only=True)`, never
unrestricted pickle: a weights file is data from somewhere else and must not be able to run code."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from safetensors.torch import load_file

from sysnoise.errors import UserInputError


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_state_dict(path: str | Path) -> dict:
    """A state dict from .safetensors or a torch file, refusing anything but plain tensors."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except Exception as err:  # safetensors raises its own error type, and OSError
            raise UserInputError(
                f"{path}: not a readable .safetensors file ({err}); save it again with safetensors.torch.save_file"
            ) from None
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


def load_into(module, state: dict, source: Path) -> None:
    """Load `state` into `module`, refusing tensors of another shape and missing or unexpected names."""
    own = module.state_dict()
    wrong = [
        f"{name} {tuple(value.shape)} where the model has {tuple(own[name].shape)}"
        for name, value in state.items()
        if name in own and tuple(getattr(value, "shape", ())) != own[name].shape
    ]
    if wrong:
        raise UserInputError(
            f"{source}: weights do not fit the architecture: {len(wrong)} tensor(s) of another shape, e.g. "
            f"{'; '.join(wrong[:3])}; were they saved from this architecture (and number of classes)?"
        )
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise UserInputError(
            f"{source}: weights do not fit the architecture: "
            f"{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})"
        )
