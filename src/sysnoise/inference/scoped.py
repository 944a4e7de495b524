"""Scoped rewrites of functional calls, through torch-function modes.

`F.interpolate` inside torchvision's FPN or a segmentation head, and `F.gelu` inside a custom
block, are not modules: no attribute of a module can change them. A `TorchFunctionMode` sees
every torch function called while it is active, including `F.interpolate` however it was
imported (`F.interpolate`, `torch.nn.functional.interpolate`, `from ... import interpolate`).

`FunctionalRewrite` wraps a model; its forward enters the mode and leaves it on return or on an
error. The mode stack is thread-local, so no other thread and no code outside the wrapped
forward ever sees a rewritten call; nothing global is patched. The wrapper holds only rule names
(plain strings), so it deep-copies, pickles and exports (ONNX tracing records the rewritten
calls) like any module.
"""

from __future__ import annotations

import functools
import inspect
import sys

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

_LINEAR_BY_DIM = {3: "linear", 4: "bilinear", 5: "trilinear"}
_ALIGNABLE = {"linear", "bilinear", "bicubic", "trilinear"}


@functools.lru_cache(maxsize=1)
def excluded_types() -> tuple[type, ...]:
    """Modules whose own interpolation is input resizing, not part of the network: their calls are
    left alone (torchvision's detection transform resizes images with F.interpolate)."""
    found = []
    try:
        from torchvision.models.detection.transform import GeneralizedRCNNTransform

        found.append(GeneralizedRCNNTransform)
    except Exception:  # torchvision missing or reorganised: nothing to exclude
        pass
    return tuple(found)


_INTERPOLATE_SIGNATURE = inspect.signature(F.interpolate)


def _upsample_bilinear(arguments: dict, dims: int) -> None:
    if arguments["mode"] in ("nearest", "nearest-exact") and dims in _LINEAR_BY_DIM:
        arguments["mode"] = _LINEAR_BY_DIM[dims]
        arguments["align_corners"] = False


def _upsample_align_corners(arguments: dict, dims: int) -> None:
    if arguments["mode"] in _ALIGNABLE:
        arguments["align_corners"] = not bool(arguments["align_corners"])


def _upsample_nearest_exact(arguments: dict, dims: int) -> None:
    swap = {"nearest": "nearest-exact", "nearest-exact": "nearest"}
    if arguments["mode"] in swap:
        arguments["mode"] = swap[arguments["mode"]]


INTERPOLATE_RULES = {
    "upsample-bilinear": _upsample_bilinear,
    "upsample-align-corners": _upsample_align_corners,
    "upsample-nearest-exact": _upsample_nearest_exact,
}
GELU_RULES = {"gelu-tanh"}
RULES = set(INTERPOLATE_RULES) | GELU_RULES


def _inside_excluded(stop_at: object) -> bool:
    excluded = excluded_types()
    if not excluded:
        return False
    frame = sys._getframe(2)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if owner is stop_at:
            return False
        if isinstance(owner, excluded):
            return True
        frame = frame.f_back
    return False


class RewriteMode(TorchFunctionMode):
    """Rewrites the arguments of F.interpolate / F.gelu calls by rule name; records what it did."""

    def __init__(self, rules: tuple[str, ...], owner: object = None):
        super().__init__()
        self.rules = rules
        self.owner = owner
        self.rewritten = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.interpolate and any(r in INTERPOLATE_RULES for r in self.rules):
            if not _inside_excluded(self.owner):
                bound = _INTERPOLATE_SIGNATURE.bind(*args, **kwargs)
                bound.apply_defaults()
                arguments = dict(bound.arguments)
                before = (arguments["mode"], arguments["align_corners"])
                for rule in self.rules:
                    if rule in INTERPOLATE_RULES:
                        INTERPOLATE_RULES[rule](arguments, arguments["input"].dim())
                if (arguments["mode"], arguments["align_corners"]) != before:
                    self.rewritten += 1
                    if arguments["mode"] not in _ALIGNABLE:
                        arguments["align_corners"] = None
                return func(**arguments)
        elif func is F.gelu and "gelu-tanh" in self.rules:
            approximate = kwargs.get("approximate", args[1] if len(args) > 1 else "none")
            self.rewritten += 1
            return func(args[0], approximate="tanh" if approximate == "none" else "none")
        return func(*args, **kwargs)


class FunctionalRewrite(torch.nn.Module):
    """`inner` with functional calls rewritten by `rules`, only while its forward runs."""

    def __init__(self, inner: torch.nn.Module, rules: tuple[str, ...]):
        super().__init__()
        unknown = [r for r in rules if r not in RULES]
        if unknown:
            raise ValueError(f"unknown functional rewrite(s) {unknown}; known: {sorted(RULES)}")
        self.inner = inner
        self.rules = tuple(rules)

    def forward(self, *args, **kwargs):
        with RewriteMode(self.rules, owner=self):
            return self.inner(*args, **kwargs)

    def extra_repr(self) -> str:
        return f"rules={self.rules}"


def with_rules(model: torch.nn.Module, rules: tuple[str, ...]) -> FunctionalRewrite:
    """A rewritten copy of `model`; rules stack onto an existing wrapper instead of nesting."""
    if isinstance(model, FunctionalRewrite):
        return FunctionalRewrite(copy_module(model.inner), model.rules + tuple(r for r in rules if r not in model.rules))
    return FunctionalRewrite(copy_module(model), tuple(rules))


def copy_module(model):
    import copy

    return copy.deepcopy(model)


class TensorUseCounter(TorchFunctionMode):
    """Counts, per tensor id, how many torch calls take a watched tensor as an argument
    (calls made while `paused` > 0 are not counted)."""

    def __init__(self, watched):
        super().__init__()
        self.watched = watched
        self.uses: dict[int, int] = {}
        self.paused = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        for value in () if self.paused else _flatten((args, kwargs)):
            if isinstance(value, torch.Tensor) and self.watched(id(value)):
                self.uses[id(value)] = self.uses.get(id(value), 0) + 1
        return func(*args, **kwargs)


def _flatten(value):
    if isinstance(value, (list, tuple)):
        for item in value:
            yield from _flatten(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _flatten(item)
    else:
        yield value
